"""Slow: every design that arrives as a YAML alone goes through the stages by their CLIs
(train -> export -> hw) and passes ``host verify`` with the reference backend.

The synthetic designs prove the floor: two named inputs of different scales and two
named outputs (``synth-two-io``), and a codebook output (``synth-codebook``). No stage
has design-specific code: this test is parametrized over the designs and calls the same
commands ``make train export hw`` runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from contract.iospec import IOSpec

ROOT = Path(__file__).resolve().parent.parent
SYNTHETIC = ["synth-two-io", "synth-codebook"]
pytestmark = pytest.mark.slow


def run(*args: str) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=1200)
    assert r.returncode == 0, f"{args}: {r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.mark.parametrize("design", SYNTHETIC)
def test_design_through_every_stage(design: str) -> None:
    rundir, pkg = ROOT / "runs" / design, ROOT / "bitstreams" / f"{design}-pynq-z2"
    run("train", "--design", design, "--recipe", "short", "--out", str(rundir))
    run("export", "--design", design, "--run", str(rundir), "--vectors", "2000")
    run("hw", "--design", design, "--board", "pynq-z2", "--run", str(rundir), "--out", str(pkg))
    m = json.loads((pkg / "manifest.json").read_text())
    spec = IOSpec.load(pkg / "iospec.json")
    assert [t["name"] for t in m["io"]["inputs"]] == spec.input_names
    assert [t["name"] for t in m["io"]["outputs"]] == spec.output_names
    for stage, row in m["verification"].items():
        if stage != "exhaustive":
            assert row["mismatches"] == 0 and row["vectors"] >= 2000, (stage, row)
    for backend in (["--backend", "reference"],
                    ["--backend", "reference", "--reference", "qonnx"]):
        v = run("host", "verify", str(pkg), *backend, "--vectors", "2000")
        assert v.stdout.strip().splitlines()[-1].endswith(" passed, 0 failed"), v.stdout
    if design == "synth-two-io":
        assert len(spec.inputs) == 2 and spec.inputs[0].scale != spec.inputs[1].scale
        assert len(spec.outputs) == 2
    else:
        (z,) = spec.outputs
        assert z.codebook is not None and z.post == "codebook"
        assert list(z.codebook) == sorted(z.codebook)
