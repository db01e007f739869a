"""The latency backend (hw/unrolled_rtl.py, UnrolledMLP_rtl, UnrollDenseChains).

Fast: the threshold tables against MultiThreshold over every reachable accumulator value
(random, duplicate, unreachable and single thresholds), with a negative control; the
transform on a small folded FINN graph, whose Python execution must equal the folded
graph's. Slow: the generated RTL in Verilator under random back-pressure, 0 mismatches
against the folded FINN graph (not against our own reference), with a negative control.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.general import GiveUniqueNodeNames
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import qonnx_make_model

import hw.custom_ops  # noqa: F401  (registers UnrolledMLP_rtl)
from hw.transforms.iodma_pad import PadStreamsForIODMA
from hw.transforms.unroll import UnrollDenseChains, chains, selected
from hw.unrolled_rtl import ChannelTable, Layer, channel_table, generate, prove_table, reference

RTL = "finn.custom_op.fpgadataflow.rtl"


def _thresholds(rng: np.random.Generator, n: int, lo: int, hi: int) -> np.ndarray:
    """Sorted thresholds with duplicates and values outside [lo, hi] on both sides."""
    t = rng.integers(lo - 50, hi + 50, n)
    t[: n // 8] = t[n // 8]  # a run of duplicates
    return np.sort(t)


@pytest.mark.parametrize("seed", range(6))
def test_tables_equal_multithreshold_everywhere(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lo, hi = -int(rng.integers(1, 3000)), int(rng.integers(1, 3000))
    t = _thresholds(rng, int(rng.integers(1, 64)), lo, hi)
    tab = channel_table(t, lo, hi)
    assert prove_table(tab, t) == 0
    # negative control: one bin's offset moved changes some count
    if not tab.empty:
        m = int(np.argmax(tab.inc))
        bent = ChannelTable(**{**tab.__dict__, "base": list(tab.base)})
        bent.base[m] += 1
        assert prove_table(bent, t) > 0


def test_tables_uniform_half_even_and_edge_cases() -> None:
    # half-even rounding of acc/64: steps alternate 63/65 (the default f_Q's hidden layers)
    t = np.array([32 + 64 * k + (k % 2) for k in range(63)])
    tab = channel_table(t, -5000, 5000)
    assert tab.k == 5 and prove_table(tab, t) == 0
    # every threshold unreachable (above) or always passed (below)
    assert channel_table(np.array([9000, 9001]), -10, 10).empty
    below = channel_table(np.array([-100, -99]), -10, 10)
    assert below.empty and below.const == 2
    assert prove_table(below, np.array([-100, -99])) == 0
    # one threshold, duplicated
    t1 = np.array([3, 3, 3])
    assert prove_table(channel_table(t1, -8, 7), t1) == 0


def _layers(rng: np.random.Generator) -> list[Layer]:
    """INT8 -> 16 (UINT4) -> 8 (INT5, act_val -15) -> 3 (accumulator, INT16)."""
    w0 = rng.integers(-7, 8, (12, 16))
    w1 = rng.integers(-5, 6, (16, 8))
    w2 = rng.integers(-9, 10, (8, 3))
    w1[:, 2] = 0  # a dead output column
    t0 = np.sort(rng.integers(-600, 600, (16, 15)), axis=1)
    t1 = np.sort(rng.integers(-400, 400, (8, 30)), axis=1)
    return [Layer(w0, t0, 0, 8, True, 4, False), Layer(w1, t1, -15, 4, False, 5, True),
            Layer(w2, None, 0, 5, True, 16, True)]


def _folded_graph(layers: list[Layer]) -> ModelWrapper:
    """The same layers as FINN's MVAU_rtl / Thresholding_rtl nodes (what the flow builds)."""
    nodes, inits, t, dts = [], {}, "x", {"x": "INT8"}
    for i, ly in enumerate(layers):
        mw, mh = ly.weights.shape
        idt = DataType[f"{'INT' if ly.in_signed else 'UINT'}{ly.in_bits}"].name
        acc = f"a{i}"
        nodes.append(helper.make_node(
            "MVAU_rtl", [t, f"W{i}"], [acc], domain=RTL, backend="fpgadataflow",
            MW=mw, MH=mh, SIMD=1, PE=1, inputDataType=idt, weightDataType="INT8",
            outputDataType="INT16", accDataType="INT16", noActivation=1, binaryXnorMode=0,
            ActVal=0, numInputVectors=[1], mem_mode="internal_embedded",
            exec_mode="cppsim"))
        inits[f"W{i}"] = ly.weights
        dts[acc] = "INT16"
        t = acc
        if ly.thresholds is not None:
            odt = DataType[f"{'INT' if ly.out_signed else 'UINT'}{ly.out_bits}"].name
            nodes.append(helper.make_node(
                "Thresholding_rtl", [acc, f"T{i}"], [f"q{i}"], domain=RTL,
                backend="fpgadataflow", NumChannels=mh, PE=1,
                numSteps=ly.thresholds.shape[1], inputDataType="INT16",
                weightDataType="INT16", outputDataType=odt, ActVal=ly.act_val,
                numInputVectors=[1], exec_mode="cppsim"))
            inits[f"T{i}"] = ly.thresholds
            dts[f"q{i}"] = odt
            t = f"q{i}"
    g = helper.make_graph(nodes, "mlp",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 12])],
                          [helper.make_tensor_value_info(t, TensorProto.FLOAT, [1, 3])])
    m = ModelWrapper(qonnx_make_model(g))
    for k, v in inits.items():
        m.set_initializer(k, v.astype(np.float32))
    for k, v in dts.items():
        m.set_tensor_datatype(k, DataType[v])
    return m.transform(GiveUniqueNodeNames()).transform(InferShapes())


def _inputs(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random INT8 vectors plus the saturation extremes (all -128, all 127, alternating)."""
    x = rng.integers(-128, 128, (n, 12))
    x[0], x[1], x[2, ::2], x[2, 1::2] = -128, 127, -128, 127
    return x


def _run(model: ModelWrapper, x: np.ndarray) -> np.ndarray:
    out = model.graph.output[0].name
    return np.stack([execute_onnx(model, {"x": v[None].astype(np.float32)})[out][0]
                     for v in x]).astype(np.int64)


def test_transform_executes_like_the_folded_graph() -> None:
    rng = np.random.default_rng(1)
    layers = _layers(rng)
    folded = _folded_graph(layers)
    unrolled = folded.transform(UnrollDenseChains("unrolled"))
    assert [n.op_type for n in unrolled.graph.node] == ["UnrolledMLP_rtl"]
    x = _inputs(rng, 64)
    want = _run(folded, x)
    got = _run(unrolled, x)
    assert np.array_equal(got, want)
    assert np.array_equal(reference(layers, x), want)
    # negative control: the same comparison sees a changed weight
    bent = [Layer(**{**layers[0].__dict__, "weights": layers[0].weights + 1}), *layers[1:]]
    assert not np.array_equal(reference(bent, x), want)


def test_impl_selection_per_layer_and_errors() -> None:
    folded = _folded_graph(_layers(np.random.default_rng(2)))
    names = [n.name for n in folded.graph.node]
    assert chains(folded, "folded") == []
    assert [len(r) for r in chains(folded, "unrolled")] == [len(names)]
    # folding the middle MVAU splits the chain in two
    runs = chains(folded, {"default": "unrolled", names[2]: "folded"})
    assert [[n.name for n in r] for r in runs] == [names[:2], names[3:]]
    with pytest.raises(ValueError, match=r"hw.impl for 'x' is 'fast'; allowed: folded, unrolled"):
        selected({"x": "fast"}, "x")


def _iodmas(model: ModelWrapper, port: int) -> dict[str, Any]:
    """FINN's own IODMAs for ``model`` (InsertIODMA, as ZynqBuild runs it), by direction."""
    from finn.transformation.fpgadataflow.insert_iodma import InsertIODMA
    from qonnx.custom_op.registry import getCustomOp

    m = model.transform(InsertIODMA(port))
    return {getCustomOp(n).get_nodeattr("direction"): getCustomOp(n)
            for n in m.graph.node if n.op_type == "IODMA_hls"}


def test_iodma_padding_moves_one_word_per_vector() -> None:
    """12 INT8 in (96 bits) and 3 INT16 out (48 bits) on a 128-bit port: FINN's IODMAs are
    32 and 16 bits wide (3 words per vector each). Padded to 16 inputs and 4 outputs they
    are 128 and 64 bits wide, one word per vector; the node computes the same integers."""
    rng = np.random.default_rng(4)
    layers = _layers(rng)
    folded = _folded_graph(layers)
    unrolled = folded.transform(UnrollDenseChains("unrolled"))
    before = _iodmas(unrolled, 128)  # negative control: unpadded, FINN's DMA throttles
    assert (before["in"].get_nodeattr("intfWidth"), before["out"].get_nodeattr("intfWidth")) \
        == (32, 16)
    pad = PadStreamsForIODMA(128)
    padded = unrolled.transform(pad)
    node = padded.get_nodes_by_op_type("UnrolledMLP_rtl")[0]
    inst = getCustomOp(node)
    assert (inst.get_nodeattr("inPad"), inst.get_nodeattr("outPad")) == (4, 1)
    assert inst.get_folded_input_shape() == (1, 1, 16)
    assert inst.get_folded_output_shape() == (1, 1, 4)
    assert inst.get_normal_input_shape() == (1, 12)
    assert [(r["direction"], r["pad"], r["cycles_before"], r["cycles_after"])
            for r in pad.report] == [("in", 4, 3, 1), ("out", 1, 3, 1)]
    after = _iodmas(padded, 128)
    for k, width in (("in", 128), ("out", 64)):
        d = after[k]
        assert d.get_nodeattr("intfWidth") == d.get_nodeattr("streamWidth") == width, k
        assert int(np.prod(d.get_nodeattr("numInputVectors"))) == 1, k  # beats per vector
    x = _inputs(rng, 16)
    assert np.array_equal(_run(padded, x), _run(folded, x))
    # a folded layer at the edge cannot carry padding: reported, left as it is
    pf = PadStreamsForIODMA(128)
    folded.transform(pf)
    assert [r["pad"] for r in pf.report] == [None, None]
    assert [r["cycles_after"] for r in pf.report] == [r["cycles_before"] for r in pf.report]


@pytest.mark.slow
@pytest.mark.parametrize("port", [None, 128])
def test_unrolled_rtl_bit_exact_under_backpressure(tmp_path, port: int | None) -> None:  # noqa: ANN001
    """The generated RTL, unpadded and with its streams padded for a 128-bit IODMA."""
    from hw.rtlsim import harness

    rng = np.random.default_rng(3)
    layers = _layers(rng)
    folded = _folded_graph(layers)
    unrolled = folded.transform(UnrollDenseChains("unrolled"))
    if port is not None:
        unrolled = unrolled.transform(PadStreamsForIODMA(port))
    built = harness.build(unrolled, tmp_path / "u")
    assert built.io["inputs"][0]["folded_shape"][-1] == (12 if port is None else 16)
    x = _inputs(rng, 3000)
    name = built.io["inputs"][0]["name"]
    want = _run(folded, x[:300])
    r = harness.simulate(built, {name: x}, p_valid=0.6, p_ready=0.5)
    got = next(iter(r.outputs.values())).reshape(len(x), -1)
    assert np.array_equal(got[:300], want)  # against FINN's own folded graph
    assert np.array_equal(got, reference(layers, x))
    assert r.rc == 0
    bent = got.copy()
    bent[7, 1] += 1
    assert not np.array_equal(bent, reference(layers, x))  # negative control
    full = harness.simulate(built, {name: x}, tag="full")
    d = generate(layers, "probe")
    assert full.ii_cycles == pytest.approx(1.0, abs=0.01)
    assert full.latency_cycles >= d.latency


def test_resource_estimate_of_an_unrolled_model_in_a_fresh_process(tmp_path) -> None:  # noqa: ANN001
    """hw.resources.estimate registers our custom ops itself: `python -m hw.resources_report
    table` on an unrolled package failed with "Op 'UnrolledMLP_rtl' not found" when
    nothing else had imported hw.custom_ops."""
    import subprocess
    import sys

    unrolled = _folded_graph(_layers(np.random.default_rng(5))).transform(
        UnrollDenseChains("unrolled"))
    path = tmp_path / "u.onnx"
    unrolled.save(str(path))
    code = ("import hw; from qonnx.core.modelwrapper import ModelWrapper; "
            "from hw.resources import estimate; "
            f"e = estimate(ModelWrapper({str(path)!r}), 'xc7z020'); "
            "print(e['layers']['UnrolledMLP_rtl_0']['model']['LUT'])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert int(r.stdout.split()[-1]) > 0


def test_integer_executor_runs_the_unrolled_node() -> None:
    """host.integer expands an UnrolledMLP node into its matmul/threshold chain: the same
    integers as FINN's execution of the folded graph (padded streams: the same features)."""
    from host.integer import IntegerModel

    rng = np.random.default_rng(6)
    layers = _layers(rng)
    folded = _folded_graph(layers)
    unrolled = folded.transform(UnrollDenseChains("unrolled")).transform(PadStreamsForIODMA(128))
    model = IntegerModel.from_bytes(unrolled.model.SerializeToString(), "unrolled")
    assert len(model.layers) == 5  # matmul+threshold, matmul+threshold, matmul
    x = _inputs(rng, 200)
    out = unrolled.graph.output[0].name
    got = model.run({"x": x})[out]
    assert np.array_equal(got, reference(layers, x))
    assert np.array_equal(got[:32], _run(folded, x[:32]))
    bent = layers[2].weights.copy()
    bent[0, 0] += 1  # negative control: a changed weight is seen
    assert not np.array_equal(
        reference([*layers[:2], Layer(**{**layers[2].__dict__, "weights": bent})], x), got)
