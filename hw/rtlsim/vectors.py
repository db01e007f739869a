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
    """The one input and one output stream of a package (``io`` of its manifest). The
    stitched top has one AXI stream each way; several named streams are refused by name."""
    ins, outs = io["inputs"], io["outputs"]
    if len(ins) != 1 or len(outs) != 1:
        raise ValueError(
            f"the RTL stitcher and testbench carry one input and one output stream; this "
            f"package has inputs {[t['name'] for t in ins]} and outputs "
            f"{[t['name'] for t in outs]} (several streams need the DAG stitcher)")
    return ins[0], outs[0]


def load_vectors(pkg: Path, io: dict[str, Any], n_min: int, seed: int = 2024
                 ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Inputs and expected output codes: golden.npz first, then the cached/new extension."""
    i_io, o_io = single_stream(io)
    g = Golden.load(pkg / "golden.npz")
    inputs, outputs = g.inputs[i_io["name"]], g.outputs[o_io["name"]]
    source = {"golden_brevitas": int(len(inputs))}
    need = n_min - len(inputs)
    if need <= 0:
        return inputs, outputs, source
    cache = pkg / EXTRA
    if cache.is_file():
        c = np.load(cache)
        if len(c["inputs"]) >= need and int(c["seed"]) == seed:
            ex_in, ex_out = c["inputs"][:need], c["outputs"][:need]
            source["extra_finn_model"] = int(need)
            return (np.concatenate([inputs, ex_in]), np.concatenate([outputs, ex_out]), source)
    ex_in = extra_inputs(need, i_io["datatype"], inputs.shape[1], seed)
    ex_out = execute_codes(pkg / "model_finn.onnx", ex_in, o_io.get("scale") or 1.0, "extra")
    np.savez_compressed(cache, inputs=ex_in, outputs=ex_out, seed=seed)
    source["extra_finn_model"] = int(need)
    return np.concatenate([inputs, ex_in]), np.concatenate([outputs, ex_out]), source
