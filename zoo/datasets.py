"""Data set registry: named float features for a design, produced by ``phy``.

``design_data(design, n, seed)`` returns ``{name: (n, features) float32}``: the network's
inputs under their contract names, and the training targets as ``target:<output>``.
Kinds (``data.kind`` in the design YAML):

* ``mimo_llr``: exact ML LLRs of an i.i.d. Rayleigh MIMO link with Gray QAM
  (``phy.datasets``): ``llr``, ``soft_bits`` (tanh(L/2)), ``bits``, and the channel
  real-valued and flattened: ``y`` (2 n_r), ``H`` (2 n_r n_t), ``noise_std`` (1);
  cached in ``data/cache/``;
* ``multiuser``: the 12 x 4 BPSK uplink of the task-based quantization paper
  (``phy.multiuser``): ``y``, ``bits``, ``target:class``;
* ``bae_link``: the Tanh bit-wise autoencoder's link (``phy.coupled_mimo``): ``bits``
  (k n_t, 0/1), ``target:<output>`` (the bits again, for the receiver), and, for a
  receiver whose run holds its trained transmitter, that transmitter's symbols ``x`` and
  ``y = H x + n`` (both real-valued: real parts, then imaginary parts);
* ``synthetic_teacher``: random inputs on each input's grid range and targets from a
  fixed random teacher per output path (for the synthetic designs that prove the floor).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from phy.datasets import mimo_llr_dataset
from phy.llr import soft_bits

DATA_CACHE = Path("data/cache")
Dataset = Callable[[dict[str, Any], int, int, Path | None], dict[str, np.ndarray]]
DATASETS: dict[str, Dataset] = {}


def dataset(kind: str) -> Callable[[Dataset], Dataset]:
    def deco(fn: Dataset) -> Dataset:
        DATASETS[kind] = fn
        return fn
    return deco


@dataset("mimo_llr")
def _mimo_llr(design: dict[str, Any], n: int, seed: int,
              cache_dir: Path | None) -> dict[str, np.ndarray]:
    d = design["data"]
    # A [lo, hi] range (tuple: uniform draws) or discrete points (list: cycled through).
    snr = tuple(d["snr_db"]) if d.get("snr_db") is not None else list(d["snr_points"])
    ds = mimo_llr_dataset(n, snr_db=snr, n_t=d["n_t"], n_r=d["n_r"],
                          bits_per_symbol=d["bits_per_symbol"], seed=seed,
                          cache_dir=str(cache_dir) if cache_dir is not None else None)
    llr = ds["llr"].astype(np.float32)
    y, h = ds["y"], ds["H"]
    return {"llr": llr, "soft_bits": soft_bits(ds["llr"]).astype(np.float32),
            "bits": ds["bits"].astype(np.float32),
            # Real-valued and flattened, as EQ-Net's estimator reads them.
            "y": np.concatenate([y.real, y.imag], axis=1).astype(np.float32),
            "H": np.concatenate([h.real.reshape(len(h), -1), h.imag.reshape(len(h), -1)],
                                axis=1).astype(np.float32),
            "noise_std": np.sqrt(ds["noise_var"])[:, None].astype(np.float32)}


@dataset("multiuser")
def _multiuser(design: dict[str, Any], n: int, seed: int,
               cache_dir: Path | None) -> dict[str, np.ndarray]:
    """The task-based quantization paper's 12 x 4 BPSK uplink (phy.multiuser):
    ``y`` (n, n_r), ``bits`` (n, n_u), ``target:class`` (n, 1) class index."""
    from phy.multiuser import bpsk_multiuser_link, hypotheses, task_based_channel

    d = design["data"]
    rng = np.random.default_rng(seed)
    h = task_based_channel(d.get("n_r", 12), d.get("n_u", 4))
    snr = rng.uniform(*d["snr_db"], n) if "snr_db" in d else np.full(n, 10.0)
    ys, classes = [], []
    for s in np.unique(snr):  # one noise variance per distinct SNR (continuous: per row)
        sel = snr == s
        cls, y = bpsk_multiuser_link(int(sel.sum()), h, 10 ** (-s / 10), rng)
        ys.append(y)
        classes.append(cls)
    cls = np.concatenate(classes)
    bits, _ = hypotheses(h.shape[1])
    return {"y": np.concatenate(ys).astype(np.float32), "bits": bits[cls].astype(np.float32),
            "target:class": cls[:, None].astype(np.float32)}


def _bae_transmitter(design: dict[str, Any]) -> Any:
    """The trained transmitter a ``bae_link`` receiver reads: the ``transmitter`` entry of
    its own run (runs/<design>/checkpoint.pt, train.tasks.bae); in eval mode."""
    from zoo.checkpoint import load_run, load_transmitter, run_of

    return load_transmitter(load_run(design, run_of(design["name"]))[1])


def bae_channel(x: np.ndarray, design: dict[str, Any], snr_db: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
    """(n, 2 n_t) real symbols [Re | Im] -> (n, 2 n_t) y = H x + n, [Re | Im], with
    sigma^2 per receive antenna from ``snr_db`` (n,) (phy.coupled_mimo.noise_var)."""
    from phy.coupled_mimo import coupling_matrix, noise_var, through_real_h

    d = design["data"]
    h = coupling_matrix(d["n_t"], d["coupling"])
    n_t = d["n_t"]
    std = np.sqrt(noise_var(np.asarray(snr_db, dtype=np.float64)) / 2)[:, None]
    noise = [rng.standard_normal((len(x), n_t)) for _ in range(2)]  # Re, then Im
    return through_real_h(x, h) + std * np.concatenate(noise, axis=1)


@dataset("bae_link")
def _bae_link(design: dict[str, Any], n: int, seed: int,
              cache_dir: Path | None) -> dict[str, np.ndarray]:
    """``bits`` (n, k n_t) and ``target:<output>`` = bits for every model output; for a
    receiver (an input ``y``): ``x`` and ``y`` (n, 2 n_t) through its trained transmitter,
    the SNR uniform in ``data.snr_db`` per vector."""
    import torch

    d, m = design["data"], design["model"]
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2, (n, d["bits_per_antenna"] * d["n_t"])).astype(np.float32)
    out = {"bits": bits, **{f"target:{o}": bits for o in m["paths"]}}
    if "y" in m["inputs"]:
        tx = _bae_transmitter(design)
        with torch.no_grad():
            x = tx(torch.from_numpy(bits)).numpy().astype(np.float64)
        snr = rng.uniform(*d["snr_db"], n)
        out["x"] = x.astype(np.float32)
        out["y"] = bae_channel(x, design, snr, rng).astype(np.float32)
    return out


@dataset("synthetic_teacher")
def _synthetic(design: dict[str, Any], n: int, seed: int,
               cache_dir: Path | None) -> dict[str, np.ndarray]:
    m, teacher = design["model"], np.random.default_rng(design["data"].get("teacher_seed", 0))
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for name, d in m["inputs"].items():
        top = (2 ** (d["bits"] - 1) - 1) * 2.0 ** d["scale_log2"]
        out[name] = np.clip(rng.normal(0, top / 2, (n, d["features"])), -top,
                            top).astype(np.float32)
    for o, p in m["paths"].items():
        x = out[p["from"]]
        w = teacher.normal(0, 1.5 / np.sqrt(x.shape[1]), (x.shape[1], p["out_features"]))
        y = x / np.abs(x).max(initial=1e-9) @ w
        act = p["head"].get("activation", "none")
        y = np.tanh(y) if act == "tanh" else 1 / (1 + np.exp(-y)) if act == "sigmoid" else y
        out[f"target:{o}"] = y.astype(np.float32)
    return out


def design_data(design: dict[str, Any], n: int, seed: int,
                cache_dir: Path | None = DATA_CACHE) -> dict[str, np.ndarray]:
    """Named float features (inputs and ``target:<output>``) of a design's data set."""
    kind = design["data"]["kind"]
    if kind not in DATASETS:
        raise KeyError(f"data kind {kind!r}: known kinds {sorted(DATASETS)}")
    return DATASETS[kind](design, n, seed, cache_dir)


def design_inputs(design: dict[str, Any], spec_inputs: list[str], n: int, seed: int,
                  cache_dir: Path | None = DATA_CACHE) -> dict[str, np.ndarray]:
    """Only the network inputs named in ``spec_inputs``, (n, features) float32 each."""
    data = design_data(design, n, seed, cache_dir)
    return {k: data[k] for k in spec_inputs}


def design_features(design: dict[str, Any], n: int, seed: int,
                    cache_dir: Path | None = DATA_CACHE) -> np.ndarray:
    """(n, features) float32 input of a single-input ``mimo_llr`` design (its ``feature``)."""
    return design_data(design, n, seed, cache_dir)[design["data"]["feature"]]
