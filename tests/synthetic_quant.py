"""Synthetic models with learned and non-uniform quantizers (no training; calibrated).

Same style as tests/synthetic.py: ``calibrate()``, random codes, ``iospec()``,
``output_codes(**codes)``. Input ``x``: (N, 8) INT8 codes, scale 2^-7; one output ``y``.

* :class:`LearnedMidModel`: a learned non-uniform quantizer mid-network (EQ-Net's
  per-dimension k-means codebook / the learned scalar ADC) whose integer levels feed
  two more dense layers through the lookup.
* :class:`BatchNormSigmoidModel`: the Tanh-BAE decoder shape, Dense -> BN -> ReLU ->
  Dense -> BN -> sigmoid -> quantizer.
* :class:`SoftBitModel`: a tanh output quantizer whose scale is not a power of two
  (soft bits on [-0.8, 0.8]); its codes are level indices, the levels travel in the
  I/O spec as a codebook.
* :class:`SoftBit64Model`: the soft-bit paper's exact latent quantizer, 64 uniform levels
  on [-0.8, 0.8] after tanh (mid-rise: zero is not a level), as 63 fixed decision
  boundaries (``zoo.network.UniformLevelsHead``); output: the level index.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from brevitas.nn import QuantReLU
from brevitas.quant import Uint8ActPerTensorFixedPoint
from torch import nn

from contract.iospec import IOSpec, TensorSpec
from zoo.blocks import fixed_quant_identity, quant_linear
from zoo.network import LevelsHead, UniformLevelsHead
from zoo.quantizers import LearnedQuantizer

W_BITS, B_BITS = 4, 16
N_IN = 8
INPUT_SCALE = 2.0**-7


def _relu(bits: int = 4) -> QuantReLU:
    return QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=bits,
                     return_quant_tensor=True)


class _Base(nn.Module):
    """x (N, 8) INT8 2^-7 -> ``core`` -> ``head``; output ``y`` (N, n_out)."""

    n_in = N_IN
    n_out = 4

    def __init__(self) -> None:
        super().__init__()
        self.input_quant = fixed_quant_identity(8, -7)

    def core(self, x: Any) -> torch.Tensor:
        raise NotImplementedError

    def head_out(self, y: torch.Tensor) -> Any:  # the head's quantizer output
        raise NotImplementedError

    def head_codes(self, y: torch.Tensor) -> torch.Tensor:
        return self.head_out(y).int()

    def out_spec(self) -> TensorSpec:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head_out(self.core(self.input_quant(x))).value

    def iospec(self) -> IOSpec:
        return IOSpec((TensorSpec("x", (self.n_in,), "INT8", scale=INPUT_SCALE),),
                      (self.out_spec(),))

    @torch.no_grad()
    def output_codes(self, **codes: torch.Tensor) -> dict[str, torch.Tensor]:
        x = codes["x"] * INPUT_SCALE
        return {"y": self.head_codes(self.core(self.input_quant(x)))}


class LearnedMidModel(_Base):
    """x -> Dense(8->6) -> learned quantizer (6 channels, 6 levels, INT5 levels 2^-3) ->
    lookup -> Dense(6->12) -> ReLU4 -> Dense(12->4) -> INT6 2^-3."""

    def __init__(self, levels: int = 6) -> None:
        super().__init__()
        self.fc1 = quant_linear(N_IN, 6, W_BITS, B_BITS)
        self.lq = LearnedQuantizer(6, levels, level_bits=5, scale_log2=-3)
        self.fc2 = quant_linear(6, 12, W_BITS, B_BITS)
        self.relu = _relu()
        self.fc3 = quant_linear(12, self.n_out, W_BITS, B_BITS)
        self.output_quant = fixed_quant_identity(6, -3)

    def core(self, x: Any) -> torch.Tensor:
        return self.fc3(self.relu(self.fc2(self.lq(self.fc1(x)))))

    def head_out(self, y: torch.Tensor) -> Any:
        return self.output_quant(y)

    def out_spec(self) -> TensorSpec:
        return TensorSpec("y", (self.n_out,), "INT6", scale=2.0**-3)

    @torch.no_grad()
    def fit_quantizer(self, x: torch.Tensor) -> None:
        """k-means of the first layer's outputs on float inputs ``x`` (N, 8)."""
        self.lq.fit(self.fc1(self.input_quant(x)))


class BatchNormSigmoidModel(_Base):
    """x -> Dense(8->16) -> BN -> ReLU4 -> Dense(16->4) -> BN -> sigmoid -> INT7 2^-6."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = quant_linear(N_IN, 16, W_BITS, B_BITS)
        self.bn1 = nn.BatchNorm1d(16)
        self.relu = _relu()
        self.fc2 = quant_linear(16, self.n_out, W_BITS, B_BITS)
        self.bn2 = nn.BatchNorm1d(self.n_out)
        self.act = nn.Sigmoid()
        self.output_quant = fixed_quant_identity(7, -6)

    def core(self, x: Any) -> torch.Tensor:
        return self.act(self.bn2(self.fc2(self.relu(self.bn1(self.fc1(x))))))

    def head_out(self, y: torch.Tensor) -> Any:
        return self.output_quant(y)

    def out_spec(self) -> TensorSpec:
        return TensorSpec("y", (self.n_out,), "INT7", scale=2.0**-6)


class SoftBitModel(_Base):
    """x -> Dense(8->16) -> ReLU4 -> Dense(16->4) -> tanh -> 63 levels on [-0.8, 0.8]
    (step 1.6/62, not a power of two) -> level index (UINT6)."""

    def __init__(self, bits: int = 6, max_value: float = 0.8) -> None:
        super().__init__()
        self.fc1 = quant_linear(N_IN, 16, W_BITS, B_BITS)
        self.relu = _relu()
        self.fc2 = quant_linear(16, self.n_out, W_BITS, B_BITS)
        self.heads = nn.ModuleDict({"y": LevelsHead("tanh", bits, max_value)})

    def core(self, x: Any) -> torch.Tensor:
        return self.fc2(self.relu(self.fc1(x)))

    def head_out(self, y: torch.Tensor) -> Any:
        return self.heads["y"].quantized(y)

    def head_codes(self, y: torch.Tensor) -> torch.Tensor:
        return self.heads["y"].codes(y)

    def out_spec(self) -> TensorSpec:
        return self.heads["y"].spec("y", self.n_out)

    def export_forward(self, x: torch.Tensor) -> tuple[Any, ...]:
        """What export traces: the head's quantizer output (export appends the index)."""
        return (self.head_out(self.core(self.input_quant(x))),)


class SoftBit64Model(SoftBitModel):
    """x -> Dense(8->16) -> ReLU4 -> Dense(16->3) -> tanh -> 64 levels on [-0.8, 0.8]
    (-0.8 + k 1.6/63, mid-rise) by 63 fixed boundaries -> level index (UINT6).

    Exported as MatMul -> Add -> Tanh -> MultiThreshold(learned_boundaries): a Brevitas
    quantizer would need zero-point 1/2, which FINN's Quant conversion refuses."""

    n_out = 3

    def __init__(self, levels: int = 64, max_value: float = 0.8) -> None:
        _Base.__init__(self)
        self.fc1 = quant_linear(N_IN, 16, W_BITS, B_BITS)
        self.relu = _relu()
        self.fc2 = quant_linear(16, self.n_out, W_BITS, B_BITS)
        self.heads = nn.ModuleDict({"y": UniformLevelsHead("tanh", levels, -max_value,
                                                           max_value)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads["y"].value(self.core(self.input_quant(x)))


def calibrate(model: nn.Module, n_in: int = N_IN, seed: int = 0) -> nn.Module:
    """Random weights drawn from ``seed`` (BatchNorm affine too), a few training-mode
    passes so activation scales and BatchNorm statistics settle, and a learned quantizer
    fitted by k-means."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):  # QuantLinear too: the same weights for one seed
                m.reset_parameters()
            if isinstance(m, nn.BatchNorm1d):
                m.weight.uniform_(0.3, 1.7)
                m.bias.uniform_(-0.5, 0.5)
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.rand(256, n_in) * 2 - 1)
    model.eval()
    if isinstance(model, LearnedMidModel):
        model.fit_quantizer(torch.tanh(torch.randn(4096, n_in) * 2))
    return model


def random_codes(n: int, n_in: int = N_IN, seed: int = 0) -> np.ndarray:
    """Signed INT8 input codes, with min/max extremes included."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(-128, 128, size=(n, n_in))
    codes[:2] = [[-128] * n_in, [127] * n_in]
    return codes
