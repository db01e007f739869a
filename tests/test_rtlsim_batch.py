"""Batched FINN execution of DAG HW graphs (hw.verify.with_batch, shared by the per-stage
verification and hw.rtlsim.harness.expected) and the RTL file list of MVAU-only graphs.

* fork/join (DuplicateStreams_rtl + StreamingConcat_rtl), a residual add
  (DuplicateStreams_rtl + ElementwiseAdd_rtl) and two disconnected chains: one batched
  execution equals an independent numpy interpreter of the same graph on every vector.
  The graph-wide shape inference with_batch used before leaves DuplicateStreams' second
  output unspecified ("Found unspecified tensor shapes") and trips ElementwiseAdd's
  batch-1 ``lhs_shape`` (FINNInternalError "Input shape mismatch").
* hw.package.collect_rtl ships finn-rtllib's axilite.sv with the memstream weight
  streamer, so a graph of MVAUs alone elaborates in Verilator and is exact.
* the residual add through Verilator under back-pressure: exact.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp

from hw.rtlsim import harness, testgraphs
from hw.verify import with_batch

N = 3000


def numpy_reference(model: ModelWrapper, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The graph's integer semantics in numpy, node by node (no FINN execution)."""
    env = {k: v.astype(np.int64) for k, v in feed.items()}
    for node in model.graph.node:
        op = node.op_type.removesuffix("_rtl")
        ins = [env.get(t) for t in node.input]
        if op == "MVAU":
            out = [ins[0] @ model.get_initializer(node.input[1]).astype(np.int64)]
        elif op == "Thresholding":
            t = model.get_initializer(node.input[1])
            act = int(getCustomOp(node).get_nodeattr("ActVal"))
            out = [(ins[0][:, :, None] >= t[None]).sum(-1) + act]
        elif op == "DuplicateStreams":
            out = [ins[0].copy() for _ in node.output]
        elif op == "StreamingConcat":
            out = [np.concatenate(ins, axis=-1)]
        elif op == "ElementwiseAdd":
            out = [ins[0] + ins[1]]
        else:
            raise NotImplementedError(op)
        env.update(zip(node.output, out, strict=True))
    return {o.name: env[o.name] for o in model.graph.output}


GRAPHS = {
    "fork_join": lambda: testgraphs.fork_join(channels=8, depth=2, seed=2),
    "residual": lambda: testgraphs.residual(channels=4, seed=1),
    "two_chains": lambda: testgraphs.two_chains(seed=3),
}


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_batched_execution_equals_numpy(name: str) -> None:
    model = GRAPHS[name]()
    x = harness.random_inputs_for(model, N, seed=5)
    feed = {t: x[t].astype(np.float32) for t in x}
    m = with_batch(model, N)
    got = execute_onnx(m, feed)
    want = numpy_reference(model, feed)
    for k, v in want.items():
        assert got[k].shape == v.shape == (N, model.get_tensor_shape(k)[1])
        assert np.array_equal(got[k], v), (name, k)
    assert all(m.get_tensor_shape(t)[0] == N for n in m.graph.node for t in n.output)
    for node in m.graph.node:
        if node.op_type == "ElementwiseAdd_rtl":
            inst = getCustomOp(node)
            for attr in ("lhs_shape", "rhs_shape", "out_shape"):
                assert list(inst.get_nodeattr(attr)) == [N, 4], attr
    again = with_batch(model, 7)  # another batch from the same batch-1 model
    small = execute_onnx(again, {t: v[:7] for t, v in feed.items()})
    assert all(np.array_equal(small[k], v[:7]) for k, v in want.items())


def test_batch_one_model_is_not_modified() -> None:
    model = testgraphs.residual(channels=4, seed=1)
    before = model.model.SerializeToString()
    with_batch(model, 16)
    assert model.model.SerializeToString() == before


def test_mvau_only_graph_ships_axilite_and_is_exact(tmp_path: Path) -> None:
    g = testgraphs.GraphBuilder(4)
    y = g.mvau(g.mvau(g.input("x", "INT4", 6), 8, simd=2, pe=2), 4, simd=4)
    model = g.model(["x"], ["y"], {y: "y"})
    assert [n.op_type for n in model.graph.node] == ["MVAU_rtl", "MVAU_rtl"]
    b = harness.build(model, tmp_path / "h")
    files = (b.rtl_dir / "filelist.f").read_text().split()
    assert "finn-rtllib/axi/hdl/axilite.sv" in files
    assert (b.rtl_dir / "finn-rtllib/axi/hdl/axilite.sv").is_file()
    x = harness.random_inputs(b, 500, seed=1)
    r = harness.simulate(b, x, seed=2, p_valid=0.7, p_ready=0.5)
    assert harness.compare(r.outputs, harness.expected(b, x))["mismatches"] == 0


def test_residual_add_through_verilator(tmp_path: Path) -> None:
    model = testgraphs.residual(channels=4, seed=1)
    x = harness.random_inputs_for(model, 2000, seed=9)
    res = harness.size_fifos(model, tmp_path / "size", x)
    b = res["built"]
    want = numpy_reference(model, {"x": x["x"]})
    assert np.array_equal(harness.expected(b, x)["y"], want["y"])
    r = harness.simulate(b, x, seed=3, p_valid=0.6, p_ready=0.5)
    got = harness.compare(r.outputs, want)
    assert r.rc == 0 and got["mismatches"] == 0 and got["vectors"] == 2000
