"""Float <-> integer codes and FINN's stream folding and byte packing, in numpy only.

Board-side module (numpy 1.x and 2.x). The rules are the manifest's ``io`` contract:

* float -> code: ``clip(round_half_even(x / scale), min, max)`` (saturating). The
  clip is done in float64 before the cast to int64, so any finite value saturates
  (1e30 -> max code) instead of overflowing int64. Non-finite inputs, decided here as
  part of the contract: ``+inf``/``-inf`` saturate to the max/min code (the rule in IEEE
  arithmetic: an infinitely large value is past the top of the range, like 1e30);
  ``NaN`` has no code and is refused (``ValueError`` naming the first NaN's vector and
  feature and how many there are);
* code -> float: ``code * scale``;
* integer codes given directly (``check_codes``) must be integers inside the datatype's
  range; anything else (fractions, NaN, inf, out-of-range values) is refused, naming the
  first offending vector, feature and value;
* folding: a vector of F codes is ``folded_shape[1:-1]`` stream beats of
  ``folded_shape[-1]`` elements each;
* packing: FINN's PYNQ driver packing (``finnpy_to_packed_bytearray`` with
  ``reverse_inner=True, reverse_endian=True``): element 0 of a beat in the least
  significant bits, each element in two's complement of the datatype's width, the beat
  padded to whole bytes and stored little-endian. This byte layout is what the input
  IODMA reads from DRAM and streams into the accelerator, beat by beat.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class IntType:
    """A FINN integer datatype (``INTn``, ``UINTn``, ``BINARY``)."""

    name: str
    bits: int
    signed: bool

    @classmethod
    def parse(cls, name: str) -> IntType:
        if name == "BINARY":
            return cls(name, 1, False)
        m = re.fullmatch(r"(U?)INT(\d+)", name)
        if not m:
            raise ValueError(f"datatype {name!r} is not supported by the host (INTn/UINTn/BINARY)")
        return cls(name, int(m.group(2)), m.group(1) == "")

    @property
    def min(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1


@dataclass(frozen=True)
class StreamSpec:
    """One side of the accelerator's I/O: shape, datatype, scale, folding, packing."""

    features: int
    dtype: IntType
    scale: float
    beats: int            # stream beats per vector
    elems_per_beat: int   # folded_shape[-1]
    width_bits: int       # stream width (elems_per_beat * dtype bits)

    @classmethod
    def from_manifest(cls, side: dict[str, Any]) -> StreamSpec:
        folded = [int(d) for d in side["folded_shape"]]
        features = int(np.prod(side["shape"][1:]))
        dt = IntType.parse(side["datatype"])
        beats, elems = int(np.prod(folded[1:-1])), folded[-1]
        if beats * elems != features:
            raise ValueError(f"folded shape {folded} does not match {features} features")
        scale = float(side["scale"])
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale {side['scale']!r}: must be a finite number > 0")
        width = int(side.get("stream_width_bits", elems * dt.bits))
        if width != elems * dt.bits:
            raise ValueError(f"stream width {width} != {elems} x {dt.bits} bits")
        return cls(features, dt, scale, beats, elems, width)

    @property
    def bytes_per_beat(self) -> int:
        return (self.width_bits + 7) // 8

    def packed_shape(self, n: int) -> tuple[int, int, int]:
        """Shape of the uint8 DMA buffer for ``n`` vectors (FINN's ``ishape_packed``)."""
        return (n, self.beats, self.bytes_per_beat)


def _where(a: np.ndarray, bad: np.ndarray) -> str:
    """'vector i, feature j' (2-D) or 'index (...)' of the first True in ``bad``."""
    idx = tuple(int(i) for i in np.argwhere(bad)[0])
    return f"vector {idx[0]}, feature {idx[1]}" if len(idx) == 2 else f"index {idx}"


def float_to_codes(x: np.ndarray, spec: StreamSpec) -> np.ndarray:
    """``clip(round_half_even(x / scale), min, max)`` as int64 (saturating; see above).

    Refuses NaN (``ValueError``: "input contains NaN at vector i, feature j") and
    non-real data; +-inf and finite values beyond the range saturate.
    """
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise ValueError(f"input of dtype {a.dtype}: expected real numbers")
    a = a.astype(np.float64)
    nan = np.isnan(a)
    if nan.any():
        raise ValueError(f"input contains NaN at {_where(a, nan)} ({int(nan.sum())} NaN "
                         "value(s) in all): NaN has no integer code")
    with np.errstate(over="ignore"):  # |x| / scale beyond float64 is inf: it saturates too
        q = np.rint(a / spec.scale)  # rint: round half to even
    # clip in float64, then cast: every value is now in [min, max], so the cast is exact
    return np.clip(q, spec.dtype.min, spec.dtype.max).astype(np.int64)


def codes_to_float(codes: np.ndarray, spec: StreamSpec) -> np.ndarray:
    """``code * scale`` as float32 (exact: power-of-two scales, few-bit codes)."""
    return (np.asarray(codes, dtype=np.float64) * spec.scale).astype(np.float32)


def check_codes(codes: np.ndarray, spec: StreamSpec) -> np.ndarray:
    """(N, features) int64 codes, refusing non-integers and values outside the datatype.

    The range is checked in the caller's dtype, before any cast, so huge values (1e30,
    uint64 above 2**63) are named as they are instead of wrapping around in int64.
    """
    a = np.asarray(codes)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[1] != spec.features:
        raise ValueError(f"codes of shape {a.shape}: expected (N, {spec.features})")
    if a.dtype.kind not in "iubf":
        raise ValueError(f"codes of dtype {a.dtype} are not integers")
    lo_t, hi_t, name = spec.dtype.min, spec.dtype.max, spec.dtype.name
    if a.dtype.kind == "f":
        nonfinite = ~np.isfinite(a)
        if nonfinite.any():
            v = a[tuple(np.argwhere(nonfinite)[0])]
            raise ValueError(f"codes contain {v} at {_where(a, nonfinite)}: codes must be "
                             "finite integers (use execute() for float data)")
        frac = a != np.rint(a)
        if frac.any():
            v = a[tuple(np.argwhere(frac)[0])]
            raise ValueError(f"codes must be integers (use execute() for float data): {v} "
                             f"at {_where(a, frac)}")
    if a.size:
        out = (a < lo_t) | (a > hi_t)
        if out.any():
            v = a[tuple(np.argwhere(out)[0])]
            lo, hi = a.min(), a.max()
            raise ValueError(f"codes span [{lo}, {hi}], outside {name} [{lo_t}, {hi_t}]: "
                             f"first {v} at {_where(a, out)} ({int(out.sum())} value(s) "
                             "out of range)")
    return a.astype(np.int64)


def pack(codes: np.ndarray, spec: StreamSpec) -> np.ndarray:
    """(N, features) codes -> (N, beats, bytes_per_beat) uint8, FINN's folding and packing."""
    n, bw = len(codes), spec.dtype.bits
    vals = codes.reshape(n, spec.beats, spec.elems_per_beat).astype(np.int64) & ((1 << bw) - 1)
    bits = ((vals[..., None] >> np.arange(bw, dtype=np.int64)) & 1).astype(np.uint8)
    bits = bits.reshape(n, spec.beats, spec.elems_per_beat * bw)
    pad = spec.bytes_per_beat * 8 - bits.shape[-1]
    if pad:
        bits = np.concatenate([bits, np.zeros((n, spec.beats, pad), np.uint8)], axis=-1)
    return np.packbits(bits, axis=-1, bitorder="little")


def unpack(packed: np.ndarray, spec: StreamSpec) -> np.ndarray:
    """(N, beats, bytes_per_beat) uint8 -> (N, features) int64 codes (inverse of ``pack``)."""
    packed = np.asarray(packed, dtype=np.uint8)
    n, bw = len(packed), spec.dtype.bits
    bits = np.unpackbits(packed.reshape(n, spec.beats, spec.bytes_per_beat), axis=-1,
                         bitorder="little")[..., :spec.elems_per_beat * bw]
    bits = bits.reshape(n, spec.beats, spec.elems_per_beat, bw).astype(np.int64)
    vals = (bits << np.arange(bw, dtype=np.int64)).sum(axis=-1)
    if spec.dtype.signed:
        vals -= (vals >> (bw - 1)) << bw
    return vals.reshape(n, spec.features)
