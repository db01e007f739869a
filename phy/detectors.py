"""MIMO detectors producing bit LLRs (L = ln P(1)/P(0)), all (B, N_t * bits_per_symbol).

* ``ml_llr``: exact / max-log ML (``phy.llr.exact_llr``).
* ``zf_sic_llr``: ZF-SIC by QR decomposition (EQ-Net Algorithm 1) with max-log LLRs;
  our own code, Sionna has no SIC detector.
* ``zf_llr``, ``lmmse_llr``, ``kbest_llr``: Sionna's LinearDetector / KBestDetector.
"""

from __future__ import annotations

import numpy as np
import torch

from phy.constellation import qam_constellation
from phy.llr import exact_llr


def ml_llr(y: np.ndarray, H: np.ndarray, noise_var, bits_per_symbol: int,
           max_log: bool = False) -> np.ndarray:
    """Exact (or max-log) ML LLRs by enumeration."""
    return exact_llr(y, H, noise_var, bits_per_symbol, max_log=max_log)


def _scalar_maxlog(z: np.ndarray, gain: np.ndarray, n0: np.ndarray, bps: int):
    """Max-log LLRs and hard symbol for z = gain * x + n: (llr (B, k), index (B,))."""
    points, labels = qam_constellation(bps)
    dist = np.abs(z[:, None] - gain[:, None] * points[None]) ** 2 / n0[:, None]  # (B, M)
    ones = labels.astype(bool)
    big = np.inf
    d1 = np.where(ones.T[None], dist[:, None, :], big).min(axis=2)  # (B, k)
    d0 = np.where(~ones.T[None], dist[:, None, :], big).min(axis=2)
    return d0 - d1, dist.argmin(axis=1)


def zf_sic_llr(y: np.ndarray, H: np.ndarray, noise_var, bits_per_symbol: int) -> np.ndarray:
    """ZF-SIC via QR (EQ-Net Algorithm 1), max-log LLRs.

    H = Q R; z = Q^H y = R x + Q^H n (noise stays white). Streams are detected from
    the last to the first: stream k sees z_k - sum_{j>k} R_kj x_hat_j = R_kk x_k + n_k,
    its max-log LLRs come from that scalar channel, then its hard decision is
    cancelled from the remaining rows. No ordering. For a 1x1 channel this equals
    max-log ML exactly.
    """
    y = np.asarray(y, dtype=np.complex128)
    H = np.asarray(H, dtype=np.complex128)
    batch, _, n_t = H.shape
    n0 = np.broadcast_to(np.asarray(noise_var, dtype=np.float64), (batch,))
    points, _ = qam_constellation(bits_per_symbol)
    q, r = np.linalg.qr(H)  # reduced: q (B, N_r, N_t), r (B, N_t, N_t)
    z = np.einsum("brt,br->bt", q.conj(), y)
    out = np.empty((batch, n_t, bits_per_symbol))
    x_hat = np.zeros((batch, n_t), dtype=np.complex128)
    for k in range(n_t - 1, -1, -1):
        zk = z[:, k] - np.einsum("bj,bj->b", r[:, k, k + 1:], x_hat[:, k + 1:])
        out[:, k], idx = _scalar_maxlog(zk, r[:, k, k], n0, bits_per_symbol)
        x_hat[:, k] = points[idx]
    return out.reshape(batch, n_t * bits_per_symbol)


def _sionna_inputs(y, H, noise_var):
    y_t = torch.as_tensor(np.asarray(y, dtype=np.complex128))
    h_t = torch.as_tensor(np.asarray(H, dtype=np.complex128))
    batch, n_r, _ = h_t.shape
    n0 = np.broadcast_to(np.asarray(noise_var, dtype=np.float64), (batch,))
    s_t = torch.as_tensor(n0[:, None, None] * np.eye(n_r) + 0j)
    return y_t, h_t, s_t


def _constellation_args(bps: int) -> dict:
    return {"constellation_type": "pam" if bps == 1 else "qam", "num_bits_per_symbol": bps}


def linear_llr(y, H, noise_var, bits_per_symbol: int, equalizer: str = "lmmse",
               max_log: bool = False) -> np.ndarray:
    """Sionna LinearDetector ("lmmse" / "zf" / "mf") followed by its app/max-log demapper."""
    from sionna.phy.mimo import LinearDetector

    y_t, h_t, s_t = _sionna_inputs(y, H, noise_var)
    det = LinearDetector(equalizer, "bit", "maxlog" if max_log else "app",
                         precision="double", **_constellation_args(bits_per_symbol))
    return det(y_t, h_t, s_t).numpy().reshape(len(y_t), -1)


def lmmse_llr(y, H, noise_var, bits_per_symbol: int, max_log: bool = False) -> np.ndarray:
    """LMMSE equalisation + per-stream demapping (Sionna)."""
    return linear_llr(y, H, noise_var, bits_per_symbol, "lmmse", max_log)


def zf_llr(y, H, noise_var, bits_per_symbol: int, max_log: bool = False) -> np.ndarray:
    """Zero-forcing equalisation + per-stream demapping (Sionna)."""
    return linear_llr(y, H, noise_var, bits_per_symbol, "zf", max_log)


def kbest_llr(y, H, noise_var, bits_per_symbol: int, k: int = 16) -> np.ndarray:
    """Sionna's K-best sphere-decoder-like detector with list-based max-log LLRs."""
    from sionna.phy.mimo import KBestDetector

    y_t, h_t, s_t = _sionna_inputs(y, H, noise_var)
    det = KBestDetector("bit", h_t.shape[2], k, precision="double",
                        **_constellation_args(bits_per_symbol))
    return det(y_t, h_t, s_t).numpy().reshape(len(y_t), -1)
