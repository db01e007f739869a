"""Bit-exact verification of every stage: integer output codes compared with ``==``.

Every tensor is addressed by its contract name (graph input/output names). Stages:
``brevitas_cpu`` (the reference check written by export), ``qonnx`` (QONNX execution
of the exported model), ``finn_converted``, ``streamlined`` and ``hw_folded`` (FINN's
intermediate models, executed with FINN's Python/C++-model execution of HW layers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.general import SortGraph
from qonnx.transformation.infer_shapes import InferShapes
from tqdm import tqdm

from contract.iospec import mismatching_vectors
from hw.steps import contract_io_names, host_output_scales

HW_DOMAIN = "finn.custom_op.fpgadataflow"
SHAPE_ATTRS = ("lhs_shape", "rhs_shape", "out_shape")  # FINN's ElementwiseBinary layers


def is_hw_node(node: Any) -> bool:
    """A FINN HW layer (generic, ``.hls`` or ``.rtl`` domain, ours included)."""
    return node.domain.startswith(HW_DOMAIN)


def _batch_dims(shape: list[int], n: int) -> list[int]:
    """A batch-1 shape with its leading 1 replaced by ``n`` (other shapes as they are)."""
    shape = [int(d) for d in shape]
    return [n] + shape[1:] if len(shape) > 1 and shape[0] == 1 else shape


def with_batch(model: ModelWrapper, n: int) -> ModelWrapper:
    """A copy of ``model`` that executes ``n`` vectors at once (one ``execute_onnx`` for
    the whole batch): every tensor (N, ...) where the batch-1 model has (1, ...).

    * Models without HW layers (QONNX, ``finn_converted``, ``streamlined``): graph inputs
      and outputs get batch ``n``, value_info is cleared and :class:`InferShapes`
      derives every other shape (QONNX's Quant'ed weights have value_info of their own
      whose leading 1 is no batch dimension, so they cannot simply be resized).
    * Models with HW layers (``hw_layers``, ``hw_folded``, the RTL graphs of
      :mod:`hw.rtlsim`): shape inference cannot be relied on. DuplicateStreams'
      shape-compatible op has one output (its other outputs come back unspecified:
      "Found unspecified tensor shapes"), StreamingSplit cannot infer from an unknown
      input shape, and ElementwiseBinary layers (ElementwiseAdd) compare their
      ``lhs_shape``/``rhs_shape`` attributes, fixed at batch 1, with the tensors
      (``FINNInternalError: Input shape mismatch``). So the batch-1 shapes are kept and
      their leading 1 set to ``n``: graph inputs/outputs and every value_info that is
      not an initializer's; on every HW layer ``numInputVectors``' leading 1 and the
      leading 1 of ``lhs_shape``/``rhs_shape``/``out_shape`` (an operand that is an
      initializer keeps its shape) become ``n``, and ``exec_mode`` is ``cppsim`` (RTL
      layers: their Python model). An output the batch-1 model has no shape for is
      taken from its layer's ``get_normal_output_shape``; only if something is still
      unspecified does InferShapes run.

    Raises ValueError naming the tensors whose shape stays unknown.
    """
    m = ModelWrapper(model.model.__deepcopy__())
    if not any(is_hw_node(node) for node in m.graph.node):
        for t in [i.name for i in m.graph.input] + [o.name for o in m.graph.output]:
            m.set_tensor_shape(t, [n] + m.get_tensor_shape(t)[1:])
        while len(m.graph.value_info):
            m.graph.value_info.pop()
        return m.transform(InferShapes())
    consts = {i.name for i in m.graph.initializer}
    for vi in list(m.graph.input) + list(m.graph.output) + list(m.graph.value_info):
        dims = vi.type.tensor_type.shape.dim
        if vi.name not in consts and len(dims) > 1 and dims[0].dim_value == 1:
            dims[0].dim_value = n
    for node in m.graph.node:
        if not is_hw_node(node):
            continue
        inst = getCustomOp(node)
        attrs = inst.get_nodeattr_types()
        if "exec_mode" in attrs:
            inst.set_nodeattr("exec_mode", "cppsim")
        if "numInputVectors" in attrs:
            vecs = [int(v) for v in inst.get_nodeattr("numInputVectors")]
            inst.set_nodeattr("numInputVectors", [n] + vecs[1:] if vecs and vecs[0] == 1
                              else vecs)
        for k, attr in enumerate(SHAPE_ATTRS):
            if attr not in attrs:
                continue
            operand = node.input[k] if k < 2 and k < len(node.input) else None
            if operand is not None and operand in consts:
                continue
            inst.set_nodeattr(attr, _batch_dims(list(inst.get_nodeattr(attr)), n))
    for node in m.graph.node:
        if is_hw_node(node):
            for k, out in enumerate(node.output):
                if m.get_tensor_shape(out) is None:
                    m.set_tensor_shape(out, [int(d) for d in
                                             getCustomOp(node).get_normal_output_shape(k)])
    if not m.check_all_tensor_shapes_specified():
        m = m.transform(InferShapes())
    missing = sorted({t for node in m.graph.node for t in [*node.input, *node.output]
                      if t and m.get_tensor_shape(t) is None})
    if missing:
        raise ValueError(f"with_batch({n}): no shape for tensors {missing}")
    # execute_onnx wants nodes in topological order; the InferShapes transform used to sort
    # as a side effect (qonnx's cleanup), so a graph stored in another order still runs.
    return m.transform(SortGraph(), cleanup=False)


def to_codes(values: np.ndarray, scale: float, stage: str) -> np.ndarray:
    """Dequantized outputs -> integer codes; refuses values that are not exact multiples."""
    codes = np.asarray(values, np.float64) / scale
    exact = codes == np.round(codes)
    if not exact.all():
        raise AssertionError(f"{stage}: {int((~exact).sum())} outputs are off the output grid")
    return codes.astype(np.int64)


def output_scales(model: ModelWrapper, scales: dict[str, float]) -> dict[str, float]:
    """Per graph output, the divisor from its values to codes: 1 where the model already
    emits codes (the output scale moved to the host), else the contract's scale."""
    on_host = host_output_scales(model)
    return {o: 1.0 if o in on_host else scales.get(o, 1.0) for o in contract_io_names(model)[1]}


def execute_codes(model_path: Path, inputs: dict[str, np.ndarray] | np.ndarray,
                  scales: dict[str, float] | float, stage: str,
                  batch: int = 4096) -> dict[str, np.ndarray] | np.ndarray:
    """Integer output codes of an ONNX model for integer input codes, tensor by contract
    name: ``{input: (N, F)}`` -> ``{output: (N, G)}`` (an array in and out for a model with
    one input and one output). ``scales``: the contract's output scales (values -> codes),
    in output order. FINN renames and reorders graph tensors; contract names map to them
    through :func:`hw.steps.contract_io_names`."""
    model = ModelWrapper(str(model_path))
    in_names, out_names = contract_io_names(model)
    single = not isinstance(inputs, dict)
    named = dict(zip(in_names, [inputs], strict=True)) if single else inputs
    if len(named) != len(in_names):
        raise KeyError(f"{stage}: {len(named)} input tensors given, the model has "
                       f"{len(in_names)} ({in_names})")
    named = dict(zip(in_names, named.values(), strict=True))
    if not isinstance(scales, dict):
        scales = {out_names[0]: float(scales)}
    if len(scales) != len(out_names):
        raise KeyError(f"{stage}: {len(scales)} output scales for {len(out_names)} outputs")
    contract_out = list(scales)
    div = output_scales(model, dict(zip(out_names, scales.values(), strict=True)))
    n = len(next(iter(named.values())))
    outs: dict[str, list[np.ndarray]] = {o: [] for o in out_names}
    cache: dict[int, ModelWrapper] = {}
    for i in tqdm(range(0, n, batch), desc=f"verify {stage}", unit="batch", leave=False):
        k = min(batch, n - i)
        if k not in cache:
            cache[k] = with_batch(model, k)
        feed = {name: named[name][i:i + k].astype(np.float32).reshape(
            cache[k].get_tensor_shape(name)) for name in in_names}
        res = execute_onnx(cache[k], feed)
        for o in out_names:
            outs[o].append(to_codes(res[o].reshape(k, -1), div[o], stage))
    result = {c: np.concatenate(outs[o]) for c, o in zip(contract_out, out_names, strict=True)}
    return result[contract_out[0]] if single and len(out_names) == 1 else result


def compare(stage: str, got: dict[str, np.ndarray] | np.ndarray,
            expected: dict[str, np.ndarray] | np.ndarray) -> dict[str, int]:
    """Vector-level mismatch count: a vector mismatches if any code of any output differs."""
    bad = mismatching_vectors(stage, got, expected)
    return {"vectors": int(len(bad)), "mismatches": int(bad.sum())}


def verify_stages(stage_models: dict[str, Path], inputs: dict[str, np.ndarray] | np.ndarray,
                  expected: dict[str, np.ndarray] | np.ndarray,
                  scales: dict[str, float] | float) -> dict[str, dict[str, int]]:
    """Run every stage model on the golden inputs and count mismatching vectors."""
    table = {}
    for stage, path in stage_models.items():
        got = execute_codes(path, inputs, scales, stage)
        table[stage] = compare(stage, got, expected)
    return table


def format_table(table: dict[str, Any]) -> str:
    """The verification table as printed by ``make hw``/``make main``: one row per stage
    (vectors), then one per Thresholding layer of the exhaustive proof (integer points)."""
    lines = [f"{'stage':<16}{'vectors':>10}{'mismatches':>12}  result", "-" * 46]
    for stage, r in table.items():
        if stage == "exhaustive":
            continue
        ok = "PASS" if r["mismatches"] == 0 else "FAIL"
        lines.append(f"{stage:<16}{r['vectors']:>10}{r['mismatches']:>12}  {ok}")
    proof = table.get("exhaustive")
    if proof:
        lines += ["", f"{'threshold layer':<22}{'points':>10}{'mismatches':>12}  "
                      "RTL memory  result", "-" * 68]
        for layer, r in proof.items():
            mem = r.get("rtl_memory") or {}
            mem_txt = (f"{mem.get('mismatches')} bad" if mem.get("files") else "not checked")
            ok = ("PASS" if r.get("mismatches") == 0 and not mem.get("mismatches")
                  and r.get("exhaustive") else "FAIL" if r.get("mismatches")
                  or mem.get("mismatches") else "NOT PROVEN")
            lines.append(f"{layer:<22}{r['points']:>10}{str(r.get('mismatches')):>12}  "
                         f"{mem_txt:<10}  {ok}")
    return "\n".join(lines)
