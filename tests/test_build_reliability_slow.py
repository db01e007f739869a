"""Slow: the issue's reproductions on the default design's real run (``make main`` first).

* Stale resume: build the default design, export a second model (one weight tensor of
  checkpoint.pt x 1.7) into another run folder, start ``python -m hw`` on it, kill it
  when a step starts, run it again: the package must verify on the RTL (before the fix:
  exit 0, every stage PASS, yet 12,402 of 12,505 vectors failed on the RTL).
* A failing build never replaces a good package; a kill while packaging or swapping
  loses nothing.
* Two clean builds of the same inputs give identical manifests apart from timings.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from hw.build import build_package, recover_interrupted_swap
from hw.flow import FAULT_ENV, file_sha256
from tests.conftest import sigint_as_on_a_terminal

DESIGN, BOARD = "eqnet-fq-uniform-2x2-64qam", "pynq-z2"
ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "runs" / DESIGN
PKG = ROOT / "bitstreams" / f"{DESIGN}-{BOARD}"
pytestmark = pytest.mark.slow


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): file_sha256(p) for p in sorted(root.rglob("*"))
            if p.is_file()}


def hw_cli(run: Path, out: Path, fault: str | None = None, *extra: str
           ) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    if fault:
        env[FAULT_ENV] = fault
    return subprocess.run([sys.executable, "-m", "hw", "--design", DESIGN, "--board", BOARD,
                           "--run", str(run), "--out", str(out), *extra], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900,
                          preexec_fn=sigint_as_on_a_terminal)


@pytest.fixture(scope="module")
def alt_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """runs/<design> copied, one weight tensor x 1.7, exported again."""
    assert (RUN / "checkpoint.pt").is_file() and (PKG / "manifest.json").is_file(), \
        "run `make main` first"
    alt = tmp_path_factory.mktemp("alt") / "run"
    shutil.copytree(RUN, alt)
    ckpt = torch.load(alt / "checkpoint.pt", weights_only=False)
    name = next(k for k in ckpt["model"] if k.endswith("weight"))
    ckpt["model"][name] = ckpt["model"][name] * 1.7
    torch.save(ckpt, alt / "checkpoint.pt")
    r = subprocess.run([sys.executable, "-m", "export", "--design", DESIGN, "--run", str(alt)],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return alt


@pytest.fixture
def good_pkg(tmp_path: Path) -> Path:
    """A fresh copy of the built default package, alone in its folder."""
    return Path(shutil.copytree(PKG, tmp_path / "good" / "pkg"))


@pytest.mark.parametrize("fault", ["step_hw_codegen:SIGKILL", "step_streamline_half_even:SIGINT"])
def test_stale_resume_reproduction(alt_run: Path, tmp_path: Path, fault: str) -> None:
    # The default design's build sits in build/<design>-<board>, as after `make main`.
    first = hw_cli(RUN, tmp_path / "default")
    assert first.returncode == 0, first.stderr[-2000:]
    out = tmp_path / "alt"
    killed = hw_cli(alt_run, out, fault)
    assert killed.returncode != 0 and not out.exists()
    again = hw_cli(alt_run, out)
    assert again.returncode == 0, again.stderr[-3000:]
    v = subprocess.run([sys.executable, "-m", "host", "verify", str(out), "--backend", "rtlsim",
                        "--vectors", "0"], cwd=ROOT, capture_output=True, text=True,
                       timeout=900)
    assert v.returncode == 0 and " 0 failed" in v.stdout, v.stdout[-3000:]
    # The RTL really is the second model's: its weights differ from the default package's.
    dats = sorted((out / "rtl").rglob("MVAU_rtl_0/*.dat"))
    assert dats and any(d.read_bytes() != (PKG / "rtl" / d.relative_to(out / "rtl")).read_bytes()
                        for d in dats)


def test_failing_build_never_replaces_a_good_package(alt_run: Path, good_pkg: Path,
                                                     tmp_path: Path) -> None:
    bad = Path(shutil.copytree(alt_run, tmp_path / "bad_run"))
    g = dict(np.load(bad / "export" / "golden.npz"))
    g["out:latent"] = g["out:latent"].copy()
    g["out:latent"][3, 0] += 1  # one expected code off by one: the build must fail on it
    np.savez_compressed(bad / "export" / "golden.npz", **g)
    ref = json.loads((bad / "export" / "reference.json").read_text())
    ref["files"]["golden.npz"] = file_sha256(bad / "export" / "golden.npz")  # as if exported
    (bad / "export" / "reference.json").write_text(json.dumps(ref))
    before = tree_hashes(good_pkg)
    r = hw_cli(bad, good_pkg)
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]
    assert "FAILED verification" in r.stderr
    assert tree_hashes(good_pkg) == before
    failed = json.loads((good_pkg.parent / "pkg.failed" / "manifest.json").read_text())
    assert failed["verification"]["qonnx"]["mismatches"] == 1  # every stage sees it
    assert sorted(p.name for p in good_pkg.parent.iterdir()
                  if not p.name.endswith(".lock")) == ["pkg", "pkg.failed"]


@pytest.mark.parametrize("fault", ["package_write:SIGKILL", "swap_in:SIGKILL"])
def test_kill_while_packaging_loses_nothing(alt_run: Path, good_pkg: Path, fault: str) -> None:
    before = tree_hashes(good_pkg)
    r = hw_cli(alt_run, good_pkg, fault)
    assert r.returncode == -9
    recover_interrupted_swap(good_pkg)  # what the next build of this package does first
    assert tree_hashes(good_pkg) == before
    assert sorted(p.name for p in good_pkg.parent.iterdir()
                  if not p.name.endswith(".lock")) == ["pkg"]


def _without_timings(m: Any) -> Any:
    if isinstance(m, dict):
        return {k: _without_timings(v) for k, v in m.items()
                if k not in ("timing_s", "sim_s") and not k.endswith("_s")}
    return m


def test_two_clean_builds_give_identical_manifests(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    a = build_package(DESIGN, BOARD, RUN, tmp_path / "a", resume=False, cosim=True)
    b = build_package(DESIGN, BOARD, RUN, tmp_path / "b", resume=False, cosim=True)
    assert a["artifacts"] == b["artifacts"]
    assert _without_timings(a) == _without_timings(b)
    assert a["verification"]["rtlsim"]["mismatches"] == 0
