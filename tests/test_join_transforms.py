"""Our join/fork, branch-merge and argmax transformations (hw.transforms): each exact on
random and extreme integer inputs (QONNX execution before vs after, ``==``), the merge
decision by weight count, the FINN 1.6.1 bugs they route around (each reproduced), and the
synthetic topologies through the FINN flow up to the HW layers with 0 mismatches.

The FINN-bug reproductions are meant to fail once FINN fixes the bug (then drop our
guard). Commands, from the repo root::

    PYTHONPATH=. .venv/bin/python -m pytest tests/test_join_transforms.py -k finn_bug
    PYTHONPATH=. .venv/bin/python -m pytest tests/test_join_transforms.py -m slow
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import qonnx_make_model

import hw  # noqa: F401  (offline FINN bootstrap before any finn import)
from hw.errors import UnsupportedModelError
from hw.transforms.argmax import AbsorbMonotonicIntoTopK, ArgMaxToTopK
from hw.transforms.branches import (
    BRANCH_MERGE,
    MergeParallelMatMuls,
    RecordForkedBranches,
    branch_decisions,
    merge_branches,
)
from hw.transforms.joins import (
    MoveAffinePastConcat,
    MoveLinearPastEltwiseAddGuarded,
    MoveLinearPastForkGuarded,
    streamline_joins,
)

N = 4096
MT_DOMAIN = "qonnx.custom_op.general"


def _graph(nodes: list, inputs: dict[str, tuple[list[int], str]],
           outputs: dict[str, list[int]], inits: dict[str, np.ndarray]) -> ModelWrapper:
    """A small ONNX model: inputs {name: (shape, FINN datatype)}, float initializers."""
    g = helper.make_graph(
        nodes, "t",
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, s) for k, (s, _) in inputs.items()],
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, s) for k, s in outputs.items()])
    m = ModelWrapper(qonnx_make_model(g, opset_imports=[helper.make_opsetid("", 20)]))
    for k, v in inits.items():
        m.set_initializer(k, np.asarray(v, np.float32))
    for k, (_, dt) in inputs.items():
        m.set_tensor_datatype(k, DataType[dt])
    m = m.transform(InferShapes())
    return m.transform(InferDataTypes())


def _codes(rng: np.random.Generator, dt: str, shape: tuple[int, ...]) -> np.ndarray:
    """Random codes of ``dt`` with all-min, all-max and zero rows first."""
    d = DataType[dt]
    x = rng.integers(int(d.min()), int(d.max()) + 1, size=shape).astype(np.float32)
    x[0], x[1], x[2] = d.min(), d.max(), 0
    return x


def _run(model: ModelWrapper, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Graph outputs by position ("out0", ...); ``feed`` in graph input order (FINN's
    passes rename graph tensors: global_in, global_out, ...)."""
    m = ModelWrapper(model.model.__deepcopy__())
    feed = dict(zip([i.name for i in m.graph.input], feed.values(), strict=True))
    n = len(next(iter(feed.values())))
    for t in list(m.graph.input) + list(m.graph.output):
        m.set_tensor_shape(t.name, [n] + m.get_tensor_shape(t.name)[1:])
    while len(m.graph.value_info):
        m.graph.value_info.pop()
    m = m.transform(InferShapes())
    out = execute_onnx(m, feed)
    return {f"out{i}": out[o.name] for i, o in enumerate(m.graph.output)}


def _assert_same(before: ModelWrapper, after: ModelWrapper,
                 feed: dict[str, np.ndarray]) -> None:
    a, b = _run(before, feed), _run(after, feed)
    for k in a:
        assert a[k].shape == b[k].shape, k
        assert np.array_equal(a[k], b[k]), (k, int((a[k] != b[k]).sum()))


def _ops(model: ModelWrapper) -> list[str]:
    return [n.op_type for n in model.graph.node]


# ---------------------------------------------------------------- concat with scales

def concat_branches_model(scales: tuple[Any, Any] = (2.0**-8, 2.0**-5),
                          with_threshold: bool = True) -> ModelWrapper:
    """a (N, 3) INT12 * s_a + b_a (per channel) ++ b (N, 2) INT10 * s_b (+ nothing) ++
    c (N, 2) INT8 (no scale) -> Concat (N, 7) [-> MultiThreshold(7 x 15) -> (N, 7)]."""
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("Mul", ["a", "sa"], ["a1"]),
             helper.make_node("Add", ["a1", "ba"], ["a2"]),
             helper.make_node("Mul", ["b", "sb"], ["b1"]),
             helper.make_node("Concat", ["a2", "b1", "c"], ["cat"], axis=-1)]
    inits = {"sa": np.asarray(scales[0]), "ba": np.asarray([0.25, -0.5, 0.125]),
             "sb": np.asarray(scales[1])}
    out = "cat"
    if with_threshold:
        t = np.sort(rng.integers(-40, 40, size=(7, 15)), axis=1) / 4.0
        inits["thr"] = t
        nodes.append(helper.make_node("MultiThreshold", ["cat", "thr"], ["y"],
                                      domain=MT_DOMAIN, out_dtype="UINT4"))
        out = "y"
    return _graph(nodes, {"a": ([1, 3], "INT12"), "b": ([1, 2], "INT10"),
                          "c": ([1, 2], "INT8")}, {out: [1, 7]}, inits)


def _concat_feed(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"a": _codes(rng, "INT12", (N, 3)), "b": _codes(rng, "INT10", (N, 2)),
            "c": _codes(rng, "INT8", (N, 2))}


@pytest.mark.parametrize("scales", [(2.0**-8, 2.0**-5), (2.0**-6, 2.0**-6),
                                    ([2.0**-8, 2.0**-7, 2.0**-6], 2.0**-5)])
def test_affine_past_concat_exact(scales: tuple[Any, Any]) -> None:
    before = concat_branches_model(scales, with_threshold=False)
    after = before.transform(MoveAffinePastConcat())
    assert _ops(after)[:1] == ["Concat"] and set(_ops(after)) == {"Concat", "Mul", "Add"}
    cat = after.get_nodes_by_op_type("Concat")[0]
    assert list(cat.input) == ["a", "b", "c"]  # the integer tensors, in order
    _assert_same(before, after, _concat_feed(np.random.default_rng(0)))


def test_affine_past_concat_streamlines_into_threshold() -> None:
    """Scales and biases past the Concat, then FINN absorbs the per-channel Mul and Add
    into the MultiThreshold: the threshold reads the integer concat."""
    before = concat_branches_model()
    after = streamline_joins(before)
    assert _ops(after) == ["Concat", "MultiThreshold"], _ops(after)
    mt = after.get_nodes_by_op_type("MultiThreshold")[0]
    assert after.get_tensor_datatype(mt.input[0]).is_integer()
    _assert_same(before, after, _concat_feed(np.random.default_rng(1)))


def test_affine_past_concat_refuses_negative_scale_by_name() -> None:
    model = concat_branches_model((-(2.0**-8), 2.0**-5))
    with pytest.raises(UnsupportedModelError, match=r"Concat.*not positive"):
        model.transform(MoveAffinePastConcat())


# ---------------------------------------------------------------- residual add, forks

def residual_model() -> ModelWrapper:
    """x (N, 6) INT8 * 2^-4 -> {MatMul W (6x6) -> * 2^-4, skip} -> Add -> (N, 6): the
    residual whose skip input (x * s) also feeds the branch."""
    rng = np.random.default_rng(4)
    nodes = [helper.make_node("Mul", ["x", "s0"], ["xs"]),
             helper.make_node("MatMul", ["xs", "w"], ["h"]),
             helper.make_node("Mul", ["h", "s1"], ["hs"]),
             helper.make_node("Mul", ["xs", "s2"], ["ks"]),
             helper.make_node("Add", ["ks", "hs"], ["y"])]
    m = _graph(nodes, {"x": ([1, 6], "INT8")}, {"y": [1, 6]},
               {"s0": np.asarray(2.0**-4), "w": rng.integers(-8, 8, (6, 6)),
                "s1": np.asarray(2.0**-3), "s2": np.asarray(2.0**-3)})
    m.set_tensor_datatype("w", DataType["INT4"])
    return m.transform(InferDataTypes())


def test_residual_add_streamlines_exact_without_cycle() -> None:
    before = residual_model()
    after = before.transform(MoveLinearPastForkGuarded())
    after = after.transform(MoveLinearPastEltwiseAddGuarded())
    after = streamline_joins(after)
    add = after.get_nodes_by_op_type("Add")[0]
    assert all(after.get_tensor_datatype(t).is_integer() for t in add.input), _ops(after)
    assert _ops(after)[-1] == "Mul"  # one scale left, after the join
    _assert_same(before, after, {"x": _codes(np.random.default_rng(2), "INT8", (N, 6))})


def test_guarded_eltwise_add_skips_shared_producer() -> None:
    """Without the fork split first, our guarded move leaves the pattern alone."""
    m = ModelWrapper(residual_model().model.__deepcopy__())
    # Make the skip read the same Mul as the branch: xs -> {MatMul, Add}.
    add = m.get_nodes_by_op_type("Add")[0]
    add.input[0] = "xs"
    m = m.transform(InferShapes())
    after, changed = MoveLinearPastEltwiseAddGuarded().apply(m)
    assert not changed


# ---------------------------------------------------------------- FINN 1.6.1 bugs

def test_finn_bug_move_linear_past_eltwise_add_builds_cycle() -> None:
    """finn-plus 1.6.1: MoveLinearPastEltwiseAdd on x*c -> {MatMul -> *c, Add} rewires the
    Add's output onto a tensor the MatMul still reads: a cycle."""
    from finn.transformation.streamline.reorder import MoveLinearPastEltwiseAdd

    nodes = [helper.make_node("Mul", ["x", "s"], ["xs"]),
             helper.make_node("MatMul", ["xs", "w"], ["h"]),
             helper.make_node("Mul", ["h", "s2"], ["hs"]),
             helper.make_node("Add", ["xs", "hs"], ["y"])]
    m = _graph(nodes, {"x": ([1, 4], "INT8")}, {"y": [1, 4]},
               {"s": np.asarray(0.0625), "s2": np.asarray(0.0625),
                "w": np.eye(4)})
    with pytest.raises(Exception, match="(?i)circular|cycle"):
        m.transform(MoveLinearPastEltwiseAdd())


def test_finn_bug_move_add_past_join_concat_index_error() -> None:
    """finn-plus 1.6.1: MoveAddPastJoinConcat with 1-D per-channel biases that differ
    between branches (Brevitas' bias shape) indexes param.shape[1]: IndexError."""
    from finn.transformation.streamline.reorder import MoveAddPastJoinConcat

    nodes = [helper.make_node("Add", ["a", "ba"], ["a1"]),
             helper.make_node("Add", ["b", "bb"], ["b1"]),
             helper.make_node("Concat", ["a1", "b1"], ["y"], axis=1)]
    m = _graph(nodes, {"a": ([1, 2], "INT8"), "b": ([1, 2], "INT8")}, {"y": [1, 4]},
               {"ba": np.asarray([0.5, 1.0]), "bb": np.asarray([0.25, -1.0])})
    with pytest.raises(IndexError):
        m.transform(MoveAddPastJoinConcat())
    # Ours moves them (exact).
    after = m.transform(MoveAffinePastConcat())
    assert _ops(after) == ["Concat", "Add"]
    rng = np.random.default_rng(5)
    _assert_same(m, after, {"a": _codes(rng, "INT8", (N, 2)), "b": _codes(rng, "INT8", (N, 2))})


def test_finn_bug_move_op_past_fork_drops_dynamic_input() -> None:
    """finn-plus 1.6.1: MoveLinearPastFork copies an Add of two dynamic tensors whose
    output forks, with its second input dropped (a one-input Add)."""
    from finn.transformation.streamline.reorder import MoveLinearPastFork

    nodes = [helper.make_node("Add", ["a", "b"], ["s"]),
             helper.make_node("Relu", ["s"], ["y"]),
             helper.make_node("Neg", ["s"], ["z"])]
    m = _graph(nodes, {"a": ([1, 2], "INT8"), "b": ([1, 2], "INT8")},
               {"y": [1, 2], "z": [1, 2]}, {})
    after = m.transform(MoveLinearPastFork())
    assert sorted(len(n.input) for n in after.get_nodes_by_op_type("Add")) == [1, 2]
    ours, changed = MoveLinearPastForkGuarded().apply(m)
    assert not changed


def test_finn_bug_absorb_into_topk_orphans_other_reader() -> None:
    """finn-plus 1.6.1 (step_streamline): AbsorbScalarMulAddIntoTopK removes a scale Mul
    that another node also reads, leaving that reader without a producer."""
    from finn.transformation.streamline.absorb import AbsorbScalarMulAddIntoTopK

    nodes = [helper.make_node("Mul", ["x", "s"], ["xs"]),
             helper.make_node("TopK", ["xs", "k"], ["v", "i"], axis=-1),
             helper.make_node("Relu", ["xs"], ["z"])]
    m = _graph(nodes, {"x": ([1, 5], "INT8")}, {"i": [1, 1], "z": [1, 5]},
               {"s": np.asarray(0.5)})
    m.set_initializer("k", np.asarray([1], np.int64))
    after = m.transform(AbsorbScalarMulAddIntoTopK())
    # The Mul is gone; the Relu that read it is orphaned (and dropped by the cleanup):
    # graph output z has no producer any more.
    assert after.find_producer("z") is None or after.find_producer("xs") is None
    ours, changed = AbsorbMonotonicIntoTopK().apply(m)
    assert not changed


# ---------------------------------------------------------------- argmax

@pytest.mark.parametrize("keepdims", [1, 0])
def test_argmax_to_topk_exact_with_ties(keepdims: int) -> None:
    """ArgMax -> TopK(k=1) indices, ties to the lowest index (np.argmax)."""
    nodes = [helper.make_node("Mul", ["x", "s"], ["xs"]),
             helper.make_node("ArgMax", ["xs"], ["y"], axis=-1, keepdims=keepdims)]
    m = _graph(nodes, {"x": ([1, 7], "INT4")}, {"y": [1, 1] if keepdims else [1]},
               {"s": np.asarray(0.5)})
    m.graph.output[0].type.tensor_type.elem_type = TensorProto.INT64
    after = m.transform(ArgMaxToTopK()).transform(AbsorbMonotonicIntoTopK())
    assert _ops(after) == ["TopK"]
    assert after.get_tensor_datatype("y") == DataType["UINT3"]
    x = _codes(np.random.default_rng(6), "INT4", (N, 7))
    x[3:20] = 7  # all tied
    x[20:40, :3] = 7  # a tie on the first three
    want = np.argmax(x, axis=-1)
    assert (x == x.max(-1, keepdims=True)).sum(-1).max() == 7  # ties present
    got = _run(after, {"x": x})["out0"].reshape(-1)
    ref = _run(m, {"x": x})["out0"].reshape(-1)
    assert np.array_equal(got, want) and np.array_equal(ref, want)


def test_argmax_select_last_index_refused() -> None:
    nodes = [helper.make_node("ArgMax", ["x"], ["y"], axis=-1, select_last_index=1)]
    m = _graph(nodes, {"x": ([1, 4], "INT4")}, {"y": [1, 1]}, {})
    with pytest.raises(UnsupportedModelError, match="select_last_index"):
        m.transform(ArgMaxToTopK())


# ---------------------------------------------------------------- branch merge

def fork_model(branches: int = 12, k: int = 6, width: int = 48,
               hidden: bool = True) -> ModelWrapper:
    """EQ-Net g's shape on integers: x (N, k) INT4 -> per branch MatMul (k x width) ->
    MultiThreshold (UINT4) [-> MatMul (width x width) -> MultiThreshold] -> MatMul
    (width x 1) -> Concat (N, branches) -> MultiThreshold (INT6)."""
    rng = np.random.default_rng(7)
    nodes, inits, tails = [], {}, []
    for b in range(branches):
        cur, fan_in = "x", k
        layers = [width, width] if hidden else [width]
        for j, w in enumerate(layers):
            inits[f"w{b}_{j}"] = rng.integers(-8, 8, (fan_in, w))
            inits[f"t{b}_{j}"] = np.sort(rng.integers(-60, 60, (w, 15)), axis=1) + 0.5
            nodes += [helper.make_node("MatMul", [cur, f"w{b}_{j}"], [f"m{b}_{j}"],
                                       name=f"MatMul_b{b}_{j}"),
                      helper.make_node("MultiThreshold", [f"m{b}_{j}", f"t{b}_{j}"],
                                       [f"a{b}_{j}"], domain=MT_DOMAIN, out_dtype="UINT4",
                                       name=f"MultiThreshold_b{b}_{j}")]
            cur, fan_in = f"a{b}_{j}", w
        inits[f"wo{b}"] = rng.integers(-8, 8, (width, 1))
        nodes.append(helper.make_node("MatMul", [cur, f"wo{b}"], [f"o{b}"],
                                      name=f"MatMul_b{b}_out"))
        tails.append(f"o{b}")
    inits["to"] = np.sort(rng.integers(-300, 300, (1, 63)), axis=1) + 0.5
    nodes += [helper.make_node("Concat", tails, ["cat"], axis=-1, name="Concat_0"),
              helper.make_node("MultiThreshold", ["cat", "to"], ["y"], domain=MT_DOMAIN,
                               out_dtype="INT6", out_bias=-32.0, name="MultiThreshold_out")]
    m = _graph(nodes, {"x": ([1, k], "INT4")}, {"y": [1, branches]}, inits)
    for name in inits:
        if name.startswith("w"):
            m.set_tensor_datatype(name, DataType["INT4"])
    return m


def test_merge_g_first_layer_keep_hidden_forked(caplog: pytest.LogCaptureFixture) -> None:
    """EQ-Net g: 12 x (6 -> 48) on one input -> one 6 -> 576 MatMul (same 3,456 weights)
    and one 576-channel MultiThreshold; 12 x (48 -> 48) stay forked (27,648 weights
    against 331,776 block-diagonal); the 12 x (48 -> 1) outputs keep their concat."""
    before = fork_model()
    with caplog.at_level("INFO", logger="hw.transforms.branches"):
        after = merge_branches(before)
    merged = [n for n in after.graph.node if n.op_type == "MatMul" and
              after.get_initializer(n.input[1]).shape == (6, 576)]
    assert len(merged) == 1 and len(after.get_nodes_by_op_type("MatMul")) == 1 + 12 + 12
    assert after.get_initializer(after.find_consumer(merged[0].output[0]).input[1]).shape \
        == (576, 15)
    split = after.get_nodes_by_op_type("Split")
    assert len(split) == 1 and len(split[0].output) == 12
    rows = {r["kind"]: r for r in branch_decisions(after)}
    assert rows["shared_input"]["chosen"] == "merged"
    assert rows["shared_input"]["weights_merged"] == rows["shared_input"]["weights_forked"] \
        == 3456
    assert rows["split_siblings"]["chosen"] == "forked"
    assert (rows["split_siblings"]["weights_merged"],
            rows["split_siblings"]["weights_forked"]) == (576 * 576, 12 * 48 * 48)
    assert rows["concat_join"]["chosen"] == "concat kept"
    assert json.loads(after.get_metadata_prop(BRANCH_MERGE)) == branch_decisions(after)
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "merged" in logged and "forked" in logged and "concat kept" in logged
    _assert_same(before, after, {"x": _codes(np.random.default_rng(8), "INT4", (N, 6))})


def test_merge_keeps_fork_when_weight_types_differ() -> None:
    """Merging at the widest weight type would cost bits: the fork stays (logged)."""
    m = fork_model(branches=2, k=4, width=8, hidden=False)
    m.set_tensor_datatype("w1_0", DataType["INT8"])
    after = m.transform(MergeParallelMatMuls())
    assert len(after.get_nodes_by_op_type("MatMul")) == 4
    assert branch_decisions(after)[0]["chosen"] == "forked"


def test_concat_of_separate_inputs_kept() -> None:
    """EQ-Net f_E's y/H/sigma input layers (each input its own Dense, concatenated): one
    block-structured layer would cost more weights than the concat: "concat kept"."""
    rng = np.random.default_rng(9)
    nodes, inits, ins = [], {}, {}
    for i, k in enumerate((8, 16, 1)):
        ins[f"in{i}"] = ([1, k], "INT8")
        inits[f"w{i}"] = rng.integers(-8, 8, (k, 12))
        nodes.append(helper.make_node("MatMul", [f"in{i}", f"w{i}"], [f"h{i}"],
                                      name=f"MatMul_{i}"))
    nodes.append(helper.make_node("Concat", ["h0", "h1", "h2"], ["y"], axis=-1,
                                  name="Concat_0"))
    m = _graph(nodes, ins, {"y": [1, 36]}, inits)
    after = m.transform(RecordForkedBranches())
    (row,) = branch_decisions(after)
    assert row["chosen"] == "concat kept"
    assert (row["weights_merged"], row["weights_forked"]) == (25 * 36, 25 * 12)


def test_merged_split_back_into_concat_becomes_row_permutation() -> None:
    """Branches forked from one input and concatenated straight into a Dense (the
    ConcatModel / f_E input-stage shape on one input): no Split, no Concat left."""
    rng = np.random.default_rng(10)
    nodes, inits = [], {}
    for b in range(3):
        inits[f"w{b}"] = rng.integers(-8, 8, (5, 4))
        inits[f"t{b}"] = np.sort(rng.integers(-40, 40, (4, 7)), axis=1) + 0.5
        nodes += [helper.make_node("MatMul", ["x", f"w{b}"], [f"m{b}"], name=f"MatMul_{b}"),
                  helper.make_node("MultiThreshold", [f"m{b}", f"t{b}"], [f"a{b}"],
                                   domain=MT_DOMAIN, out_dtype="UINT3")]
    inits["wo"] = rng.integers(-8, 8, (12, 3))
    nodes += [helper.make_node("Concat", ["a2", "a0", "a1"], ["cat"], axis=-1),
              helper.make_node("MatMul", ["cat", "wo"], ["y"], name="MatMul_out")]
    m = _graph(nodes, {"x": ([1, 5], "INT8")}, {"y": [1, 3]}, inits)
    after = merge_branches(m)
    assert _ops(after) == ["MatMul", "MultiThreshold", "MatMul"], _ops(after)
    _assert_same(m, after, {"x": _codes(np.random.default_rng(11), "INT8", (N, 5))})
