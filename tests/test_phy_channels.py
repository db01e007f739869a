"""Uncoded BER in AWGN against closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from phy.channels import awgn, snr_db_to_noise_var
from phy.constellation import map_bits
from phy.llr import exact_llr
from phy.theory import gray_qam_ber_awgn, q_function


def _simulated_ber(bps: int, snr_db: float, n_bits: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    n0 = snr_db_to_noise_var(snr_db)
    bits = rng.integers(0, 2, (n_bits // bps, bps), dtype=np.uint8)
    x = map_bits(bits, bps)
    y = awgn(x, n0, rng)
    llr = exact_llr(y, np.ones((len(y), 1, 1), complex), n0, bps, max_log=True)
    return float(np.mean((llr > 0) != bits))


def test_closed_forms_match_textbook():
    snr = snr_db_to_noise_var(np.array([0.0, 6.0, 10.0]))
    es_n0 = 1 / snr
    # QPSK: Q(sqrt(Es/N0)); 16-QAM Gray: (3Q(a) + 2Q(3a) - Q(5a))/4, a = sqrt(Es/(5 N0))
    np.testing.assert_allclose(gray_qam_ber_awgn(2, snr), q_function(np.sqrt(es_n0)), rtol=1e-9)
    a = np.sqrt(es_n0 / 5)
    ref16 = (3 * q_function(a) + 2 * q_function(3 * a) - q_function(5 * a)) / 4
    np.testing.assert_allclose(gray_qam_ber_awgn(4, snr), ref16, rtol=1e-9)
    # BPSK: Q(sqrt(2 Es/N0))
    np.testing.assert_allclose(gray_qam_ber_awgn(1, snr), q_function(np.sqrt(2 * es_n0)),
                               rtol=1e-9)


@pytest.mark.parametrize(("bps", "snr_db"), [(1, 4.0), (2, 6.0), (4, 12.0), (6, 18.0)])
def test_uncoded_ber_awgn(bps, snr_db):
    ber = _simulated_ber(bps, snr_db, 400_000, seed=bps)
    ref = float(gray_qam_ber_awgn(bps, snr_db_to_noise_var(snr_db)))
    assert 1e-3 < ref < 0.05
    # 400k bits: relative standard error below ~5% at these BERs
    assert ber == pytest.approx(ref, rel=0.12)
