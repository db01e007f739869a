"""Real-valued multi-user BPSK uplink of the task-based quantization paper, MAP and QMAP.

Model: y = H s + w, y in R^{N_r}, s in {+1, -1}^{N_u} (bit 0 -> +1, as our BPSK),
w ~ N(0, noise_var I). Channel ``H_ij = exp(-|i - j|)`` (12 x 4).
SNR definition (this model): SNR = 1 / noise_var, unit-power symbols, noise
variance per real receive antenna; ``noise_var = 10**(-snr_db/10)``.
The 2^N_u hypotheses are indexed by their bits, user 0 as the MSB (16 classes).
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_ndtr

from phy.constellation import bit_labels


def task_based_channel(n_r: int = 12, n_u: int = 4) -> np.ndarray:
    """H_ij = exp(-|i - j|), float64 (n_r, n_u)."""
    i, j = np.meshgrid(np.arange(n_r), np.arange(n_u), indexing="ij")
    return np.exp(-np.abs(i - j).astype(np.float64))


def hypotheses(n_u: int) -> tuple[np.ndarray, np.ndarray]:
    """(bits uint8 (2^n_u, n_u), symbols float (2^n_u, n_u)) in class-index order."""
    bits = bit_labels(n_u)
    return bits, 1.0 - 2.0 * bits


def bpsk_multiuser_link(batch: int, H: np.ndarray, noise_var: float,
                        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random classes (batch,) and received y (batch, n_r)."""
    _, sym = hypotheses(H.shape[1])
    cls = rng.integers(0, len(sym), batch)
    y = sym[cls] @ H.T + np.sqrt(noise_var) * rng.standard_normal((batch, H.shape[0]))
    return cls, y


def map_detect(y: np.ndarray, H: np.ndarray, noise_var: float) -> np.ndarray:
    """MAP (= ML, uniform prior) class per row: argmin_s ||y - H s||^2."""
    _, sym = hypotheses(H.shape[1])
    means = sym @ H.T  # (C, n_r)
    d = (y**2).sum(1, keepdims=True) - 2 * y @ means.T + (means**2).sum(1)[None]
    return d.argmin(axis=1)


def uniform_thresholds(n_levels: int, amplitude: float) -> np.ndarray:
    """Decision thresholds of a uniform mid-rise quantizer with ``n_levels`` cells on
    [-amplitude, amplitude] (the outer cells extend to +-infinity)."""
    return np.linspace(-amplitude, amplitude, n_levels + 1)[1:-1]


def quantize(y: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Scalar ADC: cell index per entry (0 .. len(thresholds))."""
    return np.searchsorted(thresholds, y)


def qmap_detect(q: np.ndarray, thresholds: np.ndarray, H: np.ndarray,
                noise_var: float) -> np.ndarray:
    """MAP class from quantized observations q (batch, n_r) of per-antenna scalar ADCs.

    P(q | s) = prod_i [Phi((u_i - (Hs)_i)/sigma) - Phi((l_i - (Hs)_i)/sigma)] for the
    cell [l_i, u_i) of q_i; computed in the log domain.
    """
    _, sym = hypotheses(H.shape[1])
    means = sym @ H.T  # (C, n_r)
    edges = np.concatenate([[-np.inf], thresholds, [np.inf]])
    lo, hi = edges[q][:, None, :], edges[q + 1][:, None, :]  # (B, 1, n_r)
    sigma = np.sqrt(noise_var)
    a, b = (lo - means[None]) / sigma, (hi - means[None]) / sigma
    # log(Phi(b) - Phi(a)), stable on either tail by symmetry
    upper = a > 0
    a2, b2 = np.where(upper, -b, a), np.where(upper, -a, b)
    lb, la = log_ndtr(b2), log_ndtr(a2)
    loglik = lb + np.log1p(-np.exp(np.minimum(la - lb, 0.0)))
    return loglik.sum(axis=2).argmax(axis=1)


def class_bit_errors(pred: np.ndarray, cls: np.ndarray, n_u: int) -> float:
    """BER between predicted and true class indices (bits of every user)."""
    bits, _ = hypotheses(n_u)
    return float(np.mean(bits[pred] != bits[cls]))
