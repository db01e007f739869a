"""One named stream of the accelerator: its contract tensor and FINN's folding and packing.

Board-side module (numpy 1.x and 2.x). A :class:`StreamSpec` is one entry of the
manifest's ``io.inputs`` / ``io.outputs``: a :class:`contract.iospec.TensorSpec` (name,
shape, datatype, ``scale`` or ``codebook``, ``post``) plus how FINN streams it. The
float<->code rules are the tensor's, defined once in :mod:`contract.iospec`:

* float -> code (``StreamSpec.to_codes``): ``clip(round_half_even(x / scale), min, max)``,
  saturating (the clip is done in float64 before the cast, so 1e30 and +-inf saturate to
  the max/min code); ``NaN`` has no code and is refused, naming its vector and feature;
* code -> float (``StreamSpec.to_float``): ``code * scale``, or ``codebook[code - min]``
  for a codebook tensor (a non-uniform quantizer's index);
* integer codes given directly (``StreamSpec.check_codes``) must be integers inside the
  datatype's range; anything else is refused, naming the first offending vector, feature
  and value.

What is FINN's, and stays here:

* folding: a vector of F codes is ``folded_shape[1:-1]`` stream beats of
  ``folded_shape[-1]`` elements each. A stream may carry ``pad`` more elements than the
  vector has (fewer than one beat): they follow the vector's F codes, are zeros on an
  input and are dropped from an output. The latency backend pads its streams so that
  FINN's IODMA moves a vector in one port-wide word (``hw.iodma``,
  ``hw.transforms.iodma_pad``);
* packing (:func:`pack`, :func:`unpack`): FINN's PYNQ driver packing
  (``finnpy_to_packed_bytearray`` with ``reverse_inner=True, reverse_endian=True``):
  element 0 of a beat in the least significant bits, each element in two's complement
  of the datatype's width, the beat padded to whole bytes and stored little-endian. This
  byte layout is what an input IODMA reads from DRAM and streams into the accelerator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from contract.iospec import IntType, TensorSpec

__all__ = ["IntType", "StreamSpec", "pack", "unpack"]


@dataclass(frozen=True)
class StreamSpec:
    """One named stream: the contract tensor, and its folding into stream beats."""

    tensor: TensorSpec
    beats: int            # stream beats per vector
    elems_per_beat: int   # folded_shape[-1]
    width_bits: int       # stream width (elems_per_beat * dtype bits)

    @classmethod
    def from_manifest(cls, entry: Mapping[str, Any]) -> StreamSpec:
        """From one entry of the manifest's ``io.inputs`` / ``io.outputs``.

        ``shape`` there is FINN's tensor shape ``[1, F]``; the contract tensor's is
        ``(F,)``. Raises ``ValueError`` (or ``KeyError`` for a missing key) on anything
        the host cannot carry.
        """
        shape = [int(d) for d in entry["shape"]]
        if len(shape) < 2 or shape[0] != 1:
            raise ValueError(f"{entry.get('name')!r}: shape {shape}: expected FINN's "
                             "[1, features, ...]")
        tensor = TensorSpec.from_json({**entry, "shape": shape[1:]})
        folded = [int(d) for d in entry["folded_shape"]]
        beats, elems = int(np.prod(folded[1:-1])), folded[-1]
        if not 0 <= beats * elems - tensor.features < elems:
            raise ValueError(f"{tensor.name!r}: folded shape {folded} does not match "
                             f"{tensor.features} features (a stream carries them, padded "
                             "by fewer than one beat)")
        bits = tensor.dtype.bits
        width = int(entry.get("stream_width_bits", elems * bits))
        if width != elems * bits:
            raise ValueError(f"{tensor.name!r}: stream width {width} != {elems} x {bits} bits")
        return cls(tensor, beats, elems, width)

    # the contract tensor
    @property
    def name(self) -> str:
        return self.tensor.name

    @property
    def features(self) -> int:
        return self.tensor.features

    @property
    def dtype(self) -> IntType:
        return self.tensor.dtype

    @property
    def scale(self) -> float | None:
        return self.tensor.scale

    @property
    def codebook(self) -> tuple[float, ...] | None:
        return self.tensor.codebook

    @property
    def post(self) -> str:
        return self.tensor.post

    def to_codes(self, x: np.ndarray) -> np.ndarray:
        """(N, features) floats -> (N, features) int64 codes (:meth:`TensorSpec.to_codes`)."""
        a = np.asarray(x)
        if a.ndim != 2 or a.shape[1] != self.features:
            raise ValueError(f"{self.name}: input of shape {a.shape}: expected "
                             f"(N, {self.features})")
        return self.tensor.to_codes(a)

    def to_float(self, codes: np.ndarray) -> np.ndarray:
        """(N, features) codes -> float32 (scale, or codebook lookup)."""
        return self.tensor.to_float(codes)

    def check_codes(self, codes: np.ndarray) -> np.ndarray:
        """(N, features) int64 codes; refuses non-integers and values outside the datatype."""
        return self.tensor.check_codes(codes)

    # the stream
    @property
    def pad(self) -> int:
        """Elements the stream carries after the vector's features (zeros in, dropped out)."""
        return self.beats * self.elems_per_beat - self.features

    @property
    def bytes_per_beat(self) -> int:
        return (self.width_bits + 7) // 8

    def packed_shape(self, n: int) -> tuple[int, int, int]:
        """Shape of the uint8 DMA buffer for ``n`` vectors (FINN's ``ishape_packed``)."""
        return (n, self.beats, self.bytes_per_beat)


def pack(codes: np.ndarray, spec: StreamSpec) -> np.ndarray:
    """(N, features) codes -> (N, beats, bytes_per_beat) uint8, FINN's folding and packing."""
    n, bw = len(codes), spec.dtype.bits
    vals = np.asarray(codes, dtype=np.int64).reshape(n, spec.features)
    if spec.pad:
        vals = np.concatenate([vals, np.zeros((n, spec.pad), np.int64)], axis=1)
    vals = vals.reshape(n, spec.beats, spec.elems_per_beat) & ((1 << bw) - 1)
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
    return vals.reshape(n, spec.beats * spec.elems_per_beat)[:, :spec.features]
