"""Streamlining across joins and forks (residual adds, branches, concats).

FINN's default ``Streamline()`` does not move scales past joins and forks. FINN 1.6.1
has transformations that do, but each breaks on graphs of ours (measured with
finn-plus 1.6.1; ``tests/test_join_transforms.py`` reproduces each):

- ``MoveLinearPastEltwiseAdd`` rewires the Add's first input tensor as the Add's new
  output without checking that the tensor has no other consumer: on a residual block
  whose skip input also feeds the branch (``x*s -> {MatMul, Add}``) the MatMul then reads
  its own descendant, a cycle (``CircularDependencyError`` from the next sort).
- ``MoveAffinePastJoinConcat`` (``MoveMulPastJoinConcat``, ``MoveAddPastJoinConcat``)
  tests ``len(param.shape) < axis`` where it means ``<=``: a 1-D per-channel parameter
  (shape (C,), how Brevitas biases come out) on a concat over axis 1 indexes
  ``shape[1]``, an ``IndexError``. Different *scalar* scales per branch are not handled
  at all (it only moves identical scalars or full-rank per-channel parameters).
- ``MoveOpPastFork`` (``MoveLinearPastFork``) claims to "restrict to operations with
  constant parameters" but does not: an Add of two dynamic tensors whose output forks is
  copied with its second input dropped, a one-input Add.

The transformations here are our guarded replacements; nothing is swallowed.
"""

from __future__ import annotations

import numpy as np
from finn.builder.build_dataflow_config import DataflowBuildConfig
from finn.builder.build_dataflow_steps import step_streamline
from finn.transformation.streamline import Streamline
from onnx import NodeProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import SortGraph
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import get_by_name

from hw.errors import UnsupportedModelError
from hw.transforms.argmax import AbsorbMonotonicIntoTopK, ArgMaxToTopK

LINEAR_OPS = ("Mul", "Add")


def _const_param(model: ModelWrapper, node: NodeProto | None) -> np.ndarray | None:
    """The constant second input of a two-input Mul/Add, or None (dynamic, or another op)."""
    if node is None or node.op_type not in LINEAR_OPS or len(node.input) != 2:
        return None
    if model.get_initializer(node.input[0]) is not None:
        return None  # constant first operand: not a scale/bias on a dynamic tensor
    return model.get_initializer(node.input[1])


def _consumers(model: ModelWrapper, tensor: str) -> list[NodeProto]:
    return list(model.find_consumers(tensor) or [])


def _is_graph_output(model: ModelWrapper, tensor: str) -> bool:
    return tensor in {o.name for o in model.graph.output}


def _finish(model: ModelWrapper) -> ModelWrapper:
    model = model.transform(SortGraph(), make_deepcopy=False, cleanup=False)
    model = model.transform(InferShapes())
    return model.transform(InferDataTypes())


class MoveLinearPastForkGuarded(Transformation):
    """``y = x*c`` or ``x+c`` (c constant) read by k > 1 nodes -> k copies, one per reader.

    Each copy can then move on down its own branch (past a MatMul, into a MultiThreshold,
    past an eltwise Add). Unlike FINN's ``MoveOpPastFork``, an op whose second input is
    not a constant is left alone (FINN's drops that input), and a tensor that is also a
    graph output keeps its original node. Shapes: unchanged, y (N, C) per copy.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        modified = False
        for node in list(model.graph.node):
            param = _const_param(model, node)
            if param is None:
                continue
            readers = _consumers(model, node.output[0])
            if len(readers) < 2 or len({id(r) for r in readers}) < 2:
                continue
            keep_first = not _is_graph_output(model, node.output[0])
            for reader in readers[1:] if keep_first else readers:
                out = model.make_new_valueinfo_name()
                pname = model.make_new_valueinfo_name()
                model.set_initializer(pname, param.copy())
                copy = helper.make_node(node.op_type, [node.input[0], pname], [out],
                                        name=f"{node.name}_fork{len(model.graph.node)}")
                model.graph.node.append(copy)
                reader.input[:] = [out if t == node.output[0] else t for t in reader.input]
            modified = True
        if modified:
            model = _finish(model)
        return model, modified


class MoveLinearPastEltwiseAddGuarded(Transformation):
    """``(x*c) + (y*c) -> (x + y)*c`` and ``(x+a) + (y+b) -> (x + y) + (a+b)``.

    FINN's ``MoveLinearPastEltwiseAdd`` does the same rewiring but reuses the first
    producer's input tensor as the Add's output, which is only valid when the two linear
    ops have no other reader; on a residual block (the skip tensor ``x*c`` also feeds the
    branch) it builds a cycle. Here a pattern is rewritten only when each linear op's
    output is read by the Add alone and is no graph output (run
    :class:`MoveLinearPastForkGuarded` first to give every reader its own copy).
    Shapes: x, y (N, C); c and a, b scalar or broadcast along C.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for add in list(model.graph.node):
            if add.op_type != "Add" or len(add.input) != 2:
                continue
            if any(model.get_initializer(t) is not None for t in add.input):
                continue
            p0, p1 = (model.find_producer(t) for t in add.input)
            c0, c1 = _const_param(model, p0), _const_param(model, p1)
            if c0 is None or c1 is None or p0 is p1 or p0.op_type != p1.op_type:
                continue
            if any(len(_consumers(model, p.output[0])) != 1 or
                   _is_graph_output(model, p.output[0]) for p in (p0, p1)):
                continue  # FINN's version builds a cycle here (see module docstring)
            if p0.op_type == "Mul" and not (c0.shape == c1.shape and np.array_equal(c0, c1)):
                continue
            param = c0 if p0.op_type == "Mul" else (c0 + c1).astype(np.float32)
            # x (+) y first, then the one linear op on the sum.
            summed = model.make_new_valueinfo_name()
            pname = model.make_new_valueinfo_name()
            model.set_initializer(pname, param)
            out = add.output[0]
            add.input[:] = [p0.input[0], p1.input[0]]
            add.output[0] = summed
            lin = helper.make_node(p0.op_type, [summed, pname], [out], name=p0.name)
            model.graph.node.remove(p0)
            model.graph.node.remove(p1)
            model.graph.node.append(lin)
            return _finish(model), True
        return model, False


def _channel_vector(param: np.ndarray, rank: int, channels: int) -> np.ndarray | None:
    """A Mul/Add parameter as a (channels,) vector along the last axis of a rank-``rank``
    tensor, or None when it broadcasts along another axis."""
    p = np.asarray(param, np.float32)
    if p.ndim > rank or any(d != 1 for d in p.shape[:-1]):
        return None
    if p.size == 1:
        return np.full(channels, p.reshape(()), np.float32)
    if p.shape[-1] != channels:
        return None
    return p.reshape(channels)


class MoveAffinePastConcat(Transformation):
    """Concat of branches ``x_i * s_i + b_i`` -> ``Concat(x_i) * S + B`` (last axis).

    Each branch input may end in an optional Mul and an optional Add (in that order)
    with constant scalar or per-channel parameters: s_i, b_i differ between branches
    (EQ-Net's branches leave their accumulators on different scales). S and B
    concatenate them per channel (a branch without a Mul has s = 1, without an Add
    b = 0), so every element is computed by the same float32 ops as before: exact.
    A Mul/Add that is also read elsewhere stays for its other readers. When all s_i
    (b_i) are one scalar, S (B) stays a scalar, so FINN's scalar moves apply after.

    FINN's ``AbsorbMulIntoMultiThreshold`` absorbs a positive (C,) scale into a
    following MultiThreshold; a negative or zero channel scale it silently leaves in
    the graph as float, so this refuses it by name (UnsupportedModelError) when a
    MultiThreshold reads the Concat.

    Shapes: x_i (N, C_i) -> Concat (N, sum C_i) -> Mul/Add with (sum C_i,) parameters.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for cat in list(model.graph.node):
            if cat.op_type != "Concat" or len(cat.input) < 2:
                continue
            if self._rewrite(model, cat):
                return _finish(model), True
        return model, False

    def _rewrite(self, model: ModelWrapper, cat: NodeProto) -> bool:
        shape = model.get_tensor_shape(cat.output[0])
        axis_attr = get_by_name(cat.attribute, "axis")
        if shape is None or axis_attr is None or axis_attr.i not in (-1, len(shape) - 1):
            return False
        rank = len(shape)
        scales, biases, sources, dropped = [], [], [], []
        for t in cat.input:
            tshape = model.get_tensor_shape(t)
            if tshape is None or model.get_initializer(t) is not None:
                return False
            ch = int(tshape[-1])
            s, b, src = np.ones(ch, np.float32), np.zeros(ch, np.float32), t
            prod = model.find_producer(src)
            sole = True  # every op so far is read by the Concat's chain alone: removable
            for op in ("Add", "Mul"):  # walking back: the Add comes last on a branch
                param = _const_param(model, prod)
                if prod is None or prod.op_type != op or param is None:
                    continue
                vec = _channel_vector(param, rank, ch)
                if vec is None:
                    return False
                if op == "Add":
                    b = vec
                else:
                    s = vec
                sole = sole and len(_consumers(model, prod.output[0])) == 1 and \
                    not _is_graph_output(model, prod.output[0])
                if sole:
                    dropped.append(prod)
                src = prod.input[0]
                prod = model.find_producer(src)
            scales.append(s)
            biases.append(b)
            sources.append(src)
        if sources == list(cat.input):
            return False  # no branch carries a scale or a bias
        scale, bias = np.concatenate(scales), np.concatenate(biases)
        readers = _consumers(model, cat.output[0])
        if np.any(scale <= 0) and any(r.op_type == "MultiThreshold" for r in readers):
            bad = np.flatnonzero(scale <= 0).tolist()
            raise UnsupportedModelError(
                cat.name, "Concat",
                f"branch scales on channels {bad[:8]} are not positive: FINN's "
                "AbsorbMulIntoMultiThreshold absorbs positive scales only, so the "
                "MultiThreshold after this Concat would stay on float input")
        out = cat.output[0]
        cur = model.make_new_valueinfo_name()
        cat.input[:] = sources
        cat.output[0] = cur
        ops = []
        for op, vec, neutral in (("Mul", scale, 1.0), ("Add", bias, 0.0)):
            if np.all(vec == neutral):
                continue
            pname = model.make_new_valueinfo_name()
            model.set_initializer(pname, vec[:1].reshape(()) if np.all(vec == vec[0]) else vec)
            nxt = model.make_new_valueinfo_name()
            ops.append(helper.make_node(op, [cur, pname], [nxt], name=f"{cat.name}_{op}"))
            cur = nxt
        if ops:
            ops[-1].output[0] = out
        else:  # every branch had s = 1 and b = 0 (Mul by one, Add of zero): drop them
            cat.output[0] = out
        for node in dropped:
            model.graph.node.remove(node)
        model.graph.node.extend(ops)
        return True


# The join/fork moves of ours, in the order one round applies them.
JOIN_FORK_MOVES: tuple[type[Transformation], ...] = (
    MoveLinearPastForkGuarded, MoveLinearPastEltwiseAddGuarded, MoveAffinePastConcat)
# One round: a class-index output becomes TopK after FINN's step_streamline (whose own
# AbsorbScalarMulAddIntoTopK is unguarded, see hw.transforms.argmax), the join/fork
# moves, and the output scale before a TopK dropped where that is exact.
ROUND_MOVES: tuple[type[Transformation], ...] = (
    ArgMaxToTopK, *JOIN_FORK_MOVES, AbsorbMonotonicIntoTopK)


def streamline_joins(model: ModelWrapper, rounds: int = 8) -> ModelWrapper:
    """Our moves (:data:`ROUND_MOVES`) and FINN's ``Streamline()`` in rounds until
    nothing changes."""
    for _ in range(rounds):
        before = model.model.SerializeToString()
        for move in ROUND_MOVES:
            model = model.transform(move())
        model = model.transform(Streamline())
        if model.model.SerializeToString() == before:
            break
    return model


def streamline_across_joins(model: ModelWrapper, cfg: DataflowBuildConfig,
                            rounds: int = 8) -> ModelWrapper:
    """FINN's step_streamline, then :func:`streamline_joins` until nothing changes."""
    return streamline_joins(step_streamline(model, cfg), rounds)
