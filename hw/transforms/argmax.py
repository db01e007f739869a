"""A class-index output: ONNX ``ArgMax`` -> ``TopK(k=1)`` indices, which FINN maps.

``torch.argmax`` exports as ``ArgMax``; FINN's ``InferLabelSelectLayer`` converts only
``TopK`` (values output unread, integer input) into its ``LabelSelect`` layer. With
``k = 1``, ``largest = 1``, ``sorted = 1`` TopK's index is the argmax, and on ties both
take the lowest index: ONNX specifies it for TopK ("if two elements are equal, the one
with the lower index appears first") and for ArgMax with ``select_last_index = 0``, as
``torch.argmax`` and ``np.argmax`` do. ``select_last_index = 1`` (the highest index on
ties) is refused by name.
"""

from __future__ import annotations

import numpy as np
from onnx import NodeProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes

from hw.errors import UnsupportedModelError


def _attr(node: NodeProto, name: str, default: int) -> int:
    for a in node.attribute:
        if a.name == name:
            return int(helper.get_attribute_value(a))
    return default


def index_datatype(labels: int) -> DataType:
    """The narrowest unsigned type for indices 0 .. labels-1 (FINN's LabelSelect's)."""
    return DataType[f"UINT{max(1, int(labels - 1).bit_length())}"]


class ArgMaxToTopK(Transformation):
    """``ArgMax(x, axis=last)``: (N, L) -> (N, 1) (keepdims) or (N,) becomes
    ``TopK(x, k=[1], axis=-1)`` indices (N, 1), annotated UINT(ceil(log2 L)).

    keepdims = 0: a graph output takes TopK's (N, 1) shape (the contract's (N, 1)
    codes); inside the graph a Reshape back to (N,) follows.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for node in list(model.graph.node):
            if node.op_type != "ArgMax":
                continue
            shape = model.get_tensor_shape(node.input[0])
            axis = _attr(node, "axis", 0)
            if shape is None or axis not in (-1, len(shape) - 1):
                raise UnsupportedModelError(
                    node.name, "ArgMax", f"axis {axis} of a {shape} input: FINN's "
                    "LabelSelect selects along the last axis only")
            if _attr(node, "select_last_index", 0):
                raise UnsupportedModelError(
                    node.name, "ArgMax", "select_last_index=1 (highest index on ties); "
                    "TopK and FINN's LabelSelect give the lowest index on ties")
            labels = int(shape[-1])
            k = model.make_new_valueinfo_name()
            model.set_initializer(k, np.asarray([1], np.int64))
            values = model.make_new_valueinfo_name()
            out = node.output[0]
            is_output = out in {o.name for o in model.graph.output}
            keep = _attr(node, "keepdims", 1)
            idx = out if keep or is_output else model.make_new_valueinfo_name()
            new = [helper.make_node("TopK", [node.input[0], k], [values, idx], axis=-1,
                                    largest=1, sorted=1, name=f"TopK_{node.name}")]
            if not keep and not is_output:
                s = model.make_new_valueinfo_name()
                model.set_initializer(s, np.asarray(shape[:-1], np.int64))
                new.append(helper.make_node("Reshape", [idx, s], [out],
                                            name=f"Reshape_{node.name}"))
            i = list(model.graph.node).index(node)
            model.graph.node.remove(node)
            for j, n in enumerate(new):
                model.graph.node.insert(i + j, n)
            model.set_tensor_shape(idx, list(shape[:-1]) + [1])
            if is_output:
                model.set_tensor_shape(out, list(shape[:-1]) + [1])
            model.set_tensor_datatype(idx, index_datatype(labels))
            model = model.transform(InferShapes())
            # InferDataTypes keeps an annotation it has no rule for (TopK): ours stays.
            return model.transform(InferDataTypes()), True
        return model, False


class AbsorbMonotonicIntoTopK(Transformation):
    """``TopK(x * s)`` / ``TopK(x + b)`` -> ``TopK(x)`` for integer x, when the indices
    cannot change: s a positive power of two and b an integer scalar, and the Mul/Add
    read by the TopK alone (x (N, L)).

    FINN's ``AbsorbScalarMulAddIntoTopK`` (run by ``step_streamline``) removes any
    positive scalar Mul or scalar Add, also one whose output something else reads (that
    reader is left without a producer), and also where float rounding of ``x * s`` merges
    two codes into a tie the reference has (s not a power of two): this one is exact.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for topk in model.graph.node:
            if topk.op_type != "TopK":
                continue
            prod = model.find_producer(topk.input[0])
            if prod is None or prod.op_type not in ("Mul", "Add") or len(prod.input) != 2:
                continue
            p = model.get_initializer(prod.input[1])
            dt = model.get_tensor_datatype(prod.input[0])
            if p is None or p.size != 1 or not dt.is_integer():
                continue
            if len(model.find_consumers(prod.output[0]) or []) != 1 or \
                    prod.output[0] in {o.name for o in model.graph.output}:
                continue
            v = float(np.asarray(p).item())
            if prod.op_type == "Mul":
                if not (v > 0 and np.log2(v) == np.round(np.log2(v))):
                    continue
            elif not (v == np.round(v) and max(abs(dt.min()), abs(dt.max())) + abs(v) < 2**24):
                continue
            topk.input[0] = prod.input[0]
            model.graph.node.remove(prod)
            model = model.transform(InferShapes())
            return model.transform(InferDataTypes()), True
        return model, False


class NarrowLabelSelectOutput(Transformation):
    """FINN's LabelSelect rounds its index type up to whole bytes ("in case this is the
    last node", labelselect.py); our stitcher pads streams to bytes itself, and the I/O
    spec's class index is UINT(ceil(log2 L)). Set the narrowest type (N, K) indices."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        from qonnx.custom_op.registry import getCustomOp

        for node in model.get_nodes_by_op_type("LabelSelect"):
            inst = getCustomOp(node)
            dt = index_datatype(int(inst.get_nodeattr("Labels")))
            inst.set_nodeattr("outputDataType", dt.name)
            model.set_tensor_datatype(node.output[0], dt)
        return model, False
