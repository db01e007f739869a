"""host.package: every artifact's sha256 is checked; a tampered package is refused.

More checks (contract digest, unlisted files, expected board, the contract re-derived
from the ONNX models): tests/test_host_integrity.py, on the same fake package.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from host.package import PackageIntegrityError, open_package
from hw.package import write_manifest

REPO = Path(__file__).resolve().parent.parent
BOARDS = {"pynq-z2": ("xc7z020clg400-1", 100), "zcu104": ("xczu7ev-ffvc1156-2-e", 187.5)}


def _annotate(graph: onnx.GraphProto, tensor: str, dtype: str) -> None:
    a = graph.quantization_annotation.add()
    a.tensor_name = tensor
    e = a.quant_parameter_tensor_names.add()
    e.key, e.value = "finn_datatype", dtype


def fake_models(root: Path, in_scale: float = 2 ** -7, out_scale: float = 2 ** -5,
                in_dtype: str = "INT8", out_dtype: str = "INT6") -> None:
    """Tiny ``model_qonnx.onnx`` / ``model_finn.onnx`` with the facts the host re-derives:
    the input-scale Mul on the graph input, ``host_output_scale`` graph metadata, and the
    graph input/output shapes and ``finn_datatype`` annotations (as the flow writes them)."""
    vin = helper.make_tensor_value_info("global_in", TensorProto.FLOAT, [1, 12])
    vq = helper.make_tensor_value_info("Mul_0_out0", TensorProto.FLOAT, [1, 12])
    scale = numpy_helper.from_array(np.asarray(in_scale, np.float32), "Mul_0_param0")
    g = helper.make_graph([helper.make_node("Mul", ["global_in", "Mul_0_param0"],
                                            ["Mul_0_out0"], name="InputScale")],
                          "qonnx", [vin], [vq], [scale])
    _annotate(g, "global_in", in_dtype)
    onnx.save(helper.make_model(g), str(root / "model_qonnx.onnx"))
    vout = helper.make_tensor_value_info("global_out", TensorProto.FLOAT, [1, 6])
    w = numpy_helper.from_array(np.ones((12, 6), np.float32), "MVAU_rtl_0_param0")
    g = helper.make_graph([helper.make_node("MVAU_rtl", ["global_in", "MVAU_rtl_0_param0"],
                                            ["global_out"], name="MVAU_rtl_0",
                                            domain="finn.custom_op.fpgadataflow.rtl")],
                          "finn", [vin], [vout], [w])
    _annotate(g, "global_in", in_dtype)
    _annotate(g, "global_out", out_dtype)
    m = g.metadata_props.add()  # where qonnx's ModelWrapper.set_metadata_prop puts it
    m.key, m.value = "host_output_scale", repr(float(out_scale))
    onnx.save(helper.make_model(g), str(root / "model_finn.onnx"))


def fake_io(in_scale: float = 2 ** -7, out_scale: float = 2 ** -5) -> dict[str, Any]:
    return {"input": {"shape": [1, 12], "datatype": "INT8", "scale": in_scale,
                      "float_to_code": "clip(round_half_even(x / scale), min, max)",
                      "folded_shape": [1, 2, 6], "stream_width_bits": 48},
            "output": {"shape": [1, 6], "datatype": "INT6", "scale": out_scale,
                       "code_to_float": "code * scale (on the host)",
                       "folded_shape": [1, 6, 1], "stream_width_bits": 6}}


def fake_package(root: Path, board: str = "pynq-z2",
                 extra: dict[str, bytes] | None = None) -> Path:
    """A package folder written by hw.package.write_manifest: two small artifacts, the two
    ONNX models (consistent with ``io``) and ``extra`` files; design ``x`` on ``board``."""
    (root / "rtl").mkdir(parents=True)
    (root / "rtl" / "w.dat").write_text("0a\n1b\n")
    (root / "golden.npz").write_bytes(b"not really npz")
    fake_models(root)
    for rel, data in (extra or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    part, clock = BOARDS[board]
    write_manifest(root, {"design": "x", "board": board, "part": part, "clock_mhz": clock,
                          "io": fake_io()})
    return root


def test_intact_package_opens(tmp_path: Path) -> None:
    pkg = open_package(fake_package(tmp_path / "p"))
    assert pkg.checked == ["golden.npz", "model_finn.onnx", "model_qonnx.onnx", "rtl/w.dat"]
    assert pkg.bitfile() is None


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
    assert r.returncode == 2
    assert "PackageIntegrityError" in r.stderr and "sha256 mismatch" in r.stderr
    assert hashlib.sha256(b"tampered").hexdigest() in r.stderr
