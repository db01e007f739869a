"""The Vivado leg of `make bitstream`, up to where Vivado is needed (it is not here):
FINN's step registry resolves every step we name, the one DataflowBuildConfig builder
reads the board's shell, and a build folder that holds another build is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import hw  # noqa: F401  (offline FINN bootstrap)
from configs import load_board
from hw.flow import OFFLINE_STEPS, dataflow_config, resolve_steps
from hw.vivado import VIVADO_STEPS, StaleBuildError, check_build_matches


@pytest.mark.parametrize("board", ["pynq-z2", "zcu104"])
def test_vivado_config_builds_from_the_board(board: str, tmp_path: Path) -> None:
    from finn.builder.build_dataflow_config import DataflowOutputType, ShellFlowType

    errors: list[BaseException] = []
    steps = resolve_steps(OFFLINE_STEPS + VIVADO_STEPS, errors)  # was a TypeError
    assert [s.__name__ for s in steps] == OFFLINE_STEPS + VIVADO_STEPS
    b = load_board(board)
    cfg = dataflow_config(tmp_path, {"hw": {}}, b, steps, start=VIVADO_STEPS[0],
                          outputs=("STITCHED_IP", "BITFILE"))
    assert cfg.shell_flow_type is ShellFlowType.VIVADO_ZYNQ  # the board's `shell` key
    assert cfg.fpga_part == b["part"] and cfg.board == b["finn_board"]
    assert DataflowOutputType.BITFILE in cfg.generate_outputs
    with pytest.raises(KeyError):  # a shell FINN's offline flow does not know is refused
        dataflow_config(tmp_path, {"hw": {}}, {**b, "shell": "vitis_alveo"}, steps)


def test_stale_build_folder_is_refused(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    build = tmp_path / "build"
    (build / "intermediate_models").mkdir(parents=True)
    (build / "journal.json").write_text(json.dumps({"key": "another-build"}))
    manifest = {"design": "d", "board": "b", "artifacts": {"model_finn.onnx": "0" * 64},
                "build": {"dir": str(build), "inputs_key": "this-package"}}
    with pytest.raises(StaleBuildError, match="make hw"):
        check_build_matches(pkg, manifest)
