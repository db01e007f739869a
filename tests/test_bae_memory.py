"""Table 2 of the Tanh-BAE massive-MIMO paper (:mod:`paper.bae_memory`).

Three cells are checked against eqs. 1-2 written out by hand, with B=2048, H_T=256,
H_R=2048, N=1 and N_R=N_T. Eq. 1's in/out term is read as ``4pB(2H_T + 4N_T)``. Also
checked: BAE < AE wherever N_T >= 4; the bit-wise substitution is exactly
``(2^k)^N_T -> k N_T``; a negative control on H_R; the text's two checkpoints, in GiB. A
tiny training step's measured peak is positive and grows with batch, and tracemalloc
cannot see torch's allocator.
"""

from __future__ import annotations

import tracemalloc

import pytest

from paper.bae_memory import (
    GIB,
    N_TS,
    decoder_bytes,
    encoder_bytes,
    measure_peak_bytes,
    profiled_peak_bytes,
    scheme_bytes,
    table2,
)

# AE, N_T = N_R = 2, 4-QAM (k=2): S_M = 4**2 = 16, p = 4.
AE_2X2_K2 = (
    2 * 4 * (16 * 256 + 256**2 + 256 * 2 * 2 + 2 * 256 + 2 * 2)  # encoder weights
    + 4 * 4 * 2048 * (2 * 256 + 4 * 2)  # encoder in/out
    + 2 * 4 * (2048 * (2 + 1) + 3 * 2048 * (2048 + 1) + 16 * 2048 + 2048 * 16 + 16)
    + 4 * 4 * 2048 * (4 * 2048 + 16 + 16)  # decoder in/out
)
# BAE, N_T = N_R = 64, 1024-QAM (k=10): S_M -> k*N_T = 640, p = 4.
BAE_64X64_K10 = (
    2 * 4 * (640 * 256 + 256**2 + 256 * 2 * 64 + 2 * 256 + 2 * 64)
    + 4 * 4 * 2048 * (2 * 256 + 4 * 64)
    + 2 * 4 * (2048 * (64 + 1) + 3 * 2048 * (2048 + 1) + 16 * 2048 + 2048 * 640 + 640)
    + 4 * 4 * 2048 * (4 * 2048 + 640 + 16)
)
# AE + embedding (E_emb = 256) + FP16 (p = 2), N_T = N_R = 4, 64-QAM: S_M = 64**4.
EMB_4X4_K6 = (
    2 * 2 * (64**4 * 256 + 256 * 256 + 256**2 + 256 * 2 * 4 + 2 * 256 + 2 * 4)
    + 4 * 2 * 2048 * (2 * 256 + 4 * 4)
    + 2 * 2 * (2048 * (4 + 1) + 3 * 2048 * (2048 + 1) + 16 * 2048 + 2048 * 64**4 + 64**4)
    + 4 * 2 * 2048 * (4 * 2048 + 64**4 + 16)
)


def cell(cells: list[dict], scheme: str, n_t: int, constellation: int) -> dict:
    (c,) = [
        c
        for c in cells
        if (c["scheme"], c["n_t"], c["constellation"]) == (scheme, n_t, constellation)
    ]
    return c


def test_three_cells_match_hand_arithmetic() -> None:
    cells = table2()
    assert len(cells) == 3 * 4 * 5
    for scheme, n_t, m, hand in [
        ("AE", 2, 4, AE_2X2_K2),
        ("BAE", 64, 1024, BAE_64X64_K10),
        ("AE-emb-fp16", 4, 64, EMB_4X4_K6),
    ]:
        c = cell(cells, scheme, n_t, m)
        assert int(c["bytes"]) == hand
        assert c["gb"] == pytest.approx(hand / 2**30, rel=1e-12)


def test_bae_smaller_than_ae_for_four_antennas_and_up() -> None:
    cells = table2()
    for n_t in (n for n in N_TS if n >= 4):
        for m in (4, 16, 64, 256, 1024):
            assert cell(cells, "BAE", n_t, m)["gb"] < cell(cells, "AE", n_t, m)["gb"]


def test_astronomical_cells_are_finite() -> None:
    c = cell(table2(), "AE", 64, 1024)  # (2**10)**64 messages
    assert 1e187 < c["gb"] < 1e190  # a float, no overflow
    assert len(c["bytes"]) > 190  # the exact integer


def test_bitwise_substitution_is_exactly_k_times_nt() -> None:
    for n_t in N_TS:
        for k in (2, 4, 6, 8, 10):
            bae = scheme_bytes("BAE", n_t, k)
            manual = encoder_bytes(n_t, k, inputs=k * n_t) + decoder_bytes(
                n_t, k, n_t, outputs=k * n_t
            )
            assert bae == manual
            # AE and BAE differ only through S: eqs. 1-2 are linear in S with slope
            # 2p H_T (encoder) + 2p (H_R + 1) + 4pB (decoder).
            s = (2**k) ** n_t
            slope = 2 * 4 * 256 + 2 * 4 * (2048 + 1) + 4 * 4 * 2048
            assert scheme_bytes("AE", n_t, k) - bae == (s - k * n_t) * slope


def test_negative_control_wrong_h_r_misses_the_hand_value() -> None:
    wrong = encoder_bytes(2, 2) + decoder_bytes(2, 2, 2, h_r=1024)
    assert wrong != AE_2X2_K2
    assert encoder_bytes(2, 2) + decoder_bytes(2, 2, 2) == AE_2X2_K2
    assert cell(table2(), "AE", 2, 4)["gb"] != pytest.approx((AE_2X2_K2 + 4) / GIB, rel=1e-12)


def test_text_checkpoints_in_gib() -> None:
    assert scheme_bytes("AE", 4, 6) / GIB == pytest.approx(800, rel=0.01)  # "~800 GB"
    b1 = scheme_bytes("AE-emb-fp16", 4, 6, batch=1) / GIB
    assert b1 == pytest.approx(144, rel=0.01)  # "144 GB" (B=1)


def test_tracemalloc_cannot_see_torch_allocations() -> None:
    import torch

    tracemalloc.start()
    try:
        t = torch.ones(1 << 20)  # 4 MiB
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del t
    assert peak < 1 << 20
    assert profiled_peak_bytes(lambda: torch.ones(1 << 20)) >= 4 << 20


def test_measured_peak_positive_and_grows_with_batch() -> None:
    small = measure_peak_bytes("AE", 2, 2, 8, 8, 16)
    large = measure_peak_bytes("AE", 2, 2, 512, 8, 16)
    assert 0 < small < large
    bae = measure_peak_bytes("BAE", 2, 2, 8, 8, 16)
    assert bae > 0
