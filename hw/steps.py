"""Our named builder steps, used inside FINN's DataflowBuildConfig.steps beside FINN's own.

Each step is ``step(model, cfg) -> model`` like FINN's, so the FINN builder runs,
logs, times and checkpoints them (``intermediate_models/<step>.onnx``).
"""

from __future__ import annotations

import json

import numpy as np
from finn.builder.build_dataflow_config import DataflowBuildConfig
from finn.builder.build_dataflow_steps import step_qonnx_to_finn
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.infer_datatypes import InferDataTypes

import hw.activation_thresholds  # noqa: F401  (registers the Tanh/Sigmoid handler with FINN)
from hw.errors import UnsupportedModelError
from hw.ties import place_half_even_after_conversion, place_half_even_on_integers
from hw.transforms.branches import merge_branches
from hw.transforms.joins import streamline_across_joins

# QONNX ops this flow knows how to carry into FINN; anything else is refused by name.
SUPPORTED_QONNX_OPS = {
    "Quant", "MatMul", "Gemm", "Add", "Mul", "Relu", "Tanh", "Sigmoid", "Concat",
    "Reshape", "Flatten", "Identity", "Transpose", "Sub", "Div", "MultiThreshold",
    "ArgMax", "TopK",
}
ROUNDING_HALF_EVEN = {"ROUND", "HALF_EVEN"}
HOST_OUTPUT_SCALE = "host_output_scale"


def _attr(node, name: str, default=None):  # noqa: ANN001, ANN202
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _is_pow2(x: np.ndarray) -> bool:
    x = np.abs(np.asarray(x, dtype=np.float64))
    return bool(np.all(x > 0) and np.all(np.log2(x) == np.round(np.log2(x))))


def check_codebook_thresholds(model: ModelWrapper, node) -> None:  # noqa: ANN001
    """A MultiThreshold in the exported graph is a codebook index (export's codebook head):
    it must read a fixed quantizer's output, with every threshold half-way between two of
    its levels, so that the index is an exact function of the integer code (no ties)."""
    src = model.find_producer(node.input[0])
    t = model.get_initializer(node.input[1])
    if src is None or src.op_type != "Quant" or t is None:
        raise UnsupportedModelError(
            node.name, "MultiThreshold",
            "a MultiThreshold in the exported graph must be a codebook on a fixed quantizer's "
            "output, with constant thresholds")
    scale = float(np.asarray(model.get_initializer(src.input[1])).item())
    k = np.asarray(t, np.float64) / scale - 0.5
    if not np.all(k == np.round(k)):
        raise UnsupportedModelError(
            node.name, "MultiThreshold",
            "codebook thresholds must sit half-way between levels of the quantizer before "
            f"them (scale {scale}); an exact tie would be ambiguous")


def check_qonnx_model(model: ModelWrapper) -> None:
    """Refuse, by node name and reason, what the integer contract cannot carry."""
    for node in model.graph.node:
        if node.op_type not in SUPPORTED_QONNX_OPS:
            raise UnsupportedModelError(
                node.name, node.op_type,
                "no FINN mapping in this flow (supported: "
                f"{', '.join(sorted(SUPPORTED_QONNX_OPS))})")
        if node.op_type == "MultiThreshold":
            check_codebook_thresholds(model, node)
        if node.op_type != "Quant":
            continue
        rounding = _attr(node, "rounding_mode", b"ROUND")
        rounding = rounding.decode() if isinstance(rounding, bytes) else rounding
        if rounding.upper() not in ROUNDING_HALF_EVEN:
            raise UnsupportedModelError(
                node.name, "Quant",
                f"rounding_mode {rounding}; the flow's one convention is round half to even")
        scale = model.get_initializer(node.input[1])
        if scale is None or not _is_pow2(scale):
            raise UnsupportedModelError(
                node.name, "Quant",
                "scale is not a constant power of two, so rounding ties are not exact in "
                "hardware (use Brevitas fixed-point quantizers)")


def step_check_qonnx(model: ModelWrapper, cfg: DataflowBuildConfig) -> ModelWrapper:
    """Refuse unsupported operators, rounding modes and non-power-of-two scales early."""
    check_qonnx_model(model)
    return model


def step_qonnx_to_finn_half_even(model: ModelWrapper, cfg: DataflowBuildConfig) -> ModelWrapper:
    """FINN's QONNX->FINN conversion, with thresholds placed for round-half-to-even."""
    model = step_qonnx_to_finn(model, cfg)
    return place_half_even_after_conversion(model)


CONTRACT_IO = "contract_io"


def contract_io_names(model: ModelWrapper) -> tuple[list[str], list[str]]:
    """The model's graph input and output tensor names in the contract's order.

    FINN renames graph tensors (global_in, global_out_1, ...) and CreateDataflowPartition
    reorders graph outputs, so streamlining records the names in contract order as
    metadata ``contract_io``; before that, the graph's own order is the contract's."""
    recorded = model.get_metadata_prop(CONTRACT_IO)
    if recorded is None:
        return [i.name for i in model.graph.input], [o.name for o in model.graph.output]
    io = json.loads(recorded)
    have_in = {i.name for i in model.graph.input}
    have_out = {o.name for o in model.graph.output}
    if set(io["inputs"]) != have_in or set(io["outputs"]) != have_out:
        raise UnsupportedModelError(
            "graph", "io", f"the graph's inputs {sorted(have_in)} / outputs "
            f"{sorted(have_out)} are not the ones recorded at streamlining "
            f"({io['inputs']} / {io['outputs']}): a transformation renamed them")
    return list(io["inputs"]), list(io["outputs"])


def host_output_scales(model: ModelWrapper) -> dict[str, float]:
    """The output scales moved to the host, by graph output name in contract order
    (metadata ``host_output_scale:<tensor>``; a model written before named outputs holds
    one ``host_output_scale`` for its only output)."""
    out = {}
    outputs = contract_io_names(model)[1]
    for name in outputs:
        v = model.get_metadata_prop(f"{HOST_OUTPUT_SCALE}:{name}")
        if v is None and len(outputs) == 1:
            v = model.get_metadata_prop(HOST_OUTPUT_SCALE)
        if v is not None:
            out[name] = float(v)
    return out


def output_scale_to_host(model: ModelWrapper) -> ModelWrapper:
    """For every graph output, drop the trailing scalar Mul (the accelerator emits integer
    codes) and keep the scale as metadata ``host_output_scale:<tensor>``. An output that
    already is integer codes (a codebook index from a MultiThreshold) gets scale 1. The
    graph's input and output names are recorded in contract order (``contract_io``)."""
    model.set_metadata_prop(CONTRACT_IO, json.dumps(
        {"inputs": [i.name for i in model.graph.input],
         "outputs": [o.name for o in model.graph.output]}))
    for out in list(model.graph.output):
        node = model.find_producer(out.name)
        if node is not None and node.op_type != "Mul" and \
                model.get_tensor_datatype(out.name).is_integer():
            model.set_metadata_prop(f"{HOST_OUTPUT_SCALE}:{out.name}", repr(1.0))
            continue
        if node is None or node.op_type != "Mul":
            raise UnsupportedModelError(
                getattr(node, "name", out.name), getattr(node, "op_type", "?"),
                f"expected the streamlined graph to end output {out.name!r} in the "
                "output-scale Mul")
        scale = model.get_initializer(node.input[1])
        if scale is None or np.asarray(scale).size != 1:
            raise UnsupportedModelError(node.name, "Mul",
                                        "output scale must be a scalar constant")
        producer = model.find_producer(node.input[0])
        model.graph.node.remove(node)
        # Reconnect: the producer now writes the graph output directly.
        for i, o in enumerate(producer.output):
            if o == node.input[0]:
                producer.output[i] = out.name
        model.set_metadata_prop(f"{HOST_OUTPUT_SCALE}:{out.name}",
                                repr(float(np.asarray(scale).item())))
        model = model.transform(InferDataTypes())
        dt = model.get_tensor_datatype(out.name)
        if not dt.is_integer():
            raise UnsupportedModelError(producer.name, producer.op_type,
                                        f"output {out.name!r} is {dt.name}, not integer "
                                        "codes, after removing the scale")
    return model


def step_streamline_half_even(model: ModelWrapper, cfg: DataflowBuildConfig) -> ModelWrapper:
    """FINN's streamlining, integer tie placement, the output scale moved to the host, and
    parallel dense branches merged where that costs no weights (hw.transforms.branches)."""
    model = streamline_across_joins(model, cfg)
    model = place_half_even_on_integers(model)
    return merge_branches(output_scale_to_host(model))


def step_check_all_hw(model: ModelWrapper, cfg: DataflowBuildConfig) -> ModelWrapper:
    """After conversion to HW layers, every node must be one: name the first that is not."""
    for node in model.graph.node:
        if not node.domain.startswith("finn.custom_op.fpgadataflow"):
            reason = "FINN has no hardware layer for it in this position"
            if node.op_type == "MultiThreshold":
                reason = "thresholds on a non-integer input cannot become a Thresholding layer"
            elif node.op_type in ("Add", "Mul"):
                reason = ("a float elementwise op was left after streamlining (FINN maps "
                          "residual adds only with both inputs on one shared quantizer)")
            raise UnsupportedModelError(node.name, node.op_type, reason)
    return model


def step_prefer_rtl(model: ModelWrapper, cfg: DataflowBuildConfig) -> ModelWrapper:
    """Ask SpecializeLayers for RTL variants (MVAU_rtl, Thresholding_rtl, ...) everywhere."""
    for node in model.graph.node:
        if node.domain.startswith("finn.custom_op.fpgadataflow"):
            inst = getCustomOp(node)
            if "preferred_impl_style" in inst.get_nodeattr_types():
                inst.set_nodeattr("preferred_impl_style", "rtl")
    return model


def step_check_rtl_only(model: ModelWrapper, cfg: DataflowBuildConfig) -> ModelWrapper:
    """After specialization every layer must be RTL: HLS layers need Vitis HLS to build."""
    for node in model.graph.node:
        if node.op_type.endswith("_hls"):
            raise UnsupportedModelError(
                node.name, node.op_type,
                "FINN has no RTL variant for this layer here (SpecializeLayers fell back to "
                "HLS); HLS layers need Vitis HLS, and this flow generates and simulates RTL only")
    return model
