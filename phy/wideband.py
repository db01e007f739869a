"""Wideband OFDM channels: 3GPP EPA (TS 36.101) and 5G-NR CDL-A (Sionna).

EPA is our own (Sionna has no LTE EPA model): a tapped-delay line with the
TS 36.101 Annex B.2 delays and powers, powers normalised to unit total, independent
Rayleigh taps, block fading over one codeword (the 5 Hz Doppler is negligible
within one codeword), evaluated on an LTE grid (10 MHz, 15 kHz subcarriers).
"""

from __future__ import annotations

import numpy as np

from phy.channels import complex_normal

EPA_DELAYS_NS = np.array([0.0, 30.0, 70.0, 90.0, 110.0, 190.0, 410.0])
EPA_POWERS_DB = np.array([0.0, -1.0, -2.0, -3.0, -8.0, -17.2, -20.8])
LTE_10MHZ = {"bandwidth_hz": 10e6, "subcarrier_spacing_hz": 15e3, "fft_size": 1024,
             "used_subcarriers": 600}


def epa_pdp() -> tuple[np.ndarray, np.ndarray]:
    """EPA power-delay profile: (delays in seconds, linear powers summing to 1)."""
    p = 10.0 ** (EPA_POWERS_DB / 10.0)
    return EPA_DELAYS_NS * 1e-9, p / p.sum()


def lte_subcarrier_frequencies(n_subcarriers: int, first: int = -300,
                               spacing_hz: float = 15e3) -> np.ndarray:
    """Baseband frequencies of ``n_subcarriers`` adjacent subcarriers starting at index
    ``first`` (10 MHz LTE uses indices -300..300 without DC; the block must fit)."""
    k = np.arange(first, first + n_subcarriers)
    if first < 0 <= k[-1]:
        k = np.where(k >= 0, k + 1, k)  # skip the DC subcarrier
    return k * spacing_hz


def tdl_frequency_response(batch: int, frequencies_hz: np.ndarray, delays_s: np.ndarray,
                           powers: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """H(f) = sum_l a_l exp(-j 2 pi f tau_l), a_l ~ CN(0, p_l); (batch, n_freq) complex."""
    taps = complex_normal((batch, len(delays_s)), rng) * np.sqrt(powers)
    phase = np.exp(-2j * np.pi * np.outer(delays_s, frequencies_hz))  # (L, F)
    return taps @ phase


def epa_frequency_response(batch: int, n_subcarriers: int, rng: np.random.Generator,
                           first: int = -300) -> np.ndarray:
    """EPA SISO frequency response on adjacent 15 kHz subcarriers, E|H(f)|^2 = 1."""
    delays, powers = epa_pdp()
    freqs = lte_subcarrier_frequencies(n_subcarriers, first)
    return tdl_frequency_response(batch, freqs, delays, powers, rng)


def cdl_a_frequency_response(
    batch: int,
    n_subcarriers: int,
    n_r: int = 1,
    n_t: int = 1,
    delay_spread_s: float = 100e-9,
    carrier_frequency_hz: float = 3.5e9,
    subcarrier_spacing_hz: float = 30e3,
    seed: int = 0,
) -> np.ndarray:
    """5G-NR CDL-A MIMO frequency response from Sionna, (batch, n_subcarriers, n_r, n_t).

    Single-polarised omni arrays at both ends (n_r receive, n_t transmit columns),
    static (speed 0), normalised to unit average energy per entry over the grid.
    """
    import torch
    from sionna.phy import config
    from sionna.phy.channel import cir_to_ofdm_channel, subcarrier_frequencies
    from sionna.phy.channel.tr38901 import CDL, PanelArray

    config.seed = seed

    def array(n: int) -> PanelArray:
        return PanelArray(num_rows_per_panel=1, num_cols_per_panel=n, polarization="single",
                          polarization_type="V", antenna_pattern="omni",
                          carrier_frequency=carrier_frequency_hz)

    cdl = CDL(model="A", delay_spread=delay_spread_s, carrier_frequency=carrier_frequency_hz,
              ut_array=array(n_t), bs_array=array(n_r), direction="uplink", min_speed=0.0)
    a, tau = cdl(batch_size=batch, num_time_steps=1, sampling_frequency=1.0)
    freqs = subcarrier_frequencies(n_subcarriers, subcarrier_spacing_hz)
    h = cir_to_ofdm_channel(freqs, a, tau, normalize=True)
    # [batch, rx=1, rx_ant, tx=1, tx_ant, time=1, freq] -> [batch, freq, rx_ant, tx_ant]
    h = h[:, 0, :, 0, :, 0, :].permute(0, 3, 1, 2)
    return h.to(torch.complex128).numpy()
