"""The board path (host.package, host.onnx_facts, host.codec, host.driver,
host.backends.pynq_backend) in a
separate venv with the board's pins (host/requirements-board.txt: pynq 4.0.0, numpy 1.x),
and import isolation under this venv's numpy 2.

Cost: the venv is created once (python -m venv + pip install pynq and numpy<2 from the
package index: about 40 s and 230 MB here) and cached in $HOST_BOARD_VENV_CACHE (default
/tmp) under the hash of the requirements file; later runs take about 2 s.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from host.codec import StreamSpec, pack
from tests.test_host_package import MULTI, fake_package, weights

REPO = Path(__file__).resolve().parent.parent
REQS = REPO / "host" / "requirements-board.txt"
BOARD_MODULES = ["contract.seal", "contract.iospec", "host", "host.package", "host.onnx_facts",
                 "host.codec", "host.driver", "host.verify", "host.backends.pynq_backend",
                 "host.integer", "host.backends.integer", "tests.test_host_stub_board"]
FORBIDDEN = ["torch", "finn", "qonnx", "brevitas", "hw", "onnx", "train", "export"]

SCRIPT = r"""
import json, sys
import numpy as np
from pathlib import Path
import host.package, host.onnx_facts, host.codec, host.driver, host.backends.pynq_backend
import host.verify
from host.codec import StreamSpec, pack, unpack
from host.driver import Accelerator, BoardUnavailableError, on_board
bad = [m for m in {forbidden} if m in sys.modules]
assert not bad, bad
d = Path(sys.argv[1])
io = json.loads((d / "io.json").read_text())
si = StreamSpec.from_manifest(io["inputs"][0])
x = np.load(d / "x.npy")
codes = si.to_codes(x)
assert np.array_equal(codes, np.load(d / "codes.npy"))
packed = pack(codes, si)
assert np.array_equal(packed, np.load(d / "packed.npy"))
assert np.array_equal(unpack(packed, si), codes)
assert not on_board()
for pkg in ("nobit", "withbit"):
    try:
        Accelerator(d / pkg, backend="pynq")
        raise SystemExit("pynq backend did not refuse off-board")
    except BoardUnavailableError as e:
        print(pkg, "refused:", str(e).splitlines()[0])
# the contract digest and the ONNX re-derivation, with numpy 1.x and no onnx
p = host.package.open_package(d / "nobit", expect_board="pynq-z2")
assert p.derived_io["inputs"][0]["scale"] == p.io["inputs"][0]["scale"] == 2 ** -7, p.derived_io
m = host.package.open_package(d / "multi")  # two inputs, two outputs, a codebook
assert [t["scale"] for t in m.derived_io["outputs"]] == [2 ** -5, 1.0], m.derived_io
try:
    Accelerator(m, backend="pynq")
    raise SystemExit("pynq backend did not refuse off-board")
except BoardUnavailableError as e:
    print("multi refused:", str(e).splitlines()[0])
# several streams through the pynq backend's own code on a stub board (numpy 1, real
# pynq replaced in sys.modules): one IODMA per stream, golden codes back per output
from tests.test_host_stub_board import StubBoard, expected_trace, restore
served = []
def golden_rows(codes):
    i = sum(served)
    k = len(next(iter(codes.values())))
    for name, v in codes.items():
        assert np.array_equal(v, GIN[name][i:i + k]), name
    served.append(k)
    return {name: GOUT[name][i:i + k] for name in m.outputs}
from contract.iospec import Golden
gold = Golden.load(d / "multi" / "golden.npz")
GIN, GOUT = gold.inputs, gold.outputs
board = StubBoard(m.inputs, m.outputs, golden_rows)
before = board.install()
try:
    with Accelerator(m, backend="pynq", batch_size=16) as acc:
        got = acc.execute_codes(GIN)
        assert all(np.array_equal(got[k], GOUT[k]) for k in GOUT), "multi: codes differ"
        served.clear()
        board.trace.clear()
        acc.execute_codes({k: v[:5] for k, v in GIN.items()})
        assert board.trace == expected_trace(board, acc, 5), board.trace
    print("multi on stub board:", len(GIN["a"]), "vectors exact,",
          [d for d in board.idmas], [d for d in board.odmas])
finally:
    restore(before)
# golden vectors on the board: numpy only (the in-test backend computes the fake network)
class Net(host.driver.Backend):
    def run(self, codes):
        return {"latent": np.clip(codes["soft_bits"] @ np.load(d / "w.npy"), -32, 31)}
report, facts = host.verify.verify(d / "nobit", Net, vectors=10)
assert report.failed == 0 and report.passed == 40, report.table()
print("golden on board:", report.passed, "passed;", facts["fresh"])
for pkg, kw in (("tampered", {}), ("nobit", {"expect_board": "zcu104"})):
    try:
        Accelerator(d / pkg, backend="pynq", **kw)
        raise SystemExit(pkg + " was not refused")
    except host.package.PackageIntegrityError as e:
        print(pkg, "refused:", type(e).__name__, str(e).splitlines()[-1].strip())
import pynq
print("numpy", np.__version__, "pynq", pynq.__version__)
"""


def board_venv() -> Path:
    """The cached venv with the board's requirements (created on first use)."""
    key = hashlib.sha256(REQS.read_bytes()).hexdigest()[:12]
    venv = Path(os.environ.get("HOST_BOARD_VENV_CACHE", "/tmp")) / f"host-board-venv-{key}"
    py = venv / "bin" / "python"
    if not (venv / ".complete").is_file():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "-r", str(REQS)], check=True)
        (venv / ".complete").touch()
    return py


def test_board_path_runs_with_numpy1_and_pynq(tmp_path: Path) -> None:
    py = board_venv()
    io = json.loads((fake_package(tmp_path / "nobit") / "manifest.json").read_text())["io"]
    fake_package(tmp_path / "withbit", extra={"accel.bit": b"\x00" * 64})
    fake_package(tmp_path / "multi", streams=MULTI, extra={"accel.bit": b"\x00" * 64})
    np.save(tmp_path / "w.npy", weights(12, 6))
    tampered = fake_package(tmp_path / "tampered")
    m = json.loads((tampered / "manifest.json").read_text())
    m["io"]["inputs"][0]["scale"] = 0.0079125
    (tampered / "manifest.json").write_text(json.dumps(m))
    si = StreamSpec.from_manifest(io["inputs"][0])
    x = np.random.default_rng(0).uniform(-1.2, 1.2, (64, 12))
    x[:4, :2] = np.array([0.5, 1.5, 2.5, -2.5])[:, None] * si.scale  # ties
    codes = si.to_codes(x)
    (tmp_path / "io.json").write_text(json.dumps(io))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "codes.npy", codes)
    np.save(tmp_path / "packed.npy", pack(codes, si))
    r = subprocess.run([str(py), "-c", SCRIPT.replace("{forbidden}", repr(FORBIDDEN)),
                        str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                       env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "numpy 1." in r.stdout and "pynq 4.0.0" in r.stdout
    assert "nobit refused" in r.stdout and "withbit refused: pynq.Overlay" in r.stdout
    assert "tampered refused: ManifestIntegrityError recomputed from manifest.json" in r.stdout
    assert "nobit refused: BoardIntegrityError" in r.stdout
    assert "multi refused: pynq.Overlay" in r.stdout
    assert "multi on stub board: 40 vectors exact, ['idma0', 'idma1'] ['odma0', 'odma1']" \
        in r.stdout
    assert "golden on board: 40 passed; skipped: torch not installed" in r.stdout


@pytest.mark.parametrize("module", BOARD_MODULES)
def test_board_modules_import_only_numpy(module: str) -> None:
    code = (f"import sys, {module}; bad = [m for m in {FORBIDDEN!r} if m in sys.modules]; "
            "assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
