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

Only thresholds of *uniform quantizers* are moved, and a MultiThreshold says what it is
by its explicit provenance attribute (``zoo.quantizers.PROVENANCE_ATTR``): the shift is
right for ``uniform_quantizer`` only. Thresholds of monotonic activations (exact float32
staircases), learned boundaries, codebook indices and enumerated integer thresholds are
already what the model computes; moving their odd levels would change outputs. A
MultiThreshold without a provenance the flow knows is refused by name: guessing would
silently corrupt learned thresholds.
"""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper

from hw.errors import UnsupportedModelError
from zoo.quantizers import PROVENANCES, UNIFORM_QUANTIZER, get_provenance

# Set on a uniform quantizer's MultiThreshold once step 1 has moved it: its lowest level.
LOWEST_LEVEL_ATTR = "half_even_lowest_level"


def _int_attr(node, name: str) -> int | None:  # noqa: ANN001
    for a in node.attribute:
        if a.name == name:
            return int(helper.get_attribute_value(a))
    return None


def provenance_of(mt) -> str:  # noqa: ANN001
    """The MultiThreshold's provenance; refuses (by node name) one the flow does not know."""
    p = get_provenance(mt)
    if p not in PROVENANCES:
        raise UnsupportedModelError(
            mt.name, "MultiThreshold",
            f"threshold provenance {p!r} is not one the flow knows ({', '.join(PROVENANCES)}); "
            "its thresholds cannot be placed for round half to even without knowing whether "
            "they are a uniform quantizer's (tag it where it is created)")
    return p


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
    """Step 1: nudge odd-level thresholds of converted uniform quantizers up by one ulp."""
    for mt in model.get_nodes_by_op_type("MultiThreshold"):
        if provenance_of(mt) != UNIFORM_QUANTIZER or _int_attr(mt, LOWEST_LEVEL_ATTR) is not None:
            continue
        lowest = _lowest_level(model, mt)
        t = np.asarray(model.get_initializer(mt.input[1]), dtype=np.float32)
        odd = (_levels(t.shape[-1], lowest) % 2 == 1)[None, :]
        t = np.where(odd, np.nextafter(t, np.float32(np.inf)), t).astype(np.float32)
        model.set_initializer(mt.input[1], t)
        mt.attribute.append(helper.make_attribute(LOWEST_LEVEL_ATTR, lowest))
    return model


def place_half_even_on_integers(model: ModelWrapper) -> ModelWrapper:
    """Step 2: after streamlining, odd-level thresholds exactly on an integer become T + 1/2."""
    for mt in model.get_nodes_by_op_type("MultiThreshold"):
        if provenance_of(mt) != UNIFORM_QUANTIZER:
            continue
        lowest = _int_attr(mt, LOWEST_LEVEL_ATTR)
        if lowest is None:
            raise UnsupportedModelError(
                mt.name, "MultiThreshold",
                "a uniform quantizer's thresholds reached streamlining without the "
                "round-half-even placement of step 1 (hw.ties.place_half_even_after_conversion)")
        if not model.get_tensor_datatype(mt.input[0]).is_integer():
            src = model.find_producer(mt.input[0])
            src = f"{src.op_type} {src.name!r}" if src is not None else "the graph input"
            raise UnsupportedModelError(
                mt.name, "MultiThreshold",
                f"its input (from {src}) is not integer after streamlining, so the quantizer "
                "cannot become integer thresholds; FINN could not move a float scale past "
                "it (joins need one shared quantizer on all inputs; scales must be powers "
                "of two and biases on the accumulator scale)")
        t = np.asarray(model.get_initializer(mt.input[1]), dtype=np.float32)
        odd = (_levels(t.shape[-1], lowest) % 2 == 1)[None, :]
        on_integer = np.isfinite(t) & (t == np.floor(t))
        model.set_initializer(mt.input[1],
                              np.where(odd & on_integer, t + np.float32(0.5), t).astype(np.float32))
    return model
