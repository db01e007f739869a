"""The FINN builder run for one design on one board: config, steps, resume.

Everything here runs offline. The steps that need Vivado (stitched IP, synthesis,
bitfile) are FINN's own and are appended by ``make bitstream`` where Vivado is
installed (see hw.vivado).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata as md
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hw.journal import LOCK, BuildJournal, file_sha256

__all__ = ["OFFLINE_STEPS", "STAGE_CHECKPOINTS", "BuildLockedError", "build_inputs_key",
           "build_lock", "dataflow_config", "resolve_steps", "run_builder",
           "file_sha256", "run_finn_build"]

OFFLINE_STEPS: list[str] = [
    "step_check_qonnx",
    "step_qonnx_to_finn_half_even",
    "step_tidy_up",
    "step_streamline_half_even",
    "step_convert_to_hw",
    "step_convert_to_our_hw",
    "step_check_all_hw",
    "step_create_dataflow_partition",
    "step_prefer_rtl",
    "step_specialize_layers",
    "step_check_rtl_only",
    "step_target_fps_parallelization",
    "step_apply_folding_config",
    "step_minimize_bit_width",
    "step_unroll_layers",
    "step_check_resources",  # refuses a design over the board's ceiling, before any RTL
    "step_generate_estimate_reports",
    "step_hw_codegen",
]

# Source of our builder steps: part of the inputs key.
_HW = Path(__file__).resolve().parent
STEP_CODE = [_HW / "steps.py", _HW / "ties.py", _HW / "activation_thresholds.py",
             # what the steps, transformations and custom ops import (the latency backend's
             # generator, its IODMA padding rule, the threshold proofs, node predicates and
             # the contract's names): tests/test_build_reliability.py checks the closure
             _HW / "unrolled_rtl.py", _HW / "iodma.py", _HW / "threshold_proof.py",
             _HW / "verify.py", _HW.parent / "contract" / "iospec.py",
             # step_check_resources: the resource model and the stream glue it counts
             # (a changed model may refuse or admit a design: its check is redone)
             _HW / "resources.py", _HW / "rtlsim" / "stitch.py",
             # the floor's quantizer modules define what the learned-quantizer nodes mean
             _HW.parent / "zoo" / "quantizers.py", _HW.parent / "zoo" / "onnx_ops.py"]
# Our transformations, custom ops and their SystemVerilog templates: globbed at key time,
# so that a new or edited file changes the key (a build never resumes onto old output).
STEP_CODE_GLOBS = ["transforms/*.py", "custom_ops/*.py", "rtl/*.sv", "rtl/*.v"]


def step_code_files() -> list[Path]:
    """Every source file whose content a build's output depends on (ours, not FINN's)."""
    files = list(STEP_CODE)
    for pattern in STEP_CODE_GLOBS:
        files += sorted(_HW.glob(pattern))
    return files


class BuildLockedError(RuntimeError):
    """Another process is building into the same build folder."""


# Stage name in the manifest -> the intermediate model that is executed for it.
STAGE_CHECKPOINTS = {
    "finn_converted": "step_qonnx_to_finn_half_even",
    "streamlined": "step_streamline_half_even",
    "hw_folded": "step_unroll_layers",  # the graph that becomes RTL (unrolled or not)
}


# Fault injection for the resume tests: "<step>:<SIGNAL>" sends SIGNAL to this process
# when <step> starts (tests/test_build_reliability.py kills builds at every step this way).
FAULT_ENV = "HW_BUILD_FAULT"


def inject_fault(step: str) -> None:
    spec = os.environ.get(FAULT_ENV, "")
    if spec and spec.split(":")[0] == step:
        os.kill(os.getpid(), getattr(signal, spec.split(":")[1]))


def resolve_steps(names: list[str], errors: list[BaseException],
                   journal: BuildJournal | None = None,
                   hw_cfg: dict[str, Any] | None = None,
                   context: dict[str, Any] | None = None) -> list[Any]:
    """Step callables (ours from hw.steps, FINN's from its registry), each wrapped so that
    an exception is kept for the caller (FINN's builder logs it and only returns -1) and,
    with a journal, so that every earlier step is journaled once FINN has saved it. Our
    steps marked ``uses_design_hw`` also get the design's ``hw`` section (FINN's
    DataflowBuildConfig has no place for our keys, e.g. ``impl``); those marked
    ``uses_build_context`` get ``context`` ({"design": ..., "board": ...}: the dicts the
    inputs key hashes)."""
    from finn.builder.build_dataflow_steps import build_dataflow_step_lookup

    import hw.steps as ours

    def wrap(step: Callable, name: str) -> Callable:
        @functools.wraps(step)
        def run(model: Any, cfg: Any) -> Any:
            try:
                if journal is not None:
                    for before in names[:names.index(name)]:
                        journal.finished(before)
                inject_fault(name)
                if getattr(step, "uses_design_hw", False):
                    return step(model, cfg, hw_cfg or {})
                if getattr(step, "uses_build_context", False):
                    return step(model, cfg, context or {})
                return step(model, cfg)
            except BaseException as e:
                errors.append(e)
                raise

        return run

    return [wrap(getattr(ours, n, None) or build_dataflow_step_lookup[n], n) for n in names]


def build_inputs_key(model_path: Path, design: dict[str, Any], board: dict[str, Any],
                     folding_file: Path | None) -> str:
    """Hash of everything a build depends on; a resumed build must have the same key."""
    h = hashlib.sha256()
    h.update(file_sha256(model_path).encode())
    h.update(json.dumps([design.get("hw"), board], sort_keys=True).encode())
    if folding_file is not None:
        h.update(file_sha256(folding_file).encode())
    h.update(json.dumps(OFFLINE_STEPS).encode())
    # Our steps' code and FINN's version: a changed step must not resume onto old output.
    for mod in step_code_files():
        h.update(file_sha256(Path(mod)).encode())
    h.update(md.version("finn-plus").encode())
    return h.hexdigest()


def run_finn_build(model_path: Path, build_dir: Path, design: dict[str, Any],
                   board: dict[str, Any], steps: list[str] | None = None,
                   folding_file: Path | None = None, resume: bool = True,
                   lock_timeout: float = -1) -> dict[str, Any]:
    """Run FINN's builder (offline steps by default), resuming after the last step the
    journal proves finished (hw.journal); one build of a folder at a time (a file lock).
    ``$RESOURCE_CHECK`` (``make hw RESOURCE_CHECK=warn``) sets the design's
    ``hw.resource_check`` for a build that runs step_check_resources, inside the key."""
    from hw.resources import with_resource_check_env

    steps = steps or OFFLINE_STEPS
    if "step_check_resources" in steps:
        design = with_resource_check_env(design)
    build_dir = build_dir.resolve()
    build_dir.mkdir(parents=True, exist_ok=True)

    key = build_inputs_key(model_path, design, board, folding_file)
    with build_lock(build_dir, lock_timeout):
        journal = BuildJournal(build_dir, key, steps)
        start = journal.open(resume)
        if start != "done":
            _run_builder(model_path, build_dir, design, board, steps, folding_file, start,
                         journal)
        final = journal.last_record
    return {"resumed_from": start, "build_dir": str(build_dir), "key": key,
            "journal": final}


SHELLS = {"vivado_zynq": "VIVADO_ZYNQ"}  # board YAML ``shell`` -> FINN's ShellFlowType


def dataflow_config(build_dir: Path, design: dict[str, Any], board: dict[str, Any],
                    steps: list[Any], start: str | None = None,
                    folding_file: Path | None = None, outputs: tuple[str, ...] = (
                        "ESTIMATE_REPORTS",)) -> Any:
    """FINN's DataflowBuildConfig for a design on a board: the one place it is built
    (the offline flow here, FINN's Vivado steps in hw.vivado). The board's ``shell``
    selects FINN's shell flow."""
    from finn.builder.build_dataflow_config import (
        DataflowBuildConfig,
        DataflowOutputType,
        ShellFlowType,
    )

    hw_cfg = design.get("hw", {})
    return DataflowBuildConfig(
        output_dir=str(build_dir),
        synth_clk_period_ns=1000.0 / board["clock_mhz"],
        fpga_part=board["part"],
        board=board["finn_board"],
        shell_flow_type=ShellFlowType[SHELLS[board.get("shell", "vivado_zynq")]],
        steps=steps,
        start_step=start,
        target_fps=None if folding_file else hw_cfg.get("target_fps"),  # never "max" here
        folding_config_file=str(folding_file) if folding_file else None,
        standalone_thresholds=True,
        save_intermediate_models=True,
        generate_outputs=[DataflowOutputType[o] for o in outputs],
    )


def run_builder(model_path: Path, cfg: Any, errors: list[BaseException]) -> None:
    """FINN's build_dataflow_cfg, with the working folder, stdout and stderr given back
    (the builder redirects them into its log for good) and its error re-raised."""
    from finn.builder.build_dataflow import build_dataflow_cfg

    cwd, stdout, stderr = os.getcwd(), sys.stdout, sys.stderr
    try:
        rc = build_dataflow_cfg(str(model_path), cfg)
    finally:
        os.chdir(cwd)
        sys.stdout, sys.stderr = stdout, stderr
    if rc != 0:
        if errors:
            raise errors[-1]
        raise RuntimeError(f"FINN build failed (exit {rc}); see "
                           f"{Path(cfg.output_dir) / 'build_dataflow.log'}")


def _run_builder(model_path: Path, build_dir: Path, design: dict[str, Any],
                 board: dict[str, Any], steps: list[str], folding_file: Path | None,
                 start: str | None, journal: BuildJournal) -> None:
    errors: list[BaseException] = []
    cfg = dataflow_config(build_dir, design, board,
                          resolve_steps(steps, errors, journal, design.get("hw", {}),
                                        {"design": design, "board": board}),
                          start, folding_file)
    run_builder(model_path, cfg, errors)
    journal.finished(steps[-1])


@contextmanager
def build_lock(build_dir: Path, timeout: float = -1, name: str = LOCK) -> Iterator[None]:
    """Serialize builds of one folder: wait for the lock file ``build_dir/name``
    (``timeout`` < 0: for ever), or raise :class:`BuildLockedError` naming it after
    ``timeout`` seconds (0: at once)."""
    from filelock import FileLock, Timeout

    path = build_dir / name
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if timeout == 0:
            raise BuildLockedError(f"another build holds the lock {path}") from None
        print(f"waiting for another build (lock {path})", file=sys.stderr)
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise BuildLockedError(f"another build held the lock {path} for more than "
                                   f"{timeout} s") from None
    try:
        yield
    finally:
        lock.release()
