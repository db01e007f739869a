"""Flat-fading channels, AWGN and the SNR definitions used across the project.

SNR definition (EQ-Net, MIMO i.i.d. Rayleigh and AWGN): unit average symbol
energy per transmitted stream (E_s = 1), unit-variance channel taps
(E|h_ij|^2 = 1), complex noise variance N0 per receive antenna, and

    SNR = E_s / N0 = 1 / N0,    i.e.  noise_var = 10 ** (-snr_db / 10).

So with N_t streams the received signal power per antenna is N_t / N0; the SNR is
per stream, per receive antenna. Coded links quote Eb/N0 = SNR / (bits_per_symbol *
code_rate), see ``ebn0_db_to_noise_var``.
"""

from __future__ import annotations

import numpy as np


def snr_db_to_noise_var(snr_db: float | np.ndarray) -> float | np.ndarray:
    """N0 for ``SNR = E_s/N0`` in dB (unit-energy symbols)."""
    return 10.0 ** (-np.asarray(snr_db, dtype=np.float64) / 10.0)


def noise_var_to_snr_db(noise_var: float | np.ndarray) -> float | np.ndarray:
    """Inverse of ``snr_db_to_noise_var``."""
    return -10.0 * np.log10(np.asarray(noise_var, dtype=np.float64))


def ebn0_db_to_noise_var(
    ebn0_db: float | np.ndarray, bits_per_symbol: int, code_rate: float = 1.0
) -> float | np.ndarray:
    """N0 for a given Eb/N0 in dB: ``N0 = 1 / (Eb/N0 * bits_per_symbol * code_rate)``."""
    ebn0 = 10.0 ** (np.asarray(ebn0_db, dtype=np.float64) / 10.0)
    return 1.0 / (ebn0 * bits_per_symbol * code_rate)


def complex_normal(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """i.i.d. CN(0, 1) samples (complex128)."""
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) * np.sqrt(0.5)


def rayleigh_mimo(batch: int, n_r: int, n_t: int, rng: np.random.Generator) -> np.ndarray:
    """i.i.d. Rayleigh MIMO channels H (batch, n_r, n_t), entries CN(0, 1)."""
    return complex_normal((batch, n_r, n_t), rng)


def rayleigh_siso(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Independent CN(0, 1) SISO taps, e.g. (codewords, subcarriers) for per-subcarrier fading."""
    return complex_normal(shape, rng)


def _per_row(noise_var: float | np.ndarray, ndim: int) -> np.ndarray:
    """Broadcast a scalar or per-row (B,) noise variance against an ndim array."""
    nv = np.asarray(noise_var, dtype=np.float64)
    return nv.reshape(nv.shape + (1,) * (ndim - nv.ndim)) if nv.ndim else nv


def awgn(x: np.ndarray, noise_var: float | np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """x + n with n ~ CN(0, noise_var) (complex x) or N(0, noise_var) (real x).

    ``noise_var`` is a scalar or per-row (B,) / any shape broadcastable from the left.
    """
    x = np.asarray(x)
    nv = _per_row(noise_var, x.ndim)
    if np.iscomplexobj(x):
        return x + np.sqrt(nv) * complex_normal(x.shape, rng)
    return x + np.sqrt(nv) * rng.standard_normal(x.shape)


def mimo_transmit(
    x: np.ndarray, H: np.ndarray, noise_var: float | np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """y = H x + n for x (B, n_t), H (B, n_r, n_t); returns y (B, n_r)."""
    return awgn(np.einsum("brt,bt->br", H, x), noise_var, rng)


def imperfect_csi(
    H: np.ndarray, error_var: float | np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Channel estimate H_hat = H + N, N i.i.d. CN(0, error_var) (real N(0, .) for real H)."""
    return awgn(H, error_var, rng)
