"""host.codec: a stream's float<->code rule (contract.iospec) and FINN's packing, checked
against FINN's own functions."""

from __future__ import annotations

import json

import numpy as np
import pytest

import hw  # noqa: F401  (offline FINN bootstrap)
from contract.iospec import IntType, IOSpec, TensorSpec
from host.codec import StreamSpec, pack, unpack


def spec(dtype: str, beats: int, elems: int, scale: float = 2.0 ** -7) -> StreamSpec:
    bits = IntType.parse(dtype).bits
    return StreamSpec.from_manifest({"name": "x", "shape": [1, beats * elems],
                                     "datatype": dtype, "scale": scale, "post": "scale",
                                     "folded_shape": [1, beats, elems],
                                     "stream_width_bits": bits * elems})


@pytest.mark.parametrize("dtype,beats,elems", [("INT8", 2, 6), ("INT6", 6, 1), ("UINT4", 3, 5),
                                               ("INT3", 4, 3), ("INT16", 1, 3),
                                               ("BINARY", 2, 9)])
def test_pack_matches_finn_driver_packing(dtype: str, beats: int, elems: int) -> None:
    from finn.util.data_packing import finnpy_to_packed_bytearray, packed_bytearray_to_finnpy
    from qonnx.core.datatype import DataType

    s = spec(dtype, beats, elems)
    rng = np.random.default_rng(0)
    codes = rng.integers(s.dtype.min, s.dtype.max + 1, size=(37, s.features))
    codes[0], codes[1] = s.dtype.min, s.dtype.max
    ours = pack(codes, s)
    folded = codes.reshape(37, beats, elems).astype(np.float32)
    finn = finnpy_to_packed_bytearray(folded, DataType[dtype], reverse_inner=True,
                                      reverse_endian=True)
    assert ours.shape == s.packed_shape(37) == finn.shape
    assert np.array_equal(ours, np.ascontiguousarray(finn))
    back = packed_bytearray_to_finnpy(ours, DataType[dtype], folded.shape, reverse_inner=True,
                                      reverse_endian=True)
    assert np.array_equal(back.reshape(37, -1).astype(np.int64), codes)
    assert np.array_equal(unpack(ours, s), codes)


def test_padded_stream_zeros_in_dropped_out() -> None:
    """A stream padded for the IODMA (12 INT8 features in a 16-element beat): the pad is
    zeros on the way in, dropped on the way out; a pad of a whole beat is refused."""
    s = StreamSpec.from_manifest({"name": "x", "shape": [1, 12], "datatype": "INT8",
                                  "scale": 1.0, "post": "scale", "folded_shape": [1, 1, 16],
                                  "stream_width_bits": 128})
    assert (s.features, s.pad, s.packed_shape(5)) == (12, 4, (5, 1, 16))
    codes = np.random.default_rng(1).integers(-128, 128, (5, 12))
    packed = pack(codes, s)
    assert not packed[:, 0, 12:].any()  # the padding bytes
    assert np.array_equal(packed[:, 0, :12].view(np.int8).astype(np.int64), codes)
    assert np.array_equal(unpack(packed, s), codes)
    bent = packed.copy()
    bent[:, 0, 13] = 0x5A  # garbage in the padding is not data
    assert np.array_equal(unpack(bent, s), codes)
    bent[0, 0, 3] ^= 1  # negative control: a data byte is
    assert not np.array_equal(unpack(bent, s), codes)
    with pytest.raises(ValueError, match="padded by fewer than one beat"):
        StreamSpec.from_manifest({"name": "x", "shape": [1, 12], "datatype": "INT8",
                                  "scale": 1.0, "post": "scale", "folded_shape": [1, 2, 12],
                                  "stream_width_bits": 96})


def test_float_to_codes_half_even_and_saturation() -> None:
    s = spec("INT8", 1, 6)
    q = 2.0 ** -7
    x = np.array([[0.5 * q, 1.5 * q, 2.5 * q, -0.5 * q, -1.5 * q, -2.5 * q],
                  [10.0, -10.0, 127.4 * q, -128.6 * q, 126.5 * q, -127.5 * q]])
    assert s.to_codes(x).tolist() == [[0, 2, 2, 0, -2, -2],
                                             [127, -128, 127, -128, 126, -128]]


def test_check_codes_refuses_out_of_range_and_fractions() -> None:
    s = spec("INT6", 6, 1)
    assert s.check_codes(np.array([-32, 31, 0, 1, 2, 3])).shape == (1, 6)
    with pytest.raises(ValueError, match="outside INT6"):
        s.check_codes(np.full((2, 6), 32))
    with pytest.raises(ValueError, match="integers"):
        s.check_codes(np.full((2, 6), 0.5))
    with pytest.raises(ValueError, match="expected"):
        s.check_codes(np.zeros((2, 5), np.int64))
    with pytest.raises(ValueError, match=r"x: input of shape \(2, 5\): expected \(N, 6\)"):
        s.to_codes(np.zeros((2, 5)))


@pytest.mark.parametrize("entry,match", [
    ({"folded_shape": [1, 4, 2]}, "folded shape .* does not match 6 features"),
    ({"stream_width_bits": 8}, "stream width 8 != 1 x 6 bits"),
    ({"scale": 0.0}, "scale 0.0 must be finite and > 0"),
    ({"datatype": "FLOAT32"}, "not an integer code type"),
    ({"shape": [6]}, "expected FINN's"),
    ({"codebook": [0.5, 1.0]}, "exactly one of scale and codebook"),
])
def test_stream_spec_refuses_what_it_cannot_carry(entry: dict, match: str) -> None:
    good = {"name": "x", "shape": [1, 6], "datatype": "INT6", "scale": 0.5, "post": "scale",
            "folded_shape": [1, 6, 1], "stream_width_bits": 6}
    StreamSpec.from_manifest(good)
    with pytest.raises(ValueError, match=match):
        StreamSpec.from_manifest({**good, **entry})


# --- one codebook per feature (EQ-Net's per-dimension k-means levels) ---------------------

def _per_feature() -> TensorSpec:
    return TensorSpec("z", (3,), "UINT2", codebook=((-0.9, -0.2, 0.1, 0.8),
                                                     (-0.5, 0.0, 0.25, 0.5),
                                                     (-1.0, -0.75, 0.75, 1.0)),
                      post="codebook")


def test_per_feature_codebook_values_nearest_level_and_json() -> None:
    t = _per_feature()
    idx = np.array([[0, 3, 1], [2, 1, 3]])
    assert np.array_equal(t.to_float(idx), np.float32([[-0.9, 0.5, -0.75], [0.1, 0.0, 1.0]]))
    # Nearest level; a value half-way between two levels takes the higher one.
    x = np.array([[-0.55, 0.125, 0.0], [0.45, -0.26, -0.875], [9.0, -9.0, 0.7]])
    assert np.array_equal(t.to_codes(x), [[1, 2, 2], [3, 0, 1], [3, 0, 2]])
    assert np.array_equal(t.to_codes(t.to_float(idx)), idx)  # levels map to themselves
    spec = IOSpec((t,), (TensorSpec("y", (1,), "INT4", scale=0.5),))
    assert spec.to_json()["version"] == 2  # a version-1 reader refuses it by version
    back = IOSpec.from_json(json.loads(json.dumps(spec.to_json())))
    assert back == spec and back.inputs[0].per_feature
    flat = IOSpec((TensorSpec("x", (2,), "UINT1", codebook=(0.0, 1.0)),), spec.outputs)
    assert flat.to_json()["version"] == 1  # unchanged where no tensor needs version 2


def test_per_feature_codebook_refusals() -> None:
    with pytest.raises(ValueError, match="2 per-feature codebooks for 3 features"):
        TensorSpec("z", (3,), "UINT2", codebook=((0.0, 1.0), (0.0, 1.0)))
    with pytest.raises(ValueError, match="different lengths"):
        TensorSpec("z", (2,), "UINT2", codebook=((0.0, 1.0), (0.0, 1.0, 2.0)))
    with pytest.raises(ValueError, match="5 levels does not fit UINT2"):
        TensorSpec("z", (1,), "UINT2", codebook=((0.0, 1.0, 2.0, 3.0, 4.0),))
    t = TensorSpec("z", (2,), "UINT2", codebook=((0.0, 1.0, 2.0), (0.0, 1.0, 2.0)))
    t.check_codes(np.array([[2, 0]]))  # positive control
    with pytest.raises(ValueError, match=r"code 3 at vector 0, feature 1 is past the "
                       r"codebook's 3 levels"):
        t.check_codes(np.array([[2, 3]]))
    with pytest.raises(ValueError, match="not strictly increasing"):
        TensorSpec("z", (1,), "UINT1", codebook=((1.0, 0.0),)).to_codes(np.zeros((1, 1)))
    with pytest.raises(ValueError, match="version 3"):
        IOSpec.from_json({"version": 3, "inputs": [], "outputs": []})
