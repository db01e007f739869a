"""Training datasets of exact LLRs and (y, H, N0) triples, cached on disk as .npz."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from phy.channels import mimo_transmit, rayleigh_mimo, snr_db_to_noise_var
from phy.constellation import map_bits
from phy.llr import exact_llr


def _snr_schedule(n: int, snr_db: tuple[float, float] | list[float], rng) -> np.ndarray:
    """Uniform draws from a (lo, hi) tuple, or cycling through a list of SNRs."""
    if isinstance(snr_db, tuple):
        lo, hi = snr_db
        return rng.uniform(lo, hi, n)
    values = np.asarray(snr_db, dtype=np.float64)
    return values[np.arange(n) % len(values)]


def dataset_filename(
    n: int, snr_db, n_t: int, n_r: int, bits_per_symbol: int, seed: int, max_log: bool
) -> str:
    """Cache file name that spells out every generating parameter."""
    kind = "range" if isinstance(snr_db, tuple) else "list"
    snr = "_".join(f"{float(s):g}" for s in snr_db)
    llr = "maxlog" if max_log else "exact"
    return (
        f"mimo_rayleigh_{n_t}x{n_r}_{2**bits_per_symbol}qam_{llr}_n{n}_"
        f"snr-{kind}-{snr}_seed{seed}.npz"
    )


def mimo_llr_dataset(
    n: int,
    snr_db: tuple[float, float] | list[float],
    n_t: int = 2,
    n_r: int = 2,
    bits_per_symbol: int = 6,
    seed: int = 0,
    max_log: bool = False,
    cache_dir: str | None = None,
) -> dict[str, np.ndarray]:
    """LLR training set for an n_t x n_r i.i.d. Rayleigh link with Gray QAM.

    SNR per sample: uniform over ``snr_db=(lo, hi)`` or cycling through a list;
    SNR = E_s/N0 (see ``phy.channels``). Returns a dict with
    "llr" (n, n_t*k) float32 (L = ln P(1)/P(0), stream 0's bits first),
    "bits" (n, n_t*k) uint8, "snr_db" (n,) float64, "y" (n, n_r) complex128,
    "H" (n, n_r, n_t) complex128, "noise_var" (n,) float64 (N0), kept in full
    precision so that ``exact_llr(y, H, noise_var)`` reproduces "llr".
    """
    path = None
    if cache_dir is not None:
        name = dataset_filename(n, snr_db, n_t, n_r, bits_per_symbol, seed, max_log)
        path = Path(cache_dir) / name
        if path.exists():
            with np.load(path) as f:
                return {k: f[k] for k in f.files}
    rng = np.random.default_rng(seed)
    snr = _snr_schedule(n, snr_db, rng)
    noise_var = snr_db_to_noise_var(snr)
    bits = rng.integers(0, 2, (n, n_t * bits_per_symbol), dtype=np.uint8)
    H = rayleigh_mimo(n, n_r, n_t, rng)
    y = mimo_transmit(map_bits(bits, bits_per_symbol), H, noise_var, rng)
    data = {
        "llr": exact_llr(y, H, noise_var, bits_per_symbol, max_log=max_log).astype(np.float32),
        "bits": bits,
        "snr_db": snr,
        "y": y,
        "H": H,
        "noise_var": noise_var,
    }
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **data)
        tmp.replace(path)
    return data
