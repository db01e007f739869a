"""``make sim`` (hw.rtlsim.run.run_sim) on a package whose graph forks and joins: the
reconvergent FIFO is sized by simulation on the package's own RTL, the co-simulation is
built with the sized depth and is exact, and ``rtlsim.fifo_sizing`` lands in the manifest.

The package is written here from hw.rtlsim.testgraphs.fork_join (x (8 x INT8) ->
DuplicateStreams_rtl -> 3 x (MVAU, Thresholding) / direct -> StreamingConcat_rtl -> y):
its layers' RTL (FINN's PrepareIP, hw.package.collect_rtl), model_finn.onnx, golden.npz
(FINN's execution of the HW layers, batched by hw.verify.with_batch) and a sealed
manifest; no training, no export.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hw.rtlsim import harness, testgraphs

N = 1500


def fork_join_package(root: Path) -> Path:
    """A package folder (the files run_sim reads) for testgraphs.fork_join."""
    from qonnx.core.onnx_exec import execute_onnx

    from contract.iospec import Golden
    from hw.package import write_manifest
    from hw.verify import with_batch

    pkg = root / "forkjoin-pynq-z2"
    pkg.mkdir(parents=True)
    model = testgraphs.fork_join(channels=8, depth=3, seed=2)
    model = harness.generate_hdl(model, pkg / "rtl", testgraphs.PART, 100.0)
    model.save(str(pkg / "model_finn.onnx"))
    io = harness.io_of(model)
    x = harness.random_inputs_for(model, N, seed=7)
    y = execute_onnx(with_batch(model, N), {"x": x["x"].astype(np.float32)})["y"]
    g = Golden({"x": x["x"]}, {"y": y.astype(np.int64)}, np.zeros(N, "<U8"),
               np.zeros(N, np.int64))
    np.savez_compressed(pkg / "golden.npz", **g.to_npz())
    write_manifest(pkg, {"design": "forkjoin", "board": "pynq-z2", "part": testgraphs.PART,
                         "clock_mhz": 100.0, "io": io,
                         "rtl": {"top_layers": [n.name for n in model.graph.node]}})
    return pkg


@pytest.fixture(scope="module")
def simmed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from hw.rtlsim.run import run_sim

    root = tmp_path_factory.mktemp("dag_sim")
    pkg = fork_join_package(root)
    m = run_sim(pkg, root / "work", n_vectors=N, do_yosys=False)
    return {"pkg": pkg, "manifest": m, "work": root / "work"}


def test_reconvergent_fifo_sized_and_cosim_exact(simmed: dict[str, Any]) -> None:
    m = simmed["manifest"]
    fs = m["rtlsim"]["fifo_sizing"]
    fifos = {f["name"]: f for f in m["rtlsim"]["streams"]["fifos"]}
    print({k: (fs["peaks"][k], fs["default_depths"][k], fs["depths"][k]) for k in fs["depths"]})
    (short,) = [k for k, f in fifos.items() if f["from"].startswith("DuplicateStreams")
                and f["to"].startswith("StreamingConcat")]
    targets = set(fs["reconvergent_fifos"])
    assert short in targets and len(targets) == 8  # the short path and the long path's 7
    for k, f in fifos.items():  # the co-simulated top is the sized one
        want = harness.margin(fs["peaks"][k]) if k in targets else fs["default_depths"][k]
        assert f["depth"] == fs["depths"][k] == want, k
    assert fs["depths"][short] > 4 * fs["default_depths"][short]
    assert fs["margin"] == harness.SIZING_MARGIN and "Verilator simulation" in fs["method"]
    v = m["verification"]["rtlsim"]
    assert v["vectors"] == N and v["mismatches"] == 0 and v["details"]["rc"] == 0
    assert v["details"]["full_rate_run"]["mismatches"] == 0
    # the sized short path keeps the join at the long path's rate
    model = testgraphs.fork_join(channels=8, depth=3, seed=2)
    assert m["performance"]["rtlsim"]["ii_cycles"] == pytest.approx(
        harness.analytic_ii(model), rel=0.05)
    saved = json.loads((simmed["pkg"] / "manifest.json").read_text())
    assert saved["rtlsim"]["fifo_sizing"]["depths"] == fs["depths"]


def test_rerun_reuses_every_stage(simmed: dict[str, Any]) -> None:
    from hw.rtlsim.run import run_sim

    m = run_sim(simmed["pkg"], simmed["work"], n_vectors=N, do_yosys=False)
    assert set(m["rtlsim"]["stages"].values()) == {"reused"}, m["rtlsim"]["stages"]
    assert m["rtlsim"]["fifo_sizing"] == simmed["manifest"]["rtlsim"]["fifo_sizing"]
