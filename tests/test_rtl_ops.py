"""Our RTL variants of FINN's HLS-only stream ops (hw/custom_ops, hw/rtl).

Per op: the Python execution (execute_node) against a numpy reference over exhaustive
or extreme inputs, with a negative control; and the generated RTL, simulated with
Verilator through the shared harness (hw.rtlsim.harness) under random valid/ready on
every stream (independent generators, per-stream probabilities), >= 2,000 vectors,
0 mismatches against execute_node. Each Verilator build takes ~15 s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.general import GiveUniqueNodeNames
from qonnx.util.basic import qonnx_make_model

import hw.custom_ops as ops
from hw.rtlsim import harness

RTL = "finn.custom_op.fpgadataflow.rtl"
HWD = "finn.custom_op.fpgadataflow"
N_SIM = 2000


def model_of(node: Any, ins: dict[str, tuple[list[int], str]],
             outs: dict[str, tuple[list[int], str]],
             inits: dict[str, np.ndarray] | None = None) -> ModelWrapper:
    """A one-node model: ``ins``/``outs`` {tensor: (shape, datatype)}."""
    g = helper.make_graph(
        [node], "op",
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, s) for k, (s, _) in ins.items()],
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, s) for k, (s, _) in outs.items()])
    m = ModelWrapper(qonnx_make_model(g))
    for k, (_, dt) in {**ins, **outs}.items():
        m.set_tensor_datatype(k, DataType[dt])
    for k, v in (inits or {}).items():
        m.set_initializer(k, v.astype(np.float32))
    return m.transform(GiveUniqueNodeNames())  # the harness wants named nodes


def run_node(model: ModelWrapper, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """execute_node of the model's only node, one (1, F) vector at a time (the node
    declares numInputVectors=[1]); outputs stacked to (N, G) int64."""
    node = model.graph.node[0]
    inst = getCustomOp(node)
    n = len(next(iter(inputs.values())))
    outs: dict[str, list[np.ndarray]] = {o: [] for o in node.output}
    for r in range(n):
        ctx = {k: v[r:r + 1].astype(np.float32) for k, v in inputs.items()}
        for i in node.input:
            init = model.get_initializer(i)
            if init is not None:
                ctx[i] = init
        inst.execute_node(ctx, model.graph)
        for o in node.output:
            outs[o].append(np.asarray(ctx[o]).reshape(1, -1))
    return {o: np.concatenate(v).astype(np.int64) for o, v in outs.items()}


def mismatches(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> int:
    """Vectors where any code of any stream differs (the check every test uses)."""
    n = len(next(iter(want.values())))
    bad = np.zeros(n, bool)
    for k, w in want.items():
        bad |= np.any(np.asarray(got[k]).reshape(n, -1) != np.asarray(w).reshape(n, -1), axis=1)
    return int(bad.sum())


def negative_control(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    """The same check fails when one code of one vector is changed."""
    k = next(iter(got))
    bent = {**got, k: got[k].copy()}
    bent[k][len(bent[k]) // 2, 0] += 1
    assert mismatches(bent, want) == 1


def simulate(model: ModelWrapper, inputs: dict[str, np.ndarray], work: Path,
             seeds: tuple[int, ...] = (3,)) -> dict[str, Any]:
    """Build with the shared harness, simulate under random valid/ready (a different
    probability per stream), compare with execute_node.

    The reference is :func:`run_node` (execute_node per vector), not
    ``harness.expected``: that batches N vectors through one execution, which
    FINN's ElementwiseAdd refuses (its lhs_shape attribute fixes the batch to 1)."""
    built = harness.build(model, work, jobs=1)
    want = run_node(model, inputs)
    names_in = [t["name"] for t in built.io["inputs"]]
    names_out = [t["name"] for t in built.io["outputs"]]
    rows = []
    for seed in seeds:
        pv = {k: 0.35 + 0.2 * i for i, k in enumerate(names_in)}
        pr = {k: 0.3 + 0.25 * (j % 3) for j, k in enumerate(names_out)}
        r = harness.simulate(built, inputs, seed=seed, p_valid=0.5, p_ready=0.5,
                             p_valid_of=pv, p_ready_of=pr)
        cmp = harness.compare(r.outputs, want)
        rows.append({"seed": seed, "cycles": r.cycles, **cmp})
        print(f"{work.name}: {cmp['vectors']} vectors, {r.cycles} cycles, "
              f"{cmp['mismatches']} mismatches, build {built.build_s} s")
        assert cmp["mismatches"] == 0 and cmp["missing"] == 0, cmp
    # Negative control: the same comparison flags a changed expected code.
    bent = {k: v.copy() for k, v in want.items()}
    first = next(iter(bent))
    bent[first][7, 0] += 1
    assert harness.compare(r.outputs, bent)["mismatches"] == 1
    return {"build_s": built.build_s, "runs": rows, "expected": want}


def test_registry_and_specialize_pick_our_classes() -> None:
    from finn.custom_op.fpgadataflow import custom_op as hw_ops
    from finn.custom_op.fpgadataflow.rtl import custom_op as rtl_ops
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    ops.register()
    ops.register()  # idempotent
    for cls in ops.RTL_OPS:
        assert rtl_ops[cls.__name__] is cls
    assert hw_ops["CodebookLookup"] is ops.CodebookLookup
    node = helper.make_node("DuplicateStreams", ["x"], ["a", "b"], domain=HWD,
                            backend="fpgadataflow", NumChannels=4, PE=1, NumOutputStreams=2,
                            inputDataType="INT4", preferred_impl_style="rtl")
    m = model_of(node, {"x": ([1, 4], "INT4")}, {"a": ([1, 4], "INT4"), "b": ([1, 4], "INT4")})
    m = m.transform(SpecializeLayers("xc7z020clg400-1"))
    assert m.graph.node[0].op_type == "DuplicateStreams_rtl"
    assert isinstance(getCustomOp(m.graph.node[0]), ops.DuplicateStreams_rtl)
    table = np.arange(8).reshape(1, 8)
    cb = ops.make_codebook_lookup_node("x", "t", "y", table, num_channels=4, input_type="UINT3")
    m = model_of(cb, {"x": ([1, 4], "UINT3")}, {"y": ([1, 4], "UINT3")}, {"t": table})
    m = m.transform(SpecializeLayers("xc7z020clg400-1"))
    assert m.graph.node[0].op_type == "CodebookLookup_rtl"


def test_rtlsim_mode_names_our_flow() -> None:
    node = helper.make_node("DuplicateStreams_rtl", ["x"], ["a", "b"], domain=RTL,
                            backend="fpgadataflow", NumChannels=4, PE=1, NumOutputStreams=2,
                            inputDataType="INT4", exec_mode="rtlsim")
    with pytest.raises(RuntimeError, match="Verilator"):
        getCustomOp(node).execute_node({"x": np.zeros((1, 4), np.float32)}, None)


# --- DuplicateStreams ---------------------------------------------------------------------

def dup_model(n_out: int = 3, c: int = 8, pe: int = 2, dt: str = "INT5") -> ModelWrapper:
    outs = [f"o{j}" for j in range(n_out)]
    node = helper.make_node("DuplicateStreams_rtl", ["x"], outs, domain=RTL,
                            backend="fpgadataflow", NumChannels=c, PE=pe,
                            NumOutputStreams=n_out, inputDataType=dt)
    return model_of(node, {"x": ([1, c], dt)}, {o: ([1, c], dt) for o in outs})


def test_duplicate_streams_python_exhaustive() -> None:
    m = dup_model()
    x = np.arange(-16, 16).repeat(8).reshape(32, 8)  # every INT5 value in every channel
    got = run_node(m, {"x": x})
    want = {f"o{j}": x for j in range(3)}
    assert mismatches(got, want) == 0
    negative_control(got, want)


def test_duplicate_streams_rtl(tmp_path: Path) -> None:
    m = dup_model()
    x = {"x": np.random.default_rng(1).integers(-16, 16, (N_SIM, 8))}
    x["x"][:2] = [[-16] * 8, [15] * 8]
    res = simulate(m, x, tmp_path)
    assert mismatches(res["expected"], {f"o{j}": x["x"] for j in range(3)}) == 0


# --- StreamingConcat / StreamingSplit ------------------------------------------------------

CONCAT_IN = {"a": (4, "UINT4"), "b": (2, "INT3"), "c": (6, "INT6")}


def concat_model(simd: int = 2) -> ModelWrapper:
    node = helper.make_node("StreamingConcat_rtl", list(CONCAT_IN), ["y"], domain=RTL,
                            backend="fpgadataflow", SIMD=simd,
                            ChannelsPerStream=[c for c, _ in CONCAT_IN.values()],
                            inputDataTypes=[d for _, d in CONCAT_IN.values()])
    odt = getCustomOp(node).get_output_datatype().name
    return model_of(node, {k: ([1, c], d) for k, (c, d) in CONCAT_IN.items()},
                    {"y": ([1, 12], odt)})


def concat_inputs(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = {}
    for k, (c, d) in CONCAT_IN.items():
        dt = DataType[d]
        v = rng.integers(int(dt.min()), int(dt.max()) + 1, (n, c))
        v[0], v[1] = dt.min(), dt.max()
        x[k] = v
    return x


def test_concat_python_extremes() -> None:
    m = concat_model()
    assert getCustomOp(m.graph.node[0]).get_output_datatype().name == "INT6"
    x = concat_inputs(200, 0)
    got = run_node(m, x)
    want = {"y": np.concatenate([x[k] for k in CONCAT_IN], axis=1)}
    assert mismatches(got, want) == 0
    negative_control(got, want)


def test_concat_rtl(tmp_path: Path) -> None:
    x = concat_inputs(N_SIM, 1)
    res = simulate(concat_model(), x, tmp_path)
    assert mismatches(res["expected"], {"y": np.concatenate([x[k] for k in CONCAT_IN], 1)}) == 0


def split_model(chans: tuple[int, ...] = (2, 6, 4), simd: int = 2,
                dt: str = "INT7") -> ModelWrapper:
    outs = [f"o{j}" for j in range(len(chans))]
    node = helper.make_node("StreamingSplit_rtl", ["x"], outs, domain=RTL,
                            backend="fpgadataflow", SIMD=simd, ChannelsPerStream=list(chans),
                            inputDataType=dt)
    return model_of(node, {"x": ([1, sum(chans)], dt)},
                    {o: ([1, c], dt) for o, c in zip(outs, chans, strict=True)})


def split_ref(x: np.ndarray, chans: tuple[int, ...] = (2, 6, 4)) -> dict[str, np.ndarray]:
    cut = np.cumsum(chans)[:-1]
    return {f"o{j}": p for j, p in enumerate(np.split(x, cut, axis=1))}


def test_split_python_extremes() -> None:
    x = np.random.default_rng(2).integers(-64, 64, (300, 12))
    x[0], x[1] = -64, 63
    got = run_node(split_model(), {"x": x})
    assert mismatches(got, split_ref(x)) == 0
    negative_control(got, split_ref(x))


def test_split_rtl(tmp_path: Path) -> None:
    x = np.random.default_rng(3).integers(-64, 64, (N_SIM, 12))
    x[0], x[1] = -64, 63
    res = simulate(split_model(), {"x": x}, tmp_path)
    assert mismatches(res["expected"], split_ref(x)) == 0


# --- ElementwiseAdd (int/int) ---------------------------------------------------------------

def add_model(a: str = "UINT7", b: str = "INT8", c: int = 4, pe: int = 2,
              out: str | None = None, style: str = "rtl") -> ModelWrapper:
    node = helper.make_node("ElementwiseAdd", ["a", "b"], ["y"], domain=HWD,
                            backend="fpgadataflow", lhs_dtype=a, rhs_dtype=b,
                            out_dtype=out or "INT32", lhs_shape=[1, c], rhs_shape=[1, c],
                            out_shape=[1, c], PE=pe, preferred_impl_style=style)
    m = model_of(node, {"a": ([1, c], a), "b": ([1, c], b)}, {"y": ([1, c], out or "INT32")})
    if out is None:  # FINN's own exact output type (what MinimizeAccumulatorWidth sets)
        getCustomOp(m.graph.node[0]).minimize_accumulator_width(m)
    return m.transform(ops.SpecializeIntegerElementwiseAdd())


def test_add_specialized_and_out_dtype() -> None:
    m = add_model()
    node = m.graph.node[0]
    assert (node.op_type, node.domain) == ("ElementwiseAdd_rtl", RTL)
    assert isinstance(getCustomOp(node), ops.ElementwiseAdd_rtl)
    assert getCustomOp(node).get_output_datatype().name == "INT9"
    assert add_model(style="hls").graph.node[0].op_type == "ElementwiseAdd"  # left alone


def test_add_python_exhaustive() -> None:
    """Every UINT7 x INT8 pair (32,768), packed 4 per vector."""
    m = add_model()
    a, b = np.meshgrid(np.arange(0, 128), np.arange(-128, 128), indexing="ij")
    a, b = a.reshape(-1, 4), b.reshape(-1, 4)
    got = run_node(m, {"a": a, "b": b})
    assert mismatches(got, {"y": a + b}) == 0
    negative_control(got, {"y": a + b})


def test_add_refuses_out_dtype_that_wraps(tmp_path: Path) -> None:
    m = add_model(out="INT8")
    with pytest.raises(ValueError, match="cannot hold every sum"):
        getCustomOp(m.graph.node[0]).generate_hdl(m, "xc7z020clg400-1", 10.0)


def test_add_rtl_exhaustive(tmp_path: Path) -> None:
    """All 32,768 UINT7 x INT8 pairs (8,192 vectors of 4), random valid/ready on both."""
    m = add_model()
    a, b = np.meshgrid(np.arange(0, 128), np.arange(-128, 128), indexing="ij")
    perm = np.random.default_rng(4).permutation(a.size)
    x = {"a": a.reshape(-1)[perm].reshape(-1, 4), "b": b.reshape(-1)[perm].reshape(-1, 4)}
    res = simulate(m, x, tmp_path)
    assert mismatches(res["expected"], {"y": x["a"] + x["b"]}) == 0


def test_finn_eltwise_int_core_exact_where_it_applies(tmp_path: Path) -> None:
    """FINN's own ElementwiseAdd_rtl (finn-rtllib eltwise/binopi) on every INT8 x INT8
    pair, to back the module doc's claim; built with FINN's class, not ours."""
    import finn.custom_op.fpgadataflow.rtl as rtl_domain
    from finn.custom_op.fpgadataflow.rtl.elementwise_binary_rtl import (
        ElementwiseAdd_rtl as Finn,
    )
    from qonnx.custom_op import registry

    m = add_model(a="INT8", b="INT8")
    assert getCustomOp(m.graph.node[0]).get_output_datatype().name == "INT9"
    rtl_domain.custom_op["ElementwiseAdd_rtl"] = Finn
    registry.add_op_to_domain(RTL, Finn)
    try:
        a, b = np.meshgrid(np.arange(-128, 128), np.arange(-128, 128), indexing="ij")
        x = {"a": a.reshape(-1, 4), "b": b.reshape(-1, 4)}
        res = simulate(m, x, tmp_path)
        assert mismatches(res["expected"], {"y": x["a"] + x["b"]}) == 0
        assert list(tmp_path.rglob("binopi.sv")), "FINN's eltwise core was not the one built"
    finally:
        ops.register()
    assert type(getCustomOp(m.graph.node[0])) is ops.ElementwiseAdd_rtl


# --- LabelSelect (K = 1) ----------------------------------------------------------------------

def label_model(labels: int = 12, pe: int = 3, dt: str = "INT4", k: int = 1) -> ModelWrapper:
    node = helper.make_node("LabelSelect_rtl", ["x"], ["y"], domain=RTL, backend="fpgadataflow",
                            Labels=labels, PE=pe, K=k, inputDataType=dt)
    odt = getCustomOp(node).get_output_datatype().name
    return model_of(node, {"x": ([1, labels], dt)}, {"y": ([1, k], odt)})


def tie_heavy(n: int, labels: int, seed: int, lo: int = -8, hi: int = 7) -> np.ndarray:
    """Values from 3 levels only (many ties at the max), plus all-equal and extreme rows."""
    rng = np.random.default_rng(seed)
    levels = np.array([lo, 0, hi])
    x = levels[rng.integers(0, 3, (n, labels))]
    x[0], x[1], x[2] = lo, hi, 0
    x[3] = np.where(np.arange(labels) % 2, hi, lo)  # ties at odd positions
    return x


def test_label_select_python_ties_lowest_index() -> None:
    m = label_model()
    x = tie_heavy(3000, 12, 5)
    got = run_node(m, {"x": x})
    want = {"y": np.argmax(x, axis=1)[:, None]}
    assert mismatches(got, want) == 0
    negative_control(got, want)
    # FINN's own LabelSelect.execute_node (onnxruntime TopK) agrees on these ties.
    from finn.custom_op.fpgadataflow.labelselect import LabelSelect

    inst = getCustomOp(m.graph.node[0])
    ctx = {"x": x.astype(np.float32), "y": np.zeros((len(x), 1), np.float32)}
    inst.set_nodeattr("numInputVectors", [len(x)])
    LabelSelect.execute_node(inst, ctx, m.graph)
    assert np.array_equal(ctx["y"].reshape(-1), np.argmax(x, axis=1))


def test_label_select_refuses_k_above_1() -> None:
    m = label_model(k=2)
    with pytest.raises(ValueError, match="K=1"):
        getCustomOp(m.graph.node[0]).generate_hdl(m, "xc7z020clg400-1", 10.0)


def test_label_select_rtl(tmp_path: Path) -> None:
    x = tie_heavy(N_SIM, 12, 6)
    x[N_SIM // 2:] = np.random.default_rng(7).integers(-8, 8, (N_SIM - N_SIM // 2, 12))
    res = simulate(label_model(), {"x": x}, tmp_path)
    assert mismatches(res["expected"], {"y": np.argmax(x, axis=1)[:, None]}) == 0


# --- CodebookLookup ---------------------------------------------------------------------------

def codebook(c: int, levels: int, seed: int) -> np.ndarray:
    """Sorted non-uniform integer levels per channel (k-means-like), signed."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.integers(-100, 101, (c, levels)), axis=1)


def lookup_model(table: np.ndarray, c: int = 6, pe: int = 2, idt: str = "UINT4") -> ModelWrapper:
    node = ops.make_codebook_lookup_node("x", "t", "y", table, num_channels=c, input_type=idt,
                                         pe=pe)
    node.domain, node.op_type = RTL, "CodebookLookup_rtl"
    odt = getCustomOp(node).get_output_datatype().name
    return model_of(node, {"x": ([1, c], idt)}, {"y": ([1, c], odt)}, {"t": table})


def lookup_ref(table: np.ndarray, x: np.ndarray) -> np.ndarray:
    k = np.minimum(x, table.shape[1] - 1)
    ch = np.arange(x.shape[1]) if table.shape[0] > 1 else np.zeros(x.shape[1], int)
    return table[ch, k]


def test_smallest_int_type() -> None:
    assert ops.smallest_int_type(np.array([0, 7])).name == "UINT3"
    assert ops.smallest_int_type(np.array([-8, 7])).name == "INT4"
    assert ops.smallest_int_type(np.array([-9, 0])).name == "INT5"
    assert ops.smallest_int_type(np.array([-1, 8])).name == "INT5"


@pytest.mark.parametrize("shared", [False, True])
def test_lookup_python_every_index(shared: bool) -> None:
    """Every index 0..15 in every channel; L = 12 so indices 12..15 saturate to level 11."""
    table = codebook(1 if shared else 6, 12, 8)
    m = lookup_model(table)
    x = np.tile(np.arange(16)[:, None], (1, 6))
    got = run_node(m, {"x": x})
    want = {"y": lookup_ref(table, x)}
    assert mismatches(got, want) == 0
    assert np.all(got["y"][12:] == got["y"][11])  # saturation
    negative_control(got, want)


@pytest.mark.parametrize("shared", [False, True])
def test_lookup_rtl(tmp_path: Path, shared: bool) -> None:
    table = codebook(1 if shared else 6, 12, 9)
    x = np.random.default_rng(10).integers(0, 16, (N_SIM, 6))
    x[:16] = np.arange(16)[:, None]  # every index, every channel
    res = simulate(lookup_model(table), {"x": x}, tmp_path)
    assert mismatches(res["expected"], {"y": lookup_ref(table, x)}) == 0
