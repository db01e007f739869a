"""Slow: the built packages of the default design (``make main`` and ``make hw``) on both boards.

CI builds them first (.ci/run), then runs ``make test-slow``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from contract.iospec import Golden
from hw.flow import file_sha256
from hw.rtlsim.run import run_sim
from tests.test_rtlsim_cosim import assert_changed_weight_mismatches

DESIGN = "eqnet-fq-uniform-2x2-64qam"
STAGES = ["brevitas_cpu", "qonnx", "finn_converted", "streamlined", "hw_folded"]
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.parametrize("board", ["pynq-z2", "zcu104"])
def test_package_verified_on_every_stage(board: str) -> None:
    pkg = ROOT / "bitstreams" / f"{DESIGN}-{board}"
    assert (pkg / "manifest.json").is_file(), f"build it: make main; make hw BOARD={board}"
    m = json.loads((pkg / "manifest.json").read_text())
    assert m["design"] == DESIGN and m["board"] == board
    for stage in STAGES:
        row = m["verification"][stage]
        assert row["vectors"] >= 10_000 and row["mismatches"] == 0, (stage, row)
    g = Golden.load(pkg / "golden.npz")
    golden = {"inputs": g.single()[0], "outputs": g.single()[1], "set": g.sets, "ties": g.ties}
    assert {"channel", "ties", "extremes"} <= set(np.unique(golden["set"]))
    assert (golden["ties"] > 0).sum() >= 1000
    for rel, digest in m["artifacts"].items():
        assert file_sha256(pkg / rel) == digest, rel
    files = (pkg / "rtl" / "filelist.f").read_text().split()
    assert files and all((pkg / "rtl" / f).is_file() for f in files)
    io = m["io"]
    assert io["inputs"][0]["datatype"] == "INT8" and io["outputs"][0]["datatype"] == "INT6"
    assert [t["name"] for t in io["inputs"]] == ["soft_bits"]
    assert [t["name"] for t in io["outputs"]] == ["latent"]
    assert m["estimates"]["resources"]["LUT"] > 0
    finn_total = json.loads((pkg / "reports" / "estimate_layer_resources.json").read_text())
    for key in ("LUT", "DSP", "BRAM_18K"):  # each layer counted once (not the total row too)
        assert m["estimates"]["resources"][key] == float(finn_total["total"][key]), key
    # Every Thresholding layer proven over its whole integer input range, RTL memories too.
    proof = m["verification"]["exhaustive"]
    assert sorted(proof) == [f"Thresholding_rtl_{i}" for i in range(6)]
    for layer, r in proof.items():
        lo, hi = r["range"]
        assert r["exhaustive"] and r["mismatches"] == 0, (layer, r)
        assert r["points"] == (hi - lo + 1) * r["channels"], layer
        assert r["rtl_memory"]["files"] > 0 and r["rtl_memory"]["mismatches"] == 0, layer
        cov = m["coverage"]["layers"][layer]
        assert 0 <= cov["edges_hit"] <= cov["edges_touched"] <= cov["edges"], layer
    # What `make main` built also went through the RTL before it was installed.
    if board == "pynq-z2":
        assert m["verification"]["rtlsim"]["mismatches"] == 0
        assert m["verification"]["rtlsim"]["vectors"] == len(golden["inputs"])


@pytest.mark.slow
def test_exhaustive_proof_catches_what_golden_vectors_miss() -> None:
    """Negative control on the default package: one hidden threshold moved by one step at an
    edge no golden vector reaches is invisible to all 12,505 golden vectors, and the
    exhaustive proof catches it."""
    from qonnx.core.modelwrapper import ModelWrapper

    from hw.threshold_proof import prove_thresholds, shift_threshold, threshold_coverage
    from hw.verify import execute_codes

    pkg = ROOT / "bitstreams" / f"{DESIGN}-pynq-z2"
    finn = ModelWrapper(str(pkg / "model_finn.onnx"))
    qonnx = ModelWrapper(str(pkg / "model_qonnx.onnx"))
    gi, go = Golden.load(pkg / "golden.npz").single()
    golden = {"inputs": gi, "outputs": go}
    layer = "Thresholding_rtl_2"  # a hidden ReLU quantizer
    cov = threshold_coverage(finn, golden["inputs"])[layer]
    assert cov["untouched_edges"], "every edge reached: pick another layer"
    channel, index = cov["untouched_edges"][len(cov["untouched_edges"]) // 2]
    moved = shift_threshold(finn, layer, channel, index, +1)
    moved_path = pkg.parent / f".{pkg.name}.shifted.onnx"
    try:
        moved.save(str(moved_path))
        got = execute_codes(moved_path, golden["inputs"], 1.0, "shifted")
    finally:
        moved_path.unlink(missing_ok=True)
    assert np.array_equal(got, golden["outputs"]), "the golden vectors should miss this edge"
    assert prove_thresholds(qonnx, moved)[layer]["mismatches"] >= 1
    assert prove_thresholds(qonnx, finn)[layer]["mismatches"] == 0  # positive control


@pytest.mark.slow
def test_default_design_cosim_with_negative_control(tmp_path: Path) -> None:
    """CI's co-simulation of the default design: every golden vector (ties, extremes,
    channel LLRs) through the stitched RTL under back-pressure, exact; then one changed
    weight in a .dat file must show up as mismatches. (``make sim`` runs >= 100,000.)"""
    built = ROOT / "bitstreams" / f"{DESIGN}-pynq-z2"
    assert (built / "manifest.json").is_file(), "build it: make main"
    pkg = tmp_path / built.name  # a copy: the built package's manifest stays as it is
    shutil.copytree(built, pkg)
    m = run_sim(pkg, tmp_path / "work", n_vectors=0, do_yosys=False)
    v = m["verification"]["rtlsim"]
    assert v["vectors"] == len(Golden.load(pkg / "golden.npz")) >= 10_000
    assert v["mismatches"] == 0 and v["details"]["missing"] == 0 and v["details"]["rc"] == 0
    assert v["details"]["full_rate_run"]["mismatches"] == 0
    assert m["performance"]["rtlsim"]["ii_cycles"] > 0
    assert_changed_weight_mismatches(pkg, tmp_path / "work", tmp_path / "neg")
