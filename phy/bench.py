"""Throughput / memory benchmark of the link-level core, with the targets alongside.

    python -m phy.bench --out results/phy       (make bench-phy)

Prints and writes ``bench.json``: exact 2x2 64-QAM LLR vectors/s, LDPC (648,324)
codewords/s at 20 fixed iterations (and with early stopping at Eb/N0 = 2 dB), with one
and two decoder workers (the target counts the 2 cores), and
the peak traced memory of exact 4x4 16-QAM LLRs on a large batch.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

from phy.channels import awgn, ebn0_db_to_noise_var, mimo_transmit, rayleigh_mimo
from phy.constellation import map_bits
from phy.ldpc import BPDecoder, wifi_ldpc_648
from phy.llr import exact_llr

TARGETS = {"exact_llr_2x2_64qam_vectors_per_s": 50_000,
           "ldpc_20it_codewords_per_s": 2_000,
           "exact_llr_4x4_16qam_peak_mb": 2048}


def _best_rate(fn, n: int, repeats: int = 3) -> float:
    """Items per second, best of ``repeats`` (the machine is shared)."""
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = max(best, n / (time.perf_counter() - t))
    return best


def _mimo(batch: int, n: int, bps: int, snr_db: float, seed: int):
    rng = np.random.default_rng(seed)
    H = rayleigh_mimo(batch, n, n, rng)
    bits = rng.integers(0, 2, (batch, n * bps), dtype=np.uint8)
    n0 = 10 ** (-snr_db / 10)
    return mimo_transmit(map_bits(bits, bps), H, n0, rng), H, n0


def bench_llr(batch: int = 100_000) -> dict:
    y, H, n0 = _mimo(batch, 2, 6, 15.0, 0)
    return {"exact_llr_2x2_64qam_vectors_per_s": _best_rate(lambda: exact_llr(y, H, n0, 6), batch),
            "maxlog_llr_2x2_64qam_vectors_per_s":
                _best_rate(lambda: exact_llr(y, H, n0, 6, max_log=True), batch)}


def bench_ldpc(batch: int = 4000, workers: int = 2) -> dict:
    """Codewords/s per rule, one worker and ``workers`` (the target counts 2 cores)."""
    code = wifi_ldpc_648()
    rng = np.random.default_rng(1)
    words = code.encode(rng.integers(0, 2, (batch, code.k), dtype=np.uint8))
    n0 = ebn0_db_to_noise_var(2.0, 1, code.rate)
    llr = -4 * awgn((1.0 - 2.0 * words).astype(complex), n0, rng).real / n0
    out = {}
    for rule in ("offset-minsum", "sum-product"):
        key = rule.replace("-", "_")
        for w in sorted({1, workers}):
            fixed = BPDecoder(code, rule, 20, early_stop=False, workers=w)
            early = BPDecoder(code, rule, 20, early_stop=True, workers=w)
            out[f"ldpc_20it_{key}_{w}w_codewords_per_s"] = _best_rate(
                lambda d=fixed: d.decode(llr), batch)
            out[f"ldpc_early_stop_2db_{key}_{w}w_codewords_per_s"] = _best_rate(
                lambda d=early: d.decode(llr), batch)
    out["ldpc_20it_codewords_per_s"] = out[f"ldpc_20it_offset_minsum_{workers}w_codewords_per_s"]
    return out


def bench_memory(batch: int = 2000) -> dict:
    y, H, n0 = _mimo(batch, 4, 4, 15.0, 2)
    tracemalloc.start()
    t = time.perf_counter()
    exact_llr(y, H, n0, 4)
    rate = batch / (time.perf_counter() - t)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return {"exact_llr_4x4_16qam_peak_mb": peak, "exact_llr_4x4_16qam_vectors_per_s": rate,
            "exact_llr_4x4_16qam_batch": batch}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="results/phy")
    p.add_argument("--threads", type=int, default=1, help="torch threads (machine is shared)")
    p.add_argument("--workers", type=int, default=2, help="LDPC decoder worker threads")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    figures = {**bench_llr(), **bench_ldpc(workers=a.workers), **bench_memory()}
    report = {"figures": figures, "targets": TARGETS,
              "meets": {k: (figures[k] <= v if k.endswith("_mb") else figures[k] >= v)
                        for k, v in TARGETS.items()},
              "torch_threads": a.threads, "ldpc_workers": a.workers, "cpu_count": os.cpu_count(),
              "load_avg": os.getloadavg()}
    for k, v in figures.items():
        target = TARGETS.get(k)
        note = f"   (target {'<=' if k.endswith('_mb') else '>='} {target:,})" if target else ""
        print(f"{k:48s} {v:12,.0f}{note}")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {out / 'bench.json'}")


if __name__ == "__main__":
    main()
