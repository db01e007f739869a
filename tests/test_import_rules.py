"""Stages talk through files, not through each other's internals: a static scan (``ast``)
of every import in the project.

Layers (DESIGN.md, section 1):

* the floor: ``configs``, ``contract`` (numpy and the standard library only: it runs on
  the board), ``zoo`` (the model zoo) and ``phy`` import no stage;
* the stages ``train``, ``export``, ``hw``, ``host``, ``sweep`` import the floor, never
  each other, except the documented paths in :data:`ALLOWED`: the host's reference path
  (the Brevitas model, its float twin and QONNX execution, for ``host verify``/``bench``
  and the ``reference`` backend), the simulated board (the ``rtlsim`` backend drives the
  package's RTL through hw.rtlsim's stitcher and Verilator build), and the sweep's
  processing (``sweep/processing.py``: the trained f_Q and its float twin through
  ``export.reference``, the built package through the driver API ``host.driver`` /
  ``host.package``).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("train", "export", "hw", "host", "sweep")
FLOOR = ("configs", "contract", "zoo", "phy")
# (importing file, imported module prefix): the documented cross-stage paths.
ALLOWED = {
    ("host/backends/reference.py", "export.reference"),
    ("host/backends/reference.py", "hw"),  # QONNX execution: hw.verify.execute_codes
    ("host/verify.py", "export.reference"),
    ("host/bench.py", "export.reference"),
    ("host/bench.py", "hw.rtlsim"),  # cycle counts of the simulated board
    ("host/backends/rtlsim.py", "hw"),  # the simulated board: hw.rtlsim builds the RTL
    # Monte-Carlo sweeps: the float f_Q (and its twin) and the package in the loop.
    ("sweep/processing.py", "export.reference"),
    ("sweep/processing.py", "host.driver"),
    ("sweep/processing.py", "host.package"),
}
BOARD_SAFE = ("contract",)
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def imports(path: Path) -> list[tuple[str, int]]:
    """Every absolute module a file imports (top level or inside functions), with lines."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module, node.lineno))
    return out


def files_of(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def violations(package: str) -> list[str]:
    found = []
    for f in files_of(package):
        rel = f.relative_to(ROOT).as_posix()
        for mod, line in imports(f):
            top = mod.split(".")[0]
            if package in FLOOR and top in STAGES:
                found.append(f"{rel}:{line} imports {mod} (the floor imports no stage)")
            elif package in STAGES and top in STAGES and top != package and not any(
                    rel == a and (mod == p or mod.startswith(p + ".")) for a, p in ALLOWED):
                found.append(f"{rel}:{line} imports {mod} (stages talk through files)")
            if package in BOARD_SAFE and top not in STDLIB | {"numpy", *BOARD_SAFE}:
                found.append(f"{rel}:{line} imports {mod} (board-safe: stdlib and numpy)")
    return found


@pytest.mark.parametrize("package", STAGES + FLOOR)
def test_import_rule(package: str) -> None:
    assert files_of(package), f"no Python files under {package}/"
    bad = violations(package)
    assert not bad, "\n".join(bad)


def test_the_scan_catches_a_violation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Negative control: a hw module importing train, a floor module importing hw, and an
    import inside a function are all found."""
    for pkg, text in (("hw", "import os\nfrom train.tasks import TASKS\n"),
                      ("zoo", "def f():\n    import hw.build\n"),
                      ("contract", "import torch\n")):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "bad.py").write_text(text)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert violations("hw") == ["hw/bad.py:2 imports train.tasks (stages talk through files)"]
    assert violations("zoo") == ["zoo/bad.py:2 imports hw.build (the floor imports no stage)"]
    assert violations("contract") == [
        "contract/bad.py:1 imports torch (board-safe: stdlib and numpy)"]
