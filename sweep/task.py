"""The Ray task: one chunk of one point (imported by the driver only when Ray runs)."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import ray

from sweep.config import is_estimation
from sweep.link import chunk_seed, simulate_chunk
from sweep.processing import get_estimator, get_processing


def run_chunk_local(spec: dict[str, Any]) -> dict[str, Any]:
    """Counts of chunk ``spec['chunk']`` of a point (what the Ray task runs)."""
    import torch

    torch.set_num_threads(1)  # one core per task: Ray gives each task one CPU
    t0 = time.perf_counter()
    curve = spec["curve"]
    if is_estimation(curve):  # no detector: (y, H_est, noise_std) -> LLRs
        detector, process, estimator = None, None, get_estimator(curve, spec["link"])
    else:
        detector, process, estimator = curve["detector"], get_processing(curve), None
    rng = np.random.default_rng(chunk_seed(spec["seed"], spec["curve_key"], spec["snr_db"],
                                           spec["chunk"]))
    counts = simulate_chunk(spec["link"], spec["snr_db"], spec["blocks"], rng, detector,
                            process, spec["seed"], estimator=estimator)
    return {"counts": counts, "seconds": time.perf_counter() - t0, "pid": os.getpid()}


@ray.remote(num_cpus=1)
def run_chunk(spec: dict[str, Any]) -> dict[str, Any]:
    out = run_chunk_local(spec)
    out["node"] = ray.get_runtime_context().get_node_id()
    return out
