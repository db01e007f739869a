"""Open a package ``bitstreams/<design>-<board>/`` and check it against its manifest.

Board-side module: standard library only. Every artifact listed in ``manifest.json``
is hashed (sha256) before anything in the package is used; a missing file or a
different hash is refused with :class:`PackageIntegrityError`, naming the file and
both hashes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"


class PackageIntegrityError(RuntimeError):
    """An artifact is missing or its sha256 differs from the manifest's."""


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def check_artifacts(root: Path, artifacts: dict[str, str]) -> list[str]:
    """Hash every listed artifact; raise on the first missing or differing one.

    Returns the checked paths (relative to ``root``).
    """
    if not artifacts:
        raise PackageIntegrityError(f"{root / MANIFEST}: no 'artifacts' hashes to check against")
    problems = []
    for rel, expected in sorted(artifacts.items()):
        path = root / rel
        if not path.is_file():
            problems.append(f"  {rel}: missing (expected sha256 {expected})")
            continue
        actual = sha256_of(path)
        if actual != expected:
            problems.append(f"  {rel}: sha256 mismatch\n    expected {expected}\n"
                            f"    actual   {actual}")
    if problems:
        raise PackageIntegrityError(
            f"package {root} refused: {len(problems)} artifact(s) differ from "
            f"{MANIFEST}:\n" + "\n".join(problems))
    return sorted(artifacts)


@dataclass
class Package:
    """A checked package: its folder, manifest and the artifacts that were verified."""

    root: Path
    manifest: dict[str, Any]
    checked: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def io(self) -> dict[str, Any]:
        return self.manifest["io"]

    @property
    def clock_mhz(self) -> float:
        return float(self.manifest["clock_mhz"])

    def path(self, rel: str) -> Path:
        """A package file, only if the manifest lists (and so hashed) it."""
        if rel not in self.manifest.get("artifacts", {}):
            raise PackageIntegrityError(f"{self.root}: {rel} is not a hashed artifact")
        return self.root / rel

    def bitfile(self) -> Path | None:
        """The hashed ``.bit`` of the package (``make bitstream`` with Vivado), if any."""
        bits = sorted(r for r in self.manifest.get("artifacts", {}) if r.endswith(".bit"))
        return self.root / bits[0] if bits else None


def open_package(root: str | Path, verify: bool = True) -> Package:
    """Load ``manifest.json`` of a package and (by default) check every artifact hash."""
    root = Path(root).resolve()
    mpath = root / MANIFEST
    if not mpath.is_file():
        raise FileNotFoundError(f"{mpath} not found: not a package (build one with `make hw`)")
    manifest = json.loads(mpath.read_text())
    for key in ("io", "clock_mhz", "artifacts"):
        if key not in manifest:
            raise PackageIntegrityError(f"{mpath}: key {key!r} missing")
    checked = check_artifacts(root, manifest["artifacts"]) if verify else []
    return Package(root, manifest, checked)
