"""Integer thresholds by enumeration of the model's own function (``ExactThresholds``).

FINN folds what sits between a MatMul and a quantizer into thresholds with float
algebra: BatchNormToAffine, then ``(T - b) / a`` into the MultiThreshold. With a
BatchNorm (scale ``gamma / sqrt(var + eps)``, not a power of two) or a learned
quantizer's boundaries (any float32), that algebra rounds differently from the model,
which evaluates ``bn(acc * s + bias)`` in float32 and compares: an integer threshold can
come out one accumulator step off exactly at a level edge (the exhaustive proof,
``hw.threshold_proof``, sees it; vectors rarely do).

This transformation runs on the QONNX graph, before FINN's conversion. For a chain

    MatMul/Gemm (integer weights, power-of-two scales, integer input codes)
      -> Add / Mul / Sub / Div / BatchNormalization / Relu / Tanh / Sigmoid (constants)
      -> Quant, or a MultiThreshold with learned boundaries (an index)

it executes the chain (QONNX, the same nodes the verification runs) on every integer
accumulator value the layer can produce, per output channel, and reads the integer
threshold of every level off that staircase: ``t_v = min{acc : code(acc) >= v}``. The
chain is replaced by one MultiThreshold on the product ``acc * s_in * s_w`` at
``(t_v - 1/2) * s_in * s_w`` (exact: powers of two), provenance ``exact_integer``,
then ``Add(lowest code)`` and ``Mul(quantizer scale)`` like FINN's own conversion of a
Quant (or the index directly). Streamlining then absorbs the power-of-two product scale
exactly, so the Thresholding layer holds ``t_v - 1/2`` -> ``t_v``.

A channel whose code *decreases* as the accumulator grows (a negative BatchNorm scale,
a decreasing activation) is refused by name: a MultiThreshold counts thresholds
crossed upwards; fold the sign into the layer's weights and bias before export.

Only chains FINN's algebra cannot do exactly are replaced (a BatchNormalization in the
chain, or learned boundaries at its end); uniform quantizers after power-of-two affine
maps keep FINN's conversion and ``hw.ties``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_shapes import InferShapes

from hw.activation_thresholds import quantizer_levels
from hw.errors import UnsupportedModelError
from zoo.quantizers import (
    EXACT_INTEGER,
    LEARNED_BOUNDARIES,
    LOOKUP_OP,
    get_provenance,
    set_provenance,
)

CHAIN_OPS = ("Add", "Mul", "Sub", "Div", "BatchNormalization", "Relu", "Tanh", "Sigmoid")
MAX_ENUMERATED = 2**24  # accumulator values x channels enumerated at most


def _attr(node, name: str, default: Any = None) -> Any:  # noqa: ANN001
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def code_range(model: ModelWrapper, tensor: str,
               consts: dict[str, np.ndarray]) -> tuple[int, int] | None:
    """(min, max) integer code of an activation tensor, or None when unknown: a graph
    input (its INT datatype), a Mul by a constant (the input scale), a Quant (its bits),
    an IndexLookup (its table)."""
    if tensor in [i.name for i in model.graph.input]:
        dt = model.get_tensor_datatype(tensor)
        return (int(dt.min()), int(dt.max())) if dt.is_integer() else None
    prod = model.find_producer(tensor)
    if prod is None:
        return None
    if prod.op_type == "Mul":
        inner = [i for i in prod.input if i not in consts]
        return code_range(model, inner[0], consts) if len(inner) == 1 else None
    if prod.op_type == "Quant":
        if prod.input[3] not in consts:
            return None
        bits = int(np.asarray(consts[prod.input[3]]).item())
        return quantizer_levels(bits, bool(_attr(prod, "signed", 1)),
                                bool(_attr(prod, "narrow", 0)))
    if prod.op_type == LOOKUP_OP and prod.input[1] in consts:
        t = np.asarray(consts[prod.input[1]])
        return int(t.min()), int(t.max())
    return None


def _chain(model: ModelWrapper, mm, consts: dict[str, np.ndarray]) -> list | None:  # noqa: ANN001
    """The nodes after ``mm`` up to and including its Quant / learned MultiThreshold."""
    nodes, tensor = [], mm.output[0]
    for _ in range(16):
        cons = model.find_consumers(tensor)
        if len(cons) != 1:
            return None
        nxt = cons[0]
        if any(i and i != tensor and i not in consts for i in nxt.input):
            return None
        nodes.append(nxt)
        if nxt.op_type == "Quant" or (nxt.op_type == "MultiThreshold"
                                      and get_provenance(nxt) == LEARNED_BOUNDARIES):
            return nodes
        if nxt.op_type not in CHAIN_OPS:
            return None
        tensor = nxt.output[0]
    return None


def integer_thresholds(codes: np.ndarray, acc: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Thresholds (C, hi - lo) from a non-decreasing staircase ``codes`` (R, C) over the
    consecutive accumulator values ``acc`` (R,): ``t_v = min{acc : code >= v}``,
    v = lo+1..hi; ``acc[0]`` where every value reaches v, ``acc[-1] + 1`` where none does.
    (Below ``acc[0]`` the type cannot go; RoundAndClipThresholds clips to it.)"""
    levels = np.arange(lo + 1, hi + 1)
    out = np.empty((codes.shape[1], len(levels)), np.int64)
    for c in range(codes.shape[1]):
        j = np.searchsorted(codes[:, c], levels, side="left")
        out[c] = np.where(j < len(acc), acc[np.minimum(j, len(acc) - 1)], acc[-1] + 1)
    return out


class ExactThresholds(Transformation):
    """Replace MatMul -> (BatchNorm | affine | monotonic activation)* -> quantizer chains
    that FINN cannot fold exactly by enumerated integer thresholds (module docstring).
    ``report`` collects, per replaced chain, the MultiThreshold's name, its channels,
    the accumulator range and the points enumerated."""

    def __init__(self, report: dict[str, dict[str, Any]] | None = None) -> None:
        super().__init__()
        self.report = report if report is not None else {}

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        from hw.threshold_proof import (
            _activation_scale,
            _const_tensors,
            _expected_codes,
            _integer_weights,
            _reference_model,
        )

        consts = _const_tensors(model)
        # Last layer first: a replaced chain ends in an enumerated MultiThreshold, which the
        # input range and scale of the layer after it could no longer be read through.
        for mm in reversed([n for n in model.graph.node if n.op_type in ("MatMul", "Gemm")]):
            chain = _chain(model, mm, consts)
            if chain is None:
                continue
            terminal = chain[-1]
            if terminal.op_type == "Quant" and \
                    not any(n.op_type == "BatchNormalization" for n in chain):
                continue  # FINN's conversion is exact here (power-of-two affine maps)
            x = mm.input[0]
            in_range = code_range(model, x, consts)
            s_in = _activation_scale(model, x, consts)
            shape = model.get_tensor_shape(mm.output[0])
            channels, width = int(shape[-1]), int(model.get_tensor_shape(x)[-1])
            got = _integer_weights(model, mm, consts, (width, channels))
            if in_range is None or s_in is None or got is None or \
                    (mm.op_type == "Gemm" and float(_attr(mm, "alpha", 1.0)) != 1.0):
                raise UnsupportedModelError(
                    terminal.name, terminal.op_type,
                    f"its thresholds must be enumerated (after {mm.name}: BatchNorm or learned "
                    "boundaries), but the integer input range, power-of-two scales or integer "
                    f"weights of {mm.name} could not be read")
            w_int, s_w = got
            lo_x, hi_x = in_range
            a_min = np.minimum(w_int * lo_x, w_int * hi_x).sum(0)
            a_max = np.maximum(w_int * lo_x, w_int * hi_x).sum(0)
            # Enumerate the whole range of the smallest signed integer type (+1 bit) that
            # holds every channel's accumulator: FINN's Thresholding input type is at least
            # that wide, and the exhaustive proof enumerates all of it, reachable or not.
            bits = 1 + max(int(-a_min.min() - 1).bit_length(), int(a_max.max()).bit_length())
            acc = np.arange(-(2 ** bits), 2 ** bits, dtype=np.int64)
            if len(acc) * channels > MAX_ENUMERATED:
                raise UnsupportedModelError(
                    terminal.name, terminal.op_type,
                    f"accumulator range {len(acc)} x {channels} channels is too large to "
                    "enumerate (> 2**24 points)")
            sub, start, out, q_scale = _reference_model(model, mm, consts, channels)
            if sub is None:
                raise UnsupportedModelError(terminal.name, terminal.op_type, start)
            codes = _expected_codes(sub, start, out, np.asarray(q_scale), acc, s_in, s_w)
            down = np.diff(codes, axis=0) < 0
            if down.any():
                c = int(np.argwhere(down.any(0))[0][0])
                bn = [n.name for n in chain if n.op_type == "BatchNormalization"]
                why = (f"{bn[0]} has a negative scale on channel {c}" if bn and
                       _negative_bn(model, consts, bn[0], c) else f"channel {c}")
                raise UnsupportedModelError(
                    terminal.name, terminal.op_type,
                    f"{why}: the code decreases as the accumulator of {mm.name} grows; a "
                    "MultiThreshold counts thresholds crossed upwards (fold the sign into "
                    "the layer's weights and bias before export)")
            lo_code, hi_code = self._levels(model, terminal)
            t_int = integer_thresholds(codes, acc, lo_code, hi_code)
            self._replace(model, mm, chain, t_int, s_in * s_w)
            self.report[terminal.name] = {
                "after": mm.name, "chain": [n.op_type for n in chain], "channels": channels,
                "accumulator": [int(acc[0]), int(acc[-1])],
                "points": int(len(acc) * channels)}
            return model.transform(InferShapes()), True
        return model, False

    @staticmethod
    def _levels(model: ModelWrapper, terminal) -> tuple[int, int]:  # noqa: ANN001
        """(lowest, highest) code of the chain's quantizer (an index: 0 .. #thresholds)."""
        if terminal.op_type == "Quant":
            bits = int(np.asarray(model.get_initializer(terminal.input[3])).item())
            return quantizer_levels(bits, bool(_attr(terminal, "signed", 1)),
                                    bool(_attr(terminal, "narrow", 0)))
        return 0, int(np.asarray(model.get_initializer(terminal.input[1])).shape[-1])

    @classmethod
    def _replace(cls, model: ModelWrapper, mm, chain: list, t_int: np.ndarray,  # noqa: ANN001
                 s_prod: np.ndarray) -> None:
        """Put the enumerated MultiThreshold (thresholds ``t_int`` (C, S) on the integer
        accumulator) in the chain's place."""
        terminal = chain[-1]
        lo, hi = cls._levels(model, terminal)
        thr64 = (t_int.astype(np.float64) - 0.5) * np.asarray(s_prod, np.float64).reshape(-1, 1)
        thr = thr64.astype(np.float32)
        if not np.array_equal(thr.astype(np.float64), thr64):
            raise UnsupportedModelError(terminal.name, terminal.op_type,
                                        "enumerated thresholds are not exact in float32")
        # Gemm: take the bias out; the thresholds include it (they come from the chain).
        if mm.op_type == "Gemm" and len(mm.input) > 2:
            del mm.input[2]
        name = f"ExactThresholds_{terminal.name}"
        tname = model.make_new_valueinfo_name()
        model.set_initializer(tname, thr)
        out = terminal.output[0]
        if terminal.op_type == "Quant":
            count, dtype = f"{name}_count", f"UINT{max(1, int(hi - lo).bit_length())}"
        else:
            count, dtype = out, _attr(terminal, "out_dtype")
            dtype = dtype.decode() if isinstance(dtype, bytes) else str(dtype)
        mt = helper.make_node("MultiThreshold", [mm.output[0], tname], [count], name=name,
                              domain="qonnx.custom_op.general", out_dtype=dtype,
                              out_scale=1.0, out_bias=0.0, data_layout="NC")
        set_provenance(mt, EXACT_INTEGER)
        new = [mt]
        if terminal.op_type == "Quant":
            cur = count
            if lo != 0:
                model.set_initializer(f"{name}_lowest", np.asarray(float(lo), np.float32))
                new.append(helper.make_node("Add", [cur, f"{name}_lowest"], [f"{name}_code"],
                                            name=f"{name}_Add"))
                cur = f"{name}_code"
            model.set_initializer(f"{name}_scale", np.asarray(
                model.get_initializer(terminal.input[1]), np.float32))
            new.append(helper.make_node("Mul", [cur, f"{name}_scale"], [out],
                                        name=f"{name}_Mul"))
        idx = list(model.graph.node).index(chain[0])
        for n in chain:
            model.graph.node.remove(n)
        for k, n in enumerate(new):
            model.graph.node.insert(idx + k, n)
        _remove_dangling(model)


def _negative_bn(model: ModelWrapper, consts: dict[str, np.ndarray], name: str,
                 channel: int) -> bool:
    node = next(n for n in model.graph.node if n.name == name)
    gamma = np.asarray(consts.get(node.input[1], model.get_initializer(node.input[1])))
    return bool(np.ravel(gamma)[channel % np.size(gamma)] < 0)


def _remove_dangling(model: ModelWrapper) -> None:
    """Drop nodes whose outputs nothing reads (the removed Gemm bias's quantizer)."""
    outs = {o.name for o in model.graph.output}
    while True:
        used = {i for n in model.graph.node for i in n.input} | outs
        dead = [n for n in model.graph.node if not any(o in used for o in n.output)]
        if not dead:
            return
        for n in dead:
            model.graph.node.remove(n)
