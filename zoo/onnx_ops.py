"""qonnx custom ops of the model zoo (ONNX domain ``zoo.onnx_ops``: qonnx finds an op by
importing its domain as a module and taking the class named like the op).

:class:`IndexLookup`: ``out[n, c] = table[c, index[n, c]]`` (a table (1, L) is shared by
all channels); index (N, C) float holding integers in [0, L), table (C, L) an
initializer of integers, output (N, C) float integers of datatype ``out_dtype``. It is
what :class:`zoo.quantizers.LearnedQuantizer` exports after its index MultiThreshold,
and what ``hw.transforms.lookup`` turns into the hardware ``CodebookLookup``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import NodeProto, helper
from qonnx.core.datatype import DataType
from qonnx.custom_op.base import CustomOp

__all__ = ["IndexLookup"]


class IndexLookup(CustomOp):
    """Per-channel table lookup by integer index (see the module docstring)."""

    def get_nodeattr_types(self) -> dict[str, tuple[str, bool, Any]]:
        return {"out_dtype": ("s", True, "")}

    def make_shape_compatible_op(self, model: Any) -> NodeProto:
        # Same shape as the index: an elementwise stand-in for shape inference.
        return helper.make_node("Relu", [self.onnx_node.input[0]], [self.onnx_node.output[0]])

    def infer_node_datatype(self, model: Any) -> None:
        model.set_tensor_datatype(self.onnx_node.output[0],
                                  DataType[self.get_nodeattr("out_dtype")])

    def execute_node(self, context: dict[str, np.ndarray], graph: Any) -> None:
        node = self.onnx_node
        idx = np.asarray(context[node.input[0]])
        table = np.asarray(context[node.input[1]], dtype=np.float32)
        if idx.ndim != 2 or table.ndim != 2:
            raise ValueError(f"{node.name}: index (N, C) and table (C, L) expected, got "
                             f"{idx.shape} and {table.shape}")
        if not np.all(idx == np.round(idx)) or idx.min() < 0 or idx.max() >= table.shape[1]:
            raise ValueError(f"{node.name}: indices must be integers in [0, {table.shape[1]})")
        t = np.broadcast_to(table, (idx.shape[1], table.shape[1]))
        out = t[np.arange(idx.shape[1])[None, :], idx.astype(np.int64)]
        context[node.output[0]] = out.astype(np.float32)

    def verify_node(self) -> list[str]:
        return [] if len(self.onnx_node.input) == 2 else ["IndexLookup takes (index, table)"]
