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


def run_vivado_steps(design: str, board_name: str, pkg: Path) -> Path:
    """FINN's builder from step_generate_hardware on, in the hw build folder; returns the .bit."""
    from finn.builder.build_dataflow import build_dataflow_cfg
    from finn.builder.build_dataflow_config import (
        DataflowBuildConfig,
        DataflowOutputType,
        ShellFlowType,
    )

    from configs import load_board
    from hw.flow import OFFLINE_STEPS, _resolve_steps

    board = load_board(board_name)
    build_dir = (Path("build") / f"{design}-{board_name}").resolve()
    cfg = DataflowBuildConfig(
        output_dir=str(build_dir), synth_clk_period_ns=1000.0 / board["clock_mhz"],
        fpga_part=board["part"], board=board["finn_board"],
        shell_flow_type=ShellFlowType.VIVADO_ZYNQ,
        steps=_resolve_steps(OFFLINE_STEPS + VIVADO_STEPS), start_step=VIVADO_STEPS[0],
        standalone_thresholds=True, save_intermediate_models=True,
        generate_outputs=[DataflowOutputType.STITCHED_IP, DataflowOutputType.BITFILE,
                          DataflowOutputType.PYNQ_DRIVER,
                          DataflowOutputType.DEPLOYMENT_PACKAGE])
    cwd = os.getcwd()
    try:
        rc = build_dataflow_cfg(str(pkg / "model_qonnx.onnx"), cfg)
    finally:
        os.chdir(cwd)
    bits = sorted((build_dir / "bitfile").glob("*.bit"))
    if rc != 0 or not bits:
        raise RuntimeError(f"FINN's Vivado steps failed (exit {rc}, .bit files: {bits}); "
                           f"see {build_dir / 'build_dataflow.log'}")
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
    bit = run_vivado_steps(a.design, a.board, a.pkg)
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
