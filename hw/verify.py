"""Bit-exact verification of every stage: integer output codes compared with ``==``.

Stages: ``brevitas_cpu`` (the reference, from golden.npz), ``qonnx`` (QONNX execution
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
from qonnx.transformation.infer_shapes import InferShapes
from tqdm import tqdm

from hw.steps import HOST_OUTPUT_SCALE


def with_batch(model: ModelWrapper, n: int) -> ModelWrapper:
    """A copy of ``model`` whose first dimension is ``n`` (one execution for a whole batch)."""
    m = ModelWrapper(model.model.__deepcopy__())
    for t in (m.graph.input[0].name, m.graph.output[0].name):
        m.set_tensor_shape(t, [n] + m.get_tensor_shape(t)[1:])
    while len(m.graph.value_info):
        m.graph.value_info.pop()
    for node in m.graph.node:
        if node.domain.startswith("finn.custom_op.fpgadataflow"):
            inst = getCustomOp(node)
            # FINN's "cppsim" exec_mode of RTL layers runs the layer's Python model.
            inst.set_nodeattr("exec_mode", "cppsim")
            if "numInputVectors" in inst.get_nodeattr_types():
                inst.set_nodeattr("numInputVectors", [n])
    return m.transform(InferShapes())


def to_codes(values: np.ndarray, scale: float, stage: str) -> np.ndarray:
    """Dequantized outputs -> integer codes; refuses values that are not exact multiples."""
    codes = np.asarray(values, np.float64) / scale
    exact = codes == np.round(codes)
    if not exact.all():
        raise AssertionError(f"{stage}: {int((~exact).sum())} outputs are off the output grid")
    return codes.astype(np.int64)


def execute_codes(model_path: Path, inputs: np.ndarray, output_scale: float,
                  stage: str, batch: int = 4096) -> np.ndarray:
    """Integer output codes of an ONNX model for integer input codes."""
    model = ModelWrapper(str(model_path))
    on_host = model.get_metadata_prop(HOST_OUTPUT_SCALE)
    scale = 1.0 if on_host is not None else output_scale
    iname, oname = model.graph.input[0].name, model.graph.output[0].name
    outs = []
    cache: dict[int, ModelWrapper] = {}
    for i in tqdm(range(0, len(inputs), batch), desc=f"verify {stage}", unit="batch",
                  leave=False):
        x = inputs[i:i + batch].astype(np.float32)
        if len(x) not in cache:
            cache[len(x)] = with_batch(model, len(x))
        y = execute_onnx(cache[len(x)], {iname: x})[oname]
        outs.append(to_codes(y, scale, stage))
    return np.concatenate(outs)


def compare(stage: str, got: np.ndarray, expected: np.ndarray) -> dict[str, int]:
    """Vector-level mismatch count (a vector mismatches if any of its codes differs)."""
    if got.shape != expected.shape:
        raise AssertionError(f"{stage}: output shape {got.shape} != expected {expected.shape}")
    return {"vectors": int(len(expected)),
            "mismatches": int(np.any(got != expected, axis=1).sum())}


def verify_stages(stage_models: dict[str, Path], inputs: np.ndarray, expected: np.ndarray,
                  output_scale: float) -> dict[str, dict[str, int]]:
    """Run every stage model on the golden inputs and count mismatching vectors."""
    table = {}
    for stage, path in stage_models.items():
        got = execute_codes(path, inputs, output_scale, stage)
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
