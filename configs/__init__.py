"""Design and board configurations: a design and a board are names, not code.

``load_design("eqnet-fq-uniform-2x2-64qam")`` reads ``configs/designs/<name>.yaml``;
``load_board("pynq-z2")`` reads ``configs/boards/<name>.yaml``. Both validate the file
against the schema in :mod:`configs.schema` (unknown keys, missing keys, wrong types and
out-of-range values are refused with a :class:`ConfigError` naming the file, the key and
what is allowed) and return the YAML's own dict, unchanged: no defaults are injected.
``python -m configs check [NAME...]`` validates every (or the named) design and board.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from configs.schema import ConfigError, validate_board_file, validate_design_file, validate_file

CONFIG_DIR = Path(__file__).resolve().parent
REPO_ROOT = CONFIG_DIR.parent

__all__ = [
    "CONFIG_DIR",
    "REPO_ROOT",
    "ConfigError",
    "boards",
    "designs",
    "load_board",
    "load_design",
    "validate_board_file",
    "validate_design_file",
]


def _available(kind: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / kind).glob("*.yaml"))


def _load(kind: str, name: str) -> dict[str, Any]:
    path = CONFIG_DIR / kind / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"unknown {kind[:-1]} {name!r}; available: {', '.join(_available(kind))}"
        )
    return validate_file(path, kind[:-1], name=name)


def load_design(name: str) -> dict[str, Any]:
    """The design configuration named ``name`` (validated; ConfigError if invalid)."""
    return _load("designs", name)


def load_board(name: str) -> dict[str, Any]:
    """The board configuration named ``name`` (validated; ConfigError if invalid)."""
    return _load("boards", name)


def designs() -> list[str]:
    """Names of all designs."""
    return _available("designs")


def boards() -> list[str]:
    """Names of all boards."""
    return _available("boards")
