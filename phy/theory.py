"""Closed-form error rates used as references in tests and plots."""

from __future__ import annotations

import numpy as np
from scipy.special import erfc

from phy.constellation import pam_factors, qam_constellation


def q_function(x: np.ndarray | float) -> np.ndarray:
    """Gaussian tail probability Q(x) = P(N(0,1) > x)."""
    return 0.5 * erfc(np.asarray(x, dtype=np.float64) / np.sqrt(2.0))


def gray_qam_ber_awgn(bits_per_symbol: int, noise_var: float | np.ndarray) -> np.ndarray:
    """Exact uncoded BER of Gray QAM/BPSK with nearest-point decisions in AWGN.

    Square Gray QAM is two independent Gray PAMs (I from the even label bits, Q
    from the odd ones), so the BER is the average over levels and bits of the
    Gaussian mass of every decision interval whose level carries a different bit.
    Noise variance per real dimension is ``noise_var / 2`` (complex AWGN, N0).
    """
    nv = np.asarray(noise_var, dtype=np.float64)
    levels, i_index, _ = pam_factors(bits_per_symbol)
    _, labels = qam_constellation(bits_per_symbol)
    sigma = np.sqrt(nv / 2.0)  # per real dimension (BPSK ignores the quadrature noise)
    pam_bits = labels[:, 0::2] if bits_per_symbol > 1 else labels
    level_bits = np.zeros((len(levels), pam_bits.shape[1]), dtype=np.uint8)
    level_bits[i_index] = pam_bits
    edges = np.concatenate([[-np.inf], (levels[1:] + levels[:-1]) / 2, [np.inf]])
    ber = np.zeros_like(nv)
    for t, a in enumerate(levels):  # transmitted level
        for r in range(len(levels)):  # decided level
            p = q_function((edges[r] - a) / sigma) - q_function((edges[r + 1] - a) / sigma)
            ber = ber + p * np.sum(level_bits[t] != level_bits[r])
    return ber / (len(levels) * level_bits.shape[1])
