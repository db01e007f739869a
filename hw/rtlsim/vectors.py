"""Test vectors for co-simulation: the package's golden set, extended when it is too small.

The golden set (golden.npz) holds Brevitas output codes. When more vectors are asked for
(the acceptance wants >= 100,000), extra input codes are drawn (seeded) uniformly over the
input datatype, with its extremes included, and their expected codes come from executing
the package's ``model_finn.onnx`` (FINN's execution of the folded HW layers, the
``hw_folded`` stage that ``make hw`` verified bit-exact against Brevitas on golden.npz).
The extension is cached in ``golden_rtlsim.npz`` in the package (hashed in the manifest).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from qonnx.core.datatype import DataType

from contract.iospec import Golden
from hw.verify import execute_codes

EXTRA = "golden_rtlsim.npz"


def extra_inputs(n: int, dtype: str, features: int, seed: int) -> np.ndarray:
    """``n`` random input codes over the datatype's range; the first rows are the extremes."""
    dt = DataType[dtype]
    lo, hi = int(dt.min()), int(dt.max())
    rng = np.random.default_rng(seed)
    x = rng.integers(lo, hi + 1, size=(n, features), dtype=np.int64)
    corners = np.array([[lo] * features, [hi] * features, [0] * features])
    k = min(len(corners), n)
    x[:k] = corners[:k]
    return x


def single_stream(io: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The one input and one output stream of a package (``io`` of its manifest); several
    named streams are refused by name (callers that handle them use :func:`load_vectors`)."""
    ins, outs = io["inputs"], io["outputs"]
    if len(ins) != 1 or len(outs) != 1:
        raise ValueError(
            f"one input and one output stream expected; this package has inputs "
            f"{[t['name'] for t in ins]} and outputs {[t['name'] for t in outs]}")
    return ins[0], outs[0]


Codes = dict[str, np.ndarray]


def load_vectors(pkg: Path, io: dict[str, Any], n_min: int, seed: int = 2024
                 ) -> tuple[Codes, Codes, dict[str, int]]:
    """Inputs and expected output codes per named stream ({name: (N, F) int64}, the
    contract's names, golden.npz keys ``in:<name>`` / ``out:<name>``): golden.npz first,
    then the cached/new extension (every input drawn independently, seeded)."""
    i_names = [t["name"] for t in io["inputs"]]
    o_names = [t["name"] for t in io["outputs"]]
    g = Golden.load(pkg / "golden.npz")
    if sorted(g.inputs) != sorted(i_names) or sorted(g.outputs) != sorted(o_names):
        raise ValueError(f"golden.npz has {sorted(g.inputs)} -> {sorted(g.outputs)}; the "
                         f"contract {i_names} -> {o_names}")
    inputs = {k: g.inputs[k] for k in i_names}
    outputs = {k: g.outputs[k] for k in o_names}
    n0 = len(next(iter(inputs.values())))
    source = {"golden_brevitas": int(n0)}
    need = n_min - n0
    if need <= 0:
        return inputs, outputs, source
    cache = pkg / EXTRA

    def join(a: Codes, b: Codes) -> Codes:
        return {k: np.concatenate([a[k], b[k]]) for k in a}

    if cache.is_file():
        c = np.load(cache)
        keys_ok = all(f"in:{k}" in c.files for k in i_names) and all(
            f"out:{k}" in c.files for k in o_names)
        if len(i_names) == 1 and len(o_names) == 1 and "inputs" in c.files:  # older cache
            c = {f"in:{i_names[0]}": c["inputs"], f"out:{o_names[0]}": c["outputs"],
                 "seed": c["seed"]}
            keys_ok = True
        if keys_ok and len(c[f"in:{i_names[0]}"]) >= need and int(c["seed"]) == seed:
            source["extra_finn_model"] = int(need)
            return (join(inputs, {k: c[f"in:{k}"][:need] for k in i_names}),
                    join(outputs, {k: c[f"out:{k}"][:need] for k in o_names}), source)
    ex_in = {t["name"]: extra_inputs(need, t["datatype"], inputs[t["name"]].shape[1], seed + i)
             for i, t in enumerate(io["inputs"])}
    scales = {t["name"]: t.get("scale") or 1.0 for t in io["outputs"]}
    ex_out = execute_codes(pkg / "model_finn.onnx", ex_in, scales, "extra")
    if not isinstance(ex_out, dict):
        ex_out = {o_names[0]: ex_out}
    np.savez_compressed(cache, seed=seed, **{f"in:{k}": v for k, v in ex_in.items()},
                        **{f"out:{k}": v for k, v in ex_out.items()})
    source["extra_finn_model"] = int(need)
    return join(inputs, ex_in), join(outputs, ex_out), source
