"""Slow: the host runtime on the built default package (CI builds it with `make main`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PKG = REPO / "bitstreams" / "eqnet-fq-uniform-2x2-64qam-pynq-z2"


@pytest.mark.slow
def test_verify_acceptance_rtlsim_20000() -> None:
    assert (PKG / "manifest.json").is_file(), "build it: make main"
    r = subprocess.run([sys.executable, "-m", "host", "verify", str(PKG), "--backend", "rtlsim",
                        "--vectors", "20000"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().splitlines()[-1].endswith(" passed, 0 failed")


@pytest.mark.slow
def test_tampered_copy_of_real_package_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / PKG.name
    shutil.copytree(PKG, copy)
    dat = copy / "rtl" / "MVAU_rtl_0" / "memblock.dat"
    data = bytearray(dat.read_bytes())
    data[0] = ord("f") if data[0] != ord("f") else ord("e")
    dat.write_bytes(bytes(data))
    expected = json.loads((copy / "manifest.json").read_text())["artifacts"][
        "rtl/MVAU_rtl_0/memblock.dat"]
    r = subprocess.run([sys.executable, "-m", "host", "verify", str(copy), "--backend", "rtlsim",
                        "--vectors", "0"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode != 0
    assert "rtl/MVAU_rtl_0/memblock.dat: sha256 mismatch" in r.stderr and expected in r.stderr


@pytest.mark.slow
def test_bench_writes_json_and_png(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "host", "bench", str(PKG), "--out", str(tmp_path),
                        "--min-time", "0.05"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads((tmp_path / f"bench-{PKG.name}.json").read_text())
    assert (tmp_path / f"bench-{PKG.name}.png").stat().st_size > 10_000
    keys = {(row["backend"], row["batch"]) for row in res["rows"]}
    assert {(b, n) for b in ("torch-float", "brevitas", "fpga") for n in (1, 16, 256, 8192)} <= keys
    assert res["ratios"]["fpga_latency_over_best_cpu_batch1"] > 0
