"""Wideband OFDM channels: 3GPP EPA (TS 36.101) and 5G-NR CDL-A (Sionna).

CDL-A (:func:`cdl_a_codeword_channels`) samples narrowband MIMO matrices for the coded
link: one Sionna drop per codeword, its channel uses on subcarriers spread over a 20 MHz
band, block fading per group of OFDM symbols (see that function).

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


CDL_CARRIER_FREQUENCY_HZ = 3.5e9
CDL_SUBCARRIER_SPACING_HZ = 30e3
#: 20 MHz NR carrier at 30 kHz: 51 PRB of 12 subcarriers (the codeword's default band).
NR_20MHZ_30KHZ_SUBCARRIERS = 612


def cdl_a_frequency_response(
    batch: int,
    n_subcarriers: int,
    n_r: int = 1,
    n_t: int = 1,
    delay_spread_s: float = 100e-9,
    carrier_frequency_hz: float = CDL_CARRIER_FREQUENCY_HZ,
    subcarrier_spacing_hz: float = CDL_SUBCARRIER_SPACING_HZ,
    seed: int = 0,
    subcarrier_indices: np.ndarray | None = None,
    normalize: bool = True,
) -> np.ndarray:
    """5G-NR CDL-A MIMO frequency response from Sionna, (batch, n_subcarriers, n_r, n_t).

    Single-polarised omni arrays at both ends (n_r receive, n_t transmit columns),
    static (speed 0), one independent CDL-A drop (Sionna's random ray coupling and
    phases) per batch row, on ``n_subcarriers`` adjacent subcarriers centred on the
    carrier (Sionna's ``subcarrier_frequencies``), or only on those of
    ``subcarrier_indices`` (indices into that grid; the output's axis 1 follows them).

    ``normalize``: True, each drop is scaled to unit average energy per entry over the
    evaluated subcarriers (Sionna's ``normalize=True``); False, no scaling: Sionna's CDL
    power-delay profile sums to 1 and the antennas are omni, so E|h_ij|^2 = 1 on average
    over drops, and a drop's energy fades as it physically does.

    Reproducible: the same ``seed`` gives the same array. Sionna runs on the CPU in single
    precision whatever its global device/precision, so a GPU machine gives the CPU's
    numbers; the seed goes through ``sionna.phy.config.seed`` (Sionna's own generators),
    and PyTorch's global generators, which that setter reseeds, are restored afterwards.
    """
    import torch
    from sionna.phy import config
    from sionna.phy.channel import cir_to_ofdm_channel, subcarrier_frequencies
    from sionna.phy.channel.tr38901 import CDL, PanelArray

    kw = {"precision": "single", "device": "cpu"}

    def array(n: int) -> PanelArray:
        return PanelArray(num_rows_per_panel=1, num_cols_per_panel=n, polarization="single",
                          polarization_type="V", antenna_pattern="omni",
                          carrier_frequency=carrier_frequency_hz, **kw)

    with torch.random.fork_rng(devices=range(torch.cuda.device_count())
                               if torch.cuda.is_available() else []):
        config.seed = int(seed)
        cdl = CDL(model="A", delay_spread=delay_spread_s,
                  carrier_frequency=carrier_frequency_hz, ut_array=array(n_t),
                  bs_array=array(n_r), direction="uplink", min_speed=0.0, **kw)
        a, tau = cdl(batch_size=batch, num_time_steps=1, sampling_frequency=1.0)
        freqs = subcarrier_frequencies(n_subcarriers, subcarrier_spacing_hz, **kw)
        if subcarrier_indices is not None:
            freqs = freqs[torch.as_tensor(np.asarray(subcarrier_indices), dtype=torch.long)]
        h = cir_to_ofdm_channel(freqs, a, tau, normalize=normalize)
    # [batch, rx=1, rx_ant, tx=1, tx_ant, time=1, freq] -> [batch, freq, rx_ant, tx_ant]
    h = h[:, 0, :, 0, :, 0, :].permute(0, 3, 1, 2)
    return h.to(torch.complex128).numpy()


def cdl_a_codeword_channels(
    n_codewords: int,
    uses_per_codeword: int,
    n_r: int,
    n_t: int,
    rng: np.random.Generator,
    subcarriers: int = NR_20MHZ_30KHZ_SUBCARRIERS,
    symbols: int = 1,
    delay_spread_s: float = 100e-9,
) -> np.ndarray:
    """Narrowband CDL-A channel matrices for the channel uses of ``n_codewords`` codewords,
    (n_codewords * uses_per_codeword, n_r, n_t), codeword-major, unit average energy
    (E|h_ij|^2 = 1, as ``phy.channels.rayleigh_mimo``, so SNR = E_s/N0 keeps its meaning).

    What is sampled, and why (block fading per group of ``symbols`` channel uses):

    * one independent static CDL-A drop per codeword (Sionna's TR 38.901 CDL-A: 23
      clusters, delay spread ``delay_spread_s``, 3.5 GHz, uplink, omni ULAs): codewords
      are taken far apart in time or from different users, so they fade independently;
    * a codeword's channel uses sit on a resource grid of ``subcarriers`` subcarriers at
      30 kHz (default 612: a 20 MHz carrier, 51 PRB) and ``symbols`` OFDM symbols: it
      occupies n_g = ceil(uses / symbols) subcarriers spread evenly over the band
      (indices floor(g * subcarriers / n_g), a distributed mapping), and ``symbols``
      consecutive channel uses on each. The drop is static over the slot, so the channel
      uses of one subcarrier share one H (a block-fading group); different subcarriers
      see the drop's frequency response there, correlated over the coherence bandwidth
      (~2 MHz at 100 ns). ``subcarriers = n_g`` gives adjacent subcarriers (a contiguous
      allocation, the least frequency diversity); ``symbols = uses_per_codeword``
      one H per codeword (pure block fading).

    The narrowband model y = H x + n per channel use is EQ-Net's (one subcarrier of a
    MIMO-OFDM link, eq. 1). The CDL's spatial correlation (higher than i.i.d. Rayleigh's)
    is the distribution shift of the paper's figures 8-10.

    The Sionna seed is one draw of ``rng`` (``rng.integers(0, 2**63)``), so a chunk's
    generator alone fixes its channels: same generator state, identical matrices.
    """
    n_g = -(-uses_per_codeword // symbols)
    if n_g > subcarriers:
        raise ValueError(f"{uses_per_codeword} channel uses in groups of {symbols} need "
                         f"{n_g} subcarriers; the band has {subcarriers}")
    seed = int(rng.integers(0, 2**63, dtype=np.int64))
    k = (np.arange(n_g) * subcarriers) // n_g
    h = cdl_a_frequency_response(n_codewords, subcarriers, n_r, n_t, delay_spread_s,
                                 seed=seed, subcarrier_indices=k, normalize=False)
    group = np.arange(uses_per_codeword) // symbols
    return h[:, group].reshape(n_codewords * uses_per_codeword, n_r, n_t)
