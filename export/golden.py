"""Golden vectors: integer input codes and the Brevitas CPU output codes.

Three sets, labelled in ``golden.npz["set"]``:
  * ``channel``: real soft bits from the link-level simulation, quantized to input codes;
  * ``ties``: vectors picked from a large random pool for the most exact rounding
    ties at the network's internal quantizers (where half-even and half-up differ);
  * ``extremes``: saturation extremes (all-min, all-max, zero, random min/max mixes).

Every tensor is named as in the network's I/O spec (``contract.iospec.Golden``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from brevitas.nn import QuantIdentity, QuantReLU

from contract.iospec import Golden, IOSpec


def reference_codes(model: Any, codes: np.ndarray | dict[str, np.ndarray], batch: int = 8192,
                    device: str = "cpu") -> np.ndarray | dict[str, np.ndarray]:
    """Output codes of the Brevitas model (``output_codes``) for integer input codes.

    Named ``{input: (N, F)}`` in, named ``{output: (N, G)}`` out; a single array in (a
    single-input network) gives the single output array.
    """
    spec = model.iospec()
    single = not isinstance(codes, dict)
    named = {spec.inputs[0].name: codes} if single else codes
    n = len(next(iter(named.values())))
    model = model.to(device).eval()
    parts: dict[str, list[np.ndarray]] = {o: [] for o in spec.output_names}
    for i in range(0, n, batch):
        c = {k: torch.from_numpy(v[i:i + batch].astype(np.float32)).to(device)
             for k, v in named.items()}
        for k, v in model.output_codes(**c).items():
            parts[k].append(v.cpu().numpy().astype(np.int64))
    out = {k: (np.concatenate(v) if v else np.zeros((0,), np.int64)) for k, v in parts.items()}
    return out[spec.output_names[0]] if single else out


@torch.no_grad()
def count_ties(model: Any, codes: dict[str, np.ndarray]) -> np.ndarray:
    """Per vector, how many internal quantizer inputs sit exactly on a rounding tie."""
    n = len(next(iter(codes.values())))
    ties = torch.zeros(n, dtype=torch.int64)
    hooks = []
    iq = model.input_quant
    inputs = list(iq.values()) if isinstance(iq, torch.nn.ModuleDict) else [iq]

    def hook(mod: torch.nn.Module, args: tuple, _out: Any) -> None:
        x = args[0]
        x = x.value if hasattr(x, "value") else x
        scale = mod.act_quant.scale() if hasattr(mod.act_quant, "scale") else None
        if scale is None:
            return
        v = x / scale
        ties.add_(((v - torch.floor(v)) == 0.5).reshape(len(x), -1).sum(1))

    for m in model.modules():
        if isinstance(m, (QuantReLU, QuantIdentity)) and m not in inputs:
            hooks.append(m.register_forward_hook(hook))
    try:
        model.eval()
        model.output_codes(**{k: torch.from_numpy(v.astype(np.float32))
                              for k, v in codes.items()})
    finally:
        for h in hooks:
            h.remove()
    return ties.numpy()


def tie_heavy_vectors(model: Any, spec: IOSpec, n: int, rng: np.random.Generator,
                      pool: int = 100_000) -> dict[str, np.ndarray]:
    """The ``n`` vectors with the most exact ties out of a random pool of small-magnitude
    codes (every input drawn, in spec order)."""
    cand = {}
    for t in spec.inputs:
        lo, hi = t.code_min, t.code_max
        mag = rng.choice([2, 8, 32, hi + 1], size=(pool, 1))
        c = np.round(rng.uniform(-1, 1, (pool, t.features)) * mag)
        cand[t.name] = np.clip(c, lo, hi).astype(np.int64)
    order = np.argsort(-count_ties(model, cand), kind="stable")[:n]
    return {k: v[order] for k, v in cand.items()}


def extreme_vectors(features: int, lo: int, hi: int, rng: np.random.Generator,
                    n_random: int = 500) -> np.ndarray:
    """All-min, all-max, zero, alternating, and random min/max mixes: (5 + n_random, F)."""
    fixed = [np.full(features, lo), np.full(features, hi), np.zeros(features),
             np.resize([lo, hi], features), np.resize([hi, lo], features)]
    mixes = rng.choice([lo, hi, 0], size=(n_random, features), p=[0.45, 0.45, 0.1])
    return np.concatenate([np.stack(fixed), mixes]).astype(np.int64)


def channel_inputs(design: dict[str, Any], spec: IOSpec, n: int, seed: int
                   ) -> dict[str, np.ndarray]:
    """(n, features) float channel vectors of every input of ``spec``: the design's data
    set where it has the feature; an input it lacks (EQ-Net g's codebook input of f_Q's
    indices) comes from the run of ``train.source.design`` (runs/<design>): that
    network's output of the same name on its own data, as this spec's levels."""
    from zoo.checkpoint import load_trained, run_of
    from zoo.datasets import design_data

    data = design_data(design, n, seed)
    out = {t.name: data[t.name] for t in spec.inputs if t.name in data}
    missing = [t for t in spec.inputs if t.name not in data]
    if not missing:
        return out
    src = (design.get("train") or {}).get("source")
    if not src:
        raise KeyError(f"design {design['name']!r}: inputs {[t.name for t in missing]} are "
                       f"not features of data kind {design['data']['kind']!r}, and no "
                       "train.source names the network that produces them")
    from configs import load_design

    src_design = load_design(src["design"])
    src_net = load_trained(src_design, run_of(src["design"]))
    src_spec = src_net.iospec()
    x = design_data(src_design, n, seed)
    codes = reference_codes(src_net, {t.name: t.to_codes(x[t.name]) for t in src_spec.inputs})
    for t in missing:
        if t.name not in codes:
            raise KeyError(f"design {design['name']!r}: input {t.name!r} is not an output of "
                           f"{src['design']!r} (outputs {sorted(codes)})")
        out[t.name] = t.to_float(codes[t.name])
    return out


def build_golden(model: Any, channel_inputs: dict[str, np.ndarray], seed: int = 0,
                 n_ties: int = 2000) -> Golden:
    """Golden named input/output codes for the three sets (channel, ties, extremes)."""
    spec: IOSpec = model.iospec()
    rng = np.random.default_rng(seed)
    sets = {"channel": {t.name: t.to_codes(channel_inputs[t.name]) for t in spec.inputs},
            "ties": tie_heavy_vectors(model, spec, n_ties, rng),
            "extremes": {t.name: extreme_vectors(t.features, t.code_min, t.code_max, rng)
                         for t in spec.inputs}}
    inputs = {t.name: np.concatenate([v[t.name] for v in sets.values()]) for t in spec.inputs}
    labels = np.concatenate([np.full(len(next(iter(v.values()))), k) for k, v in sets.items()])
    outputs = reference_codes(model, inputs)
    return Golden(inputs, outputs, labels, count_ties(model, inputs))
