"""The last leg of ``make bitstream``: FINN's own Vivado steps, or a clear refusal.

``make bitstream`` runs ``make hw`` (FINN flow, verified package) and ``make sim``
(Verilator co-simulation, Yosys counts) first. Then, where ``XILINX_VIVADO`` is set,
this module continues FINN's builder in the same build folder with FINN's steps for
the PYNQ shell (stitched IP, synthesis, bitfile + .hwh, driver, deployment package)
and copies the .bit, .hwh and driver into ``<package>/bitstream/``; their hashes go
into the manifest. Without Vivado it exits non-zero, listing what was built and
verified and what is missing. It never reports success without a .bit on disk.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import hw  # noqa: F401  (offline FINN bootstrap)
from hw.finn_offline import vivado_available
from hw.package import write_manifest
from hw.rtlsim.run import resource_lines

VIVADO_VERSION = "2024.2"  # the Vivado/Vitis release finn-plus 1.6.1 is written against
VIVADO_STEPS = ["step_generate_hardware", "step_create_stitched_ip", "step_prepare_synthesis",
                "step_synthesize_bitfile", "step_make_driver", "step_deployment_package"]
EXIT_NO_VIVADO = 3


def status_report(pkg: Path) -> str:
    """What the package holds and proves so far (from its manifest)."""
    m = json.loads((pkg / "manifest.json").read_text())
    lines = [f"Built: {pkg} ({m['design']} on {m['board']}, {m['part']}): FINN model, RTL "
             f"({len(m['rtl']['files'])} files), estimates, golden vectors."]
    lines.append("Verified bit-exact (vectors / mismatches):")
    for stage, r in m.get("verification", {}).items():
        lines.append(f"  {stage:<16}{r['vectors']:>8} / {r['mismatches']}")
    p = m.get("performance", {}).get("rtlsim")
    if p:
        lines.append(f"RTL co-simulation: latency {p['latency_cycles']} cycles, II "
                     f"{p['ii_cycles']} cycles at {p['clock_mhz']} MHz")
    lines += resource_lines(m.get("resources"))
    return "\n".join(lines)


class StaleBuildError(RuntimeError):
    """The build folder no longer holds the build the package came from."""


def check_build_matches(pkg: Path, manifest: dict[str, Any]) -> Path:
    """FINN's Vivado steps continue from the hw build folder: refuse unless its journal
    holds the package's inputs key and its final checkpoint is the package's model."""
    from hw.build import write_portable_model
    from hw.flow import file_sha256
    from hw.journal import JOURNAL

    build = manifest.get("build", {})
    build_dir = Path(build.get("dir", f"build/{manifest['design']}-{manifest['board']}"))
    journal = build_dir / JOURNAL
    key = json.loads(journal.read_text()).get("key") if journal.is_file() else None
    final = build_dir / "intermediate_models" / "step_hw_codegen.onnx"
    same = key == build.get("inputs_key") and final.is_file()
    if same:
        tmp = pkg.parent / f".{pkg.name}.vivado-check.onnx"
        try:
            from contract.iospec import IOSpec

            write_portable_model(final, tmp, IOSpec.load(pkg / "iospec.json"))
            same = file_sha256(tmp) == manifest["artifacts"]["model_finn.onnx"]
        finally:
            tmp.unlink(missing_ok=True)
    if not same:
        raise StaleBuildError(
            f"{build_dir} does not hold the build of {pkg} (inputs key {key} vs the "
            f"package's {build.get('inputs_key')}, or another final model): run `make hw` "
            "for this design and board again, then `make bitstream`")
    return build_dir


def run_vivado_steps(pkg: Path) -> Path:
    """FINN's builder from step_generate_hardware on, in the package's hw build folder,
    with the board the package was built for; returns the .bit."""
    from hw.flow import OFFLINE_STEPS, dataflow_config, resolve_steps, run_builder

    manifest = json.loads((pkg / "manifest.json").read_text())
    build_dir = check_build_matches(pkg, manifest).resolve()
    board = manifest["board_config"]
    errors: list[BaseException] = []
    cfg = dataflow_config(
        build_dir, {"hw": {}}, board, resolve_steps(OFFLINE_STEPS + VIVADO_STEPS, errors),
        start=VIVADO_STEPS[0],
        outputs=("STITCHED_IP", "BITFILE", "PYNQ_DRIVER", "DEPLOYMENT_PACKAGE"))
    run_builder(pkg / "model_qonnx.onnx", cfg, errors)
    bits = sorted((build_dir / "bitfile").glob("*.bit"))
    if not bits:
        raise RuntimeError(f"FINN's Vivado steps made no .bit; see "
                           f"{build_dir / 'build_dataflow.log'}")
    out = pkg / "bitstream"
    out.mkdir(exist_ok=True)
    for f in list((build_dir / "bitfile").glob("*.bit")) + list(
            (build_dir / "bitfile").glob("*.hwh")):
        shutil.copyfile(f, out / f.name)
    if (build_dir / "driver").is_dir():
        shutil.copytree(build_dir / "driver", out / "driver", dirs_exist_ok=True)
    return out / bits[0].name


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--design", required=True)
    ap.add_argument("--board", required=True)
    ap.add_argument("--pkg", type=Path, required=True)
    a = ap.parse_args(argv)
    report = status_report(a.pkg)
    if not vivado_available():
        print(report)
        print(f"\nMISSING: Vivado {VIVADO_VERSION} (with Vitis HLS; XILINX_VIVADO is not set). "
              "FINN's stitched IP, synthesis, bitfile (.bit/.hwh) and PYNQ driver steps need it:\n"
              f"  {', '.join(VIVADO_STEPS)}\n"
              "No bitstream was produced. Install Vivado, source its settings64.sh, and re-run "
              f"`make bitstream DESIGN={a.design} BOARD={a.board}`.", file=sys.stderr)
        return EXIT_NO_VIVADO
    bit = run_vivado_steps(a.pkg)
    if not bit.is_file():  # never claim success without the file
        print(f"FAILED: no .bit in {bit.parent}", file=sys.stderr)
        return 1
    m: dict[str, Any] = json.loads((a.pkg / "manifest.json").read_text())
    m["vivado"] = {"bitfile": str(bit.relative_to(a.pkg)), "steps": VIVADO_STEPS,
                   "xilinx_vivado": os.environ.get("XILINX_VIVADO")}
    write_manifest(a.pkg, m)
    print(report)
    print(f"\nBitstream: {bit} (sha256 in {a.pkg / 'manifest.json'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
