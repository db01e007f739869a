"""host.package: every artifact's sha256 is checked; a tampered package is refused."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from host.package import PackageIntegrityError, open_package

REPO = Path(__file__).resolve().parent.parent


def fake_package(root: Path) -> Path:
    """A package folder whose manifest hashes two small artifacts."""
    (root / "rtl").mkdir(parents=True)
    (root / "rtl" / "w.dat").write_text("0a\n1b\n")
    (root / "golden.npz").write_bytes(b"not really npz")
    arts = {rel: hashlib.sha256((root / rel).read_bytes()).hexdigest()
            for rel in ("rtl/w.dat", "golden.npz")}
    manifest = {"design": "x", "clock_mhz": 100, "artifacts": arts,
                "io": {"input": {"shape": [1, 12], "datatype": "INT8", "scale": 2 ** -7,
                                 "folded_shape": [1, 2, 6], "stream_width_bits": 48},
                       "output": {"shape": [1, 6], "datatype": "INT6", "scale": 2 ** -5,
                                  "folded_shape": [1, 6, 1], "stream_width_bits": 6}}}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_intact_package_opens(tmp_path: Path) -> None:
    pkg = open_package(fake_package(tmp_path / "p"))
    assert pkg.checked == ["golden.npz", "rtl/w.dat"] and pkg.bitfile() is None


def test_tampered_byte_is_refused_with_both_hashes(tmp_path: Path) -> None:
    root = fake_package(tmp_path / "p")
    expected = json.loads((root / "manifest.json").read_text())["artifacts"]["rtl/w.dat"]
    data = bytearray((root / "rtl" / "w.dat").read_bytes())
    data[1] ^= 0x01  # one byte changed
    (root / "rtl" / "w.dat").write_bytes(bytes(data))
    actual = hashlib.sha256(bytes(data)).hexdigest()
    with pytest.raises(PackageIntegrityError) as e:
        open_package(root)
    msg = str(e.value)
    assert "rtl/w.dat" in msg and expected in msg and actual in msg and "golden.npz" not in msg


def test_missing_artifact_is_refused(tmp_path: Path) -> None:
    root = fake_package(tmp_path / "p")
    (root / "golden.npz").unlink()
    with pytest.raises(PackageIntegrityError, match="golden.npz: missing"):
        open_package(root)


def test_cli_refuses_tampered_package(tmp_path: Path) -> None:
    root = fake_package(tmp_path / "p")
    (root / "golden.npz").write_bytes(b"tampered")
    r = subprocess.run([sys.executable, "-m", "host", "verify", str(root), "--backend",
                        "reference", "--vectors", "0"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode != 0
    assert "PackageIntegrityError" in r.stderr and "sha256 mismatch" in r.stderr
    assert hashlib.sha256(b"tampered").hexdigest() in r.stderr
