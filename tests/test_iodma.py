"""FINN's Zynq-shell IODMA (hw.iodma) and its model in the Verilator testbench.

Fast tests check the width rule against FINN itself: ``InsertIODMA`` is applied, with
the port width FINN's ``ZynqBuild`` gives it, to small HW graphs of several stream widths
and foldings, and every IODMA's ``intfWidth``/``streamWidth`` is compared with
hw.iodma's. They also check hand-worked examples and the port table against FINN's
``pynq_native_port_width``.

Slow tests run Verilator. In a fully unfolded one-layer design (RTL II = 1), the
throttled II equals the modelled IODMA cycles per vector: 3 for the 96-bit input and 5 for
the 36-bit output on pynq-z2. The negative control is full rate, II = 1. The codes stay
exact. On the default package through the ``rtlsim`` backend, the II with the IODMA
model is max(RTL II, IODMA II). A sink or source paced slower than the RTL sets the II,
and a faster one does not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import hw  # noqa: F401  (offline FINN bootstrap)
from configs import load_board
from hw import iodma

REPO = Path(__file__).resolve().parent.parent
PKG = REPO / "bitstreams" / "eqnet-fq-uniform-2x2-64qam-pynq-z2"


# ---------------------------------------------------------------- the rule, by hand
def test_port_table_is_finns() -> None:
    from finn.util.basic import pynq_native_port_width

    assert iodma.PORT_WIDTH_BITS == dict(pynq_native_port_width)


def test_port_width_from_board_configs() -> None:
    assert iodma.port_width(load_board("pynq-z2")) == 64
    assert iodma.port_width(load_board("zcu104")) == 128
    assert iodma.port_width("ZCU104") == 128
    with pytest.raises(ValueError, match="no IODMA port width known"):
        iodma.port_width({"finn_board": "Nexys"})


@pytest.mark.parametrize("width,beats,board,intf,cycles,pad,pad_cycles,one,one_cycles", [
    # default design, pynq-z2: input 2 x 48 = 96 bits -> gcd 32 -> 3 beats (issue 13)
    (48, 2, "Pynq-Z2", 32, 3, 64, 2, 128, 2),
    # its output: INT6 padded to a byte, 6 beats = 48 bits -> gcd 16 -> 3 beats
    (6, 6, "Pynq-Z2", 16, 3, 8, 3, 64, 1),
    # unfolded output 6 x INT6 = 36 -> 40 bits -> gcd 8 -> 5 beats (DESIGN.md 4)
    (36, 1, "Pynq-Z2", 8, 5, 64, 1, 64, 1),
    # 96-bit one-beat input: 3 beats; padded to 128 it is one beat on a 128-bit port
    (96, 1, "ZCU104", 32, 3, 128, 1, 128, 1),
    (96, 1, "Pynq-Z2", 32, 3, 128, 2, 128, 2),
    # wider than the port: 192 bits = 3 x 64 on pynq-z2, 3 x 64 (gcd 64) on zcu104
    (192, 1, "Pynq-Z2", 64, 3, 192, 3, 192, 3),
    (192, 1, "ZCU104", 64, 3, 256, 2, 256, 2),
    # a byte per vector: one beat
    (8, 1, "ZCU104", 8, 1, 8, 1, 8, 1),
])
def test_rule_examples(width: int, beats: int, board: str, intf: int, cycles: int, pad: int,
                       pad_cycles: int, one: int, one_cycles: int) -> None:
    d = iodma.iodma(width, beats, board)
    assert (d.intf_width_bits, d.cycles_per_vector) == (intf, cycles)
    assert d.bits_per_vector == iodma.pad8(width) * beats
    assert d.bits_per_vector == d.intf_width_bits * d.cycles_per_vector
    assert (d.padded_stream_width_bits, d.padded_cycles_per_vector) == (pad, pad_cycles)
    assert (d.one_beat_width_bits, d.one_beat_cycles_per_vector) == (one, one_cycles)


def test_padding_is_minimal() -> None:
    """No width between the stream's and the chosen padding takes fewer beats, and none
    up to four ports wider takes fewer than the chosen one."""
    for p in (64, 128):
        board = "Pynq-Z2" if p == 64 else "ZCU104"
        for w in range(8, 300, 8):
            for k in (1, 2, 3, 6):
                d = iodma.iodma(w, k, board)
                best = min(iodma.cycles_per_vector(x, k, p) for x in range(w, w + 4 * p, 8))
                assert d.padded_cycles_per_vector == best, (w, k, p)
                assert all(iodma.cycles_per_vector(x, k, p) > best
                           for x in range(w, d.padded_stream_width_bits, 8)), (w, k, p)


def test_dma_ii_and_refusals() -> None:
    ins = [iodma.iodma(48, 2, "Pynq-Z2")]
    outs = [iodma.iodma(36, 1, "Pynq-Z2", "out")]
    assert iodma.dma_ii(ins, outs) == 5
    with pytest.raises(ValueError, match="power of two"):
        iodma.intf_width(96, 48)
    with pytest.raises(ValueError, match="direction"):
        iodma.iodma(8, 1, "Pynq-Z2", "sideways")


# ---------------------------------------------------------------- the rule vs FINN's code
def one_layer(c: int, dt: str, simd: int, mh: int, obits: int, pe: int) -> Any:
    """x (c x dt) -> MVAU c x mh (SIMD simd, PE pe) -> Thresholding (obits, PE pe) -> y."""
    from hw.rtlsim import testgraphs

    g = testgraphs.GraphBuilder(0)
    x = g.input("x", dt, c)
    y = g.threshold(g.mvau(x, mh, simd=simd, pe=pe), obits, pe=pe)
    return g.model(["x"], ["y"], {y: "y"})


@pytest.mark.parametrize("board", ["Pynq-Z2", "ZCU104"])
@pytest.mark.parametrize("c,dt,simd,mh,obits,pe", [
    (12, "INT8", 6, 48, 6, 1),    # the default design's first layer folding, 6 x 6-bit out
    (12, "INT8", 12, 6, 6, 6),    # unfolded: 96-bit in, 36-bit out
    (6, "INT6", 3, 9, 3, 3),      # 18-bit (24 padded) input beats, 9-bit (16) output beats
    (16, "INT8", 16, 8, 4, 8),    # 128-bit in, 32-bit out
    (10, "INT4", 5, 5, 5, 5),     # 20 -> 24 bits x 2 beats in, 25 -> 32 bits out
])
def test_rule_matches_finn_insert_iodma(c: int, dt: str, simd: int, mh: int, obits: int,
                                        pe: int, board: str) -> None:
    from finn.transformation.fpgadataflow.insert_iodma import InsertIODMA
    from qonnx.custom_op.registry import getCustomOp

    m = one_layer(c, dt, simd, mh, obits, pe)
    first, last = getCustomOp(m.graph.node[0]), getCustomOp(m.graph.node[-1])
    want = {"in": iodma.iodma(first.get_instream_width(),
                              int(np.prod(first.get_folded_input_shape()[:-1])), board, "in"),
            "out": iodma.iodma(last.get_outstream_width(),
                               int(np.prod(last.get_folded_output_shape()[:-1])), board,
                               "out")}
    # what ZynqBuild does (make_zynq_proj.py:1815, 1859)
    m = m.transform(InsertIODMA(iodma.port_width(board)))
    got = {getCustomOp(n).get_nodeattr("direction"): getCustomOp(n)
           for n in m.graph.node if n.op_type == "IODMA_hls"}
    assert set(got) == {"in", "out"}
    for k, d in want.items():
        g = got[k]
        assert g.get_nodeattr("intfWidth") == d.intf_width_bits, k
        assert g.get_nodeattr("streamWidth") == d.stream_width_bits, k
        assert int(np.prod(g.get_nodeattr("numInputVectors"))) == d.beats_per_vector, k
        # one AXI-MM word per cycle: the IODMA's words per vector
        assert d.bits_per_vector // g.get_nodeattr("intfWidth") == d.cycles_per_vector


# ---------------------------------------------------------------- Verilator (slow)
def run_tb(built: Any, x: np.ndarray, intervals: tuple[list[int], list[int]] | None
           ) -> tuple[np.ndarray, dict[str, Any]]:
    """The harness-built top driven through the host's testbench runner (IODMA intervals
    per stream); the output codes and the steady-state performance."""
    from host.backends.rtlsim import stream_many
    from hw.rtlsim.verilate import pack_inputs, performance, unpack_outputs

    ti, to = built.io["inputs"][0], built.io["outputs"][0]
    words = pack_inputs(x, ti["datatype"], ti["folded_shape"], ti["stream_width_bits"])
    kin = int(np.prod(ti["folded_shape"][:-1]))
    kout = int(np.prod(to["folded_shape"][:-1]))
    out, stats = stream_many(built.binary, built.rtl_dir, [[f"{w:x}" for w in words]], len(x),
                             [kin], [kout], 1, 1.0, 1.0, intervals=intervals)
    codes = unpack_outputs([int(h, 16) for h in out[0]], to["datatype"], to["folded_shape"],
                           len(x))
    return codes, performance(stats, 100.0)


@pytest.mark.slow
def test_throttled_ii_is_the_modelled_iodma_ii(tmp_path: Path) -> None:
    """Unfolded layer (RTL II = 1) on pynq-z2: input 96 bits -> 3 IODMA beats, output 36
    -> 40 bits -> 5 beats. Measured II: 1 at full rate (negative control), 3 with the
    input IODMA only, 5 with the output IODMA only, 5 with both; codes exact each time."""
    from hw.rtlsim import harness

    m = one_layer(12, "INT8", 12, 6, 6, 6)
    built = harness.build(m, tmp_path / "h", jobs=1)
    ti, to = built.io["inputs"][0], built.io["outputs"][0]
    din = iodma.iodma(ti["stream_width_bits"], 1, "Pynq-Z2", "in")
    dout = iodma.iodma(to["stream_width_bits"], 1, "Pynq-Z2", "out")
    assert (din.cycles_per_vector, dout.cycles_per_vector) == (3, 5)
    x = harness.random_inputs(built, 3000, seed=3)
    want = harness.expected(built, x)["y"]
    cases = {None: 1.0, ((3,), (0,)): 3.0, ((0,), (5,)): 5.0, ((3,), (5,)): 5.0}
    for iv, ii in cases.items():
        codes, perf = run_tb(built, x["x"], None if iv is None else
                             ([*iv[0]], [*iv[1]]))
        assert np.array_equal(codes, want), iv
        assert perf["ii_cycles"] == ii, (iv, perf)


@pytest.mark.slow
@pytest.mark.skipif(not (PKG / "manifest.json").is_file(), reason="default package not built")
def test_default_package_ii_with_iodma_model() -> None:
    """The default package through the rtlsim backend: the IODMA model (3 beats in, 3 out
    on pynq-z2) leaves the RTL's II (100) as it is, since max(100, 3) = 100. An input or
    output paced slower than the RTL (150, 170 cycles per vector) sets the II. A
    sink paced faster (50) does not. Codes are identical in every case."""
    from host.backends.rtlsim import stream_many
    from host.codec import pack
    from host.driver import Accelerator
    from hw.rtlsim.verilate import performance

    rng = np.random.default_rng(0)
    codes = rng.integers(-128, 128, (600, 12))
    runs = {}
    for dma in (False, True):
        with Accelerator(PKG, "rtlsim", batch_size=len(codes), dma_model=dma) as acc:
            out = acc.execute_codes(codes)
            dev = acc.backend.device
            runs[dma] = (out, performance(dev.last_stats, 100.0)["ii_cycles"])
            d = dev.dma()
    assert [v["cycles_per_vector"] for v in [*d["inputs"].values(), *d["outputs"].values()]
            ] == [3, 3] and d["ii_cycles"] == 3
    rtl_ii = runs[False][1]
    assert rtl_ii == 100.0 and runs[True][1] == max(rtl_ii, d["ii_cycles"])
    assert all(np.array_equal(runs[True][0][k], runs[False][0][k]) for k in runs[False][0])
    # the pacing itself, on the same binary: a slower source/sink sets the II
    si, so = next(iter(acc.package.inputs.values())), next(iter(acc.package.outputs.values()))
    packed = pack(codes, si).reshape(len(codes) * si.beats, si.bytes_per_beat)
    words = [b[::-1].tobytes().hex() for b in packed]
    base = None
    for iv, ii in {((0,), (0,)): 100.0, ((150,), (0,)): 150.0, ((0,), (170,)): 170.0,
                   ((0,), (50,)): 100.0}.items():
        out, stats = stream_many(dev.binary, dev.rtl_dir, [words], len(codes), [si.beats],
                                 [so.beats], 1, 1.0, 1.0, intervals=([*iv[0]], [*iv[1]]))
        assert performance(stats, 100.0)["ii_cycles"] == ii, iv
        base = base or out
        assert out == base, iv


def test_pad_elements_is_minimal() -> None:
    """best_pad_elements: no smaller pad takes as few IODMA words, and no pad up to two
    ports wider takes fewer; the latency backend's cases give one word per vector."""
    assert iodma.best_pad_elements(12, 8, 1, 128) == (4, 1)   # 96 -> 128 bits
    assert iodma.best_pad_elements(6, 6, 1, 128) == (4, 1)    # 36 (40) -> 60 (64) bits
    assert iodma.best_pad_elements(16, 8, 1, 128) == (0, 1)   # already one word
    for p in (64, 128):
        for bits in (1, 3, 4, 6, 8, 16):
            for elems in range(1, 40):
                for k in (1, 2, 3):
                    pad, c = iodma.best_pad_elements(elems, bits, k, p)
                    cost = [iodma.cycles_per_vector((elems + q) * bits, k, p)
                            for q in range(0, pad + 2 * p // bits + 1)]
                    assert cost[pad] == c == min(cost), (elems, bits, k, p)
                    assert all(x > c for x in cost[:pad]), (elems, bits, k, p)
    with pytest.raises(ValueError, match=">= 1"):
        iodma.best_pad_elements(0, 8, 1, 64)
