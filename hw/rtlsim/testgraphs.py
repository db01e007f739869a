"""Hand-built FINN HW graphs for the stitcher/testbench tests (no training, no export).

Every graph is built from FINN HW nodes (MVAU, Thresholding, and our DuplicateStreams /
StreamingConcat RTL ops) with seeded random integer weights and thresholds, then
specialized to RTL (SpecializeLayers, ``preferred_impl_style="rtl"``). Vectors are
(1, C) per tensor; shapes below are per vector.

* :func:`two_chains`: two inputs, two outputs, two disconnected chains
  ``a (8 x INT8) -> MVAU 8x16 -> Thr -> MVAU 16x4 -> Thr -> p (4 x UINT4)`` and
  ``b (4 x INT6) -> MVAU 4x8 -> Thr -> q (8 x UINT4)``.
* :func:`fork_join`: ``x (C x INT8) -> DuplicateStreams_rtl -> long path (``depth``
  MVAU + Thresholding pairs, SIMD = PE = 1) / short path (direct) -> StreamingConcat_rtl
  (long path on in0, short on in1) -> y (2C)``: the concat drains in0 first, so the short
  path's FIFO must hold what the fork emits while the long path computes.
* :func:`residual`: ``x (C x INT8) -> DuplicateStreams_rtl -> MVAU + Thresholding /
  direct -> ElementwiseAdd_rtl (ours) -> y (C)``: a residual join whose add takes both
  operands in the same cycle.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import TensorProto
from onnx import helper as oh
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.util.basic import qonnx_make_model

PART = "xc7z020clg400-1"
DOMAIN = "finn.custom_op.fpgadataflow"


def _int_type(lo: int, hi: int) -> str:
    """Smallest INTn / UINTn holding [lo, hi]."""
    if lo >= 0:
        return f"UINT{max(1, int(hi).bit_length())}"
    bits = max(int(hi).bit_length(), int(-lo - 1).bit_length()) + 1
    return f"INT{bits}"


class GraphBuilder:
    """Nodes, initializers and tensor datatypes/shapes of a HW graph under construction."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[Any] = []
        self.inits: dict[str, tuple[np.ndarray, str]] = {}
        self.types: dict[str, tuple[str, int]] = {}  # tensor -> (datatype, channels)
        self.count: dict[str, int] = {}

    def _name(self, kind: str) -> str:
        i = self.count.get(kind, 0)
        self.count[kind] = i + 1
        return f"{kind}_{i}"

    def input(self, name: str, dtype: str, ch: int) -> str:
        self.types[name] = (dtype, ch)
        return name

    def mvau(self, x: str, mh: int, wbits: int = 4, simd: int = 1, pe: int = 1) -> str:
        """Dense layer, no activation: out = x @ W, W (MW, MH) INT<wbits> random, narrow
        range (FINN's MVAU_rtl on DSP48E1 parts needs the most negative code unused)."""
        idt, mw = self.types[x]
        lo, hi = -(1 << (wbits - 1)) + 1, (1 << (wbits - 1)) - 1
        w = self.rng.integers(lo, hi + 1, size=(mw, mh)).astype(np.float32)
        dt = DataType[idt]
        amax = int(np.abs(w).sum(axis=0).max()) * max(abs(int(dt.min())), int(dt.max()))
        odt = _int_type(-amax, amax)
        name = self._name("MVAU")
        out, wname = f"{name}_out", f"{name}_W"
        self.inits[wname] = (w, f"INT{wbits}")
        self.nodes.append(oh.make_node(
            "MVAU", [x, wname], [out], domain=DOMAIN, backend="fpgadataflow", name=name,
            MW=mw, MH=mh, SIMD=simd, PE=pe, inputDataType=idt, weightDataType=f"INT{wbits}",
            outputDataType=odt, noActivation=1, binaryXnorMode=0, ActVal=0,
            mem_mode="internal_decoupled", numInputVectors=[1], preferred_impl_style="rtl"))
        self.types[out] = (odt, mh)
        return out

    def threshold(self, x: str, obits: int = 4, pe: int = 1) -> str:
        """Unsigned staircase of 2^obits - 1 random sorted integer thresholds per channel."""
        idt, ch = self.types[x]
        dt = DataType[idt]
        steps = (1 << obits) - 1
        lo, hi = int(dt.min()) // 4, int(dt.max()) // 4  # the busy middle of the range
        t = np.sort(self.rng.integers(lo, hi + 1, size=(ch, steps)), axis=1).astype(np.float32)
        name = self._name("Thresholding")
        out, tname = f"{name}_out", f"{name}_T"
        # The threshold datatype is the input's, as FINN's flow sets it (a narrower
        # weightDataType was not tried against the RTL).
        self.inits[tname] = (t, idt)
        self.nodes.append(oh.make_node(
            "Thresholding", [x, tname], [out], domain=DOMAIN, backend="fpgadataflow",
            name=name, NumChannels=ch, PE=pe, numSteps=steps, inputDataType=idt,
            weightDataType=self.inits[tname][1], outputDataType=f"UINT{obits}", ActVal=0,
            numInputVectors=[1], preferred_impl_style="rtl"))
        self.types[out] = (f"UINT{obits}", ch)
        return out

    def duplicate(self, x: str, n: int = 2, pe: int = 1) -> list[str]:
        idt, ch = self.types[x]
        name = self._name("DuplicateStreams")
        outs = [f"{name}_out{i}" for i in range(n)]
        self.nodes.append(oh.make_node(
            "DuplicateStreams", [x], outs, domain=DOMAIN, backend="fpgadataflow", name=name,
            NumChannels=ch, PE=pe, NumOutputStreams=n, inputDataType=idt,
            numInputVectors=[1], preferred_impl_style="rtl"))
        for o in outs:
            self.types[o] = (idt, ch)
        return outs

    def concat(self, xs: list[str], simd: int = 1) -> str:
        dts = [self.types[x][0] for x in xs]
        chans = [self.types[x][1] for x in xs]
        name = self._name("StreamingConcat")
        out = f"{name}_out"
        self.nodes.append(oh.make_node(
            "StreamingConcat", xs, [out], domain=DOMAIN, backend="fpgadataflow", name=name,
            SIMD=simd, ChannelsPerStream=chans, inputDataTypes=dts, numInputVectors=[1],
            preferred_impl_style="rtl"))
        lo = min(int(DataType[d].min()) for d in dts)
        hi = max(int(DataType[d].max()) for d in dts)
        self.types[out] = (_int_type(lo, hi), sum(chans))
        return out

    def add(self, a: str, b: str, pe: int = 1) -> str:
        """Streamed integer a + b (FINN ElementwiseAdd, specialized to our
        ElementwiseAdd_rtl), out datatype holding every sum."""
        (adt, ch), (bdt, ch_b) = self.types[a], self.types[b]
        assert ch == ch_b, (ch, ch_b)
        lo = int(DataType[adt].min()) + int(DataType[bdt].min())
        hi = int(DataType[adt].max()) + int(DataType[bdt].max())
        odt = _int_type(lo, hi)
        name = self._name("ElementwiseAdd")
        out = f"{name}_out"
        self.nodes.append(oh.make_node(
            "ElementwiseAdd", [a, b], [out], domain=DOMAIN, backend="fpgadataflow",
            name=name, lhs_dtype=adt, rhs_dtype=bdt, out_dtype=odt, lhs_shape=[1, ch],
            rhs_shape=[1, ch], out_shape=[1, ch], lhs_style="input", rhs_style="input",
            PE=pe, preferred_impl_style="rtl"))
        self.types[out] = (odt, ch)
        return out

    def model(self, inputs: list[str], outputs: list[str],
              rename: dict[str, str] | None = None) -> ModelWrapper:
        """The ModelWrapper, outputs renamed by ``rename`` (tensor -> graph output name),
        specialized to RTL variants."""
        from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

        from hw.custom_ops import SpecializeIntegerElementwiseAdd

        rename = rename or {}
        for n in self.nodes:
            for i, o in enumerate(n.output):
                if o in rename:
                    n.output[i] = rename[o]
        for old, new in rename.items():
            self.types[new] = self.types.pop(old)
        outputs = [rename.get(o, o) for o in outputs]

        def vi(t: str) -> Any:
            return oh.make_tensor_value_info(t, TensorProto.FLOAT, [1, self.types[t][1]])

        graph = oh.make_graph(self.nodes, "hw", [vi(t) for t in inputs],
                              [vi(t) for t in outputs])
        m = ModelWrapper(qonnx_make_model(graph, producer_name="hw.rtlsim.testgraphs"))
        for t, (dt, ch) in self.types.items():
            if t in inputs or t in outputs or any(t in n.output for n in self.nodes):
                m.set_tensor_shape(t, [1, ch])
                m.set_tensor_datatype(t, DataType[dt])
        for k, (v, dt) in self.inits.items():
            m.set_initializer(k, v)
            m.set_tensor_datatype(k, DataType[dt])
        return m.transform(SpecializeIntegerElementwiseAdd()).transform(SpecializeLayers(PART))


def two_chains(seed: int = 0) -> ModelWrapper:
    """Two inputs (a: 8 x INT8, b: 4 x INT6), two outputs (p: 4, q: 8; UINT4)."""
    g = GraphBuilder(seed)
    a = g.input("a", "INT8", 8)
    b = g.input("b", "INT6", 4)
    p = g.threshold(g.mvau(g.threshold(g.mvau(a, 16, simd=2, pe=2)), 4, simd=4))
    q = g.threshold(g.mvau(b, 8, simd=2, pe=1))
    return g.model(["a", "b"], ["p", "q"], {p: "p", q: "q"})


def fork_join(channels: int = 8, depth: int = 3, seed: int = 0) -> ModelWrapper:
    """x -> DuplicateStreams -> [long: ``depth`` x (MVAU, Thresholding)] / [short] ->
    StreamingConcat(long, short) -> y."""
    g = GraphBuilder(seed)
    x = g.input("x", "INT8", channels)
    long_in, short = g.duplicate(x)
    t = long_in
    for _ in range(depth):
        t = g.threshold(g.mvau(t, channels))
    y = g.concat([t, short])
    return g.model(["x"], ["y"], {y: "y"})


def residual(channels: int = 4, seed: int = 0) -> ModelWrapper:
    """x -> DuplicateStreams -> [MVAU, Thresholding] / [short] -> ElementwiseAdd -> y."""
    g = GraphBuilder(seed)
    x = g.input("x", "INT8", channels)
    long_in, short = g.duplicate(x)
    y = g.add(g.threshold(g.mvau(long_in, channels)), short)
    return g.model(["x"], ["y"], {y: "y"})
