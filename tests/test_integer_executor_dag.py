"""host.integer on the branched FINN graphs our compiler emits: StreamingSplit,
StreamingConcat, DuplicateStreams, ElementwiseAdd (ours), CodebookLookup (ours) and
LabelSelect (K = 1).

The graphs are the real ones: each zoo topology of tests/test_topologies.py through the
whole offline flow (its ``_flow``: export, FINN's builder, every stage verified), the final
HW graph written as a package writes it (hw.build.write_portable_model). On each:

* the executor's codes == FINN's own execution of that graph (qonnx ``execute_onnx``,
  hw.verify.execute_codes) on random codes over every input's whole datatype with its
  extremes, and == the Brevitas codes on the topology's 10,000 golden vectors (rounding
  ties, saturation extremes, random); == ``run_plain``; any batch size;
* a negative control per op: a copy of the graph with one change (a codebook entry, the
  concat order, the split outputs swapped, an add operand, the fork's input) gives other
  codes, and the executor equals FINN on the changed copy too; LabelSelect's tie order
  (the last maximum instead of the first) is seen;
* a datatype narrowed on a copy (an add's out_dtype, a concat input's type, ...) is
  refused naming the node, as the hardware would wrap; ops and options not modelled are
  refused by name.

Plus one FINN graph of every DAG op with numInputVectors [1, 3] (three vectors per
stream vector), executed by FINN, and run again in the board's numpy 1.x venv.
``g_12_branches`` (EQ-Net's 12-branch decoder: a ~75 s FINN build) is slow.

The topology models draw their weights when constructed, before tests/synthetic.py's
``calibrate`` seeds torch; the fixture seeds torch first, so the graphs (and the
negative controls' effects) are the same every run.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import host.integer as hi
from host.integer import IntegerGraphError, IntegerModel, UnsupportedLayerError
from tests.test_integer_executor import (
    FORBIDDEN,
    REPO,
    RTL,
    assert_same,
    edge_codes,
    finn_codes,
    mismatching,
    mvau,
    write_model,
)

# the DAG ops each topology's final HW graph must hold (tests/test_topologies.py CASES)
DAG_CASES = {
    "residual_shared_quantizer": {"DuplicateStreams_rtl", "ElementwiseAdd_rtl"},
    "two_inputs_two_outputs": {"StreamingConcat_rtl", "StreamingSplit_rtl"},
    "learned_quantizer_lookup": {"CodebookLookup_rtl"},
    "branches_fan_out_concat": {"StreamingSplit_rtl", "StreamingConcat_rtl"},
    "argmax_output": {"LabelSelect_rtl"},
    "g_12_branches": {"StreamingSplit_rtl", "StreamingConcat_rtl"},
}
METHOD = {"DuplicateStreams_rtl": None, "ElementwiseAdd_rtl": "add",
          "StreamingConcat_rtl": "concat", "StreamingSplit_rtl": "split",
          "CodebookLookup_rtl": "lut", "LabelSelect_rtl": "argmax"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], dict[str, Any]]:
    """``built(case)``: the topology through the flow (once per module), its package
    model, the executor on it, edge codes and FINN's codes for them."""
    import torch

    from hw.build import write_portable_model
    from tests.test_topologies import CASES, _flow

    cache: dict[str, dict[str, Any]] = {}

    def get(case: str) -> dict[str, Any]:
        if case not in cache:
            root = tmp_path_factory.mktemp(case)
            # tests/synthetic.py's models draw their weights when constructed, before
            # calibrate() seeds torch: seeded here, the graphs are the same every run
            torch.manual_seed(1234)
            res, x, y, spec = _flow(CASES[case], root)
            path = root / "model_finn.onnx"
            write_portable_model(res["final_model"], path, spec)
            m = IntegerModel.load(path)
            codes = edge_codes(m, 2000, seed=3)
            cache[case] = {"path": path, "x": x, "y": y, "model": m, "codes": codes,
                           "finn": finn_codes(path, codes, list(m.outputs))}
        return cache[case]
    return get


CASE_PARAMS = [c if c != "g_12_branches" else pytest.param(c, marks=pytest.mark.slow)
               for c in DAG_CASES]


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_dag_topology_equals_finn_and_brevitas(built: Callable[[str], dict[str, Any]],
                                               case: str) -> None:
    b = built(case)
    m, path, c = b["model"], b["path"], b["codes"]
    nodes = onnx.load(str(path)).graph.node
    assert DAG_CASES[case] <= {n.op_type for n in nodes}
    methods = {s["layer"]: s["method"] for s in m.describe()}
    for n in nodes:  # every DAG node became its step (a fork: no step, an alias)
        if n.op_type in METHOD:
            assert methods.get(n.name) == METHOD[n.op_type], (n.name, methods)
    for k, s in m.inputs.items():  # the codes reach both ends of every input's datatype
        assert c[k].min() == s.lo and c[k].max() == s.hi
    assert_same(m.run(c), b["finn"], f"{case}: edge codes vs FINN")
    assert_same(m.run_plain(c), b["finn"], f"{case}: run_plain vs FINN")
    assert_same(m.run(c, check=False), b["finn"], f"{case}: unchecked")
    assert_same(m.run(b["x"]), b["y"], f"{case}: golden vs Brevitas")
    assert_same(m.run(b["x"]), finn_codes(path, b["x"], list(m.outputs)),
                f"{case}: golden vs FINN")
    for n in (1, 2, 17, 1000, 2, 1):  # workspaces per batch size, reused
        sub = {k: v[5:5 + n] for k, v in c.items()}
        assert_same(m.run(sub), {k: v[5:5 + n] for k, v in b["finn"].items()}, f"n={n}")


# ------------------------------------------------------------------ negative controls
def _node(g: onnx.GraphProto, op: str) -> onnx.NodeProto:
    return next(n for n in g.node if n.op_type == op)


def _set(node: onnx.NodeProto, name: str, value: Any) -> None:
    a = next(a for a in node.attribute if a.name == name)
    if isinstance(value, str):
        a.s = value.encode()
    elif isinstance(value, list) and value and isinstance(value[0], str):
        a.strings[:] = [v.encode() for v in value]
    else:
        a.ints[:] = value


def _attr(node: onnx.NodeProto, name: str) -> Any:
    return helper.get_attribute_value(next(a for a in node.attribute if a.name == name))


def change_table_entry(g: onnx.GraphProto) -> None:
    """One entry of channel 0's codebook one level up (down at the top of OutputType)."""
    node = _node(g, "CodebookLookup_rtl")
    init = next(t for t in g.initializer if t.name == node.input[1])
    t = numpy_helper.to_array(init).copy()
    k = t.shape[1] // 2
    t[0, k] += 1 if t[0, k] < t.max() else -1
    init.CopyFrom(numpy_helper.from_array(t, init.name))


def swap_concat_inputs(g: onnx.GraphProto) -> None:
    node = _node(g, "StreamingConcat_rtl")
    node.input[:] = list(node.input)[::-1]
    _set(node, "ChannelsPerStream", list(_attr(node, "ChannelsPerStream"))[::-1])
    _set(node, "inputDataTypes", [t.decode() for t in _attr(node, "inputDataTypes")][::-1])


def swap_split_outputs(g: onnx.GraphProto) -> None:
    node = _node(g, "StreamingSplit_rtl")
    assert len(set(_attr(node, "ChannelsPerStream"))) == 1
    node.output[:] = list(node.output)[::-1]


def add_rhs_twice(g: onnx.GraphProto) -> None:
    """The residual add's skip operand replaced by its other operand: 2 b, not a + b."""
    node = _node(g, "ElementwiseAdd_rtl")
    node.input[0] = node.input[1]


def fork_before_requant(g: onnx.GraphProto) -> None:
    """The fork fed the tensor before the layer that feeds it (same channels, values
    inside its inputDataType)."""
    node = _node(g, "DuplicateStreams_rtl")
    producer = next(n for n in g.node if node.input[0] in n.output)
    node.input[0] = producer.input[0]


@pytest.mark.parametrize("case,edit", [
    ("learned_quantizer_lookup", change_table_entry),
    ("two_inputs_two_outputs", swap_concat_inputs),
    ("branches_fan_out_concat", swap_split_outputs),
    ("branches_fan_out_concat", swap_concat_inputs),
    ("residual_shared_quantizer", add_rhs_twice),
    ("residual_shared_quantizer", fork_before_requant),
], ids=lambda v: v if isinstance(v, str) else v.__name__)
def test_negative_control_per_op(built: Callable[[str], dict[str, Any]], case: str,
                                 edit: Callable[[onnx.GraphProto], None],
                                 tmp_path: Path) -> None:
    b = built(case)
    model = onnx.load(str(b["path"]))
    edit(model.graph)
    bad = tmp_path / "model_finn.onnx"
    onnx.save(model, str(bad))
    changed = IntegerModel.load(bad)
    got = changed.run(b["codes"])
    assert mismatching(got, b["finn"]) > 0, "the change is not seen"
    assert mismatching(changed.run(b["x"]), b["y"]) > 0
    assert_same(got, finn_codes(bad, b["codes"], list(changed.outputs)),
                "changed copy vs FINN on it")


def test_label_select_tie_order_is_seen(built: Callable[[str], dict[str, Any]],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The argmax's input has ties (INT4 logits) in the golden vectors: taking the LAST
    maximum instead of the first gives other codes than FINN and Brevitas."""
    b = built("argmax_output")

    def last_max(self: hi.ArgmaxStep, env: dict[str, np.ndarray], n: int,
                 ws: dict[Any, np.ndarray]) -> None:
        x = env[self.inputs[0]].reshape(n * self.vectors, self.width)[:, ::-1]
        env[self.outputs[0]] = (self.width - 1 - np.argmax(x, axis=1)).reshape(n, -1)
    monkeypatch.setattr(hi.ArgmaxStep, "__call__", last_max)
    m = IntegerModel.load(b["path"])
    assert mismatching(m.run(b["x"]), b["y"]) > 0
    assert mismatching(m.run(b["codes"]), b["finn"]) > 0


# ------------------------------------------------------------------ refusals
@pytest.mark.parametrize("case,op,attr,value,message", [
    # (the residual sums reach about [-40, 70]: INT9 built, INT8 would hold them)
    ("residual_shared_quantizer", "ElementwiseAdd_rtl", "out_dtype", "INT2",
     r"its output spans \[-?\d+, \d+\], outside its datatype INT2"),
    ("residual_shared_quantizer", "DuplicateStreams_rtl", "inputDataType", "INT2",
     r"its input spans \[-?\d+, \d+\], outside its datatype INT2"),
    ("two_inputs_two_outputs", "StreamingConcat_rtl", "inputDataTypes", ["INT13", "INT8"],
     r"its input 1 spans \[-?\d+, \d+\], outside its datatype INT8"),
    ("two_inputs_two_outputs", "StreamingSplit_rtl", "inputDataType", "INT6",
     r"its input spans \[-?\d+, \d+\], outside its datatype INT6"),
    ("learned_quantizer_lookup", "CodebookLookup_rtl", "InputType", "UINT1",
     r"its input spans \[0, \d+\], outside its datatype UINT1"),
    ("learned_quantizer_lookup", "CodebookLookup_rtl", "OutputType", "INT2",
     r"table spans \[-?\d+, -?\d+\], outside OutputType INT2"),
    ("argmax_output", "LabelSelect_rtl", "outputDataType", "UINT2",
     r"its output spans \[0, 4\], outside its datatype UINT2"),
])
def test_narrowed_datatype_is_refused_by_name(built: Callable[[str], dict[str, Any]],
                                              case: str, op: str, attr: str, value: Any,
                                              message: str, tmp_path: Path) -> None:
    """What the hardware was built with bounds what the executor accepts: a datatype
    that cannot hold the values reaching it (the hardware would wrap or truncate) is
    refused, naming the node."""
    model = onnx.load(str(built(case)["path"]))
    node = _node(model.graph, op)
    _set(node, attr, value)
    p = tmp_path / "m.onnx"
    onnx.save(model, str(p))
    with pytest.raises(IntegerGraphError, match=rf"node '{node.name}' \({op}\): {message}"):
        IntegerModel.load(p)


def _add(name: str, a: str, b: str, y: str, c: int, **over: Any) -> onnx.NodeProto:
    attrs = {"lhs_dtype": "INT12", "rhs_dtype": "INT12", "out_dtype": "INT13",
             "lhs_shape": [1, c], "rhs_shape": [1, c], "out_shape": [1, c],
             "lhs_style": "input", "rhs_style": "input", "PE": 1,
             "backend": "fpgadataflow", **over}
    return helper.make_node("ElementwiseAdd_rtl", [a, b], [y], name=name, domain=RTL,
                            **attrs)


@pytest.mark.parametrize("node,err,message", [
    (_add("Add_0", "acc", "acc", "y", 4, rhs_style="const"), UnsupportedLayerError,
     r"rhs_style='const': a constant operand is not modelled"),
    (_add("Add_0", "acc", "acc", "y", 4, rhs_shape=[1, 1]), UnsupportedLayerError,
     r"lhs/rhs/out shapes \[\[1, 4\], \[1, 1\], \[1, 4\]\]: broadcasting is not "
     r"modelled"),
    (_add("Add_0", "acc", "acc", "y", 4, lhs_dtype="FLOAT32"), UnsupportedLayerError,
     r"lhs_dtype 'FLOAT32' is not an integer datatype"),
    (_add("Add_0", "acc", "acc", "y", 4, mlo_max_iter=3), UnsupportedLayerError,
     r"an MLO loop body is not modelled"),
    (helper.make_node("ElementwiseMul_rtl", ["acc", "acc"], ["y"], name="Mul_0", domain=RTL),
     UnsupportedLayerError, r"not modelled by the integer executor"),
    (helper.make_node("LabelSelect_rtl", ["acc"], ["y"], name="LS_0", domain=RTL, K=2,
                      Labels=4, PE=1, inputDataType="INT12", outputDataType="UINT2"),
     UnsupportedLayerError, r"K=2: only the top-1 index"),
    (helper.make_node("LabelSelect_hls", ["acc"], ["y"], name="LS_0", domain=RTL, K=1,
                      Labels=4, PE=1, inputDataType="INT12", outputDataType="UINT2"),
     UnsupportedLayerError, r"not modelled by the integer executor"),
    (helper.make_node("StreamingSplit_rtl", ["acc"], ["y", "z"], name="Split_0", domain=RTL,
                      ChannelsPerStream=[2, 1], SIMD=1, inputDataType="INT12"),
     IntegerGraphError, r"its inputs \['acc'\] have \[4\] features per vector, its "
                        r"attributes say \[3\]"),
    (helper.make_node("DuplicateStreams_rtl", ["acc"], ["y", "z"], name="Dup_0", domain=RTL,
                      NumChannels=4, NumOutputStreams=3, PE=1, inputDataType="INT12"),
     IntegerGraphError, r"NumOutputStreams=3, the node has 2 outputs"),
])
def test_dag_refusals_name_the_node(tmp_path: Path, node: onnx.NodeProto, err: type,
                                    message: str) -> None:
    nodes = [mvau("MVAU_rtl_0", "x", "W", "acc", 4, 4, "INT8", "INT2", "INT12"), node]
    outs = {o: (4, "INT13") for o in node.output}
    p = write_model(tmp_path / "m.onnx", nodes, {"W": np.ones((4, 4))}, {"x": (4, "INT8")},
                    outs)
    with pytest.raises(err, match=rf"node '{node.name}' \({node.op_type}\): {message}"):
        IntegerModel.load(p)


# ------------------------------------------------------------------ several vectors
def three_vector_dag(path: Path, seed: int = 0) -> Path:
    """x (3 vectors x 6 UINT3) -> DuplicateStreams -> [StreamingSplit [2, 4] ->
    StreamingConcat (swapped) -> CodebookLookup (a table per channel, 5 levels: indices
    5..7 saturate)] / [CodebookLookup (one shared table of 8 levels)] -> ElementwiseAdd
    -> a; LabelSelect(a) -> y; the split's first output is an output too. Every node
    with numInputVectors [1, 3]."""
    rng = np.random.default_rng(seed)
    t1 = rng.integers(-16, 16, (6, 5))
    t2 = rng.integers(-8, 8, (1, 8))
    t1[0, :] = [-16, 15, 0, 1, 2]                # the INT5 extremes are reached
    t2[0, :2] = [-8, 7]
    v = [1, 3]
    common = {"numInputVectors": v, "backend": "fpgadataflow"}
    nodes = [
        helper.make_node("DuplicateStreams_rtl", ["x"], ["x1", "x2"], name="Dup_0",
                         domain=RTL, NumChannels=6, PE=1, NumOutputStreams=2,
                         inputDataType="UINT3", **common),
        helper.make_node("StreamingSplit_rtl", ["x1"], ["s0", "s1"], name="Split_0",
                         domain=RTL, ChannelsPerStream=[2, 4], SIMD=1, inputDataType="UINT3",
                         **common),
        helper.make_node("StreamingConcat_rtl", ["s1", "s0"], ["c"], name="Concat_0",
                         domain=RTL, ChannelsPerStream=[4, 2], SIMD=1,
                         inputDataTypes=["UINT3", "UINT3"], **common),
        helper.make_node("CodebookLookup_rtl", ["c", "T1"], ["l1"], name="Lookup_0",
                         domain=RTL, NumChannels=6, PE=1, Levels=5, NumTables=6,
                         InputType="UINT3", OutputType="INT5", **common),
        helper.make_node("CodebookLookup_rtl", ["x2", "T2"], ["l2"], name="Lookup_1",
                         domain=RTL, NumChannels=6, PE=1, Levels=8, NumTables=1,
                         InputType="UINT3", OutputType="INT4", **common),
        helper.make_node("ElementwiseAdd_rtl", ["l1", "l2"], ["a"], name="Add_0", domain=RTL,
                         lhs_dtype="INT5", rhs_dtype="INT4", out_dtype="INT6",
                         lhs_shape=[1, 3, 6], rhs_shape=[1, 3, 6], out_shape=[1, 3, 6],
                         lhs_style="input", rhs_style="input", PE=1, backend="fpgadataflow"),
        helper.make_node("LabelSelect_rtl", ["a"], ["y"], name="LabelSelect_0", domain=RTL,
                         Labels=6, PE=1, K=1, inputDataType="INT6", outputDataType="UINT3",
                         **common),
    ]
    io = {"x": ([1, 3, 6], "UINT3"), "a": ([1, 3, 6], "INT6"), "y": ([1, 3, 1], "UINT3"),
          "s0": ([1, 3, 2], "UINT3")}
    vi = {k: helper.make_tensor_value_info(k, TensorProto.FLOAT, s) for k, (s, _) in io.items()}
    g = helper.make_graph(nodes, "dag", [vi["x"]], [vi["a"], vi["y"], vi["s0"]],
                          [numpy_helper.from_array(t1.astype(np.float32), "T1"),
                           numpy_helper.from_array(t2.astype(np.float32), "T2")])
    for k, (_, dt) in io.items():
        a = g.quantization_annotation.add()
        a.tensor_name = k
        e = a.quant_parameter_tensor_names.add()
        e.key, e.value = "finn_datatype", dt
    onnx.save(helper.make_model(g), str(path))
    return path


def test_dag_ops_with_several_vectors_equal_finn(tmp_path: Path) -> None:
    p = three_vector_dag(tmp_path / "m.onnx")
    m = IntegerModel.load(p)
    assert sorted((s["layer"], s["method"]) for s in m.describe()) == [
        ("Add_0", "add"), ("Concat_0", "concat"), ("LabelSelect_0", "argmax"),
        ("Lookup_0", "lut"), ("Lookup_1", "lut"), ("Split_0", "split")]
    every = np.array(np.meshgrid(*[np.arange(8)] * 6)).reshape(6, -1).T  # all 8**6
    c = {"x": np.tile(every, (1, 3))}
    c["x"][::7] = np.roll(c["x"][::7], 5, axis=1)                     # vectors differ
    want = finn_codes(p, c, ["a", "y", "s0"])
    assert want["a"].min() == -24 and want["a"].max() == 22   # both INT5/INT4 ends meet
    assert_same(m.run(c), want, "3 vectors vs FINN")
    assert_same(m.run_plain(c), want, "run_plain vs FINN")
    for n in (1, 5, 333):
        assert_same(m.run({"x": c["x"][:n]}), {k: v[:n] for k, v in want.items()}, f"n={n}")


def test_dag_ops_run_with_numpy1(tmp_path: Path) -> None:
    """The board's environment (numpy 1.x, no onnx): the DAG steps give FINN's codes."""
    from tests.test_host_numpy1 import board_venv

    p = three_vector_dag(tmp_path / "m.onnx", seed=2)
    rng = np.random.default_rng(2)
    c = {"x": rng.integers(0, 8, (3000, 18))}
    c["x"][:2] = [[0] * 18, [7] * 18]
    np.savez(tmp_path / "want.npz", x=c["x"], **finn_codes(p, c, ["a", "y", "s0"]))
    script = (
        "import sys, numpy as np\n"
        "from host.integer import IntegerModel\n"
        "d = sys.argv[1]\n"
        "m = IntegerModel.load(d + '/m.onnx')\n"
        "w = np.load(d + '/want.npz')\n"
        "got = m.run({'x': w['x']})\n"
        "assert all(np.array_equal(got[k], w[k]) for k in ('a', 'y', 's0'))\n"
        "assert np.array_equal(m.run_plain({'x': w['x']})['a'], w['a'])\n"
        f"bad = [k for k in {FORBIDDEN!r} if k in sys.modules]\n"
        "assert not bad, bad\n"
        "print('numpy', np.__version__, sorted(s['method'] for s in m.describe()))\n")
    r = subprocess.run([str(board_venv()), "-c", script, str(tmp_path)], cwd=REPO,
                       capture_output=True, text=True,
                       env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("numpy 1."), r.stdout
