"""Export a deployable network to QONNX whose graph inputs are the integer input codes.

Brevitas exports ``x -> Quant(scale=2^k, INTb) -> ...`` per input. The accelerator
consumes the integer codes, so each input Quant is replaced by ``codes -> Mul(2^k)`` and
the graph input is annotated with its integer datatype (INTb). For in-range codes this
is the same function (Quant of an on-grid value is the identity); out-of-range data is
the host's job (saturated there, by the I/O spec's rule).

A codebook input (``zoo.network.CodebookInput``: indices into per-feature levels) feeds
its IndexLookup directly; the graph input is annotated with the index's UINT type.

Graph inputs and outputs carry the contract's names (``model.iospec()``), in its order.
A codebook output (``zoo.network.CodebookHead``, and ``LevelsHead``: a quantizer
whose scale is not a power of two) is exported as its fine quantizer followed by a
``MultiThreshold`` at the codebook's boundaries, which emits the index. Every
MultiThreshold export writes carries its provenance (``zoo.quantizers.PROVENANCE_ATTR``):
``codebook_index`` here, ``learned_boundaries`` for a ``LearnedQuantizer`` (its own
``symbolic``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from brevitas.export import export_qonnx
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.cleanup import cleanup_model
from torch import nn

from contract.export_files import IOSPEC
from contract.iospec import IOSpec
from zoo.network import CodebookHead, LevelsHead
from zoo.quantizers import CODEBOOK_INDEX, LOOKUP_DOMAIN, LOOKUP_OP, set_provenance


def input_quant_to_codes(model: ModelWrapper, inp: str) -> tuple[float, DataType]:
    """Replace the Quant node that graph input ``inp`` feeds by a Mul with its scale;
    annotate the input's INT type. Returns (scale, datatype)."""
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
    if attrs.get("narrow", 0):
        raise ValueError(f"{q.name}: narrow-range input codes are not supported")
    dtype = DataType[f"INT{bits}"]
    model.set_initializer(q.input[1], np.asarray(s, dtype=np.float32))
    name = "InputScale" if len(model.graph.input) == 1 else f"InputScale_{inp}"
    mul = helper.make_node("Mul", [inp, q.input[1]], [q.output[0]], name=name)
    idx = list(model.graph.node).index(q)
    model.graph.node.remove(q)
    model.graph.node.insert(idx, mul)
    model.set_tensor_datatype(inp, dtype)
    return s, dtype


def index_input_to_codes(model: ModelWrapper, inp: str, datatype: str) -> DataType:
    """A codebook input (``zoo.network.CodebookInput``): graph input ``inp`` must feed
    exactly one IndexLookup (the index is already the code); annotate its UINT type."""
    consumers = model.find_consumers(inp)
    if len(consumers) != 1 or (consumers[0].op_type, consumers[0].domain) != (
            LOOKUP_OP, LOOKUP_DOMAIN):
        raise ValueError(f"codebook input {inp!r} must feed exactly one {LOOKUP_OP}; found "
                         f"{[n.op_type for n in consumers]}")
    dtype = DataType[datatype]
    model.set_tensor_datatype(inp, dtype)
    return dtype


class _ExportView(nn.Module):
    """What is traced: ``export_forward`` where the network has one, else ``forward``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, *xs: torch.Tensor) -> Any:
        if hasattr(self.net, "export_forward"):
            out = tuple(getattr(y, "value", y) for y in self.net.export_forward(*xs))
            return out[0] if len(out) == 1 else out
        return self.net(*xs)


INDEX_HEADS = (CodebookHead, LevelsHead)


def _append_codebook(model: ModelWrapper, out: str, head: CodebookHead | LevelsHead,
                     features: int, index_type: str) -> None:
    """``out`` (the fine quantizer's values) -> MultiThreshold(boundaries) -> index ``out``,
    provenance ``codebook_index`` (thresholds strictly between the quantizer's levels)."""
    fine = f"{out}_fine"
    model.rename_tensor(out, fine)
    thr = np.tile(np.asarray(head.thresholds(), np.float32), (features, 1))
    tname = f"{out}_codebook_thresholds"
    model.set_initializer(tname, thr)
    mt = helper.make_node("MultiThreshold", [fine, tname], [out], name=f"Codebook_{out}",
                          domain="qonnx.custom_op.general",
                          out_dtype=index_type, out_scale=1.0, out_bias=0.0,
                          data_layout="NC")
    set_provenance(mt, CODEBOOK_INDEX)
    model.graph.node.append(mt)
    model.graph.output[[o.name for o in model.graph.output].index(fine)].name = out


def settle_runtime_scales(model: nn.Module) -> int:
    """Freeze every activation scale that is still collecting statistics (Brevitas'
    ParameterFromRuntimeStatsScaling before its collect_stats_steps training steps, 300 by
    default): eval mode then reads the running buffer, but QONNX export reads the
    parameter, so the exported model computes other codes than the Brevitas model it came
    from (measured: 4 calibration steps, 2,483 of 9,000 codes differ; a checkpoint round
    trip does the same freezing, which is why trained runs were exact). Returns how many
    scales were frozen (the value eval mode was already using)."""
    from brevitas.core.scaling.standalone import ParameterFromRuntimeStatsScaling

    n = 0
    for m in model.modules():
        if isinstance(m, ParameterFromRuntimeStatsScaling) and \
                m.counter <= m.collect_stats_steps:
            m.init_scale()
            n += 1
    return n


def export_codes_model(model: nn.Module, path: Path) -> ModelWrapper:
    """Export ``model`` (the zoo.network contract) to a QONNX file at ``path`` with
    integer-code graph inputs, both named as in ``model.iospec()``, and the I/O spec
    beside it (``iospec.json``)."""
    spec: IOSpec = model.iospec()
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = path.with_suffix(".brevitas.onnx")
    model.eval()
    settle_runtime_scales(model)
    args = tuple(torch.zeros(1, t.features) for t in spec.inputs)
    # TorchScript exporter: the dynamo path fails on QuantTensor (.value on FakeTensor).
    export_qonnx(_ExportView(model) if hasattr(model, "export_forward") else model,
                 input_t=args if len(args) > 1 else args[0], export_path=str(raw),
                 dynamo=False)
    # brevitas 0.13.4's export_qonnx leaves the network in training mode: every later use
    # (golden codes, reference checks) would then update BatchNorm statistics and compute
    # with batch statistics (measured: 95% of a BatchNorm net's codes off).
    model.eval()
    mw = cleanup_model(ModelWrapper(str(raw)))
    for graph_in, t in zip(list(mw.graph.input), spec.inputs, strict=True):
        if t.codebook is not None:
            index_input_to_codes(mw, graph_in.name, t.datatype)
        else:
            input_quant_to_codes(mw, graph_in.name)
        graph_in.type.tensor_type.elem_type = TensorProto.FLOAT
    mw = cleanup_model(mw)  # generic node and tensor names, as before
    # Then the contract's names on the graph's inputs and outputs (cleanup would undo them).
    for graph_in, t in zip(list(mw.graph.input), spec.inputs, strict=True):
        if graph_in.name != t.name:
            mw.rename_tensor(graph_in.name, t.name)
    heads = dict(getattr(model, "heads", {}).items()) if hasattr(model, "heads") else {}
    for graph_out, t in zip(list(mw.graph.output), spec.outputs, strict=True):
        if graph_out.name != t.name:
            mw.rename_tensor(graph_out.name, t.name)
        if isinstance(heads.get(t.name), INDEX_HEADS):
            _append_codebook(mw, t.name, heads[t.name], t.features, t.datatype)
    mw = mw.transform(InferShapes())
    mw.save(str(path))
    spec.save(path.parent / IOSPEC)
    raw.unlink()
    return mw
