"""Detectors (ZF-SIC, Sionna linear / K-best), multi-user MAP/QMAP, EPA and CDL-A."""

from __future__ import annotations

import numpy as np
import pytest

from phy.channels import imperfect_csi, mimo_transmit, rayleigh_mimo
from phy.constellation import map_bits
from phy.detectors import kbest_llr, lmmse_llr, ml_llr, zf_llr, zf_sic_llr
from phy.multiuser import (
    bpsk_multiuser_link,
    class_bit_errors,
    map_detect,
    qmap_detect,
    quantize,
    task_based_channel,
    uniform_thresholds,
)
from phy.wideband import (
    EPA_DELAYS_NS,
    cdl_a_frequency_response,
    epa_frequency_response,
    epa_pdp,
    lte_subcarrier_frequencies,
)


def _link(batch, n_r, n_t, bps, n0, seed):
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2, (batch, n_t * bps), dtype=np.uint8)
    H = rayleigh_mimo(batch, n_r, n_t, rng)
    return bits, mimo_transmit(map_bits(bits, bps), H, n0, rng), H


@pytest.mark.parametrize("bps", [1, 2, 4, 6])
def test_zf_sic_equals_maxlog_ml_on_1x1(bps):
    _, y, H = _link(500, 1, 1, bps, 0.05, seed=bps)
    np.testing.assert_allclose(zf_sic_llr(y, H, 0.05, bps), ml_llr(y, H, 0.05, bps, max_log=True),
                               rtol=1e-12, atol=1e-9)


def test_detector_ber_ordering_2x2_64qam():
    bits, y, H = _link(3000, 2, 2, 6, 10 ** -2.5, seed=7)  # 25 dB
    ber = {name: np.mean((f(y, H, 10 ** -2.5, 6) > 0) != bits)
           for name, f in [("ml", ml_llr), ("zf_sic", zf_sic_llr), ("zf", zf_llr),
                           ("lmmse", lmmse_llr)]}
    assert ber["ml"] < 0.6 * ber["zf_sic"]
    assert ber["zf_sic"] < ber["zf"]
    assert ber["lmmse"] < ber["zf"]
    assert 0.003 < ber["ml"] < 0.012


def test_kbest_close_to_ml():
    bits, y, H = _link(300, 2, 2, 4, 10 ** -1.8, seed=8)
    kb = kbest_llr(y, H, 10 ** -1.8, 4, k=16)
    ml = ml_llr(y, H, 10 ** -1.8, 4, max_log=True)
    assert kb.shape == (300, 8)
    assert np.mean((kb > 0) == (ml > 0)) > 0.99


def test_imperfect_csi_error_variance():
    rng = np.random.default_rng(9)
    H = rayleigh_mimo(20000, 2, 2, rng)
    err = imperfect_csi(H, 0.1, rng) - H
    assert np.mean(np.abs(err) ** 2) == pytest.approx(0.1, rel=0.03)


def test_task_based_map_and_qmap():
    H = task_based_channel()
    assert H.shape == (12, 4) and H[0, 0] == 1.0 and H[5, 2] == pytest.approx(np.exp(-3))
    rng = np.random.default_rng(10)
    nv = 10 ** (-4 / 10)
    cls, y = bpsk_multiuser_link(20000, H, nv, rng)
    ber_map = class_bit_errors(map_detect(y, H, nv), cls, 4)
    fine, coarse = uniform_thresholds(64, 3.0), uniform_thresholds(4, 2.0)
    ber_fine = class_bit_errors(qmap_detect(quantize(y, fine), fine, H, nv), cls, 4)
    ber_coarse = class_bit_errors(qmap_detect(quantize(y, coarse), coarse, H, nv), cls, 4)
    assert 0.06 < ber_map < 0.09
    assert ber_fine == pytest.approx(ber_map, abs=0.004)  # 6-bit ADC ~ unquantized
    assert ber_coarse > ber_map + 0.01  # 2-bit ADC loses


def test_epa_pdp_and_frequency_response():
    delays, powers = epa_pdp()
    np.testing.assert_allclose(delays * 1e9, [0, 30, 70, 90, 110, 190, 410])
    assert powers.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(10 * np.log10(powers / powers[0]),
                               [0, -1, -2, -3, -8, -17.2, -20.8], atol=1e-12)
    assert len(EPA_DELAYS_NS) == 7
    freqs = lte_subcarrier_frequencies(108)
    assert np.allclose(np.diff(freqs), 15e3) and 0.0 not in freqs
    rng = np.random.default_rng(11)
    h = epa_frequency_response(40000, 108, rng)
    assert h.shape == (40000, 108)
    assert np.mean(np.abs(h) ** 2) == pytest.approx(1.0, rel=0.02)
    # Frequency correlation equals the Fourier transform of the PDP
    lag = 20  # 300 kHz
    emp = np.mean(h[:, lag:] * h[:, :-lag].conj())
    theory = np.sum(powers * np.exp(-2j * np.pi * lag * 15e3 * delays))
    assert abs(emp - theory) < 0.02


def test_cdl_a_from_sionna():
    h = cdl_a_frequency_response(16, 24, n_r=2, n_t=2, seed=1)
    assert h.shape == (16, 24, 2, 2) and h.dtype == np.complex128
    assert np.mean(np.abs(h) ** 2) == pytest.approx(1.0, rel=1e-3)
    np.testing.assert_array_equal(h, cdl_a_frequency_response(16, 24, n_r=2, n_t=2, seed=1))
