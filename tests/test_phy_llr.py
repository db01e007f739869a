"""Constellation, exact/max-log LLRs (vs Sionna and closed forms), channels, datasets."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

from phy.channels import awgn, mimo_transmit, rayleigh_mimo, snr_db_to_noise_var
from phy.constellation import map_bits, qam_constellation
from phy.datasets import dataset_filename, mimo_llr_dataset
from phy.llr import WORK_BYTES, chunk_size, exact_llr, soft_bits


def _sionna_ml(y, H, n0, bps, max_log):
    from sionna.phy.mimo import MaximumLikelihoodDetector

    b, n_r, n_t = H.shape
    det = MaximumLikelihoodDetector(
        "bit", "maxlog" if max_log else "app", n_t, "pam" if bps == 1 else "qam", bps,
        precision="double",
    )
    s = torch.as_tensor(np.asarray(n0)[..., None, None] * np.eye(n_r) + 0j).expand(b, n_r, n_r)
    out = det(torch.as_tensor(y), torch.as_tensor(H), s)
    return out.numpy().reshape(b, n_t * bps)


def _link(batch, n_r, n_t, bps, snr_db, seed):
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2, (batch, n_t * bps), dtype=np.uint8)
    H = rayleigh_mimo(batch, n_r, n_t, rng)
    n0 = snr_db_to_noise_var(rng.uniform(*snr_db, batch))
    y = mimo_transmit(map_bits(bits, bps), H, n0, rng)
    return bits, y, H, n0


@pytest.mark.parametrize("bps", [2, 4, 6, 8])
def test_qam_matches_sionna(bps):
    from sionna.phy.mapping import Constellation

    points, labels = qam_constellation(bps)
    ref = Constellation("qam", bps, precision="double")().numpy()
    np.testing.assert_array_equal(points, ref)
    assert np.mean(np.abs(points) ** 2) == pytest.approx(1.0, abs=1e-12)
    assert labels.dtype == np.uint8 and labels.shape == (2**bps, bps)
    assert int(labels[3] @ (1 << np.arange(bps - 1, -1, -1))) == 3
    # Gray: nearest neighbours differ in exactly one bit
    d = np.abs(points[:, None] - points[None])
    dmin = d[d > 0].min()
    for i, j in zip(*np.nonzero(np.isclose(d, dmin)), strict=True):
        assert np.sum(labels[i] != labels[j]) == 1


def test_bpsk_matches_sionna_pam():
    from sionna.phy.mapping import pam

    points, labels = qam_constellation(1)
    np.testing.assert_array_equal(points, pam(1, precision="double"))
    np.testing.assert_array_equal(points, [1.0, -1.0])
    np.testing.assert_array_equal(labels[:, 0], [0, 1])


@pytest.mark.parametrize(
    ("n_t", "n_r", "bps", "snr"),
    [(2, 2, 6, (0, 30)), (2, 2, 6, (35, 40)), (1, 1, 4, (-5, 20)), (2, 3, 2, (0, 15)),
     (3, 2, 2, (0, 15)), (1, 2, 1, (0, 10)), (2, 2, 1, (0, 10)), (4, 4, 4, (5, 20))],
)
@pytest.mark.parametrize("max_log", [False, True])
def test_exact_llr_matches_sionna_ml(n_t, n_r, bps, snr, max_log):
    batch = 8 if n_t == 4 else 64
    _, y, H, n0 = _link(batch, n_r, n_t, bps, snr, seed=n_t * 100 + bps)
    ours = exact_llr(y, H, n0, bps, max_log=max_log)
    ref = _sionna_ml(y, H, n0, bps, max_log)
    assert ours.dtype == np.float64 and ours.shape == (batch, n_t * bps)
    assert np.abs(ours - ref).max() <= 1e-4
    assert np.abs(ref).max() > 10  # the comparison covers large LLRs too


def test_llr_sign_convention_and_bpsk_closed_form():
    rng = np.random.default_rng(3)
    h = rayleigh_mimo(1000, 1, 1, rng)
    bits = rng.integers(0, 2, (1000, 1), dtype=np.uint8)
    y = mimo_transmit(map_bits(bits, 1), h, 0.5, rng)
    llr = exact_llr(y, h, 0.5, 1)
    # BPSK (0 -> +1, 1 -> -1): L = ln p(y|-1)/p(y|+1) = -4 Re(h* y) / N0
    np.testing.assert_allclose(llr[:, 0], -4 * np.real(h[:, 0, 0].conj() * y[:, 0]) / 0.5,
                               rtol=1e-9, atol=1e-9)
    # High SNR: hard decisions on L > 0 recover the bits (L = ln P(1)/P(0))
    bits, y, H, n0 = _link(500, 2, 2, 6, (40, 40), seed=4)
    assert np.mean((exact_llr(y, H, n0, 6) > 0) != bits) < 1e-3


def test_soft_bits():
    np.testing.assert_allclose(soft_bits(np.array([0.0, 2.0, -40.0])),
                               [0.0, np.tanh(1.0), -1.0])


def test_memory_bound_4x4_16qam():
    # Chunking keeps the work arrays bounded whatever the batch size.
    assert chunk_size(4, 4, 4) * 4096 * (48 * 4 + 24 * 4 + 96) <= WORK_BYTES
    _, y, H, n0 = _link(2 * chunk_size(4, 4, 4) + 3, 4, 4, 4, (10, 10), seed=5)
    tracemalloc.start()
    try:
        exact_llr(y, H, n0, 4)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 512 * 2**20


def test_awgn_variance():
    rng = np.random.default_rng(6)
    x = np.zeros((4, 50_000), complex)
    n = awgn(x, np.array([0.1, 1.0, 2.0, 4.0]), rng)
    np.testing.assert_allclose(np.mean(np.abs(n) ** 2, axis=1), [0.1, 1.0, 2.0, 4.0], rtol=0.03)
    assert np.mean(np.abs(rayleigh_mimo(20_000, 2, 2, rng)) ** 2) == pytest.approx(1.0, rel=0.02)


def test_mimo_llr_dataset(tmp_path):
    d = mimo_llr_dataset(300, (0.0, 20.0), seed=1, cache_dir=str(tmp_path))
    assert d["llr"].shape == (300, 12) and d["llr"].dtype == np.float32
    assert d["bits"].shape == (300, 12) and d["bits"].dtype == np.uint8
    assert d["y"].shape == (300, 2) and d["H"].shape == (300, 2, 2)
    assert 0.0 <= d["snr_db"].min() and d["snr_db"].max() <= 20.0
    np.testing.assert_allclose(d["noise_var"], 10 ** (-d["snr_db"] / 10))
    np.testing.assert_allclose(exact_llr(d["y"], d["H"], d["noise_var"], 6), d["llr"], rtol=1e-6)
    name = dataset_filename(300, (0.0, 20.0), 2, 2, 6, 1, False)
    assert (tmp_path / name).exists()
    assert "2x2" in name and "64qam" in name and "seed1" in name and "0_20" in name
    again = mimo_llr_dataset(300, (0.0, 20.0), seed=1, cache_dir=str(tmp_path))
    np.testing.assert_array_equal(again["llr"], d["llr"])
    cyc = mimo_llr_dataset(5, [5.0, 10.0], n_t=1, n_r=1, bits_per_symbol=2, max_log=True)
    np.testing.assert_array_equal(cyc["snr_db"], [5, 10, 5, 10, 5])
    assert cyc["llr"].shape == (5, 2)
