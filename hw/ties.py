"""One rounding convention end to end: round half to even (Brevitas' and QONNX's ROUND).

FINN's Quant -> MultiThreshold conversion places the threshold of level v at the
level boundary ``(v - 1/2) * s`` and compares ``x >= T``: that is round half *up*.
Brevitas rounds half to *even*, so on an exact tie an odd level must not be reached:
``x > T`` instead of ``x >= T``. With power-of-two scales and accumulator-scale
biases (train.models) ties are exact and frequent, so this matters.

The fix lives where thresholds are placed, in two places, because a MultiThreshold
can only say ``>=``:

1. Right after conversion (float domain), each odd-level threshold moves up by one
   float32 ulp: for float32 x, ``x >= nextafter(T)`` is ``x > T``. The converted
   graph is then exact.
2. Streamlining rescales thresholds into the integer accumulator domain,
   ``(T - b) / a``; a one-ulp nudge may not survive that subtraction. There, the
   input is an integer, so an odd-level threshold that sits exactly on an integer
   becomes ``T + 1/2`` (``acc >= T + 1/2`` is ``acc > T``). RoundAndClipThresholds
   later makes it ``T + 1``. A surviving nudge needs nothing (its ceil is T + 1).

Thresholds of monotonic activations (hw.activation_thresholds) are already exact
float32 staircases and are left alone.
"""

from __future__ import annotations

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper

from hw.activation_thresholds import EXACT_STAIRCASE
from hw.errors import UnsupportedModelError

HALF_EVEN_TAG = "ties: half-even; lowest level "


def _lowest_level(model: ModelWrapper, mt) -> int:  # noqa: ANN001
    """Integer level of a freshly converted MultiThreshold's zero count (its following Add)."""
    consumer = model.find_consumer(mt.output[0])
    if consumer is not None and consumer.op_type == "Add":
        bias = model.get_initializer(consumer.input[1])
        if bias is not None and np.asarray(bias).size == 1:
            lo = float(np.asarray(bias).item())
            if lo != int(lo):
                raise UnsupportedModelError(mt.name, "MultiThreshold",
                                            f"non-integer activation bias {lo}")
            return int(lo)
    return 0


def _levels(n_thresholds: int, lowest: int) -> np.ndarray:
    return lowest + 1 + np.arange(n_thresholds)


def place_half_even_after_conversion(model: ModelWrapper) -> ModelWrapper:
    """Step 1: nudge odd-level thresholds of converted quantizers up by one float32 ulp."""
    for mt in model.get_nodes_by_op_type("MultiThreshold"):
        if mt.doc_string == EXACT_STAIRCASE or mt.doc_string.startswith(HALF_EVEN_TAG):
            continue
        lowest = _lowest_level(model, mt)
        t = np.asarray(model.get_initializer(mt.input[1]), dtype=np.float32)
        odd = (_levels(t.shape[-1], lowest) % 2 == 1)[None, :]
        t = np.where(odd, np.nextafter(t, np.float32(np.inf)), t).astype(np.float32)
        model.set_initializer(mt.input[1], t)
        mt.doc_string = f"{HALF_EVEN_TAG}{lowest}"
    return model


def place_half_even_on_integers(model: ModelWrapper) -> ModelWrapper:
    """Step 2: after streamlining, odd-level thresholds exactly on an integer become T + 1/2."""
    for mt in model.get_nodes_by_op_type("MultiThreshold"):
        if not mt.doc_string.startswith(HALF_EVEN_TAG):
            continue
        if not model.get_tensor_datatype(mt.input[0]).is_integer():
            src = model.find_producer(mt.input[0])
            src = f"{src.op_type} {src.name!r}" if src is not None else "the graph input"
            raise UnsupportedModelError(
                mt.name, "MultiThreshold",
                f"its input (from {src}) is not integer after streamlining, so the quantizer "
                "cannot become integer thresholds; FINN could not move a float scale past "
                "it (joins need one shared quantizer on all inputs; scales must be powers "
                "of two and biases on the accumulator scale)")
        lowest = int(mt.doc_string[len(HALF_EVEN_TAG):])
        t = np.asarray(model.get_initializer(mt.input[1]), dtype=np.float32)
        odd = (_levels(t.shape[-1], lowest) % 2 == 1)[None, :]
        on_integer = np.isfinite(t) & (t == np.floor(t))
        model.set_initializer(mt.input[1],
                              np.where(odd & on_integer, t + np.float32(0.5), t).astype(np.float32))
    return model
