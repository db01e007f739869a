"""The FINN builder run for one design on one board: config, steps, resume.

Everything here runs offline. The steps that need Vivado (stitched IP, synthesis,
bitfile) are FINN's own and are appended by ``make bitstream`` where Vivado is
installed (see hw.vivado).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

OFFLINE_STEPS: list[str] = [
    "step_check_qonnx",
    "step_qonnx_to_finn_half_even",
    "step_tidy_up",
    "step_streamline_half_even",
    "step_convert_to_hw",
    "step_check_all_hw",
    "step_create_dataflow_partition",
    "step_prefer_rtl",
    "step_specialize_layers",
    "step_check_rtl_only",
    "step_target_fps_parallelization",
    "step_apply_folding_config",
    "step_minimize_bit_width",
    "step_generate_estimate_reports",
    "step_hw_codegen",
]

# Stage name in the manifest -> the intermediate model that is executed for it.
STAGE_CHECKPOINTS = {
    "finn_converted": "step_qonnx_to_finn_half_even",
    "streamlined": "step_streamline_half_even",
    "hw_folded": "step_minimize_bit_width",
}


def _resolve_steps(names: list[str], errors: list[BaseException]) -> list[Any]:
    """Step callables (ours from hw.steps, FINN's from its registry), each wrapped so that
    an exception is kept for the caller: FINN's builder logs it and only returns -1."""
    from finn.builder.build_dataflow_steps import build_dataflow_step_lookup

    import hw.steps as ours

    def keep_errors(step: Callable) -> Callable:
        @functools.wraps(step)
        def run(model: Any, cfg: Any) -> Any:
            try:
                return step(model, cfg)
            except BaseException as e:
                errors.append(e)
                raise

        return run

    return [keep_errors(getattr(ours, n, None) or build_dataflow_step_lookup[n]) for n in names]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_inputs_key(model_path: Path, design: dict[str, Any], board: dict[str, Any],
                     folding_file: Path | None) -> str:
    """Hash of everything a build depends on; a resumed build must have the same key."""
    h = hashlib.sha256()
    h.update(file_sha256(model_path).encode())
    h.update(json.dumps([design.get("hw"), board], sort_keys=True).encode())
    if folding_file is not None:
        h.update(file_sha256(folding_file).encode())
    h.update(json.dumps(OFFLINE_STEPS).encode())
    return h.hexdigest()


def resume_point(build_dir: Path, steps: list[str], key: str) -> str | None:
    """The first step not yet finished by an earlier build with the same inputs (None: start)."""
    stamp = build_dir / "inputs.sha256"
    if not stamp.is_file() or stamp.read_text().strip() != key:
        return None
    done = build_dir / "intermediate_models"
    last = None
    for i, s in enumerate(steps):
        if (done / f"{s}.onnx").is_file():
            last = i
        else:
            break
    if last is None:
        return None
    return steps[last + 1] if last + 1 < len(steps) else "done"


def run_finn_build(model_path: Path, build_dir: Path, design: dict[str, Any],
                   board: dict[str, Any], steps: list[str] | None = None,
                   folding_file: Path | None = None, resume: bool = True) -> dict[str, Any]:
    """Run FINN's builder (offline steps by default); resumes from the last finished step."""
    steps = steps or OFFLINE_STEPS
    build_dir = build_dir.resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    from finn.builder.build_dataflow import build_dataflow_cfg
    from finn.builder.build_dataflow_config import DataflowBuildConfig, DataflowOutputType

    key = build_inputs_key(model_path, design, board, folding_file)
    start = resume_point(build_dir, steps, key) if resume else None
    if start == "done":
        return {"resumed_from": "done", "build_dir": str(build_dir)}
    (build_dir / "inputs.sha256").write_text(key + "\n")
    hw_cfg = design.get("hw", {})
    errors: list[BaseException] = []
    cfg = DataflowBuildConfig(
        output_dir=str(build_dir),
        synth_clk_period_ns=1000.0 / board["clock_mhz"],
        fpga_part=board["part"],
        board=board["finn_board"],
        steps=_resolve_steps(steps, errors),
        start_step=start,
        target_fps=None if folding_file else hw_cfg.get("target_fps"),
        folding_config_file=str(folding_file) if folding_file else None,
        standalone_thresholds=True,
        save_intermediate_models=True,
        generate_outputs=[DataflowOutputType.ESTIMATE_REPORTS],
    )
    # The builder redirects stdout/stderr into its log for good; give them back after.
    cwd, stdout, stderr = os.getcwd(), sys.stdout, sys.stderr
    try:
        rc = build_dataflow_cfg(str(model_path), cfg)
    finally:
        os.chdir(cwd)
        sys.stdout, sys.stderr = stdout, stderr
    if rc != 0:
        log = build_dir / "build_dataflow.log"
        if errors:
            raise errors[-1]
        raise RuntimeError(f"FINN build failed (exit {rc}); see {log}")
    return {"resumed_from": start, "build_dir": str(build_dir)}
