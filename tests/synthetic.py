"""Small synthetic QAT models for the flow's topology tests (no training; calibrated scales).

They use the same quantizer builders as the model zoo (train.models), so what holds
for them holds for the designs: power-of-two scales, accumulator-scale biases.
"""

from __future__ import annotations

import numpy as np
import torch
from brevitas.nn import QuantReLU
from brevitas.quant import Uint8ActPerTensorFixedPoint
from torch import nn

from contract.iospec import IOSpec, TensorSpec
from zoo.blocks import fixed_quant_identity, quant_linear

W_BITS, B_BITS = 4, 16


def _relu(bits: int = 4) -> QuantReLU:
    return QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=bits,
                     return_quant_tensor=True)


class CodesModel(nn.Module):
    """Common interface: ``input_scale``, ``output_scale``, ``output_codes(codes)``."""

    input_scale = 2.0**-7
    output_scale = 2.0**-3

    def __init__(self) -> None:
        super().__init__()
        self.input_quant = fixed_quant_identity(8, -7)
        self.output_quant = fixed_quant_identity(6, -3)

    def core(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_quant(self.core(self.input_quant(x))).value

    def iospec(self) -> IOSpec:
        """The contract (zoo.network): input ``x`` INT8 2^-7, output ``y`` INT6 2^-3."""
        n_in = self.n_in
        with torch.no_grad():
            n_out = self.core(self.input_quant(torch.zeros(1, n_in))).shape[-1]
        return IOSpec((TensorSpec("x", (n_in,), "INT8", scale=self.input_scale),),
                      (TensorSpec("y", (n_out,), "INT6", scale=self.output_scale),))

    @torch.no_grad()
    def output_codes(self, **codes: torch.Tensor) -> dict[str, torch.Tensor]:
        x = codes["x"] * self.input_scale
        return {"y": self.output_quant(self.core(self.input_quant(x))).int()}


class ResidualModel(CodesModel):
    """EQ-Net f_E-style residual block: both Add inputs share one quantizer."""

    def __init__(self, n_in: int = 8, width: int = 16, n_out: int = 4) -> None:
        super().__init__()
        self.n_in = n_in
        self.fc_in = quant_linear(n_in, width, W_BITS, B_BITS)
        self.relu_in = _relu()
        self.fc_res = quant_linear(width, width, W_BITS, B_BITS)
        self.shared = fixed_quant_identity(8, -4)
        self.relu_out = _relu()
        self.fc_out = quant_linear(width, n_out, W_BITS, B_BITS)

    def core(self, x: torch.Tensor) -> torch.Tensor:
        a = self.shared(self.relu_in(self.fc_in(x)))
        b = self.shared(self.fc_res(a))
        return self.fc_out(self.relu_out(a + b))


class BranchModel(CodesModel):
    """Fan-out into two parallel branches, concatenated (EQ-Net's branched decoder)."""

    def __init__(self, n_in: int = 8, width: int = 16) -> None:
        super().__init__()
        self.n_in = n_in
        self.fc_a, self.relu_a = quant_linear(n_in, width, W_BITS, B_BITS), _relu()
        self.fc_b, self.relu_b = quant_linear(n_in, width, W_BITS, B_BITS), _relu()
        self.out_a = quant_linear(width, 2, W_BITS, B_BITS)
        self.out_b = quant_linear(width, 2, W_BITS, B_BITS)

    def core(self, x: torch.Tensor) -> torch.Tensor:
        a = self.out_a(self.relu_a(self.fc_a(x)))
        b = self.out_b(self.relu_b(self.fc_b(x)))
        return torch.cat([a, b], dim=1)


class ConcatModel(CodesModel):
    """Several parallel Dense+ReLU branches on one shared quantizer, concatenated into a Dense.

    This is EQ-Net f_E's input stage (Dense(192, ReLU) per input group, concatenated).
    """

    def __init__(self, n_in: int = 8, groups: int = 3, width: int = 8) -> None:
        super().__init__()
        self.n_in = n_in
        self.branches = nn.ModuleList(quant_linear(n_in, width, W_BITS, B_BITS)
                                      for _ in range(groups))
        self.relus = nn.ModuleList(_relu() for _ in range(groups))
        self.shared = fixed_quant_identity(8, -3)
        self.fc_out = quant_linear(width * groups, 4, W_BITS, B_BITS)

    def core(self, x: torch.Tensor) -> torch.Tensor:
        parts = [self.shared(relu(fc(x))) for fc, relu in zip(self.branches, self.relus,
                                                             strict=True)]
        return self.fc_out(torch.cat(parts, dim=1))


class AbsModel(CodesModel):
    """An operator the flow does not map (Abs): must be refused by name."""

    def __init__(self, n_in: int = 8) -> None:
        super().__init__()
        self.n_in = n_in
        self.fc = quant_linear(n_in, 4, W_BITS, B_BITS)

    def core(self, x: torch.Tensor) -> torch.Tensor:
        return torch.abs(self.fc(x))


def calibrate(model: nn.Module, n_in: int, seed: int = 0) -> nn.Module:
    """Random weights, then a few training-mode passes so activation scales settle."""
    torch.manual_seed(seed)
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.rand(256, n_in) * 2 - 1)
    return model.eval()


def random_codes(n: int, n_in: int, seed: int = 0) -> np.ndarray:
    """Signed INT8 input codes, with min/max extremes included."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(-128, 128, size=(n, n_in))
    codes[:2] = [[-128] * n_in, [127] * n_in]
    return codes
