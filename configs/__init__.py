"""Design and board configurations: a design and a board are names, not code.

``load_design("eqnet-fq-2x2-64qam")`` reads ``configs/designs/<name>.yaml``;
``load_board("pynq-z2")`` reads ``configs/boards/<name>.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

CONFIG_DIR = Path(__file__).resolve().parent
REPO_ROOT = CONFIG_DIR.parent


def _available(kind: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / kind).glob("*.yaml"))


def _load(kind: str, name: str) -> dict[str, Any]:
    path = CONFIG_DIR / kind / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"unknown {kind[:-1]} {name!r}; available: {', '.join(_available(kind))}"
        )
    cfg = yaml.safe_load(path.read_text())
    if cfg.get("name") != name:
        raise ValueError(f"{path}: 'name' is {cfg.get('name')!r}, expected {name!r}")
    return cfg


def load_design(name: str) -> dict[str, Any]:
    """The design configuration named ``name``."""
    return _load("designs", name)


def load_board(name: str) -> dict[str, Any]:
    """The board configuration named ``name``."""
    return _load("boards", name)


def designs() -> list[str]:
    """Names of all designs."""
    return _available("designs")


def boards() -> list[str]:
    """Names of all boards."""
    return _available("boards")
