"""Tanh/Sigmoid -> MultiThreshold: property tests against float32 activation + quantizer."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from qonnx.custom_op.general.multithreshold import multithreshold

import hw  # noqa: F401
from hw.activation_thresholds import (
    ACTIVATIONS,
    activation_thresholds,
    quantize_f32,
    quantizer_levels,
)

# Tanh only: torch's float32 CPU sigmoid is not position-invariant (see the last test),
# so no threshold set can equal it bit for bit; Sigmoid thresholds are exact against
# its vectorized path only.
QUANTIZERS = st.tuples(
    st.just("Tanh"),
    st.integers(2, 8),           # bits
    st.booleans(),               # signed
    st.booleans(),               # narrow
    st.integers(-8, 0),          # scale = 2**k
)
FLOATS = st.floats(-20, 20, width=32, allow_nan=False, allow_subnormal=True)


def staircase(act: str, bits: int, signed: bool, narrow: bool, k: int):
    narrow = narrow and signed
    scale = 2.0**k
    lo, hi = quantizer_levels(bits, signed, narrow)
    return activation_thresholds(act, scale, bits, signed, narrow), scale, lo, hi


@settings(max_examples=60, deadline=None)
@given(q=QUANTIZERS, xs=st.lists(FLOATS, min_size=1, max_size=64))
def test_multithreshold_equals_activation_then_quantizer(q, xs) -> None:
    act, bits, signed, narrow, k = q
    t, scale, lo, hi = staircase(act, bits, signed, narrow, k)
    x = np.asarray(xs, dtype=np.float32)
    expected = quantize_f32(ACTIVATIONS[act](torch.from_numpy(x)), scale, lo, hi).numpy()
    # QONNX's own MultiThreshold execution, as FINN runs it.
    got = lo + multithreshold(x.reshape(-1, 1), t.reshape(1, -1)).reshape(-1)
    np.testing.assert_array_equal(got, expected)


@settings(max_examples=20, deadline=None)
@given(q=QUANTIZERS)
def test_thresholds_sit_exactly_on_the_float32_level_edges(q) -> None:
    """Each finite threshold reaches its level, and the float32 just below it does not."""
    act, bits, signed, narrow, k = q
    t, scale, lo, hi = staircase(act, bits, signed, narrow, k)
    f = ACTIVATIONS[act]
    finite = np.isfinite(t)
    levels = np.arange(lo + 1, hi + 1)[finite]
    at = quantize_f32(f(torch.from_numpy(t[finite])), scale, lo, hi).numpy()
    below = np.nextafter(t[finite], np.float32(-np.inf)).astype(np.float32)
    before = quantize_f32(f(torch.from_numpy(below)), scale, lo, hi).numpy()
    assert (at >= levels).all() and (before < levels).all()
    assert np.all(np.diff(t[finite]) >= 0)


def test_dense_sweep_of_eqnet_output_quantizer() -> None:
    """The default design's output quantizer on one million float32 inputs: 0 mismatches."""
    t, scale, lo, hi = staircase("Tanh", 6, True, True, -5)
    x = np.random.default_rng(0).normal(0, 1.5, 1_000_000).astype(np.float32)
    expected = quantize_f32(torch.tanh(torch.from_numpy(x)), scale, lo, hi).numpy()
    got = lo + (x[:, None] >= t[None, :]).sum(1)
    assert int((got != expected).sum()) == 0


def test_torch_cpu_sigmoid_depends_on_position_but_tanh_does_not() -> None:
    """Why Sigmoid is not in the exactness property: vector vs scalar kernels differ by an ulp."""
    x = torch.randn(4000, generator=torch.Generator().manual_seed(0)) * 3
    for f, expect_equal in ((torch.tanh, True), (torch.sigmoid, False)):
        whole = f(x)
        one_by_one = torch.stack([f(x[i:i + 1])[0] for i in range(len(x))])
        assert bool((whole == one_by_one).all()) is expect_equal, f.__name__
