"""Golden vectors: integer input codes and the Brevitas CPU output codes.

Three sets, labelled in ``golden.npz["set"]``:
  * ``channel``: real soft bits from the link-level simulation, quantized to input codes;
  * ``ties``: vectors picked from a large random pool for the most exact rounding
    ties at the network's internal quantizers (where half-even and half-up differ);
  * ``extremes``: saturation extremes (all-min, all-max, zero, random min/max mixes).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from brevitas.nn import QuantIdentity, QuantReLU

from train.models import QuantMLP


def quantize_inputs(x: np.ndarray, scale: float, bits: int) -> np.ndarray:
    """Float -> signed input codes: round half to even (Brevitas' ROUND), saturate to range."""
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return np.clip(np.round(np.asarray(x, dtype=np.float64) / scale), lo, hi).astype(np.int64)


def reference_codes(model: QuantMLP, codes: np.ndarray, batch: int = 8192,
                    device: str = "cpu") -> np.ndarray:
    """Output codes of the Brevitas model for integer input codes."""
    model = model.to(device).eval()
    out = []
    for i in range(0, len(codes), batch):
        c = torch.from_numpy(codes[i:i + batch].astype(np.float32)).to(device)
        out.append(model.output_codes(c).cpu().numpy().astype(np.int64))
    return np.concatenate(out) if out else np.zeros((0,), np.int64)


@torch.no_grad()
def count_ties(model: QuantMLP, codes: np.ndarray) -> np.ndarray:
    """Per vector, how many internal quantizer inputs sit exactly on a rounding tie."""
    ties = torch.zeros(len(codes), dtype=torch.int64)
    hooks = []

    def hook(mod: torch.nn.Module, args: tuple, _out: Any) -> None:
        x = args[0]
        x = x.value if hasattr(x, "value") else x
        scale = mod.act_quant.scale() if hasattr(mod.act_quant, "scale") else None
        if scale is None:
            return
        v = x / scale
        ties.add_(((v - torch.floor(v)) == 0.5).reshape(len(x), -1).sum(1))

    for m in model.modules():
        if isinstance(m, (QuantReLU, QuantIdentity)) and m is not model.input_quant:
            hooks.append(m.register_forward_hook(hook))
    try:
        model.eval()
        model.output_codes(torch.from_numpy(codes.astype(np.float32)))
    finally:
        for h in hooks:
            h.remove()
    return ties.numpy()


def tie_heavy_vectors(model: QuantMLP, n: int, in_features: int, bits: int,
                      rng: np.random.Generator, pool: int = 100_000) -> np.ndarray:
    """The ``n`` vectors with the most exact ties out of a random pool of small-magnitude codes."""
    hi = 2 ** (bits - 1)
    mag = rng.choice([2, 8, 32, hi], size=(pool, 1))
    cand = np.clip(np.round(rng.uniform(-1, 1, (pool, in_features)) * mag), -hi, hi - 1)
    cand = cand.astype(np.int64)
    t = count_ties(model, cand)
    order = np.argsort(-t, kind="stable")[:n]
    return cand[order]


def extreme_vectors(in_features: int, bits: int, rng: np.random.Generator,
                    n_random: int = 500) -> np.ndarray:
    """All-min, all-max, zero, alternating, and random min/max mixes."""
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    fixed = [np.full(in_features, lo), np.full(in_features, hi), np.zeros(in_features),
             np.resize([lo, hi], in_features), np.resize([hi, lo], in_features)]
    mixes = rng.choice([lo, hi, 0], size=(n_random, in_features), p=[0.45, 0.45, 0.1])
    return np.concatenate([np.stack(fixed), mixes]).astype(np.int64)


def build_golden(model: QuantMLP, channel_inputs: np.ndarray, in_bits: int,
                 seed: int = 0, n_ties: int = 2000) -> dict[str, np.ndarray]:
    """Golden input/output codes for the three sets."""
    rng = np.random.default_rng(seed)
    n_in = channel_inputs.shape[1]
    sets = {
        "channel": quantize_inputs(channel_inputs, model.input_scale, in_bits),
        "ties": tie_heavy_vectors(model, n_ties, n_in, in_bits, rng),
        "extremes": extreme_vectors(n_in, in_bits, rng),
    }
    inputs = np.concatenate(list(sets.values()))
    labels = np.concatenate([np.full(len(v), k) for k, v in sets.items()])
    outputs = reference_codes(model, inputs)
    return {"inputs": inputs, "outputs": outputs, "set": labels,
            "ties": count_ties(model, inputs)}
