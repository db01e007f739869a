"""Max-MI scalar LLR quantizer (Winkelbauer & Matz baseline): DP exactness, MI bounds,
BPSK/AWGN closed forms, JSON round trip, and the quantizer as a phy.link Processing."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import expit, log_expit, logsumexp
from scipy.stats import norm

from phy.channels import snr_db_to_noise_var
from phy.constellation import map_bits
from phy.datasets import mimo_llr_dataset
from phy.link import LinkConfig, simulate_link
from phy.llr import exact_llr
from phy.maxmi_quantizer import (
    MaxMIQuantizer,
    MaxMIQuantizerBank,
    llr_mutual_information,
    main,
    make_bins,
    optimal_partition,
    partition_mutual_information,
)

# ----------------------------------------------------------------------------- helpers


def _joint_mi(table: np.ndarray) -> float:
    """I(B; C) in bits of a joint table (2, cells), written independently of the module."""
    t = table / table.sum()
    pb = t.sum(axis=1, keepdims=True)
    pc = t.sum(axis=0, keepdims=True)
    nz = t > 0
    return float(np.sum(t[nz] * np.log2(t[nz] / (pb @ pc)[nz])))


def _merge(a: np.ndarray, edges) -> np.ndarray:
    """Joint table (2, bins) merged into cells [edges[k], edges[k+1])."""
    pairs = zip(edges[:-1], edges[1:], strict=True)
    return np.stack([a[:, i:j].sum(axis=1) for i, j in pairs], axis=1)


def _bpsk_awgn(n: int, n0: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """BPSK over complex AWGN through phy (bit 0 -> +1); LLRs by phy.llr.exact_llr."""
    rng = np.random.default_rng(seed)
    b = rng.integers(0, 2, (n, 1), dtype=np.uint8)
    noise = np.sqrt(n0 / 2) * (rng.standard_normal((n, 1)) + 1j * rng.standard_normal((n, 1)))
    y = map_bits(b, 1) + noise
    llr = exact_llr(y, np.ones((n, 1, 1), complex), n0, 1)
    # the closed form in the project's sign (L = ln P(1)/P(0), bit 1 -> -1):
    # L = -2 Re(y) / sigma^2 with sigma^2 = N0/2 per real dimension
    np.testing.assert_allclose(llr[:, 0], -4.0 * y.real[:, 0] / n0, rtol=1e-9, atol=1e-9)
    return llr[:, 0], b[:, 0]


def _analytic_mi(boundaries, mu: float) -> float:
    """I(B; Q(L)) for BPSK/AWGN LLRs: L | b=1 ~ N(mu, 2 mu), L | b=0 ~ N(-mu, 2 mu)."""
    s = np.sqrt(2 * mu)
    e = np.concatenate([[-np.inf], np.sort(boundaries), [np.inf]])
    p1 = np.diff(norm.cdf((e - mu) / s))
    p0 = np.diff(norm.cdf((e + mu) / s))
    return _joint_mi(np.stack([p0, p1]) / 2)


def _analytic_capacity(mu: float) -> float:
    s = np.sqrt(2 * mu)
    f = lambda v: norm.pdf(v, mu, s) * np.logaddexp(0.0, -v)  # noqa: E731
    return 1.0 - quad(f, mu - 14 * s, mu + 14 * s, limit=200)[0] / np.log(2)


@pytest.fixture(scope="module")
def qam14() -> dict[str, np.ndarray]:
    """2x2 64-QAM exact-ML LLRs over i.i.d. Rayleigh at 14 dB (small)."""
    return mimo_llr_dataset(30_000, [14.0], seed=11)


@pytest.fixture(scope="module")
def qam14_heldout() -> dict[str, np.ndarray]:
    return mimo_llr_dataset(30_000, [14.0], seed=12)


# ----------------------------------------------------------------------------- (a) DP


@pytest.mark.parametrize("seed", range(6))
def test_dp_equals_brute_force_over_contiguous_partitions(seed):
    rng = np.random.default_rng(seed)
    n_bins = 9
    # arbitrary joint masses (posteriors not sorted, some empty entries): the DP must
    # be exact over contiguous partitions whatever the bins hold
    a = rng.exponential(1.0, (2, n_bins)) * (rng.random((2, n_bins)) > 0.15)
    a[:, 0] += 0.01
    a /= a.sum()
    for levels in range(1, n_bins + 1):
        value, cuts = optimal_partition(a[0], a[1], levels)
        best = -np.inf
        for c in itertools.combinations(range(1, n_bins), levels - 1):
            edges = (0, *c, n_bins)
            best = max(best, _joint_mi(_merge(a, edges)))
        assert value == pytest.approx(best, abs=1e-12)
        assert len(cuts) == levels - 1 and np.all(np.diff(cuts) > 0)
        edges = (0, *cuts, n_bins)
        assert _joint_mi(_merge(a, edges)) == pytest.approx(value, abs=1e-12)  # cuts achieve it
    # more levels than bins: every bin its own cell, the unquantized (binned) MI
    value, cuts = optimal_partition(a[0], a[1], 64)
    assert len(cuts) == n_bins - 1 and value == pytest.approx(_joint_mi(a), abs=1e-12)


def test_fit_is_consistent_with_its_binning_and_index_rule(qam14):
    llr, bits = qam14["llr"][:, 4].astype(np.float64), qam14["bits"][:, 4]
    for soft in (False, True):
        q = MaxMIQuantizer.fit(llr, None if soft else bits, bits=3, n_bins=512)
        assert q.n_levels == 8 and np.all(np.diff(q.boundaries) > 0)
        idx = q.quantize(llr)
        assert idx.dtype == np.uint8 and idx.min() == 0 and idx.max() == 7
        # the fit's MI is the plug-in MI of the cells the index rule gives on its data
        est = None if soft else bits
        assert q.mutual_information() == pytest.approx(
            partition_mutual_information(llr, est, q.boundaries), abs=1e-12)
        # reconstruction: each cell's posterior LLR, ln P(1|cell)/P(0|cell)
        for k in range(8):
            x = llr[idx == k]
            if soft:
                want = logsumexp(log_expit(x)) - logsumexp(log_expit(-x))
            else:
                n1 = bits[idx == k].sum()
                want = np.log(max(n1, 0.5)) - np.log(max(len(x) - n1, 0.5))
            assert q.levels[k] == pytest.approx(want, rel=1e-9, abs=1e-9)
        assert np.all(np.diff(q.levels) > 0)  # monotone for these (consistent) LLRs
    # index rule: index = number of boundaries <= L (a MultiThreshold)
    b = q.boundaries
    assert q.quantize(b[2]) == 3 and q.quantize(np.nextafter(b[2], -np.inf)) == 2
    assert q.quantize(-1e9) == 0 and q.quantize(1e9) == 7
    np.testing.assert_array_equal(q(llr), q.levels[idx])


def test_binning_cuts_at_zero_and_keeps_ties_together():
    x = np.array([-3.0, -1.0, -1.0, -1.0, -0.5, 0.0, 0.0, 2.0, 2.0, 5.0])
    bins = make_bins(x, None, n_bins=10)
    assert 0.0 in bins.edges  # the sign quantizer is a candidate
    assert bins.n_bins == 6  # runs of equal values are never split
    assert bins.a0.sum() + bins.a1.sum() == pytest.approx(1.0)


# ----------------------------------------------------------------------------- (b) MI bounds


def test_mi_grows_with_bits_stays_below_unquantized_and_1bit_is_sign(qam14, qam14_heldout):
    for pos in (0, 2, 5):  # MSB (sign of I), middle and LSB label bits of stream 0
        llr = qam14["llr"][:, pos].astype(np.float64)
        bits = qam14["bits"][:, pos]
        for est in (None, bits):  # soft (posteriors) and hard (true bits)
            qs = [MaxMIQuantizer.fit(llr, est, nb) for nb in range(1, 6)]
            mis = [q.mutual_information() for q in qs]
            unq = llr_mutual_information(llr, est)
            assert np.all(np.diff(mis) >= -1e-12), mis  # non-decreasing (nested search)
            sign = partition_mutual_information(llr, est, [0.0])
            assert mis[0] >= sign - 1e-12  # L = 0 is a candidate boundary
            if est is None:
                # 1 bit ~ the sign quantizer: equal for the sign bits b0, b1 (symmetric
                # LLR law); for b2..b5 (outer vs inner PAM levels, asymmetric) the max-MI
                # threshold sits at L ~ +0.1..+0.23 and gains up to 1.5e-3 bit
                assert mis[0] == pytest.approx(sign, abs=2.5e-3)
                # soft estimator: Jensen (H2 concave) makes quantized <= unquantized exact
                assert mis[-1] <= unq + 1e-12
            else:
                # the hard fit's in-sample MI is optimistic (the DP selects on noisy
                # counts: +4e-3 bit above the unquantized MI at 5 bits here), so the
                # bound is checked on held-out data; left over there: the plug-in bias of
                # a fixed 32-cell partition, 31 / (2 N ln 2) = 7e-4 bit, and noise
                x = qam14_heldout["llr"][:, pos]
                b = qam14_heldout["bits"][:, pos]
                held = [q.mutual_information(x, b) for q in qs]
                assert np.all(np.diff(held) > -5e-4), held
                assert held[0] == pytest.approx(partition_mutual_information(x, b, [0.0]),
                                                abs=2.5e-3)
                assert max(held) <= llr_mutual_information(x, b) + 2e-3
            assert unq - mis[2] < 0.02  # 3 bits: ~1% of the MI (cf. main's table)
            assert unq - mis[0] > 0.1  # 1 bit (hard decisions) loses a lot


# ----------------------------------------------------------------------------- (c) BPSK/AWGN


def test_bpsk_awgn_3bit_close_to_unquantized_and_beats_uniform():
    n0 = 2.0  # sigma^2 = 1 per real dimension: I(B; L) = 0.486, a rate-1/2 code's regime
    mu = 4.0 / n0  # L | b=1 ~ N(mu, 2 mu) (consistent Gaussian LLR)
    llr, bits = _bpsk_awgn(100_000, n0, seed=1)
    cap = _analytic_capacity(mu)
    assert cap == pytest.approx(0.48594, abs=1e-4)
    assert llr_mutual_information(llr, bits) == pytest.approx(cap, abs=6e-3)  # 3 sigma
    # the true optimum: the same DP on exact masses of a fine grid (2,000 bins of 0.018)
    s = np.sqrt(2 * mu)
    grid = np.linspace(-mu - 8 * s, mu + 8 * s, 2001)
    e = np.concatenate([[-np.inf], grid, [np.inf]])
    p0, p1 = np.diff(norm.cdf((e + mu) / s)) / 2, np.diff(norm.cdf((e - mu) / s)) / 2
    opt, cuts = optimal_partition(p0, p1, 8)
    opt1, cut1 = optimal_partition(p0, p1, 2)  # symmetric channel: 1 bit = the sign
    assert grid[cut1[0] - 1] == pytest.approx(0.0, abs=0.02)
    assert opt1 == pytest.approx(_analytic_mi([0.0], mu), abs=1e-6)
    np.testing.assert_allclose(grid[cuts - 1], -grid[cuts - 1][::-1], atol=0.02)  # symmetric
    assert 0.007 < cap - opt < 0.009  # 8 cells lose 0.0081 bit (1.7 %) of 0.486
    # best uniform 8-level quantizer (thresholds k * step, k = -3..3), step optimised
    uni = max(_analytic_mi(np.arange(-3, 4) * d, mu) for d in np.linspace(0.5, 2.0, 301))
    assert opt - uni == pytest.approx(5.0e-4, abs=1e-4)
    for est, slack in ((None, 2e-5), (bits, 2e-3)):
        q = MaxMIQuantizer.fit(llr, est, bits=3)
        got = _analytic_mi(q.boundaries, mu)  # exact MI of the fitted boundaries
        # bound: the optimum's 0.0081 plus the fit's sampling error (soft: ~1e-5;
        # hard: counts of 1e5 samples put it up to ~1e-3 off the flat optimum)
        assert cap - got < 0.0081 + slack
        assert got <= opt + 1e-9
        if est is None:  # the soft fit beats even the best-step uniform quantizer
            assert got > uni + 3e-4
    # a uniform quantizer on a fixed clip range (+-8 LLR, step 16/8) is far worse
    assert _analytic_mi(np.arange(-3, 4) * 2.0, mu) < uni - 0.005


# ----------------------------------------------------------------------------- (d) control


def test_perturbed_boundary_lowers_mi(qam14):
    llr = qam14["llr"][:, 2].astype(np.float64)
    bits = qam14["bits"][:, 2]
    for est in (None, bits):
        q = MaxMIQuantizer.fit(llr, est, bits=3)
        best = q.mutual_information()
        b = q.boundaries
        for i in range(len(b)):
            gap = min(np.diff(b).min(), 1.0)
            for sign in (-1, 1):
                moved = b.copy()
                moved[i] += sign * 0.3 * gap
                mi = partition_mutual_information(llr, est, moved)
                assert mi < best - 1e-5, (i, sign, best - mi)
    # and analytically on BPSK/AWGN: any shifted optimal boundary loses MI
    mu = 2.0
    llr, bits = _bpsk_awgn(50_000, 2.0, seed=2)
    q = MaxMIQuantizer.fit(llr, None, bits=3)
    base = _analytic_mi(q.boundaries, mu)
    for i in range(7):
        for d in (-0.3, 0.3):
            moved = q.boundaries.copy()
            moved[i] += d
            assert _analytic_mi(np.sort(moved), mu) < base - 1e-5


# ----------------------------------------------------------------------------- (e) JSON


def test_json_round_trip_is_exact(tmp_path, qam14):
    bank = MaxMIQuantizerBank.fit(qam14["llr"], qam14["bits"], bits=3, n_bins=256,
                                  meta={"snr_db": 14.0, "detector": "ml"})
    path = bank.save(tmp_path / "q" / "maxmi.json")
    raw = json.loads(path.read_text())
    assert raw["format"] == "maxmi-llr-quantizer" and raw["bits"] == 3
    assert len(raw["positions"]) == 12
    assert all(isinstance(v, float) for v in raw["positions"][0]["boundaries"])
    assert raw["positions"][0]["fit"]["mode"] == "hard" and raw["meta"]["snr_db"] == 14.0
    back = MaxMIQuantizerBank.load(path)
    assert back.to_dict() == bank.to_dict()
    for q0, q1 in zip(bank.quantizers, back.quantizers, strict=True):
        assert q0.boundaries.tobytes() == q1.boundaries.tobytes()
        assert q0.levels.tobytes() == q1.levels.tobytes()
    x = qam14["llr"]
    np.testing.assert_array_equal(back.quantize(x), bank.quantize(x))
    np.testing.assert_array_equal(back(x), bank(x))
    raw["format"] = "something-else"
    with pytest.raises(ValueError, match="not a maxmi"):
        MaxMIQuantizerBank.from_dict(raw)


# ----------------------------------------------------------------------------- (f) link


def test_processing_in_a_link_is_no_better_than_unquantized():
    snr = -1.0  # BPSK, rate 1/2: unquantized BLER ~1e-2 here, a steep part of the curve
    llr, bits = _bpsk_awgn(60_000, float(snr_db_to_noise_var(snr)), seed=4)
    cfg = {"snr_db": [snr], "n_t": 1, "n_r": 1, "bits_per_symbol": 1, "channel": "awgn",
           "max_codewords": 300, "batch_codewords": 150, "target_block_errors": 10**6,
           "seed": 3}
    clean = simulate_link(LinkConfig(**cfg))["points"][0]
    q3 = MaxMIQuantizerBank.fit(llr[:, None], bits[:, None], bits=3)
    res = simulate_link(LinkConfig(**cfg), process=q3.as_processing())
    assert res["processing"] == "maxmi-3bit"
    p3 = res["points"][0]
    p1 = simulate_link(LinkConfig(**cfg), process=MaxMIQuantizerBank.fit(
        llr[:, None], bits[:, None], bits=1))["points"][0]
    # same noise (seeded): quantization can only cost
    assert clean["bler"] <= p3["bler"] <= p1["bler"]
    assert p3["bler"] < 0.3 and p1["bler"] > 0.8  # 3 bits ~0.2 dB; 1 bit ~2 dB


@pytest.mark.slow
def test_processing_in_a_2x2_64qam_link():
    # 13 dB: exact ML BLER ~0.16, 3 bits ~0.22, 2 bits ~0.47 (3,000-codeword runs)
    data = mimo_llr_dataset(100_000, [13.0], seed=21)
    cfg = {"snr_db": [13.0], "max_codewords": 300, "batch_codewords": 100,
           "target_block_errors": 10**6, "seed": 7}
    clean = simulate_link(LinkConfig(**cfg))["points"][0]
    q3 = simulate_link(LinkConfig(**cfg), process=MaxMIQuantizerBank.fit(
        data["llr"], None, bits=3))["points"][0]
    q2 = simulate_link(LinkConfig(**cfg), process=MaxMIQuantizerBank.fit(
        data["llr"], data["bits"], bits=2))["points"][0]
    assert 0.05 < clean["bler"] <= q3["bler"] < q2["bler"] < 1.0


# ----------------------------------------------------------------------------- main


def test_main_prints_the_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "mi.json"
    res = main(["--n-train", "3000", "--n-test", "3000", "--bits", "2", "3", "--bins", "128",
                "--check-bins", "2", "--json", str(out), "--save-dir", str(tmp_path / "b")])
    text = capsys.readouterr().out
    assert "s1b5" in text and "binning loss" in text
    saved = json.loads(out.read_text())
    mi = saved["mi"]
    assert len(mi["unquantized_soft"]) == 12
    # soft estimator on held-out data: quantized below unquantized, more bits better
    assert np.all(np.array(mi["3bit_softfit_test_soft"]) <= np.array(mi["unquantized_soft"]))
    assert np.all(np.array(mi["3bit_softfit_test_soft"]) >= np.array(mi["2bit_softfit_test_soft"]))
    bank = MaxMIQuantizerBank.load(tmp_path / "b" / "maxmi-3bit-hard-snr14.json")
    assert bank.meta["snr_db"] == 14.0 and res["snr_db"] == 14.0
    assert bank.quantizers[11].fit_info["position"] == 11


def test_soft_statistics_are_the_posteriors():
    x = np.array([-2.0, 0.5, 3.0])
    bins = make_bins(x, None, n_bins=3, force_zero=False)
    np.testing.assert_allclose(bins.a1, expit(x) / 3)


def test_extreme_llrs_give_finite_levels():
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(0, 2, 2000), [-1500.0, -900.0, 800.0, 1200.0] * 50])
    b = (rng.random(len(x)) < expit(x)).astype(np.uint8)
    for est in (None, b):
        q = MaxMIQuantizer.fit(x, est, bits=3, n_bins=64)
        assert np.all(np.isfinite(q.levels)) and np.all(np.diff(q.levels) > 0)
