"""Quantized monotonic activations (Tanh, Sigmoid) -> FINN MultiThreshold.

FINN has no handler for ``Tanh -> Quant`` or ``Sigmoid -> Quant``: the float Tanh
stays in the graph and dataflow partitioning then fails ("cycle-free graph
violated"). A monotonic f followed by a quantizer Q is a staircase, so
``Q(f(x)) >= v  <=>  x >= T_v`` with ``T_v`` at the inverse function of the level
boundary, ``f^-1((v - 1/2) * s)`` (atanh for tanh, logit for sigmoid).

The handlers below plug into FINN's own mechanism (ConvertQuantActToMultiThreshold
picks handlers among ``QuantActBaseHandler.__subclasses__()``). The inverse
function gives T_v only up to floating-point error, and Brevitas evaluates
``round(tanh_f32(x) / s)`` in float32, so each T_v is refined by bisection over the
float32 numbers to the smallest float32 x with ``Q(f_f32(x)) >= v``, with Q the
Brevitas quantizer (round half to even, saturating). For every float32 input the
MultiThreshold then equals the float32 activation followed by the quantizer.

Caveat, measured with torch 2.13 on x86 CPUs: ``torch.sigmoid`` in float32 gives
results that differ by one ulp between its vectorized and scalar kernels, i.e.
depending on an element's position in the tensor (``torch.tanh`` does not). A
Sigmoid output that lands on a level edge can therefore differ from Brevitas;
prefer Tanh (sigmoid(x) = (1 + tanh(x/2)) / 2) for bit-exact designs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from finn.transformation.qonnx.qonnx_activation_handlers import (
    QuantActBaseHandler,
    QuantIdentityHandler,
)
from qonnx.custom_op.registry import getCustomOp

from zoo.quantizers import ACTIVATION_STAIRCASE, set_provenance

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "Tanh": torch.tanh,
    "Sigmoid": torch.sigmoid,
}


def _ordered(x: np.ndarray) -> np.ndarray:
    """float32 -> int64 keys that sort like the floats (for bisection over float32)."""
    b = np.asarray(x, np.float32).view(np.int32).astype(np.int64)
    return np.where(b < 0, -(b & 0x7FFFFFFF), b)


def _unordered(k: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_ordered`."""
    k = np.asarray(k, np.int64)
    b = np.where(k < 0, (-k) | 0x80000000, k).astype(np.uint32)
    return b.view(np.float32)


def quantizer_levels(bits: int, signed: bool, narrow: bool) -> tuple[int, int]:
    """(min code, max code) of an integer quantizer."""
    if not signed:
        return 0, 2**bits - 1
    return -(2 ** (bits - 1)) + int(narrow), 2 ** (bits - 1) - 1


def quantize_f32(y: torch.Tensor, scale: float, lo: int, hi: int) -> torch.Tensor:
    """Brevitas' integer quantizer in float32: round half to even, then saturate."""
    return torch.clamp(torch.round(y / np.float32(scale)), lo, hi)


def activation_thresholds(act: str, scale: float, bits: int, signed: bool,
                          narrow: bool) -> np.ndarray:
    """Float32 thresholds T_v, v = lo+1..hi, with ``Q(f(x)) >= v  <=>  x >= T_v`` exactly."""
    f = ACTIVATIONS[act]
    lo, hi = quantizer_levels(bits, signed, narrow)
    levels = np.arange(lo + 1, hi + 1)

    def qf(keys: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(_unordered(keys))
        return quantize_f32(f(x), scale, lo, hi).numpy()

    # Bisection over float32 keys: invariant qf(a) < v <= qf(b), a < b.
    big = np.float32(np.finfo(np.float32).max)
    a = np.full(levels.shape, _ordered(np.array([-big]))[0])
    b = np.full(levels.shape, _ordered(np.array([big]))[0])
    unreachable = qf(b) < levels
    always = qf(a) >= levels
    for _ in range(40):
        mid = (a + b) // 2
        hit = qf(mid) >= levels
        b = np.where(hit, mid, b)
        a = np.where(hit, a, mid)
        if np.all(b - a <= 1):
            break
    t = _unordered(b).astype(np.float32)
    ok = unreachable | always | ((qf(a) < levels) & (qf(b) >= levels))
    if not ok.all():
        raise RuntimeError(f"threshold search for {act} did not converge")
    t[unreachable] = np.inf
    t[always] = -np.inf
    return t


class QuantMonotonicActHandler(QuantActBaseHandler):
    """FINN handler for ``Tanh|Sigmoid -> Quant``: a MultiThreshold, then FINN's Add/Mul."""

    @classmethod
    def valid_predecessor_op_types(cls) -> list[str]:
        return list(ACTIVATIONS)

    # The integer part after the threshold stage is exactly that of an identity quantizer.
    _calculate_act_bias = QuantIdentityHandler._calculate_act_bias
    _calculate_act_scale = QuantIdentityHandler._calculate_act_scale

    def _check_compatibility(self) -> None:
        if self._q_node.op_type != "Quant":
            raise ValueError(f"{self._q_node.name}: only Quant follows a Tanh/Sigmoid here")
        if np.any(self._model.get_initializer(self._q_node.input[2]) != 0):
            raise ValueError(f"{self._q_node.name}: zero-point must be 0")
        if np.asarray(self._model.get_initializer(self._q_node.input[1])).size != 1:
            raise ValueError(f"{self._q_node.name}: per-tensor scale required after Tanh/Sigmoid")

    def _act_node(self):  # noqa: ANN202 - onnx NodeProto
        pred = self._model.find_direct_predecessors(self._q_node)
        if not pred or pred[0].op_type not in ACTIVATIONS:
            raise RuntimeError(f"{self._q_node.name}: expected a Tanh/Sigmoid before the Quant")
        return pred[0]

    def _calculate_thresholds(self) -> np.ndarray:
        q = getCustomOp(self._q_node)
        scale = float(np.asarray(self._model.get_initializer(self._q_node.input[1])).item())
        bits = int(np.asarray(self._model.get_initializer(self._q_node.input[3])).item())
        t = activation_thresholds(self._act_node().op_type, scale, bits,
                                  bool(q.get_nodeattr("signed")), bool(q.get_nodeattr("narrow")))
        return t.reshape(1, -1)

    def _remove_activation_node(self, multi_threshold_node) -> None:  # noqa: ANN001
        act = self._act_node()
        multi_threshold_node.input[0] = act.input[0]
        # Exact float32 staircase: hw.ties must not re-place these thresholds.
        set_provenance(multi_threshold_node, ACTIVATION_STAIRCASE)
        self._model.graph.node.remove(act)
