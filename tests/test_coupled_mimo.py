"""Peak-scaled Gray-QAM baselines over the fixed coupled MIMO channel (phy.coupled_mimo)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.special import logsumexp

from phy.constellation import qam_constellation
from phy.coupled_mimo import (
    PEAK_ENERGY,
    ber_curve,
    best_peak_bounded_min_distance,
    coupling_matrix,
    noise_var,
    qam_ber,
    qam_peak_scale,
    real_decoupled_llr,
    received_min_distance,
    snr_at_ber,
)
from phy.llr import exact_llr


def _qfunc(x: float) -> float:
    return 0.5 * math.erfc(x / math.sqrt(2.0))


def _band(ber: float, bits: int, k: float = 4.0) -> float:
    return k * math.sqrt(ber * (1.0 - ber) / bits)


def _clearly_less(a: dict, b: dict) -> bool:
    """a has clearly fewer errors than b (4 sigma of independent Poisson counts)."""
    return b["errors"] - a["errors"] > 4.0 * math.sqrt(a["errors"] + b["errors"])


def test_coupling_matrix():
    H = coupling_matrix(4, 0.3)
    assert H.shape == (4, 4) and H.dtype == np.float64
    np.testing.assert_array_equal(np.diag(H), np.ones(4))
    assert np.all(H[~np.eye(4, dtype=bool)] == 0.3)
    np.testing.assert_array_equal(coupling_matrix(3, 0.0), np.eye(3))
    assert coupling_matrix(1, 0.3).tolist() == [[1.0]]


def test_noise_var_and_peak_scale():
    assert PEAK_ENERGY == 2.0
    assert noise_var(0.0) == pytest.approx(2.0)
    assert noise_var(10.0) == pytest.approx(0.2)
    np.testing.assert_allclose(noise_var(np.array([3.0, 20.0])), 2 * 10 ** -np.array([0.3, 2]))
    assert qam_peak_scale(2) == pytest.approx(math.sqrt(2))
    assert qam_peak_scale(4) == pytest.approx(math.sqrt(10) / 3)
    assert qam_peak_scale(1) == pytest.approx(1.0)
    for bps in (2, 4, 6):
        pts = qam_peak_scale(bps) * qam_constellation(bps)[0]
        assert np.abs(pts.real).max() == pytest.approx(1.0)
        assert np.abs(pts.imag).max() == pytest.approx(1.0)
    # QPSK is exactly +-1 +-1j: peak (= every) symbol energy 2
    np.testing.assert_allclose(np.abs(qam_peak_scale(2) * qam_constellation(2)[0]) ** 2, 2.0)


def _brute_llr(y, H, n0, bps):
    """Float64 reference: exact LLRs by enumerating all M^N_t complex hypotheses."""
    points, labels = qam_constellation(bps)
    n_t = H.shape[-1]
    idx = np.array(list(itertools.product(range(len(points)), repeat=n_t)))  # (K, N_t)
    x = points[idx]  # (K, N_t)
    r = y[:, None, :] - np.einsum("brt,kt->bkr", H, x)
    metric = -(np.abs(r) ** 2).sum(axis=2) / n0[:, None]  # (B, K)
    bits = labels[idx].reshape(len(idx), -1).astype(bool)  # (K, N_t * bps)
    out = np.empty((len(y), n_t * bps))
    for j in range(n_t * bps):
        out[:, j] = logsumexp(metric[:, bits[:, j]], axis=1) - logsumexp(
            metric[:, ~bits[:, j]], axis=1)
    return out


@pytest.mark.parametrize("n,bps", [(2, 2), (4, 2), (3, 1), (2, 4)])
def test_real_decoupled_llr_is_exact(n, bps):
    rng = np.random.default_rng(10 * n + bps)
    batch = 200
    points, _ = qam_constellation(bps)
    n0 = rng.uniform(0.05, 1.0, batch)
    # random real channels per row, and the fixed coupled channel (peak-scaled)
    H_rand = rng.standard_normal((batch, n, n))
    H_fix = qam_peak_scale(bps) * coupling_matrix(n, 0.3)
    for H in (H_rand, np.repeat(H_fix[None], batch, axis=0)):
        x = points[rng.integers(0, len(points), (batch, n))]
        y = np.einsum("brt,bt->br", H, x) + np.sqrt(n0 / 2)[:, None] * (
            rng.standard_normal((batch, n)) + 1j * rng.standard_normal((batch, n)))
        fast = real_decoupled_llr(y, H, n0, bps)
        assert np.abs(fast).max() > 10  # non-trivial LLRs
        np.testing.assert_allclose(fast, _brute_llr(y, H.astype(complex), n0, bps),
                                   rtol=0, atol=1e-9)
        # exact_llr sums its closed-form PAM terms in float32 (documented ~1e-6 error)
        np.testing.assert_allclose(fast, exact_llr(y, H.astype(complex), n0, bps),
                                   rtol=0, atol=2e-5)
    # a fixed (N, N) H gives the same LLRs as the per-row copies
    np.testing.assert_allclose(real_decoupled_llr(y, H_fix, n0, bps),
                               real_decoupled_llr(y, H, n0, bps), rtol=0, atol=1e-9)


def test_real_decoupled_llr_rejects_complex_channel():
    H = np.eye(2, dtype=complex) + 0.1j
    with pytest.raises(ValueError):
        real_decoupled_llr(np.zeros((3, 2), complex), H, 0.1, 2)


@pytest.mark.parametrize("snr_db", [4.0, 6.0, 8.0])
def test_awgn_qpsk_matches_closed_form(snr_db):
    """AWGN (coupling 0): amplitude 1 per real dim, noise std sqrt(sigma^2/2)."""
    expected = _qfunc(1.0 / math.sqrt(noise_var(snr_db) / 2.0))
    res = {det: qam_ber(2, 2, 0.0, snr_db, det, 20_000, seed=7)
           for det in ("zf", "mmse", "ml", "demapper")}
    for r in res.values():
        assert r["bits"] == 80_000
        assert abs(r["ber"] - expected) < _band(expected, r["bits"]), (snr_db, r, expected)
    # same seed -> same bits and noise; on H = I all detectors make the same decisions
    assert len({r["errors"] for r in res.values()}) == 1


def test_coupled_2x2_detector_order_and_negative_control():
    """0.3-coupled 2x2 QPSK at 8 dB: ML < MMSE < ZF, ZF with a wrong H much worse."""
    kw = {"n": 2, "bits_per_symbol": 2, "coupling": 0.3, "snr_db": 8.0,
          "n_vectors": 50_000, "seed": 3}
    ml, mmse, zf = (qam_ber(detector=d, **kw) for d in ("ml", "mmse", "zf"))
    assert _clearly_less(ml, mmse) and _clearly_less(mmse, zf), (ml, mmse, zf)
    exact = qam_ber(detector="ml", ml_method="exact", **kw)
    assert exact["errors"] == ml["errors"]  # the fast path is the exact ML detector
    wrong = qam_ber(detector="zf", channel=coupling_matrix(2, -0.3), **kw)
    assert _clearly_less(zf, wrong) and wrong["ber"] > 2 * zf["ber"], (zf, wrong)
    ignore = qam_ber(detector="zf", channel=np.eye(2), **kw)  # interference ignored
    assert _clearly_less(zf, ignore), (zf, ignore)


def test_demapper_only_on_awgn():
    with pytest.raises(ValueError):
        qam_ber(2, 2, 0.3, 8.0, "demapper", 10, seed=0)
    with pytest.raises(ValueError):
        qam_ber(2, 2, 0.3, 8.0, "mmmse", 10, seed=0)


def test_ber_curve_stopping_rule_and_interpolation():
    curve = ber_curve(2, 2, 0.3, [0.0, 14.0], "ml", max_bits=40_000, min_errors=200,
                      seed=1, chunk_vectors=1000, progress=False)
    low, high = curve
    assert low["errors"] >= 200 and low["bits"] < 40_000  # stopped on errors
    assert high["errors"] < 200 and high["bits"] == 40_000  # stopped on bits
    assert low["ber"] > high["ber"]
    synthetic = [{"snr_db": 0.0, "ber": 1e-2}, {"snr_db": 2.0, "ber": 1e-4},
                 {"snr_db": 4.0, "ber": 1e-6}]
    assert snr_at_ber(synthetic, 1e-3) == pytest.approx(1.0)
    assert snr_at_ber(synthetic, 1e-5) == pytest.approx(3.0)
    assert math.isnan(snr_at_ber(synthetic, 1e-8))


def test_qpsk_min_distance_by_hand_and_the_search_bound():
    """QPSK through the 0.3 coupling: the closest received pair is x = +-(1, -1), whose
    images are +-(0.7, -0.7), 2 sqrt(2) 0.7 apart (by hand). The search finds no 16-point
    peak-bounded constellation farther apart; negative control: at coupling 0.9 QPSK's
    images collapse (2 sqrt(2) 0.1) and the same search finds a far better one."""
    qpsk = np.array(list(itertools.product([-1.0, 1.0], repeat=4)))
    assert math.isclose(received_min_distance(qpsk, 0.3), 2 * math.sqrt(2) * 0.7)
    assert math.isclose(received_min_distance(qpsk, 0.0), 2.0)
    b = best_peak_bounded_min_distance(2, 2, 0.3, restarts=8, steps=600)
    assert math.isclose(b["qam_min_distance"], 2 * math.sqrt(2) * 0.7)
    assert b["gain_db"] < 0.05
    strong = best_peak_bounded_min_distance(2, 2, 0.9, restarts=8, steps=600)
    assert math.isclose(strong["qam_min_distance"], 2 * math.sqrt(2) * 0.1)
    assert strong["gain_db"] > 6
    with pytest.raises(ValueError, match="even number of bits"):
        best_peak_bounded_min_distance(2, 3, 0.3)
