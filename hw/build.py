"""Build one design for one board: FINN flow, stage-by-stage verification, package."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper

from configs import load_board, load_design
from export.golden import reference_codes
from hw.flow import STAGE_CHECKPOINTS, run_finn_build
from hw.package import (
    collect_rtl,
    finn_resource_total,
    folding_of,
    io_contract,
    tool_versions,
    write_manifest,
)
from hw.verify import compare, verify_stages
from train.checkpoint import load_trained


def estimates_summary(report_dir: Path, clock_mhz: float) -> dict[str, Any]:
    """FINN's analytic estimates: resource totals, cycles, fps and latency."""
    perf = json.loads((report_dir / "estimate_network_performance.json").read_text())
    total = finn_resource_total(
        json.loads((report_dir / "estimate_layer_resources.json").read_text()))
    # FINN's fps/latency figures assume its target clock; restate them at the board clock.
    cycles = perf["max_cycles"]
    return {
        "resources": total,
        "max_cycles_per_vector": cycles,
        "critical_path_cycles": perf["critical_path_cycles"],
        "fps_at_clock": clock_mhz * 1e6 / cycles,
        "latency_us_at_clock": perf["critical_path_cycles"] / clock_mhz,
        "clock_mhz": clock_mhz,
        "finn_report": perf,
    }


def compile_and_verify(qonnx_path: Path, build_dir: Path, design: dict[str, Any],
                       board: dict[str, Any], inputs: np.ndarray, expected: np.ndarray,
                       reference: np.ndarray | None = None, folding: Path | None = None,
                       resume: bool = True) -> dict[str, Any]:
    """Run the FINN flow on a QONNX model and verify every stage against ``expected`` codes.

    ``reference`` are fresh Brevitas CPU codes for ``inputs`` (the ``brevitas_cpu`` row).
    """
    t0 = time.time()
    info = run_finn_build(qonnx_path, build_dir, design, board, folding_file=folding,
                          resume=resume)
    flow_s = time.time() - t0
    inter = build_dir / "intermediate_models"
    final_path = inter / "step_hw_codegen.onnx"
    contract = io_contract(ModelWrapper(str(qonnx_path)), ModelWrapper(str(final_path)))
    t1 = time.time()
    table = {}
    if reference is not None:
        table["brevitas_cpu"] = compare("brevitas_cpu", reference, expected)
    stage_models = {"qonnx": qonnx_path}
    stage_models.update({s: inter / f"{step}.onnx" for s, step in STAGE_CHECKPOINTS.items()})
    table.update(verify_stages(stage_models, inputs, expected, contract["output"]["scale"]))
    return {"verification": table, "io": contract, "final_model": final_path,
            "timing_s": {"finn_flow": round(flow_s, 1),
                         "verification": round(time.time() - t1, 1),
                         "resumed_from": info["resumed_from"]}}


def build_package(design_name: str, board_name: str, run: Path, out: Path,
                  folding: Path | None = None, resume: bool = True) -> dict[str, Any]:
    """The whole ``make hw``: build, verify, package. Returns the manifest."""
    design, board = load_design(design_name), load_board(board_name)
    export_dir = run / "export"
    qonnx_path, golden_path = export_dir / "model_qonnx.onnx", export_dir / "golden.npz"
    for p in (qonnx_path, golden_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p} not found: run `make export DESIGN={design_name}` first")
    if folding is None and design.get("hw", {}).get("folding_config"):
        folding = Path(design["hw"]["folding_config"])
    build_dir = Path("build") / f"{design_name}-{board_name}"
    golden = np.load(golden_path)
    inputs, expected = golden["inputs"], golden["outputs"].astype(np.int64)
    reference = reference_codes(load_trained(design, run), inputs)
    result = compile_and_verify(qonnx_path, build_dir, design, board, inputs, expected,
                                reference, folding, resume)
    final_path = result["final_model"]
    finn_model = ModelWrapper(str(final_path))
    contract, table = result["io"], result["verification"]

    if out.exists():
        shutil.rmtree(out)
    (out / "reports").mkdir(parents=True)
    shutil.copyfile(qonnx_path, out / "model_qonnx.onnx")
    shutil.copyfile(final_path, out / "model_finn.onnx")
    shutil.copyfile(golden_path, out / "golden.npz")
    for f in (build_dir / "report").glob("*.json"):
        shutil.copyfile(f, out / "reports" / f.name)
    rtl_files = collect_rtl(finn_model, out / "rtl")
    manifest = {
        "design": design_name,
        "board": board_name,
        "part": board["part"],
        "clock_mhz": board["clock_mhz"],
        "tools": tool_versions(),
        "io": contract,
        "folding": folding_of(finn_model),
        "folding_source": (str(folding) if folding
                           else f"target_fps={design['hw']['target_fps']}"),
        "rtl": {"filelist": "rtl/filelist.f", "files": rtl_files,
                "top_layers": [n.name for n in finn_model.graph.node]},
        "estimates": estimates_summary(build_dir / "report", board["clock_mhz"]),
        "golden": {str(k): int((golden["set"] == k).sum()) for k in np.unique(golden["set"])},
        "verification": table,
        "timing_s": result["timing_s"],
        "vivado": "not run (make bitstream runs FINN's Vivado steps where Vivado is installed)",
    }
    write_manifest(out, manifest)
    return manifest
