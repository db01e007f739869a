"""Run a sweep on Ray: chunks are Ray tasks, points stop by the rule of :mod:`sweep.stats`.

The driver keeps at most ``slots`` chunks in flight (``--workers N``, else the cluster's
CPUs), submits the next chunk index of the points that still need chunks (highest BLER
first: lowest SNR, or largest CSI error on a ``csi_error_var`` axis), journals every
finished chunk (:mod:`sweep.journal`), and evaluates each point
over the prefix of its finished chunk indices only. Ray places and runs the tasks; the
driver only decides which chunk indices are still needed.

Outputs in ``<out>/<name>/``: ``journal.jsonl`` (every finished chunk), ``points.json``
(BLER/BER per point with 95% intervals; written atomically) and ``<name>.png``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from configs import REPO_ROOT
from sweep.config import Sweep, curve_identity, link_identity, load_sweep, resolve
from sweep.journal import FolderLock, Journal, chunk_key
from sweep.link import CODE_NAME, code, curve_key
from sweep.stats import COUNT_KEYS, add_counts, stop_reason, summarize

DEFAULT_OUT = REPO_ROOT / "results" / "sweeps"
SKIPPED = "skipped_below_floor"


@dataclass
class Point:
    """One (curve, axis value) point and its chunks (the axis: SNR, or a link key at one
    SNR; ``x`` is the axis value, ``link`` the point's link)."""

    ci: int
    si: int
    curve: dict[str, Any]
    snr_db: float
    max_chunks: int
    keys: list[str]                                   # chunk key by index
    x: float = 0.0
    link: dict[str, Any] = field(default_factory=dict)
    results: dict[int, dict[str, int]] = field(default_factory=dict)
    inflight: set[int] = field(default_factory=set)
    prefix: int = 0                                   # chunks 0..prefix-1 counted
    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_KEYS, 0))
    stop: str | None = None
    skipped: bool = False
    seen_blocks: int = 0                              # over all finished chunks
    seen_errors: int = 0

    def add(self, k: int, counts: dict[str, int]) -> None:
        """Chunk k finished (from the journal or a task)."""
        self.results[k] = counts
        self.seen_blocks += int(counts["blocks"])
        self.seen_errors += int(counts["block_errors"])

    @property
    def finished(self) -> bool:
        return self.stop is not None or self.skipped

    def advance(self, rule: dict[str, Any]) -> None:
        """Extend the counted prefix over consecutive finished chunks, stopping by rule."""
        while self.stop is None and self.prefix in self.results:
            add_counts(self.totals, self.results[self.prefix])
            self.prefix += 1
            self.stop = stop_reason(self.totals["blocks"], self.totals["block_errors"], rule)

    def need(self, rule: dict[str, Any], chunk_blocks: int) -> int:
        """Chunks to keep in flight: an estimate of the chunks still needed (scheduling
        only; results never depend on it)."""
        if self.finished:
            return 0
        left = self.max_chunks - len(self.results)
        b, e = self.seen_blocks, self.seen_errors
        if b == 0:
            return min(1, left)
        rate = max(e, 1) / b
        more = math.ceil(max(rule["target_block_errors"] - e, 1) / (rate * chunk_blocks))
        return max(1, min(more, left))

    def next_chunk(self) -> int | None:
        """The lowest chunk index neither finished nor in flight (None: all taken)."""
        k = self.prefix  # chunks below the counted prefix are all finished
        while k in self.results or k in self.inflight:
            k += 1
        return k if k < self.max_chunks else None


def _init_ray(address: str | None, workers: int | None) -> bool:
    """Start a local Ray instance (default) or join ``address``; True if we did either
    (False: Ray was already initialized by the caller)."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    common = {"job_config": ray.job_config.JobConfig(code_search_path=[str(REPO_ROOT)]),
              "log_to_driver": False, "logging_level": logging.WARNING}
    if address:
        _auth_like_ray_start()
        ray.init(address=address, **common)
    else:
        ray.init(address="local", num_cpus=workers or os.cpu_count() or 1,
                 include_dashboard=False, object_store_memory=128 * 2**20, **common)
    return True


def _auth_like_ray_start() -> None:
    """`ray start` (2.60) turns token authentication on when RAY_AUTH_MODE is unset and a
    token exists (~/.ray/auth_token, RAY_AUTH_TOKEN[_PATH]); ``ray.init`` with an explicit
    address does not, and is then refused by such a cluster. Apply `ray start`'s rule
    (its own function; an explicit RAY_AUTH_MODE is respected)."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # another Ray: leave it to RAY_AUTH_MODE
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def _nodes() -> list[dict[str, Any]]:
    import ray

    return [{"node": n["NodeID"], "address": n["NodeManagerAddress"],
             "cpus": n["Resources"].get("CPU", 0)} for n in ray.nodes() if n["Alive"]]


def build_points(sweep: Sweep, curves: list[dict[str, Any]]) -> list[Point]:
    """Every (curve, axis value) point with its chunk keys: sha256 of the point's link
    (``link_identity``), the curve's identity, seed, CRN flag, chunk size, SNR and chunk
    index; so an axis point's chunks are those of the equivalent SNR sweep."""
    st = sweep.stopping
    max_chunks = st.max_blocks // st.chunk_blocks
    points = []
    for ci, curve in enumerate(curves):
        ident = curve_identity(curve)
        for si, (x, snr, link) in enumerate(sweep.axis_points()):
            base = {"link": link_identity(link), "curve": ident, "seed": sweep.seed,
                    "crn": sweep.common_random_numbers, "chunk_blocks": st.chunk_blocks,
                    "snr_milli_db": round(float(snr) * 1000)}
            keys = [chunk_key({**base, "chunk": k}) for k in range(max_chunks)]
            points.append(Point(ci, si, curve, float(snr), max_chunks, keys, x, link))
    return points


def bler_falls_along(sweep: Sweep) -> bool:
    """True where BLER is taken as non-increasing along the axis (SNR), False where it is
    non-decreasing (CSI error variance)."""
    return sweep.axis is None


def apply_skips(points: list[Point], skip_below_floor: bool, falls: bool = True) -> None:
    """A curve's points beyond the first point, in the direction of falling BLER, that
    stopped below the floor are skipped (``falls``: BLER non-increasing along the axis,
    the SNR; else non-decreasing, as along the CSI error, and the points before it)."""
    if not skip_below_floor:
        return
    floor_si: dict[int, int] = {}
    pick = min if falls else max
    for p in points:
        if p.stop == "below_floor":
            floor_si[p.ci] = pick(floor_si.get(p.ci, p.si), p.si)
    for p in points:
        if p.ci in floor_si and (p.si > floor_si[p.ci] if falls else p.si < floor_si[p.ci]):
            p.skipped = True


def run_sweep(config: str | Path, out: str | Path = DEFAULT_OUT, address: str | None = None,
              workers: int | None = None, progress: bool = True,
              fresh: bool = False) -> dict[str, Any]:
    """Run (or resume) the sweep of ``config``; returns what points.json holds."""
    t_start = time.time()
    path = Path(config)
    sweep = load_sweep(path)
    curves = resolve(sweep, path)
    st = sweep.stopping
    rule = st.model_dump()
    out_dir = Path(out) / sweep.name
    out_dir.mkdir(parents=True, exist_ok=True)
    with FolderLock(out_dir):
        journal = Journal(out_dir / "journal.jsonl")
        if fresh and journal.path.exists():
            journal.path.rename(journal.path.with_name(f"journal.{int(time.time())}.jsonl"))
        records = journal.load()
        points = build_points(sweep, curves)
        reused = 0
        for p in points:
            for k, key in enumerate(p.keys):
                if key in records:
                    p.add(k, records[key]["counts"])
                    reused += 1
            p.advance(rule)
        apply_skips(points, st.skip_below_floor, bler_falls_along(sweep))
        run: dict[str, Any] = {"address": address, "chunks_reused": reused,
                               "chunks_computed": 0, "journal_duplicates": journal.duplicates,
                               "journal_torn_bytes": journal.torn_bytes}
        try:
            if not all(p.finished for p in points):
                run.update(_simulate(sweep, points, rule, journal, address, workers, progress))
        finally:
            journal.close()
        result = _result(sweep, curves, points, run, path)
        result["run"]["wall_s"] = round(time.time() - t_start, 3)
        result["run"]["workers_arg"] = workers
        result["history"] = _history(out_dir / "points.json")
        _write_json(out_dir / "points.json", result)
        from sweep.plot import plot_sweep

        plot_sweep(result, out_dir / f"{sweep.name}.png")
    return result


def _simulate(sweep: Sweep, points: list[Point], rule: dict[str, Any], journal: Journal,
              address: str | None, workers: int | None, progress: bool) -> dict[str, Any]:
    import ray
    from tqdm import tqdm

    started = _init_ray(address, workers)
    try:
        from sweep.task import run_chunk

        cpus = int(ray.cluster_resources().get("CPU", 1))
        slots = max(1, min(workers, cpus) if workers else cpus)
        nodes = _nodes()
        cb = sweep.stopping.chunk_blocks
        falls = bler_falls_along(sweep)
        order = sorted(points, key=lambda p: (p.si if falls else -p.si, p.ci))
        on_axis = sweep.axis is not None
        inflight: dict[Any, tuple[Point, int]] = {}
        computed, per_node, chunk_s = 0, {}, 0.0

        def total() -> int:
            return sum(len(p.results) + (len(p.inflight) if p.finished else
                                         max(len(p.inflight), p.need(rule, cb)))
                       for p in points)

        bar = tqdm(total=total(), initial=sum(len(p.results) for p in points),
                   desc=sweep.name, unit="chunk", disable=not progress, dynamic_ncols=True)
        try:
            while True:
                for p in order:
                    while len(inflight) < slots and len(p.inflight) < p.need(rule, cb):
                        k = p.next_chunk()
                        if k is None:
                            break
                        spec = {"link": p.link, "curve": p.curve, "snr_db": p.snr_db,
                                "chunk": k, "blocks": cb, "seed": sweep.seed,
                                "curve_key": curve_key(p.curve["label"],
                                                       sweep.common_random_numbers)}
                        inflight[run_chunk.remote(spec)] = (p, k)
                        p.inflight.add(k)
                if not inflight:
                    break
                ready, _ = ray.wait(list(inflight), num_returns=1)
                for ref in ready:
                    p, k = inflight.pop(ref)
                    got = ray.get(ref)
                    p.inflight.discard(k)
                    journal.append({"key": p.keys[k], "curve": p.curve["label"],
                                    "snr_db": p.snr_db, **({"x": p.x} if on_axis else {}),
                                    "chunk": k, "counts": got["counts"],
                                    "seconds": round(got["seconds"], 4), "node": got["node"],
                                    "pid": got["pid"], "time": round(time.time(), 3)})
                    p.add(k, got["counts"])
                    p.advance(rule)
                    computed += 1
                    chunk_s += got["seconds"]
                    per_node[got["node"]] = per_node.get(got["node"], 0) + 1
                    bar.update(1)
                apply_skips(points, sweep.stopping.skip_below_floor, falls)
                bar.total = total()
                done = sum(p.finished for p in points)
                bar.set_postfix_str(f"points {done}/{len(points)}", refresh=True)
        finally:
            bar.close()
        return {"chunks_computed": computed, "slots": slots, "nodes": nodes,
                "chunks_per_node": per_node, "chunk_seconds": round(chunk_s, 3),
                "ray_started_here": started}
    finally:
        if started:
            ray.shutdown()


def _result(sweep: Sweep, curves: list[dict[str, Any]], points: list[Point],
            run: dict[str, Any], path: Path) -> dict[str, Any]:
    c = code()
    bps, n_t = sweep.link.bits_per_symbol, sweep.link.n_t
    rows = []
    for p in sorted(points, key=lambda q: (q.ci, q.si)):
        row: dict[str, Any] = {"label": p.curve["label"], "mode": p.curve["mode"],
                               "snr_db": p.snr_db,
                               "ebn0_db": p.snr_db - 10 * math.log10(bps * c.rate)}
        if sweep.axis is not None:
            row[sweep.axis.key] = p.x
        if p.skipped:
            row.update(status=SKIPPED, chunks=0)
        else:
            row.update(status=p.stop, chunks=p.prefix,
                       **summarize(p.totals, info_bits=c.k, code_bits=c.n))
        rows.append(row)
    run["chunks_counted"] = sum(p.prefix for p in points if not p.skipped)
    return {"name": sweep.name, "description": sweep.description,
            "config_file": str(path), "config": sweep.model_dump(mode="json"),
            "code": CODE_NAME, "streams": n_t, "stopping_rule": "sweep.stats (module doc)",
            "axis": sweep.axis_key,
            "curves": [{"label": cv["label"], "mode": cv["mode"],
                        "identity": curve_identity(cv)} for cv in curves],
            "points": rows, "run": run}


def _history(path: Path, keep: int = 50) -> list[dict[str, Any]]:
    """The ``run`` records of earlier invocations (from the points.json being replaced)."""
    try:
        old = json.loads(path.read_text())
        return (list(old.get("history", [])) + [old["run"]])[-keep:]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=_json_default) + "\n")
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"not JSON serializable: {type(v).__name__}")
