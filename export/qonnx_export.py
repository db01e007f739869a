"""Export a trained QuantMLP to QONNX whose graph input is the integer input code.

Brevitas exports ``x -> Quant(scale=2^k, INTb) -> ...``. The accelerator consumes the
integer codes, so the input Quant is replaced by ``codes -> Mul(2^k)`` and the graph
input is annotated with its integer datatype (INTb). For in-range codes this is the
same function (Quant of an on-grid value is the identity); out-of-range data is the
host's job (saturated there, see host conversion in the manifest).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from brevitas.export import export_qonnx
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.cleanup import cleanup_model

from train.models import QuantMLP


def input_quant_to_codes(model: ModelWrapper) -> tuple[ModelWrapper, float, DataType]:
    """Replace the graph-input Quant node by a Mul with its scale; annotate the input INT type."""
    inp = model.graph.input[0].name
    consumers = model.find_consumers(inp)
    if len(consumers) != 1 or consumers[0].op_type != "Quant":
        raise ValueError(
            f"graph input {inp!r} must feed exactly one Quant node (the input quantizer); "
            f"found {[n.op_type for n in consumers]}"
        )
    q = consumers[0]
    scale = np.asarray(model.get_initializer(q.input[1]), dtype=np.float64)
    zero = np.asarray(model.get_initializer(q.input[2]))
    bits = int(np.asarray(model.get_initializer(q.input[3])).item())
    attrs = {a.name: helper.get_attribute_value(a) for a in q.attribute}
    if scale.size != 1 or np.any(zero != 0) or not attrs.get("signed", 1):
        raise ValueError(f"{q.name}: input quantizer must be signed, per-tensor, zero-point 0")
    s = float(scale.item())
    if np.log2(s) != np.round(np.log2(s)):
        raise ValueError(f"{q.name}: input scale {s} is not a power of two")
    dtype = DataType[f"INT{bits}"]
    if attrs.get("narrow", 0):
        raise ValueError(f"{q.name}: narrow-range input codes are not supported")
    model.set_initializer(q.input[1], np.asarray(s, dtype=np.float32))
    mul = helper.make_node("Mul", [inp, q.input[1]], [q.output[0]], name="InputScale")
    idx = list(model.graph.node).index(q)
    model.graph.node.remove(q)
    model.graph.node.insert(idx, mul)
    model.set_tensor_datatype(inp, dtype)
    model = model.transform(InferShapes())
    return model, s, dtype


def export_codes_model(model: QuantMLP, in_features: int, path: Path) -> ModelWrapper:
    """Export ``model`` to a QONNX file at ``path`` with an integer-code graph input."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = path.with_suffix(".brevitas.onnx")
    model.eval()
    # TorchScript exporter: the dynamo path fails on QuantTensor (.value on FakeTensor).
    export_qonnx(model, input_t=torch.zeros(1, in_features), export_path=str(raw), dynamo=False)
    mw = cleanup_model(ModelWrapper(str(raw)))
    mw, _, _ = input_quant_to_codes(mw)
    mw.graph.input[0].type.tensor_type.elem_type = TensorProto.FLOAT
    mw = cleanup_model(mw)
    mw.save(str(path))
    raw.unlink()
    return mw
