"""IndexLookup (the model zoo's exported per-channel table lookup) -> the HW ``CodebookLookup``.

A learned non-uniform quantizer (``zoo.quantizers.LearnedQuantizer``) exports as
``MultiThreshold (index) -> IndexLookup(index, table) -> Mul(2**k)``. After streamlining
the Mul has moved on (into the next layer's thresholds), the MultiThreshold has become a
Thresholding layer emitting the index stream (N, C), and the lookup is left between them;
this transformation makes it the hardware op of ``hw.custom_ops.codebook_lookup``
(node contract: input[0] index stream (N, C) of an unsigned integer type, input[1] an
initializer integer table (C, L) or (1, L), ``out[n, c] = table[c, idx[n, c]]``).
"""

from __future__ import annotations

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_datatypes import InferDataTypes

from hw.errors import UnsupportedModelError
from zoo.quantizers import LOOKUP_DOMAIN, LOOKUP_OP


class InferCodebookLookup(Transformation):
    """Every ``IndexLookup`` on an unsigned integer index stream -> ``CodebookLookup``.

    Refuses, by node name, a lookup whose table is not an integer initializer of shape
    (C, L) or (1, L), or whose index is not an unsigned integer stream; the table's
    levels must cover every index the stream type can carry only up to the hardware's
    saturation (an index >= L reads the last level, which the MultiThreshold before it
    can never emit: it has L - 1 thresholds)."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        from hw.custom_ops.codebook_lookup import make_codebook_lookup_node

        changed = False
        for i, node in enumerate(list(model.graph.node)):
            if node.op_type != LOOKUP_OP or node.domain != LOOKUP_DOMAIN:
                continue
            table = model.get_initializer(node.input[1])
            if table is None:
                raise UnsupportedModelError(node.name, node.op_type,
                                            "the lookup table must be a constant initializer")
            table = np.asarray(table)
            shape = model.get_tensor_shape(node.input[0])
            channels = int(shape[-1])
            if table.ndim != 2 or table.shape[0] not in (1, channels) or \
                    not np.array_equal(table, np.round(table)):
                raise UnsupportedModelError(
                    node.name, node.op_type,
                    f"table {table.shape} must be integers of shape (C={channels}, L) or (1, L)")
            idt = model.get_tensor_datatype(node.input[0])
            if not idt.is_integer() or idt.signed():
                raise UnsupportedModelError(
                    node.name, node.op_type,
                    f"its index input is {idt.name}, not an unsigned integer stream (the "
                    "index MultiThreshold before it must have become a Thresholding layer)")
            hw = make_codebook_lookup_node(
                node.input[0], node.input[1], node.output[0], table, channels, idt.name,
                num_input_vectors=list(shape[:-1]), name=node.name.replace(
                    LOOKUP_OP, "CodebookLookup") or None)
            model.graph.node.remove(node)
            model.graph.node.insert(i, hw)
            changed = True
        if changed:
            model = model.transform(InferDataTypes())
        return model, False
