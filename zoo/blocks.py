"""Quantization-aware Brevitas building blocks, and the MLP network of EQ-Net's f_Q.

Every scale in these networks is a power of two (Brevitas fixed-point quantizers)
and every bias lives on its layer's accumulator scale. With that, the float32
arithmetic of the Brevitas model is exact, so rounding ties are real ties and the
integer thresholds FINN derives reproduce them exactly (see hw.transforms for the
tie rule). This is part of the integer contract, not an optimisation.

Every deployable network implements the contract of :mod:`zoo.network`: ``iospec()``,
``output_codes(**codes) -> {name: codes}`` and ``forward(*floats)`` in input order.
"""

from __future__ import annotations

from typing import Any

import torch
from brevitas.nn import QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant import (
    Int8ActPerTensorFixedPoint,
    Int8ActPerTensorFloat,
    Int8WeightPerTensorFixedPoint,
    Int16Bias,
    Uint8ActPerTensorFixedPoint,
)
from torch import nn

from contract.iospec import IOSpec, TensorSpec

OUTPUT_ACTIVATIONS: dict[str, type[nn.Module] | None] = {
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "none": None,
}


def fixed_quant_identity(bits: int, scale_log2: int, signed: bool = True,
                         narrow: bool = False) -> QuantIdentity:
    """A quantizer with a constant power-of-two scale 2**scale_log2."""
    if not signed:
        raise ValueError("fixed-scale quantizers here are signed (INT codes)")
    # Brevitas' constant fixed-point scale is scaling_init / 2**(bits-1).
    scaling_init = 2.0 ** (scale_log2 + bits - 1)
    return QuantIdentity(
        act_quant=Int8ActPerTensorFixedPoint,
        bit_width=bits,
        narrow_range=narrow,
        scaling_impl_type="const",
        scaling_init=scaling_init,
        return_quant_tensor=True,
    )


def const_quant_identity(bits: int, scale: float, narrow: bool = True) -> QuantIdentity:
    """A signed quantizer with a constant scale that need not be a power of two (allowed
    only after a monotonic activation, as a codebook output: see zoo.network.LevelsHead).
    Brevitas' constant float scale is scaling_init / (2**(bits-1) - 1)."""
    return QuantIdentity(
        act_quant=Int8ActPerTensorFloat,
        bit_width=bits,
        narrow_range=narrow,
        scaling_impl_type="const",
        scaling_init=scale * (2 ** (bits - 1) - 1),
        return_quant_tensor=True,
    )


def quant_linear(in_f: int, out_f: int, weight_bits: int, bias_bits: int) -> QuantLinear:
    """Linear layer with power-of-two weight scale and accumulator-scale integer bias."""
    if bias_bits not in (16,):
        raise ValueError(f"bias_bits={bias_bits} is not supported (16 only)")
    return QuantLinear(
        in_f,
        out_f,
        bias=True,
        weight_quant=Int8WeightPerTensorFixedPoint,
        weight_bit_width=weight_bits,
        bias_quant=Int16Bias,
        return_quant_tensor=False,
    )


def code_datatype(bits: int, signed: bool = True) -> str:
    """FINN datatype name of ``bits``-bit codes."""
    return f"{'' if signed else 'U'}INT{bits}"


class QuantMLP(nn.Module):
    """Input quantizer -> [QuantLinear -> QuantReLU]* -> QuantLinear -> act -> output quantizer.

    One named input ``cfg["input_name"]`` (default ``x``), (N, in_features) and one named
    output ``cfg["output_name"]`` (default ``y``), (N, out_features).
    """

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        iq, oq = cfg["input_quant"], cfg["out_quant"]
        self.input_quant = fixed_quant_identity(iq["bits"], iq["scale_log2"],
                                                iq.get("signed", True), iq.get("narrow", False))
        layers: list[nn.Module] = []
        width = cfg["in_features"]
        for hidden in cfg["hidden"]:
            layers.append(quant_linear(width, hidden, cfg["weight_bits"], cfg["bias_bits"]))
            layers.append(QuantReLU(act_quant=Uint8ActPerTensorFixedPoint,
                                    bit_width=cfg["act_bits"], return_quant_tensor=True))
            width = hidden
        layers.append(quant_linear(width, cfg["out_features"], cfg["weight_bits"],
                                   cfg["bias_bits"]))
        act = OUTPUT_ACTIVATIONS[cfg.get("out_activation", "none")]
        if act is not None:
            layers.append(act())
        self.body = nn.Sequential(*layers)
        self.output_quant = fixed_quant_identity(oq["bits"], oq["scale_log2"],
                                                 oq.get("signed", True), oq.get("narrow", False))
        self.input_scale = 2.0 ** iq["scale_log2"]
        self.output_scale = 2.0 ** oq["scale_log2"]
        self.cfg = cfg

    def iospec(self) -> IOSpec:
        """The declared contract: one INT input with its scale, one INT output."""
        c, iq, oq = self.cfg, self.cfg["input_quant"], self.cfg["out_quant"]
        return IOSpec(
            (TensorSpec(c.get("input_name", "x"), (c["in_features"],),
                        code_datatype(iq["bits"]), scale=self.input_scale),),
            (TensorSpec(c.get("output_name", "y"), (c["out_features"],),
                        code_datatype(oq["bits"]), scale=self.output_scale),))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_features) floats (on the input grid or not) -> (N, out_features) dequantized."""
        return self.output_quant(self.body(self.input_quant(x))).value

    @torch.no_grad()
    def output_codes(self, **codes: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named integer input codes -> named integer output codes: the reference of the
        integer contract. (N, in_features) -> {output: (N, out_features)}."""
        spec = self.iospec()
        x = codes[spec.inputs[0].name]
        out = self.output_quant(self.body(self.input_quant(x * self.input_scale)))
        return {spec.outputs[0].name: out.int()}


class FloatMLP(nn.Module):
    """Plain float MLP (for decoders used only in training, and float baselines)."""

    def __init__(self, in_f: int, hidden: list[int], out_f: int, out_activation: str) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_f
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, out_f))
        act = OUTPUT_ACTIVATIONS[out_activation]
        if act is not None:
            layers.append(act())
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
