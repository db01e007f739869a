"""Training data for a design, produced by the link-level simulation package (phy)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from phy.datasets import mimo_llr_dataset
from phy.llr import soft_bits

DATA_CACHE = Path("data/cache")


def design_features(design: dict[str, Any], n: int, seed: int,
                    cache_dir: Path | None = DATA_CACHE) -> np.ndarray:
    """Float network inputs (n, in_features) for a design, from the channel simulation."""
    d = design["data"]
    if d["kind"] != "mimo_llr":
        raise ValueError(f"data kind {d['kind']!r} is not supported by train.data")
    ds = mimo_llr_dataset(
        n,
        snr_db=tuple(d["snr_db"]),
        n_t=d["n_t"],
        n_r=d["n_r"],
        bits_per_symbol=d["bits_per_symbol"],
        seed=seed,
        cache_dir=str(cache_dir) if cache_dir is not None else None,
    )
    if d["feature"] == "soft_bits":
        return soft_bits(ds["llr"]).astype(np.float32)
    if d["feature"] == "llr":
        return ds["llr"].astype(np.float32)
    raise ValueError(f"feature {d['feature']!r} is not supported")
