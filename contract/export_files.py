"""What ``export`` leaves in ``runs/<design>/export/`` for ``hw``: file names, and the
reference check (``reference.json``) read with the hashes it vouches for checked.

Board-safe (standard library only); in the floor because export writes these files and
hw reads them, and stages do not import each other.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

QONNX, IOSPEC, GOLDEN, REFERENCE = "model_qonnx.onnx", "iospec.json", "golden.npz", "reference.json"
EXPORTED = (QONNX, IOSPEC, GOLDEN)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_reference(export_dir: Path) -> dict[str, Any]:
    """``reference.json`` (the Brevitas CPU check of the golden codes, the checkpoint's
    hash), refused unless every exported file it vouches for still has its hash."""
    path = Path(export_dir) / REFERENCE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `make export` (it writes the "
                                "Brevitas reference check)")
    ref = json.loads(path.read_text())
    for f, digest in ref["files"].items():
        if sha256_file(Path(export_dir) / f) != digest:
            raise ValueError(f"{Path(export_dir) / f} changed since export (its sha256 is not "
                             f"the one in {path}): run `make export` again")
    return ref
