"""FINN's Zynq-shell IODMA (hw.iodma) and its model in the Verilator testbench.

Fast tests check the width rule against FINN itself: ``InsertIODMA`` is applied, with
the port width FINN's ``ZynqBuild`` gives it, to small HW graphs of several stream widths
and foldings, and every IODMA's ``intfWidth``/``streamWidth`` is compared with
hw.iodma's. They also check hand-worked examples and the port table against FINN's
``pynq_native_port_width``.

"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import hw  # noqa: F401  (offline FINN bootstrap)
from configs import load_board
from hw import iodma


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
