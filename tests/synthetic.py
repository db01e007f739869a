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


class TwoInputJoinModel(nn.Module):
    """Two inputs on different scales whose paths JOIN, and two outputs (EQ-Net f_E's
    input stage: per-input Dense layers, concatenated).

    a (N, 6) INT8 2^-7 -> Dense(6 -> 8); b (N, 4) INT8 2^-5 -> Dense(4 -> 8); the two
    accumulators (different scales and biases) concatenated (N, 16) -> shared ReLU
    quantizer -> Dense(16 -> 12) + ReLU -> heads: y = Dense(12 -> 2) INT6 2^-3 and
    z = Dense(12 -> 3) INT4 2^-2.
    """

    n_in = (6, 4)

    def __init__(self) -> None:
        super().__init__()
        self.input_quant = nn.ModuleDict({"a": fixed_quant_identity(8, -7),
                                          "b": fixed_quant_identity(8, -5)})
        self.fc_a = quant_linear(6, 8, W_BITS, B_BITS)
        self.fc_b = quant_linear(4, 8, W_BITS, B_BITS)
        self.relu_cat = _relu()
        self.fc_mid, self.relu_mid = quant_linear(16, 12, W_BITS, B_BITS), _relu()
        self.head_y = quant_linear(12, 2, W_BITS, B_BITS)
        self.head_z = quant_linear(12, 3, W_BITS, B_BITS)
        self.quant_y = fixed_quant_identity(6, -3)
        self.quant_z = fixed_quant_identity(4, -2)

    def _heads(self, a: torch.Tensor, b: torch.Tensor) -> tuple:
        a, b = self.input_quant["a"](a), self.input_quant["b"](b)
        h = self.relu_cat(torch.cat([self.fc_a(a), self.fc_b(b)], dim=1))
        h = self.relu_mid(self.fc_mid(h))
        return self.quant_y(self.head_y(h)), self.quant_z(self.head_z(h))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, z = self._heads(a, b)
        return y.value, z.value

    def iospec(self) -> IOSpec:
        return IOSpec((TensorSpec("a", (6,), "INT8", scale=2.0**-7),
                       TensorSpec("b", (4,), "INT8", scale=2.0**-5)),
                      (TensorSpec("y", (2,), "INT6", scale=2.0**-3),
                       TensorSpec("z", (3,), "INT4", scale=2.0**-2)))

    @torch.no_grad()
    def output_codes(self, **codes: torch.Tensor) -> dict[str, torch.Tensor]:
        y, z = self._heads(codes["a"] * 2.0**-7, codes["b"] * 2.0**-5)
        return {"y": y.int(), "z": z.int()}


class ArgmaxModel(CodesModel):
    """A detector's classification head: x (N, 8) -> Dense(16) + ReLU -> Dense(5) logits
    -> INT4 2^-1 quantizer -> argmax: y (N, 1) UINT3 class index (ties: lowest index, as
    torch.argmax; coarse INT4 logits make ties frequent)."""

    def __init__(self, n_in: int = 8, width: int = 16, classes: int = 5) -> None:
        super().__init__()
        self.n_in, self.classes = n_in, classes
        self.fc, self.relu = quant_linear(n_in, width, W_BITS, B_BITS), _relu()
        self.fc_out = quant_linear(width, classes, W_BITS, B_BITS)
        self.output_quant = fixed_quant_identity(4, -1)

    def core(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_out(self.relu(self.fc(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.output_quant(self.core(self.input_quant(x))).value
        return torch.argmax(logits, dim=1, keepdim=True)

    def iospec(self) -> IOSpec:
        bits = max(1, (self.classes - 1).bit_length())
        return IOSpec((TensorSpec("x", (self.n_in,), "INT8", scale=self.input_scale),),
                      (TensorSpec("y", (1,), f"UINT{bits}", scale=1.0, post="argmax"),))

    @torch.no_grad()
    def output_codes(self, **codes: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.output_quant(self.core(self.input_quant(codes["x"] * self.input_scale)))
        return {"y": torch.argmax(logits.int(), dim=1, keepdim=True).int()}


class GBranchModel(CodesModel):
    """EQ-Net g's branched decoder: 6 latents -> 12 branches x [Dense(6 -> 48) + ReLU ->
    Dense(48 -> 48) + ReLU -> Dense(48 -> 1)], every branch reading the same latents; the
    12 branch outputs concatenated (N, 12) -> INT6 2^-3. 4-bit weights and activations."""

    def __init__(self, n_in: int = 6, branches: int = 12, width: int = 48) -> None:
        super().__init__()
        self.n_in = n_in
        self.branches = nn.ModuleList(
            nn.Sequential(quant_linear(n_in, width, W_BITS, B_BITS), _relu(),
                          quant_linear(width, width, W_BITS, B_BITS), _relu(),
                          quant_linear(width, 1, W_BITS, B_BITS))
            for _ in range(branches))

    def core(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


def calibrate(model: nn.Module, n_in: int | tuple[int, ...], seed: int = 0) -> nn.Module:
    """Random weights drawn from ``seed`` (the models draw theirs when constructed, before
    this seeds torch: redrawn here, so a test's graphs are the same in every process), then
    a few training-mode passes so activation scales settle (``n_in``: features of the one
    input, or of each input in order)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):  # QuantLinear too
                m.reset_parameters()
    model.train()
    sizes = (n_in,) if isinstance(n_in, int) else tuple(n_in)
    with torch.no_grad():
        for _ in range(4):
            model(*(torch.rand(256, n) * 2 - 1 for n in sizes))
    return model.eval()


def golden_codes(model: nn.Module, n: int = 10_000, seed: int = 0,
                 n_ties: int = 1500) -> dict[str, np.ndarray]:
    """Named input codes per the model's I/O spec, ``n`` vectors: rounding-tie-heavy
    ones (``n_ties``, export.golden), saturation extremes (505) and uniform random."""
    from export.golden import extreme_vectors, tie_heavy_vectors

    spec = model.iospec()
    rng = np.random.default_rng(seed)
    ties = tie_heavy_vectors(model, spec, n_ties, rng, pool=20_000)
    ext = {t.name: extreme_vectors(t.features, t.code_min, t.code_max, rng)
           for t in spec.inputs}
    n_rand = n - n_ties - len(next(iter(ext.values())))
    return {t.name: np.concatenate([ties[t.name], ext[t.name], rng.integers(
        t.code_min, t.code_max + 1, size=(n_rand, t.features))]).astype(np.int64)
        for t in spec.inputs}


def random_codes(n: int, n_in: int, seed: int = 0) -> np.ndarray:
    """Signed INT8 input codes, with min/max extremes included."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(-128, 128, size=(n, n_in))
    codes[:2] = [[-128] * n_in, [127] * n_in]
    return codes
