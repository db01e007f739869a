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

from contract.iospec import Golden, IOSpec, TensorSpec
from host.package import PackageIntegrityError, open_package
from hw.package import write_manifest

REPO = Path(__file__).resolve().parent.parent
BOARDS = {"pynq-z2": ("xc7z020clg400-1", 100), "zcu104": ("xczu7ev-ffvc1156-2-e", 187.5)}


def _annotate(graph: onnx.GraphProto, tensor: str, dtype: str) -> None:
    a = graph.quantization_annotation.add()
    a.tensor_name = tensor
    e = a.quant_parameter_tensor_names.add()
    e.key, e.value = "finn_datatype", dtype


def stream(name: str, features: int, datatype: str, scale: float | None = None,
           codebook: tuple[float, ...] | None = None, elems: int = 1) -> dict[str, Any]:
    """One named stream of a fake package: its contract tensor and ``elems`` per beat."""
    return {"tensor": TensorSpec(name, (features,), datatype, scale=scale, codebook=codebook,
                                 post="codebook" if codebook is not None else "scale"),
            "elems": elems}


# The default design's streams: 12 INT8 soft bits (2^-7) in, 6 INT6 latents (2^-5) out.
SINGLE = {"inputs": [stream("soft_bits", 12, "INT8", 2 ** -7, elems=6)],
          "outputs": [stream("latent", 6, "INT6", 2 ** -5)]}
# Two inputs and two outputs, datatypes and scales differing per stream; ``idx`` is a
# codebook index output (host scale 1.0, the levels in the spec).
CODEBOOK = (-1.5, -0.25, 0.5, 2.0)
MULTI = {"inputs": [stream("a", 4, "INT8", 2 ** -7, elems=2),
                    stream("b", 3, "INT4", 2 ** -2, elems=3)],
         "outputs": [stream("y", 2, "INT6", 2 ** -5, elems=2),
                     stream("idx", 3, "UINT2", codebook=CODEBOOK)]}


def weights(f_in: int, f_out: int) -> np.ndarray:
    """The fake network's integer weights of one path, in {-1, 0, 1}."""
    k, g = np.meshgrid(np.arange(f_in), np.arange(f_out), indexing="ij")
    return ((k + 2 * g) % 3 - 1).astype(np.int64)


def code_range(t: TensorSpec) -> tuple[int, int]:
    """The codes an output can take: its datatype's range, or the codebook's indices."""
    if t.codebook is not None:
        return t.dtype.min, t.dtype.min + len(t.codebook) - 1
    return t.dtype.min, t.dtype.max


def known_function(spec: IOSpec, codes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The fake network, on integer codes: output j = clip(codes of input j % #inputs @
    :func:`weights`, :func:`code_range`). ``model_qonnx.onnx`` of :func:`fake_models`
    computes it (QONNX execution), the in-test backends compute it in numpy."""
    out = {}
    for j, t in enumerate(spec.outputs):
        src = spec.inputs[j % len(spec.inputs)]
        out[t.name] = np.clip(codes[src.name] @ weights(src.features, t.features),
                              *code_range(t))
    return out


def fake_models(root: Path, streams: dict[str, Any] = SINGLE,
                scales: dict[str, float] | None = None) -> None:
    """Tiny ``model_qonnx.onnx`` / ``model_finn.onnx`` with the facts the host re-derives,
    as the flow writes them: graph inputs/outputs with the contract's names, an input-scale
    Mul on each graph input of the QONNX model, ``host_output_scale:<output>`` graph
    metadata (1.0 for a codebook output), the FINN graph's shapes and ``finn_datatype`` annotations.
    The QONNX model is executable: it computes :func:`known_function` (dequantized).
    ``scales``: other scales, by tensor name, written into the models (not the spec)."""
    scales = scales or {}
    ins = [s["tensor"] for s in streams["inputs"]]
    outs = [s["tensor"] for s in streams["outputs"]]

    def host_scale(t: TensorSpec) -> float:
        return scales.get(t.name, t.scale if t.scale is not None else 1.0)

    vin = [helper.make_tensor_value_info(t.name, TensorProto.FLOAT, [1, t.features])
           for t in ins]
    vout = [helper.make_tensor_value_info(t.name, TensorProto.FLOAT, [1, t.features])
            for t in outs]
    nodes, inits = [], []
    for i, t in enumerate(ins):
        inits.append(numpy_helper.from_array(np.asarray(scales.get(t.name, t.scale),
                                                        np.float32), f"Mul_{i}_param0"))
        nodes.append(helper.make_node("Mul", [t.name, f"Mul_{i}_param0"], [f"Mul_{i}_out0"],
                                      name="InputScale" if len(ins) == 1 else f"Mul_{i}"))
    for j, t in enumerate(outs):
        i = j % len(ins)
        w = weights(ins[i].features, t.features) * (host_scale(t) / ins[i].scale)
        lo, hi = code_range(t)
        inits += [numpy_helper.from_array(w.astype(np.float32), f"MatMul_{j}_param0"),
                  numpy_helper.from_array(np.asarray(lo * host_scale(t), np.float32),
                                          f"Clip_{j}_min"),
                  numpy_helper.from_array(np.asarray(hi * host_scale(t), np.float32),
                                          f"Clip_{j}_max")]
        nodes += [helper.make_node("MatMul", [f"Mul_{i}_out0", f"MatMul_{j}_param0"],
                                   [f"MatMul_{j}_out0"], name=f"MatMul_{j}"),
                  helper.make_node("Clip", [f"MatMul_{j}_out0", f"Clip_{j}_min",
                                            f"Clip_{j}_max"], [t.name], name=f"Clip_{j}")]
    g = helper.make_graph(nodes, "qonnx", vin, vout, inits)
    for t in ins:
        _annotate(g, t.name, t.datatype)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]),
              str(root / "model_qonnx.onnx"))
    nodes, inits = [], []
    for j, t in enumerate(outs):
        src = ins[j % len(ins)]
        w = numpy_helper.from_array(np.ones((src.features, t.features), np.float32),
                                    f"MVAU_rtl_{j}_param0")
        inits.append(w)
        nodes.append(helper.make_node("MVAU_rtl", [src.name, w.name], [t.name],
                                      name=f"MVAU_rtl_{j}",
                                      domain="finn.custom_op.fpgadataflow.rtl"))
    g = helper.make_graph(nodes, "finn", vin, vout, inits)
    for t in ins + outs:
        _annotate(g, t.name, t.datatype)
    for t in outs:
        m = g.metadata_props.add()  # where qonnx's ModelWrapper.set_metadata_prop puts it
        m.key, m.value = f"host_output_scale:{t.name}", repr(float(host_scale(t)))
    onnx.save(helper.make_model(g), str(root / "model_finn.onnx"))


def io_entry(s: dict[str, Any]) -> dict[str, Any]:
    """A manifest ``io`` entry as hw.package.io_contract writes it."""
    t, elems = s["tensor"], s["elems"]
    return {**t.to_json(), "shape": [1, t.features],
            "folded_shape": [1, t.features // elems, elems],
            "stream_width_bits": elems * t.dtype.bits}


def fake_io(streams: dict[str, Any] = SINGLE) -> dict[str, Any]:
    return {side: [io_entry(s) for s in streams[side]] for side in ("inputs", "outputs")}


def fake_spec(streams: dict[str, Any] = SINGLE) -> IOSpec:
    return IOSpec(tuple(s["tensor"] for s in streams["inputs"]),
                  tuple(s["tensor"] for s in streams["outputs"]))


def fake_golden(streams: dict[str, Any] = SINGLE, n: int = 40, seed: int = 0) -> Golden:
    """Random in-range input codes and their :func:`known_function` output codes."""
    spec, rng = fake_spec(streams), np.random.default_rng(seed)
    ins = {t.name: rng.integers(t.dtype.min, t.dtype.max + 1, (n, t.features))
           for t in spec.inputs}
    sets = np.array(["channel"] * (n // 2) + ["extremes"] * (n - n // 2))
    return Golden(ins, known_function(spec, ins), sets, np.zeros(n, np.int64))


def fake_package(root: Path, board: str = "pynq-z2", extra: dict[str, bytes] | None = None,
                 streams: dict[str, Any] = SINGLE, golden: Golden | None = None,
                 design: str = "x") -> Path:
    """A package folder written by hw.package.write_manifest: a small artifact, the two
    ONNX models, ``iospec.json`` and ``golden.npz`` (named; default :func:`fake_golden`),
    consistent with ``io``, and ``extra`` files; ``design`` on ``board``."""
    (root / "rtl").mkdir(parents=True)
    (root / "rtl" / "w.dat").write_text("0a\n1b\n")
    np.savez(root / "golden.npz", **(golden or fake_golden(streams)).to_npz())
    fake_spec(streams).save(root / "iospec.json")
    fake_models(root, streams)
    for rel, data in (extra or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    part, clock = BOARDS[board]
    write_manifest(root, {"design": design, "board": board, "part": part, "clock_mhz": clock,
                          "io": fake_io(streams)})
    return root


def test_intact_package_opens(tmp_path: Path) -> None:
    pkg = open_package(fake_package(tmp_path / "p"))
    assert pkg.checked == ["golden.npz", "iospec.json", "model_finn.onnx", "model_qonnx.onnx",
                           "rtl/w.dat"]
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
