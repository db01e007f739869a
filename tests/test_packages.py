"""Slow: the built packages of the default design (``make main`` and ``make hw``) on both boards.

CI builds them first (.ci/run), then runs ``make test-slow``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hw.flow import file_sha256

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
