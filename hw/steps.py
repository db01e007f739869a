"""Our named builder steps, used inside FINN's DataflowBuildConfig.steps beside FINN's own.

Each step is ``step(model, cfg) -> model`` like FINN's, so the FINN builder runs,
logs, times and checkpoints them (``intermediate_models/<step>.onnx``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from finn.builder.build_dataflow_config import DataflowBuildConfig
from finn.builder.build_dataflow_steps import step_qonnx_to_finn
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.infer_datatypes import InferDataTypes

import hw.activation_thresholds  # noqa: F401  (registers the Tanh/Sigmoid handler with FINN)
import hw.custom_ops  # noqa: F401  (registers our RTL variants with FINN's SpecializeLayers)
from hw.errors import ResourceBudgetError, UnsupportedModelError
from hw.resources import RESOURCE_CHECK_ENV as R_ENV
from hw.resources import RESOURCE_CHECK_KEY as R_KEY
from hw.resources import RESOURCE_REPORT as R_REPORT
from hw.ties import place_half_even_after_conversion, place_half_even_on_integers
from hw.transforms.branches import merge_branches
from hw.transforms.joins import streamline_across_joins
from zoo.quantizers import (
    CODEBOOK_INDEX,
    LEARNED_BOUNDARIES,
    LOOKUP_OP,
    PROVENANCE_ATTR,
    UNIFORM_QUANTIZER,
    get_provenance,
    set_provenance,
)

# QONNX ops this flow knows how to carry into FINN; anything else is refused by name.
SUPPORTED_QONNX_OPS = {
    "Quant", "MatMul", "Gemm", "Add", "Mul", "Relu", "Tanh", "Sigmoid", "Concat",
    "Reshape", "Flatten", "Identity", "Transpose", "Sub", "Div", "MultiThreshold",
    "BatchNormalization", LOOKUP_OP, "ArgMax", "TopK",
}
ROUNDING_HALF_EVEN = {"ROUND", "HALF_EVEN"}
HOST_OUTPUT_SCALE = "host_output_scale"
# Provenances an exported MultiThreshold may carry (the flow adds the others itself).
EXPORTED_PROVENANCES = (CODEBOOK_INDEX, LEARNED_BOUNDARIES)
MONOTONIC_ACTIVATIONS = ("Tanh", "Sigmoid")


def _attr(node, name: str, default=None):  # noqa: ANN001, ANN202
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _is_pow2(x: np.ndarray) -> bool:
    x = np.abs(np.asarray(x, dtype=np.float64))
    return bool(np.all(x > 0) and np.all(np.log2(x) == np.round(np.log2(x))))


def _quant_levels(model: ModelWrapper, q) -> np.ndarray:  # noqa: ANN001
    """Every value a per-tensor Quant can output, ascending, as qonnx computes them in
    float32: ``float32(code) * float32(scale)`` (zero-point 0)."""
    from hw.activation_thresholds import quantizer_levels

    bits = int(np.asarray(model.get_initializer(q.input[3])).item())
    lo, hi = quantizer_levels(bits, bool(_attr(q, "signed", 1)), bool(_attr(q, "narrow", 0)))
    scale = np.float32(np.asarray(model.get_initializer(q.input[1])).item())
    return np.arange(lo, hi + 1).astype(np.float32) * scale


def check_codebook_thresholds(model: ModelWrapper, node) -> None:  # noqa: ANN001
    """A ``codebook_index`` MultiThreshold (export's codebook heads) must read a fixed
    per-tensor quantizer's output, with every threshold strictly between two of that
    quantizer's levels (as float32 values), so that the index is an exact function of the
    integer code (no ties, whatever the scale)."""
    src = model.find_producer(node.input[0])
    t = model.get_initializer(node.input[1])
    if src is None or src.op_type != "Quant" or t is None or \
            np.asarray(model.get_initializer(src.input[1])).size != 1:
        raise UnsupportedModelError(
            node.name, "MultiThreshold",
            "a codebook-index MultiThreshold must be on a fixed per-tensor quantizer's "
            "output, with constant thresholds")
    levels = _quant_levels(model, src)
    t = np.asarray(t, np.float32)
    if np.isin(t, levels).any():
        raise UnsupportedModelError(
            node.name, "MultiThreshold",
            "codebook thresholds must sit between levels of the quantizer before them "
            f"({src.name}); one equals a level, an exact tie would be ambiguous")


def check_learned_thresholds(model: ModelWrapper, node) -> None:  # noqa: ANN001
    """A ``learned_boundaries`` MultiThreshold (zoo.quantizers.LearnedQuantizer): constant
    thresholds (C, L-1) or (1, L-1), sorted per channel, emitting the index (unsigned,
    no output scale or bias)."""
    t = model.get_initializer(node.input[1])
    odt = _attr(node, "out_dtype", b"")
    odt = odt.decode() if isinstance(odt, bytes) else str(odt)
    ok = t is not None and np.asarray(t).ndim == 2 and \
        np.all(np.diff(np.asarray(t, np.float64), axis=1) >= 0) and \
        float(_attr(node, "out_scale", 1.0)) == 1.0 and \
        float(_attr(node, "out_bias", 0.0)) == 0.0 and odt.startswith("UINT")
    if not ok:
        raise UnsupportedModelError(
            node.name, "MultiThreshold",
            "learned boundaries must be constant thresholds (C, L-1) sorted per channel, "
            "emitting an unsigned index (out_scale 1, out_bias 0)")


def check_non_pow2_quant(model: ModelWrapper, node) -> None:  # noqa: ANN001
    """The one place a Quant scale need not be a power of two: right after a Tanh/Sigmoid
    (hw.activation_thresholds finds its thresholds by bisection over float32), per-tensor,
    and read only by codebook-index MultiThresholds (the index is what the accelerator
    emits; the exhaustive proof enumerates both layers). Anywhere else ties would not be
    exact in hardware."""
    src = model.find_producer(node.input[0])
    consumers = model.find_consumers(node.output[0])
    scale = model.get_initializer(node.input[1])
    why = None
    if src is None or src.op_type not in MONOTONIC_ACTIVATIONS:
        why = "it does not follow a Tanh/Sigmoid"
    elif scale is None or np.asarray(scale).size != 1:
        why = "its scale is not one constant (per-tensor)"
    elif not consumers or any(c.op_type != "MultiThreshold"
                              or get_provenance(c) != CODEBOOK_INDEX for c in consumers):
        why = ("its output is not read by a codebook-index MultiThreshold only (a later "
               "layer would fold a non-power-of-two scale inexactly)")
    if why:
        raise UnsupportedModelError(
            node.name, "Quant",
            f"scale is not a constant power of two and {why}, so rounding ties are not "
            "exact in hardware (use Brevitas fixed-point quantizers; a non-power-of-two "
            "scale is allowed only after a monotonic activation, as a codebook output)")


def check_qonnx_model(model: ModelWrapper) -> None:
    """Refuse, by node name and reason, what the integer contract cannot carry."""
    for node in model.graph.node:
        if node.op_type not in SUPPORTED_QONNX_OPS:
            raise UnsupportedModelError(
                node.name, node.op_type,
                "no FINN mapping in this flow (supported: "
                f"{', '.join(sorted(SUPPORTED_QONNX_OPS))})")
        if node.op_type == "MultiThreshold":
            prov = get_provenance(node)
            if prov == CODEBOOK_INDEX:
                check_codebook_thresholds(model, node)
            elif prov == LEARNED_BOUNDARIES:
                check_learned_thresholds(model, node)
            else:
                raise UnsupportedModelError(
                    node.name, "MultiThreshold",
                    f"threshold provenance {prov!r}: an exported MultiThreshold must say what "
                    f"its thresholds are ({PROVENANCE_ATTR} one of "
                    f"{', '.join(EXPORTED_PROVENANCES)}), or the flow cannot know whether "
                    "to place them for round half to even")
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
            check_non_pow2_quant(model, node)


def step_check_qonnx(model: ModelWrapper, cfg: DataflowBuildConfig) -> ModelWrapper:
    """Refuse unsupported operators, rounding modes and non-power-of-two scales early."""
    check_qonnx_model(model)
    return model


def tag_converted_thresholds(model: ModelWrapper, before: set[str]) -> ModelWrapper:
    """Provenance ``uniform_quantizer`` on every MultiThreshold FINN's Quant conversion
    created (not in ``before``, the node names present before it, and untagged: our
    Tanh/Sigmoid handler tags its own ``activation_staircase``)."""
    for mt in model.get_nodes_by_op_type("MultiThreshold"):
        if get_provenance(mt) is None and mt.name not in before:
            set_provenance(mt, UNIFORM_QUANTIZER)
    return model


def step_qonnx_to_finn_half_even(model: ModelWrapper, cfg: DataflowBuildConfig) -> ModelWrapper:
    """Enumerated integer thresholds where FINN's float algebra is not exact (BatchNorm,
    learned boundaries: hw.transforms.thresholds), FINN's QONNX->FINN conversion with
    every new MultiThreshold's provenance recorded, and uniform quantizers' thresholds
    placed for round-half-to-even."""
    from hw.transforms.thresholds import ExactThresholds

    model = model.transform(ExactThresholds())
    # Names, not objects: conversion may rename nodes it keeps (GiveUniqueNodeNames), but
    # an untagged MultiThreshold afterwards can only be one the conversion made.
    before = {n.name for n in model.graph.node if n.op_type == "MultiThreshold"}
    model = step_qonnx_to_finn(model, cfg)
    model = tag_converted_thresholds(model, before)
    return place_half_even_after_conversion(model)


def step_convert_to_our_hw(model: ModelWrapper, cfg: DataflowBuildConfig) -> ModelWrapper:
    """After FINN's step_convert_to_hw: IndexLookup (a learned quantizer's level table) ->
    our CodebookLookup HW layer (hw.transforms.lookup), and class indices of LabelSelect
    at their narrowest type (hw.transforms.argmax). Nothing to do for a plain MLP."""
    from hw.transforms.argmax import NarrowLabelSelectOutput
    from hw.transforms.lookup import InferCodebookLookup

    return model.transform(InferCodebookLookup()).transform(NarrowLabelSelectOutput())


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
    parallel dense branches merged where that costs no weights (hw.transforms.branches).

    Thresholds are rounded and clipped to their integer input's range here (FINN's
    RoundAndClipThresholds), not only in step_minimize_bit_width: FINN 1.6.1 runs
    MinimizeWeightBitWidth before it there, which asserts that a Thresholding layer on an
    unsigned input has no negative threshold (thresholding.py:336) - a shared signed
    quantizer after a ReLU has them. Exact: for integer x, x >= T <=> x >= ceil(T), and
    thresholds outside [min, max + 1] are always or never passed."""
    from finn.transformation.streamline.round_thresholds import RoundAndClipThresholds

    model = streamline_across_joins(model, cfg)
    model = place_half_even_on_integers(model)
    model = model.transform(RoundAndClipThresholds())
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
    """Ask SpecializeLayers for RTL variants (MVAU_rtl, Thresholding_rtl, and ours from
    hw.custom_ops: DuplicateStreams_rtl, StreamingConcat_rtl, ...) everywhere. Integer
    residual adds become our ElementwiseAdd_rtl here, because SpecializeLayers allows
    FINN's only on Versal parts and would fall back to HLS (hw/custom_ops/elementwise_add.py).
    """
    from hw.custom_ops.elementwise_add import SpecializeIntegerElementwiseAdd

    for node in model.graph.node:
        if node.domain.startswith("finn.custom_op.fpgadataflow"):
            inst = getCustomOp(node)
            if "preferred_impl_style" in inst.get_nodeattr_types():
                inst.set_nodeattr("preferred_impl_style", "rtl")
    return model.transform(SpecializeIntegerElementwiseAdd())


def step_unroll_layers(model: ModelWrapper, cfg: DataflowBuildConfig,
                       hw_cfg: dict[str, Any]) -> ModelWrapper:
    """The design's ``hw.impl`` (folded | unrolled | per-layer mapping): chains of dense
    layers chosen for the latency backend become UnrolledMLP_rtl nodes
    (hw/transforms/unroll.py); ``folded`` leaves the graph as it is. Unrolled nodes at
    the graph's edges then pad their streams so that the board's IODMA moves a vector
    in the fewest words (hw/transforms/iodma_pad.py)."""
    from hw.iodma import port_width
    from hw.transforms.iodma_pad import PadStreamsForIODMA
    from hw.transforms.unroll import UnrollDenseChains

    impl = hw_cfg.get("impl", "folded")
    if impl == "folded":
        return model
    model = model.transform(UnrollDenseChains(impl, float(hw_cfg.get("unroll_cutoff", 2.0))))
    pad = PadStreamsForIODMA(port_width(cfg.board))
    model = model.transform(pad)
    for r in pad.report:
        how = (f"padded by {r['pad']} elements" if r["pad"] is not None
               else "not paddable (folded layer)")
        print(f"IODMA {r['direction']} {r['tensor']} ({r['node']}): {how}, "
              f"{r['cycles_before']} -> {r['cycles_after']} cycles per vector")
    return model


step_unroll_layers.uses_design_hw = True  # type: ignore[attr-defined]


def step_check_rtl_only(model: ModelWrapper, cfg: DataflowBuildConfig) -> ModelWrapper:
    """After specialization every layer must be RTL: HLS layers need Vitis HLS to build."""
    for node in model.graph.node:
        if node.op_type.endswith("_hls"):
            raise UnsupportedModelError(
                node.name, node.op_type,
                "FINN has no RTL variant for this layer here (SpecializeLayers fell back to "
                "HLS); HLS layers need Vitis HLS, and this flow generates and simulates RTL only")
    return model


def resource_advice(design: dict[str, Any], board: dict[str, Any], cfg: Any) -> list[str]:
    """What to do about a design that does not fit: the real options of this repository."""
    name, bname = design.get("name", "<design>"), board.get("name", "<board>")
    hw_cfg = design.get("hw") or {}
    impl = hw_cfg.get("impl", "folded")
    ceiling = float(hw_cfg.get("utilization_ceiling", 0.8))
    out = [f"`make hw SPEED=max DESIGN={name} BOARD={bname}`: searches the fastest folding "
           f"(and impl) that fits within hw.utilization_ceiling {ceiling:g} on this board "
           "(hw/speed.py), with this same resource model;"]
    if cfg.folding_config_file:
        out.append(f"or fold more: this build's folding is the JSON {cfg.folding_config_file} "
                   "(hw.folding_config or --folding); give the layers above fewer PE/SIMD;")
    else:
        out.append(f"or fold more: lower hw.target_fps (now {hw_cfg.get('target_fps')}, "
                   f"FINN's SetFolding) in configs/designs/{name}.yaml, or name a folding "
                   "JSON with fewer PE/SIMD in hw.folding_config (or `python -m hw --folding "
                   "FILE`);")
    if impl != "folded":
        out.append(f"or fold the unrolled layers (hw.impl is {impl!r}; unrolled layers cost "
                   "LUTs, not DSPs): hw.impl: folded;")
    out.append(f"experts only: `make hw DESIGN={name} BOARD={bname} {R_ENV}=warn` (or "
               f"hw.{R_KEY}: warn in the design) builds it anyway and records the overrun "
               "(Vivado may then fail to place or route it); hw.utilization_ceiling (at "
               "most 1) moves the ceiling.")
    return out


def step_check_resources(model: ModelWrapper, cfg: DataflowBuildConfig,
                         ctx: dict[str, Any]) -> ModelWrapper:
    """Refuse a folded design that does not fit the board, before any RTL is generated.

    Counts the graph that becomes RTL (after folding, bit-width minimization and
    unrolling) with hw.resources.estimate for ``cfg.fpga_part``: our corrected model,
    with the FIFOs and width converters the stitcher adds (FINN's own estimate leaves
    them and the MVAU LUTs out and halves the DSPs). Writes report/resource_check.json
    (every resource's use, limit and margin under ``hw.utilization_ceiling``, the top
    layers by each) and, when a resource is over the ceiling and ``hw.resource_check`` is
    "refuse" (the default), raises :class:`hw.errors.ResourceBudgetError` naming the
    design, board, part, each resource over, the layers that use most of it, and what to
    do. "warn" (``make hw RESOURCE_CHECK=warn``) builds it anyway."""
    from hw.resources import budget_lines, budget_report, estimate, resource_check_policy

    design, board = ctx.get("design") or {}, ctx.get("board") or {}
    hw_cfg = design.get("hw") or {}
    policy = resource_check_policy(hw_cfg)
    ceiling = float(hw_cfg.get("utilization_ceiling", 0.8))
    part = cfg.fpga_part
    report = {"design": design.get("name"), "board": board.get("name", cfg.board),
              "policy": policy, **budget_report(estimate(model, part), ceiling)}
    out = Path(cfg.output_dir) / "report"
    out.mkdir(parents=True, exist_ok=True)
    (out / R_REPORT).write_text(json.dumps(report, indent=1) + "\n")
    if report["fits"]:
        print(f"resource check ({part}, ceiling {100 * ceiling:g}%): fits; "
              + "; ".join(budget_lines(report, "all")))
        return model
    over = [{"resource": k, **r, "ceiling": ceiling, "top_layers": report["top_layers"][k]}
            for k, r in report["resources"].items() if r["over"]]
    msg = (f"{report['design']} does not fit {report['board']} ({part}) with its folding: "
           f"{', '.join(o['resource'] for o in over)} over the "
           f"{100 * ceiling:g}% utilization ceiling (hw.resources model: the RTL's "
           "structure, calibrated against Yosys; glue included)\n  "
           + "\n  ".join(budget_lines(report, "over"))
           + "\nWhat to do:\n  " + "\n  ".join(resource_advice(design, board, cfg))
           + f"\n(report: {out / R_REPORT})")
    if policy == "warn":
        print(f"WARNING ({R_ENV}=warn): {msg}", file=sys.stderr)
        return model
    raise ResourceBudgetError(msg, str(report["design"]), str(report["board"]), part, over,
                              report)


step_check_resources.uses_build_context = True  # type: ignore[attr-defined]
