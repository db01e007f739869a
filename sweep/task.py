"""The Ray task: one chunk of one point (imported by the driver only when Ray runs)."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import ray

from sweep.link import chunk_seed, simulate_chunk
from sweep.processing import get_processing


def run_chunk_local(spec: dict[str, Any]) -> dict[str, Any]:
    """Counts of chunk ``spec['chunk']`` of a point (what the Ray task runs)."""
    import torch

    torch.set_num_threads(1)  # one core per task: Ray gives each task one CPU
    t0 = time.perf_counter()
    process = get_processing(spec["curve"])
    rng = np.random.default_rng(chunk_seed(spec["seed"], spec["curve_key"], spec["snr_db"],
                                           spec["chunk"]))
    counts = simulate_chunk(spec["link"], spec["snr_db"], spec["blocks"], rng,
                            spec["curve"]["detector"], process, spec["seed"])
    return {"counts": counts, "seconds": time.perf_counter() - t0, "pid": os.getpid()}


@ray.remote(num_cpus=1)
def run_chunk(spec: dict[str, Any]) -> dict[str, Any]:
    out = run_chunk_local(spec)
    out["node"] = ray.get_runtime_context().get_node_id()
    return out
