"""Slow: the built packages of the default design (``make main`` and ``make hw``) on both boards.

CI builds them first (.ci/run), then runs ``make test-slow``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hw.flow import file_sha256
from hw.rtlsim.run import run_sim
from tests.test_rtlsim_cosim import assert_changed_weight_mismatches

DESIGN = "eqnet-fq-2x2-64qam"
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
    golden = np.load(pkg / "golden.npz")
    assert {"channel", "ties", "extremes"} <= set(np.unique(golden["set"]))
    assert (golden["ties"] > 0).sum() >= 1000
    for rel, digest in m["artifacts"].items():
        assert file_sha256(pkg / rel) == digest, rel
    files = (pkg / "rtl" / "filelist.f").read_text().split()
    assert files and all((pkg / "rtl" / f).is_file() for f in files)
    assert m["io"]["input"]["datatype"] == "INT8" and m["io"]["output"]["datatype"] == "INT6"
    assert m["estimates"]["resources"]["LUT"] > 0
    finn_total = json.loads((pkg / "reports" / "estimate_layer_resources.json").read_text())
    for key in ("LUT", "DSP", "BRAM_18K"):  # each layer counted once (not the total row too)
        assert m["estimates"]["resources"][key] == float(finn_total["total"][key]), key


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
    assert v["vectors"] == len(np.load(pkg / "golden.npz")["inputs"]) >= 10_000
    assert v["mismatches"] == 0 and v["details"]["missing"] == 0 and v["details"]["rc"] == 0
    assert v["details"]["full_rate_run"]["mismatches"] == 0
    assert m["performance"]["rtlsim"]["ii_cycles"] > 0
    assert_changed_weight_mismatches(pkg, tmp_path / "work", tmp_path / "neg")
