"""802.11n LDPC: matrix vs Sionna, encoder, BP decoder BLER and agreement with Sionna."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from phy.channels import awgn, ebn0_db_to_noise_var
from phy.ldpc import BPDecoder, gf2_systematic, wifi_648_pcm, wifi_ldpc_648


def _bpsk_awgn_llr(codewords: np.ndarray, ebn0_db: float, rate: float, seed: int) -> np.ndarray:
    """LLRs ln P(1)/P(0) of BPSK (0 -> +1) through complex AWGN at Eb/N0."""
    rng = np.random.default_rng(seed)
    n0 = ebn0_db_to_noise_var(ebn0_db, 1, rate)
    y = awgn((1.0 - 2.0 * codewords).astype(complex), n0, rng).real
    return -4.0 * y / n0


@pytest.fixture(scope="module")
def code_and_words():
    code = wifi_ldpc_648()
    rng = np.random.default_rng(0)
    return code, code.encode(rng.integers(0, 2, (2000, code.k), dtype=np.uint8))


def test_matrix_equals_sionna():
    from sionna.phy.fec.utils import load_parity_check_examples

    ref, k, n, _ = load_parity_check_examples(4)
    pcm = wifi_648_pcm()
    assert (k, n) == (324, 648) and pcm.shape == (324, 648)
    np.testing.assert_array_equal(pcm, ref)
    assert np.bincount(pcm.sum(axis=1)).nonzero()[0].tolist() == [7, 8]


def test_encoder_systematic_zero_syndrome(code_and_words):
    code, words = code_and_words
    assert (code.n, code.k, code.rate) == (648, 324, 0.5)
    np.testing.assert_array_equal(code.info_positions, np.arange(324))
    assert not code.syndrome(words).any()
    rng = np.random.default_rng(1)
    u = rng.integers(0, 2, (5, 324), dtype=np.uint8)
    np.testing.assert_array_equal(code.info_bits(code.encode(u)), u)
    # Linear: the sum of two codewords is the codeword of the summed info bits
    c = code.encode(u)
    np.testing.assert_array_equal(code.encode(u[0] ^ u[1])[0], c[0] ^ c[1])


def test_gf2_systematic_rank_deficient():
    pcm = np.array([[1, 1, 0, 1], [0, 1, 1, 1], [1, 0, 1, 0]], dtype=np.uint8)  # row3 = row1+row2
    info, parity, a = gf2_systematic(pcm)
    assert len(parity) == 2 and len(info) == 2 and a.shape == (2, 2)


@pytest.mark.parametrize(("rule", "lo", "hi"), [("offset-minsum", 0.008, 0.045),
                                                ("sum-product", 0.005, 0.04)])
def test_bler_at_2db_bpsk_awgn(code_and_words, rule, lo, hi):
    code, words = code_and_words
    llr = _bpsk_awgn_llr(words, 2.0, code.rate, seed=2)
    res = BPDecoder(code, rule, iterations=20).decode(llr)
    bler = np.mean((res.bits != words).any(axis=1))
    assert lo < bler < hi  # ~0.02 at 20 iterations (Sionna gives 0.0175 on 400 words)
    assert res.iterations.mean() < 12  # early stopping
    assert not code.syndrome(res.bits[res.converged]).any()
    assert res.converged.mean() > 0.95


@pytest.mark.parametrize(("rule", "sionna_rule"), [("sum-product", "boxplus-phi"),
                                                   ("offset-minsum", "offset-minsum")])
def test_matches_sionna_decoder(code_and_words, rule, sionna_rule):
    from sionna.phy.fec.ldpc import LDPCBPDecoder

    code, words = code_and_words
    words = words[:150]
    llr = _bpsk_awgn_llr(words, 1.75, code.rate, seed=3)
    ref = LDPCBPDecoder(code.pcm, cn_update=sionna_rule, num_iter=20, hard_out=True)(
        torch.as_tensor(llr, dtype=torch.float32)).numpy().astype(np.uint8)
    ours = BPDecoder(code, rule, iterations=20, early_stop=False).decode(llr).bits
    bler_ref = np.mean((ref != words).any(axis=1))
    bler_ours = np.mean((ours != words).any(axis=1))
    assert bler_ref > 0.01  # the comparison includes failures
    assert abs(bler_ours - bler_ref) <= 0.02
    assert np.mean((ours != ref).any(axis=1)) <= 0.02


@pytest.mark.parametrize("early_stop", [False, True])
def test_two_workers_decode_identically(code_and_words, early_stop):
    code, words = code_and_words
    llr = _bpsk_awgn_llr(words[:700], 1.75, code.rate, seed=4)  # 6 chunks, some failures
    one = BPDecoder(code, "offset-minsum", early_stop=early_stop, chunk=128).decode(llr)
    two = BPDecoder(code, "offset-minsum", early_stop=early_stop, chunk=128,
                    workers=2).decode(llr)
    assert (one.bits != words[:700]).any(axis=1).sum() > 0  # failures are compared too
    np.testing.assert_array_equal(two.bits, one.bits)
    np.testing.assert_array_equal(two.iterations, one.iterations)
    np.testing.assert_array_equal(two.converged, one.converged)


def test_erasures_and_sign_convention(code_and_words):
    code, words = code_and_words
    llr = np.where(words[:8] == 1, 5.0, -5.0)  # L = ln P(1)/P(0)
    llr[:, ::7] = 0.0  # ~14% erased
    for rule in ("sum-product", "minsum", "offset-minsum"):
        res = BPDecoder(code, rule).decode(llr)
        np.testing.assert_array_equal(res.bits, words[:8])
        assert res.converged.all()


def test_random_interleaver_roundtrip():
    from phy.interleaver import RandomInterleaver

    il = RandomInterleaver(648, seed=4)
    x = np.random.default_rng(5).normal(size=(3, 648))
    np.testing.assert_array_equal(il.deinterleave(il.interleave(x)), x)
    assert not np.array_equal(il.interleave(x), x)
    np.testing.assert_array_equal(RandomInterleaver(648, seed=4).perm, il.perm)
