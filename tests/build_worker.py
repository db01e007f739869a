"""A FINN build in its own process, so that tests can kill it for real (SIGKILL, SIGINT).

``python -m tests.build_worker QONNX BUILD_DIR`` runs ``hw.flow.run_finn_build`` on the
small-MLP design of tests/conftest.py for pynq-z2. ``HW_BUILD_FAULT=<step>:<SIGNAL>``
(hw.flow.FAULT_ENV) makes the process signal itself when that step starts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hw  # noqa: F401  (offline FINN bootstrap)
from configs import load_board
from hw.flow import run_finn_build
from tests.conftest import FLOW_DESIGN


def main() -> None:
    qonnx, build_dir = Path(sys.argv[1]), Path(sys.argv[2])
    run_finn_build(qonnx, build_dir, FLOW_DESIGN, load_board("pynq-z2"))


if __name__ == "__main__":
    main()
