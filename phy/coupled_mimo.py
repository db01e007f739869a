"""Uncoded Gray-QAM baselines over a fixed, real, coupled MIMO channel (Tanh-BAE Section 6).

The Tanh bit-wise autoencoder paper compares a learned MIMO transmitter/receiver with
standard Gray QAM and ZF, MMSE and ML ("MaxL") detection over (a) a channel with unit
diagonal and cross-channel coefficients 0.3 ("strong inter-stream interference"),
N_T = N_R in {2, 4, 8}, and (b) AWGN (H = I), where the baseline is the classical
per-antenna LLR demapper with hard decisions. This module gives those baselines.

Conventions
-----------
* ``y = H x + n`` with ``H`` a fixed REAL (N, N) matrix: 1 on the diagonal and
  ``coupling`` elsewhere (``coupling_matrix``); ``coupling = 0`` is AWGN. ``x`` is
  complex, one symbol per transmit antenna; ``n ~ CN(0, sigma^2 I)``, i.e. sigma^2/2
  per real dimension.
* Peak-amplitude constraint, matching the learned transmitter whose tanh output bounds
  every real dimension to [-1, 1]: the QAM baseline is scaled so that its outermost
  points have real/imaginary amplitude 1 (QPSK = +-1 +-1j, energy 2). The scale from
  the unit-energy constellation of ``phy.constellation`` is ``a = qam_peak_scale(k) =
  1 / max|Re(points)|`` (QPSK: sqrt(2); 16-QAM: sqrt(10)/3; BPSK: 1).
* ``SNR_dB = 10 log10(PEAK_ENERGY / sigma^2)`` with ``PEAK_ENERGY = 2`` (the energy of
  the peak symbol +-1 +-1j) over the noise variance per receive antenna, so
  ``noise_var(snr_db) = 2 * 10 ** (-snr_db / 10)``. The same definition is used for
  every constellation (it is a peak, not an average, SNR).
* Detectors get the effective channel ``H_eff = a H`` together with the unit-energy
  constellation, which is the same model. LLRs follow the project convention
  ``L = ln P(b=1 | y) / P(b=0 | y)``, hard bit = ``L > 0``.
  - ``"zf"`` / ``"mmse"``: Sionna's LinearDetector (``phy.detectors.zf_llr`` /
    ``lmmse_llr``) with its exact (app) per-stream demapper.
  - ``"ml"``: exact per-bit ML (a-posteriori) LLRs. ``phy.llr.exact_llr`` enumerates
    M^(N-1) hypotheses (8x8 QPSK: ~19 ms per vector here, far too slow), so where it
    applies (always in this module: H is real and the constellation is BPSK or square
    QAM) the exact fast path ``real_decoupled_llr`` is used, see below.
  - ``"demapper"``: per-antenna ML demapping, only for ``coupling = 0`` (AWGN), where
    it is the ML detector (and ZF and MMSE coincide with it).

Fast exact path (``real_decoupled_llr``)
---------------------------------------
With a real H, ``Re y = H Re x + Re n`` and ``Im y = H Im x + Im n`` are two independent
real systems (the noise parts are independent, N(0, sigma^2/2) each). For square Gray
QAM the in-phase PAM level of every stream carries the even label bits and the
quadrature level the odd bits, and the prior is uniform and independent over both, so
``p(y | x) = p(Re y | Re x) p(Im y | Im x)`` and every in-phase bit's posterior depends
only on ``Re y`` (the quadrature factor sums to the same constant under both bit
values and cancels in the LLR). The exact per-bit LLRs therefore need only
``P^N`` hypotheses per real dimension (P = sqrt(M) PAM levels; 2^8 = 256 for 8x8
QPSK instead of 4^8 = 65,536). This is not an approximation: the LLRs equal
``exact_llr``'s up to floating-point error (``tests/test_coupled_mimo.py``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from functools import cache

import numpy as np
from tqdm import tqdm

from phy.channels import complex_normal
from phy.constellation import map_bits, pam_factors, qam_constellation

PEAK_ENERGY = 2.0
DETECTORS = ("zf", "mmse", "ml", "demapper")
CHUNK_VECTORS = 4096  # symbol vectors per simulated chunk
_WORK_FLOATS = 4 * 2**20  # float64 entries per (rows x hypotheses) work array (32 MB)


def coupling_matrix(n: int, coupling: float) -> np.ndarray:
    """Real (n, n) float64 channel: 1 on the diagonal, ``coupling`` elsewhere."""
    if n < 1:
        raise ValueError("n must be >= 1")
    H = np.full((n, n), float(coupling), dtype=np.float64)
    np.fill_diagonal(H, 1.0)
    return H


def through_real_h(x, h):  # noqa: ANN001, ANN201 (numpy arrays or torch tensors)
    """Noiseless received [Re | Im] (..., 2 N) of symbols ``x`` (..., 2 N) = [Re | Im]
    through the real ``h`` (N, N), which acts on both parts alike. numpy in, numpy out;
    torch in (``h`` a tensor too), torch out. The one place the stacking is written."""
    n = h.shape[0]
    re, im = x[..., :n] @ h.T, x[..., n:] @ h.T
    if isinstance(re, np.ndarray):
        return np.concatenate([re, im], -1)
    import torch

    return torch.cat([re, im], -1)


def noise_var(snr_db: float | np.ndarray) -> float | np.ndarray:
    """sigma^2 per receive antenna for ``SNR = PEAK_ENERGY / sigma^2`` in dB."""
    return PEAK_ENERGY * 10.0 ** (-np.asarray(snr_db, dtype=np.float64) / 10.0)


def qam_peak_scale(bits_per_symbol: int) -> float:
    """Scale a from the unit-energy Gray constellation to peak real/imag amplitude 1."""
    points, _ = qam_constellation(bits_per_symbol)
    return float(1.0 / np.abs(points.real).max())


@cache
def _pam_labels(bits_per_symbol: int) -> tuple[np.ndarray, np.ndarray, tuple, tuple]:
    """Per-dimension PAM view of the constellation.

    Returns (levels (P,), label bits of each level (P, k_dim) for the in-phase
    dimension, bit positions of the in-phase bits, bit positions of the quadrature
    bits). Square Gray QAM uses the same PAM labelling on both dimensions (checked).
    """
    levels, i_index, q_index = pam_factors(bits_per_symbol)
    _, labels = qam_constellation(bits_per_symbol)
    if bits_per_symbol == 1:
        i_pos, q_pos = (0,), ()
    else:
        i_pos = tuple(range(0, bits_per_symbol, 2))
        q_pos = tuple(range(1, bits_per_symbol, 2))
    p_levels = len(levels)
    pam = np.empty((p_levels, len(i_pos)), dtype=np.uint8)
    for p in range(p_levels):
        rows = labels[i_index == p][:, list(i_pos)]
        if not (rows == rows[0]).all():
            raise AssertionError("in-phase bits are not a function of the in-phase level")
        pam[p] = rows[0]
        if q_index is not None:
            q_rows = labels[q_index == p][:, list(q_pos)]
            if not (q_rows == pam[p]).all():
                raise AssertionError("I and Q PAM labellings differ")
    return levels, pam, i_pos, q_pos


def _logsumexp(a: np.ndarray, axis) -> np.ndarray:
    m = a.max(axis=axis, keepdims=True)
    return np.squeeze(m + np.log(np.exp(a - m).sum(axis=axis, keepdims=True)), axis=axis)


def _real_dim_llr(z: np.ndarray, H: np.ndarray, n0: np.ndarray, levels: np.ndarray,
                  pam: np.ndarray) -> np.ndarray:
    """Exact bit LLRs (B, N_t, k_dim) of one real system z = H s + w, w ~ N(0, n0/2).

    z (B, N_r); H (N_r, N_t) or (B, N_r, N_t) real; n0 (B,).
    """
    batch = z.shape[0]
    n_t = H.shape[-1]
    p_levels = len(levels)
    grid = np.indices((p_levels,) * n_t).reshape(n_t, -1).T  # (K, N_t), stream 0 slowest
    hyps = levels[grid]  # (K, N_t)
    if H.ndim == 2:
        hx = hyps @ H.T  # (K, N_r)
        # -||z - Hs||^2 / n0 up to the per-row constant -||z||^2 / n0
        metric = (2.0 * (z @ hx.T) - (hx * hx).sum(axis=1)[None]) / n0[:, None]
    else:
        hx = np.einsum("brt,kt->bkr", H, hyps)  # (B, K, N_r)
        metric = (2.0 * np.einsum("br,bkr->bk", z, hx) - (hx * hx).sum(axis=2)) / n0[:, None]
    metric = metric.reshape(batch, *(p_levels,) * n_t)
    k_dim = pam.shape[1]
    ones = [np.flatnonzero(pam[:, j] == 1) for j in range(k_dim)]
    zeros = [np.flatnonzero(pam[:, j] == 0) for j in range(k_dim)]
    out = np.empty((batch, n_t, k_dim))
    for k in range(n_t):
        others = tuple(a + 1 for a in range(n_t) if a != k)
        marg = _logsumexp(metric, others) if others else metric  # (B, P)
        for j in range(k_dim):
            out[:, k, j] = _logsumexp(marg[:, ones[j]], 1) - _logsumexp(marg[:, zeros[j]], 1)
    return out


def real_decoupled_llr(y: np.ndarray, H: np.ndarray, noise_var: float | np.ndarray,
                       bits_per_symbol: int, imag_tol: float = 1e-12) -> np.ndarray:
    """Exact ML bit LLRs for ``y = H x + n`` with a REAL H, by I/Q decoupling.

    Same interface and output as ``phy.llr.exact_llr`` (y complex (B, N_r); H
    (N_r, N_t) or (B, N_r, N_t), real or complex with zero imaginary part; noise_var
    N0 per receive antenna, scalar or (B,); unit-energy Gray constellation of
    ``bits_per_symbol`` = 1 (BPSK) or even (square QAM); returns (B, N_t * k),
    L = ln P(1)/P(0)), but enumerates only P^N_t PAM hypotheses per real dimension
    (see the module docstring). Chunked so that the work arrays stay ~32 MB.
    """
    y = np.asarray(y)
    H = np.asarray(H)
    if np.iscomplexobj(H):
        if np.abs(H.imag).max(initial=0.0) > imag_tol:
            raise ValueError("real_decoupled_llr needs a real channel matrix")
        H = H.real
    H = H.astype(np.float64)
    if y.ndim != 2 or H.ndim not in (2, 3) or H.shape[-2] != y.shape[1] or (
            H.ndim == 3 and H.shape[0] != y.shape[0]):
        raise ValueError(f"shapes y {y.shape} / H {H.shape} must be (B, N_r) / "
                         "([B,] N_r, N_t)")
    batch, n_t = y.shape[0], H.shape[-1]
    n0 = np.broadcast_to(np.asarray(noise_var, dtype=np.float64), (batch,))
    levels, pam, _, q_pos = _pam_labels(bits_per_symbol)
    k_hyp = len(levels) ** n_t
    per_row = k_hyp * (1 + (H.shape[-2] if H.ndim == 3 else 0))
    step = max(1, _WORK_FLOATS // per_row)
    out = np.empty((batch, n_t, bits_per_symbol))
    for s in range(0, batch, step):
        sl = slice(s, s + step)
        hs = H[sl] if H.ndim == 3 else H
        # in-phase bits at label positions 0, 2, ..., quadrature bits at 1, 3, ...
        out[sl, :, 0::2] = _real_dim_llr(y[sl].real, hs, n0[sl], levels, pam)
        if q_pos:
            out[sl, :, 1::2] = _real_dim_llr(y[sl].imag, hs, n0[sl], levels, pam)
    return out.reshape(batch, n_t * bits_per_symbol)


def _detect(y: np.ndarray, H_eff: np.ndarray, n0: float, bps: int, detector: str,
            ml_method: str) -> np.ndarray:
    """LLRs (B, N * bps) for a chunk; H_eff (N, N) real, unit-energy constellation."""
    batch = y.shape[0]
    if detector in ("ml", "demapper") and ml_method == "fast":
        return real_decoupled_llr(y, H_eff, n0, bps)
    h_b = np.repeat(H_eff.astype(np.complex128)[None], batch, axis=0)
    if detector in ("ml", "demapper"):
        from phy.detectors import ml_llr

        return ml_llr(y, h_b, n0, bps)
    from phy.detectors import lmmse_llr, zf_llr

    return (zf_llr if detector == "zf" else lmmse_llr)(y, h_b, n0, bps)


def _check(n: int, bits_per_symbol: int, coupling: float, detector: str,
           ml_method: str) -> None:
    if detector not in DETECTORS:
        raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")
    if detector == "demapper" and coupling != 0:
        raise ValueError("the per-antenna demapper is the ML detector only for coupling 0")
    if ml_method not in ("auto", "fast", "exact"):
        raise ValueError("ml_method must be 'auto', 'fast' or 'exact'")
    qam_constellation(bits_per_symbol)  # validates bits_per_symbol


class _Link:
    """One (n, k, coupling, SNR, detector) operating point; ``run`` simulates chunks."""

    def __init__(self, n, bits_per_symbol, coupling, snr_db, detector, ml_method, seed,
                 channel=None):
        _check(n, bits_per_symbol, coupling, detector, ml_method)
        self.n, self.bps, self.detector = n, bits_per_symbol, detector
        # The fast exact path always applies here (real H, BPSK / square QAM).
        self.ml_method = "fast" if ml_method == "auto" else ml_method
        self.scale = qam_peak_scale(bits_per_symbol)
        self.H = coupling_matrix(n, coupling)
        # Channel the detector assumes (H itself unless a mismatch is injected).
        h_det = self.H if channel is None else np.asarray(channel, dtype=np.float64)
        self.H_eff = self.scale * h_det
        self.n0 = float(noise_var(snr_db))
        self.rng = np.random.default_rng(seed)

    def run(self, n_vectors: int) -> tuple[int, int]:
        """Simulate n_vectors symbol vectors: (bit errors, bits)."""
        bits = self.rng.integers(0, 2, (n_vectors, self.n * self.bps), dtype=np.uint8)
        x = self.scale * map_bits(bits, self.bps)  # peak amplitude 1
        y = x @ self.H.T + math.sqrt(self.n0) * complex_normal(x.shape, self.rng)
        llr = _detect(y, self.H_eff, self.n0, self.bps, self.detector, self.ml_method)
        return int(((llr > 0) != bits.astype(bool)).sum()), int(bits.size)


def qam_ber(n: int, bits_per_symbol: int, coupling: float, snr_db: float, detector: str,
            n_vectors: int, seed: int, ml_method: str = "auto",
            chunk_vectors: int = CHUNK_VECTORS, channel: np.ndarray | None = None) -> dict:
    """Uncoded BER of peak-scaled Gray QAM over ``coupling_matrix(n, coupling)``.

    Random bits -> Gray QAM (scaled to peak amplitude 1) -> y = H x + n -> LLRs of
    ``detector`` ("zf", "mmse", "ml", or "demapper" for coupling 0) -> hard bits
    (L > 0) -> BER, in chunks of ``chunk_vectors`` vectors. ``ml_method``: "auto" /
    "fast" (``real_decoupled_llr``) or "exact" (``phy.llr.exact_llr``, slow for 8x8).
    ``channel``: the (n, n) real matrix the detector assumes, default the true H
    (a different one is a mismatch, for negative controls).
    Returns {"ber", "errors", "bits"}.
    """
    link = _Link(n, bits_per_symbol, coupling, snr_db, detector, ml_method, seed, channel)
    errors = bits = 0
    for s in range(0, n_vectors, chunk_vectors):
        e, b = link.run(min(chunk_vectors, n_vectors - s))
        errors += e
        bits += b
    return {"ber": errors / bits if bits else float("nan"), "errors": errors, "bits": bits}


def ber_curve(n: int, bits_per_symbol: int, coupling: float, snrs_db: Sequence[float],
              detector: str, max_bits: int = 2_000_000, min_errors: int = 500, seed: int = 0,
              ml_method: str = "auto", chunk_vectors: int = CHUNK_VECTORS,
              progress: bool = True) -> list[dict]:
    """BER vs SNR: at each SNR add chunks until ``min_errors`` errors or ``max_bits`` bits.

    Each point has its own random stream (seed, point index). Returns one dict per SNR:
    snr_db, noise_var, ber, errors, bits, wall_s (and n, bits_per_symbol, coupling,
    detector).
    """
    _check(n, bits_per_symbol, coupling, detector, ml_method)
    out = []
    bar = tqdm(list(snrs_db), desc=f"{n}x{n} k={bits_per_symbol} c={coupling} {detector}",
               unit="pt", leave=False, disable=not progress)
    for i, snr in enumerate(bar):
        link = _Link(n, bits_per_symbol, coupling, snr, detector, ml_method, [seed, i])
        t0 = time.perf_counter()
        errors = bits = 0
        while errors < min_errors and bits < max_bits:
            rows = min(chunk_vectors, -(-(max_bits - bits) // (n * bits_per_symbol)))
            e, b = link.run(rows)
            errors += e
            bits += b
            bar.set_postfix(snr=snr, errors=errors, bits=bits)
        out.append({"n": n, "bits_per_symbol": bits_per_symbol, "coupling": coupling,
                    "detector": detector, "snr_db": float(snr), "noise_var": link.n0,
                    "ber": errors / bits, "errors": errors, "bits": bits,
                    "wall_s": time.perf_counter() - t0})
    bar.close()
    return out


def snr_at_ber(curve: Sequence[dict], target: float = 1e-3) -> float:
    """SNR (dB) where the curve first crosses ``target``, log10(BER) linear in SNR.

    NaN if the curve never crosses it (or a bracketing point has no errors).
    """
    pts = sorted(curve, key=lambda p: p["snr_db"])
    for a, b in zip(pts, pts[1:], strict=False):
        if a["ber"] >= target > b["ber"]:
            if b["ber"] <= 0:
                return float("nan")
            la, lb, lt = math.log10(a["ber"]), math.log10(b["ber"]), math.log10(target)
            return a["snr_db"] + (la - lt) / (la - lb) * (b["snr_db"] - a["snr_db"])
    return float("nan")


def received_min_distance(x: np.ndarray, coupling: float) -> float:
    """Minimum Euclidean distance between the noiseless received points of a constellation
    ``x`` (M, 2 N) = [Re | Im] per message through ``coupling_matrix(N, coupling)``."""
    y = through_real_h(x, coupling_matrix(x.shape[1] // 2, coupling))
    d = np.sqrt(((y[:, None, :] - y[None, :, :]) ** 2).sum(-1))
    return float(d[~np.eye(len(y), dtype=bool)].min())


def best_peak_bounded_min_distance(n: int, bits_per_antenna: int, coupling: float,
                                   restarts: int = 64, steps: int = 1500, seed: int = 0
                                   ) -> dict[str, float]:
    """How far any transmitter could beat Gray QAM through this channel, at high SNR.

    Searches for the 2^(k n) points x in [-1, 1]^(2 n) (the tanh transmitter's peak
    bound) whose received points H x lie farthest apart: ``restarts`` random starts,
    ``steps`` of Adam on a soft minimum of the pairwise distances (temperature annealed
    towards the hard minimum). Returns the QAM constellation's received minimum distance,
    the best one found, and ``20 log10(best / qam)`` (dB): the asymptotic SNR gain a
    learned constellation could have over ML-detected QAM. A search, so a lower bound on
    the true optimum; QAM's own distance is an upper bound on what the search must beat.
    """
    import itertools

    import torch

    if bits_per_antenna % 2:
        raise ValueError(f"bits_per_antenna = {bits_per_antenna}: square QAM needs an even "
                         "number of bits per antenna")
    k = n * bits_per_antenna
    levels = np.arange(-(2 ** (bits_per_antenna // 2)) + 1, 2 ** (bits_per_antenna // 2), 2)
    per_dim = levels / levels.max()  # PAM levels of the square QAM at peak amplitude 1
    qam = np.array(list(itertools.product(per_dim, repeat=2 * n)), dtype=np.float64)
    d_qam = received_min_distance(qam, coupling)
    h = torch.from_numpy(coupling_matrix(n, coupling)).float()
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(restarts, 2 ** k, 2 * n, generator=g).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=0.05)
    mask = 1e3 * torch.eye(2 ** k)
    for t in range(steps):
        x = torch.tanh(z)
        y = through_real_h(x, h)
        d = torch.cdist(y, y) + mask
        tau = 0.02 + 0.3 * (1 - t / steps)
        loss = (tau * torch.logsumexp(-d.flatten(1) / tau, 1)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    found = np.tanh(z.detach().double().numpy())
    best = max(received_min_distance(c, coupling) for c in found)
    return {"qam_min_distance": d_qam, "best_found_min_distance": best,
            "gain_db": 20 * math.log10(best / d_qam), "restarts": restarts, "steps": steps}
