"""Shared fixtures: a small tie-heavy MLP compiled through the whole offline flow."""

from __future__ import annotations

import signal
from typing import Any

import numpy as np
import pytest

import hw  # noqa: F401  (offline FINN bootstrap before any finn import)
from configs import load_board
from export.golden import build_golden
from export.qonnx_export import export_codes_model
from tests.synthetic import calibrate
from zoo.blocks import QuantMLP

SMALL_MLP: dict[str, Any] = {
    "in_features": 12,
    "input_quant": {"bits": 8, "signed": True, "scale_log2": -7},
    "hidden": [16, 16],
    "weight_bits": 4,
    "act_bits": 4,
    "bias_bits": 16,
    "out_features": 6,
    "out_activation": "tanh",
    "out_quant": {"bits": 6, "signed": True, "narrow": True, "scale_log2": -5},
}
FLOW_DESIGN = {"name": "test-small-mlp", "hw": {"target_fps": 200_000}}


def sigint_as_on_a_terminal() -> None:
    """``preexec_fn`` for a child process a test interrupts with SIGINT (a Ctrl-C): a
    process started under a background job inherits SIGINT ignored, and Python keeps it
    ignored, so the child would never see the interrupt. Default disposition instead, as
    at a terminal (Python then installs its KeyboardInterrupt handler)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="session")
def small_mlp_export(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A calibrated small MLP, its QONNX export and tie-heavy golden vectors."""
    out = tmp_path_factory.mktemp("small_mlp")
    model = calibrate(QuantMLP(SMALL_MLP), 12)
    export_codes_model(model, out / "model_qonnx.onnx")
    rng = np.random.default_rng(1)
    g = build_golden(model, {"x": np.tanh(rng.normal(0, 2, (2000, 12)))}, n_ties=1500)
    # One input ``x``, one output ``y``: the tests use the arrays directly.
    golden = {"inputs": g.inputs["x"], "outputs": g.outputs["y"], "set": g.sets, "ties": g.ties}
    return {"model": model, "qonnx": out / "model_qonnx.onnx",
            "golden": golden, "dir": out}


@pytest.fixture(scope="session")
def pynq_z2() -> dict[str, Any]:
    return load_board("pynq-z2")
