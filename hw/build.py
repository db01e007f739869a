"""Build one design for one board: FINN flow, stage-by-stage verification, package."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from qonnx.core.modelwrapper import ModelWrapper

from configs import REPO_ROOT, load_board, load_design
from contract.export_files import IOSPEC, read_reference
from contract.iospec import Golden, IOSpec
from hw.flow import STAGE_CHECKPOINTS, build_lock, inject_fault, run_finn_build
from hw.journal import VOLATILE_REPORTS
from hw.package import (
    collect_rtl,
    finn_resource_total,
    folding_of,
    io_contract,
    tool_versions,
    write_manifest,
)
from hw.steps import CONTRACT_IO, HOST_OUTPUT_SCALE, contract_io_names
from hw.threshold_proof import prove_thresholds, threshold_coverage
from hw.transforms.branches import branch_decisions
from hw.verify import compare, verify_stages

PATH_ATTRS = ("code_gen_dir_ipgen", "code_gen_dir_cppsim", "ipgen_path", "ip_path",
              "executable_path")


def write_portable_model(src: Path, dst: Path, spec: IOSpec | None = None) -> None:
    """Copy a FINN model, with its absolute build paths (random code-generation folders)
    replaced by the package's own ``rtl/<node>``: the package's bytes then depend on its
    inputs only, and name nothing outside it. With ``spec``, the graph's inputs and
    outputs get the contract's names back (FINN renames them global_in, ...; positions
    are kept)."""
    model = onnx.load(str(src))
    for node in model.graph.node:
        for a in node.attribute:
            if a.name in PATH_ATTRS and a.s:
                a.s = f"rtl/{node.name}".encode()
    if spec is not None:
        g = model.graph
        ins, outs = contract_io_names(ModelWrapper(model))
        # Graph inputs and outputs in contract order, under the contract's names.
        for field, order in ((g.input, ins), (g.output, outs)):
            by_name = {v.name: v for v in field}
            ordered = [type(by_name[n])() for n in order]
            for new, n in zip(ordered, order, strict=True):
                new.CopyFrom(by_name[n])
            del field[:]
            field.extend(ordered)
        pairs = list(zip(ins, spec.input_names, strict=True)) + list(
            zip(outs, spec.output_names, strict=True))
        rename = {old: new for old, new in pairs if old != new}
        for node in g.node:
            node.input[:] = [rename.get(t, t) for t in node.input]
            node.output[:] = [rename.get(t, t) for t in node.output]
        for vi in list(g.input) + list(g.output) + list(g.value_info):
            vi.name = rename.get(vi.name, vi.name)
        for qa in g.quantization_annotation:
            qa.tensor_name = rename.get(qa.tensor_name, qa.tensor_name)
        for prop in list(model.metadata_props) + list(g.metadata_props):
            if prop.key == CONTRACT_IO:
                prop.value = json.dumps({"inputs": spec.input_names,
                                         "outputs": spec.output_names})
            elif prop.key.startswith(HOST_OUTPUT_SCALE + ":"):
                old = prop.key.split(":", 1)[1]
                prop.key = f"{HOST_OUTPUT_SCALE}:{rename.get(old, old)}"
    onnx.save(model, str(dst))


STEP_TIMES = "time_per_step.json"


def step_times(path: Path) -> dict[str, float]:
    """FINN's seconds per step of the last builder run (empty when nothing ran)."""
    return json.loads(path.read_text()) if path.is_file() else {}


def packaged_reports(report_dir: Path) -> list[Path]:
    """FINN's reports that go into a package: all but what its builder rewrites at every
    exit (step timings, which the manifest's ``timing_s`` holds, and its tool metadata),
    so that a resumed build packages exactly what a clean one does."""
    return sorted(f for f in report_dir.glob("*.json") if f.name not in VOLATILE_REPORTS)


EXHAUSTIVE = "exhaustive"
PROOF_KEYS = ("points", "mismatches", "exhaustive", "reason", "input_datatype", "range",
              "channels", "thresholds", "act_val", "mvau", "matmul", "first_mismatches")
MEMORY_KEYS = ("files", "entries", "mismatches", "search_points", "search_mismatches",
               "reason")


def exhaustive_summary(proof: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The manifest's ``verification.exhaustive``: per Thresholding layer, every integer
    input enumerated against the QONNX (Brevitas) activation and quantizer (``points``,
    ``mismatches``), and its RTL threshold memories (``rtl_memory``)."""
    out = {}
    for layer, r in proof.items():
        row = {k: r[k] for k in PROOF_KEYS if k in r}
        if "rtl_memory" in r:
            mem = r["rtl_memory"]
            row["rtl_memory"] = {k: (len(mem[k]) if isinstance(mem[k], list) else mem[k])
                                 for k in MEMORY_KEYS if k in mem}
        out[layer] = json.loads(json.dumps(row, default=int))
    return out


def has_unrolled(model: ModelWrapper) -> bool:
    return any(n.op_type.startswith("UnrolledMLP") for n in model.graph.node)


def prove_unrolled_tables(model: ModelWrapper) -> dict[str, dict[str, Any]]:
    """Per unrolled layer (``<node>/l<i>``): every threshold table of the latency backend
    against the layer's thresholds over every accumulator value the layer can reach
    (hw.unrolled_rtl.prove_table); ``points`` values x channels, ``mismatches``."""
    from qonnx.custom_op.registry import getCustomOp

    from hw.unrolled_rtl import prove_table

    out: dict[str, dict[str, Any]] = {}
    for n in model.graph.node:
        if not n.op_type.startswith("UnrolledMLP"):
            continue
        inst = getCustomOp(n)
        layers = inst.layers({i: model.get_initializer(i) for i in n.input[1:]})
        d = inst.design(model)
        tl = iter(d.tables)
        for i, layer in enumerate(layers):
            if layer.thresholds is None:
                continue
            tabs = next(tl)
            rows = layer.thresholds
            bad = sum(prove_table(t, rows[0 if rows.shape[0] == 1 else j])
                      for j, t in enumerate(tabs))
            out[f"{n.name}/l{i}"] = {
                "points": int(sum(t.hi - t.lo + 1 for t in tabs)), "mismatches": int(bad),
                "exhaustive": True, "channels": len(tabs),
                "what": "unrolled threshold table vs the layer's thresholds"}
    return out


def coverage_summary(cov: dict[str, dict[str, Any]], sets: np.ndarray) -> dict[str, Any]:
    """The manifest's ``coverage``: what the golden vectors reach of each threshold layer."""
    return {
        "vectors": int(len(sets)),
        "label": "golden vectors vs threshold edges: an edge (channel, threshold) is hit "
                 "when vectors put the accumulator on both integers beside it (what it takes "
                 "to catch a one-step move either way), touched when on one of them",
        "layers": {layer: {"edges": r["edges"], "edges_hit": r["edges_hit"],
                           "edges_touched": r["edges_touched"],
                           "codes_produced": r["codes_produced"],
                           "codes_possible": r["codes_possible"]}
                   for layer, r in cov.items()},
    }


def estimates_summary(report_dir: Path, clock_mhz: float) -> dict[str, Any]:
    """FINN's analytic estimates: resource totals, cycles, fps and latency."""
    perf = json.loads((report_dir / "estimate_network_performance.json").read_text())
    total = finn_resource_total(
        json.loads((report_dir / "estimate_layer_resources.json").read_text()))
    # FINN's fps/latency figures assume its target clock; restate them at the board clock.
    cycles = perf["max_cycles"]
    return {
        "resources": total,
        "max_cycles_per_vector": cycles,
        "critical_path_cycles": perf["critical_path_cycles"],
        "fps_at_clock": clock_mhz * 1e6 / cycles,
        "latency_us_at_clock": perf["critical_path_cycles"] / clock_mhz,
        "clock_mhz": clock_mhz,
        "finn_report": perf,
    }


def resource_check_summary(report_dir: Path) -> dict[str, Any] | None:
    """The manifest's ``resource_check``: the build's resource check
    (hw.steps.step_check_resources, report/resource_check.json, packaged as
    reports/resource_check.json): whether the design fits under the ceiling, the policy it
    ran under, and per resource ``used``, ``available``, ``percent``, ``limit`` and
    ``margin`` (limit - used). None for a build without the check."""
    from hw.resources import RESOURCE_REPORT

    path = report_dir / RESOURCE_REPORT
    if not path.is_file():
        return None
    r = json.loads(path.read_text())
    return {"fits": r["fits"], "policy": r["policy"], "ceiling": r["ceiling"],
            "part": r["part"], "resources": r["resources"],
            "top_layers": {k: v for k, v in r["top_layers"].items()
                           if r["resources"][k]["over"]},
            "report": f"reports/{RESOURCE_REPORT}",
            "method": r["method"]}


def compile_and_verify(qonnx_path: Path, build_dir: Path, design: dict[str, Any],
                       board: dict[str, Any], inputs: dict[str, np.ndarray] | np.ndarray,
                       expected: dict[str, np.ndarray] | np.ndarray,
                       reference: dict[str, Any] | np.ndarray | None = None,
                       folding: Path | None = None, resume: bool = True) -> dict[str, Any]:
    """Run the FINN flow on a QONNX model and verify every stage against ``expected`` codes.

    Tensors by contract name (``iospec.json`` beside the QONNX model, written by export);
    arrays for a one-input, one-output network. ``reference``: the ``brevitas_cpu`` row,
    either as written by export (``{"vectors", "mismatches"}``) or as fresh Brevitas codes
    to compare with ``expected``.
    """
    spec = IOSpec.load(qonnx_path.parent / IOSPEC)
    t0 = time.time()
    info = run_finn_build(qonnx_path, build_dir, design, board, folding_file=folding,
                          resume=resume)
    flow_s = time.time() - t0
    inter = build_dir / "intermediate_models"
    final_path = inter / "step_hw_codegen.onnx"
    contract = io_contract(spec, ModelWrapper(str(qonnx_path)), ModelWrapper(str(final_path)))
    t1 = time.time()
    table: dict[str, Any] = {}
    if isinstance(reference, dict) and "mismatches" in reference:
        table["brevitas_cpu"] = {"vectors": int(reference["vectors"]),
                                 "mismatches": int(reference["mismatches"])}
    elif reference is not None:
        table["brevitas_cpu"] = compare("brevitas_cpu", reference, expected)
    stage_models = {"qonnx": qonnx_path}
    stage_models.update({s: inter / f"{step}.onnx" for s, step in STAGE_CHECKPOINTS.items()})
    scales = {t.name: (t.scale if t.scale is not None else 1.0) for t in spec.outputs}
    table.update(verify_stages(stage_models, inputs, expected, scales))
    decisions = branch_decisions(ModelWrapper(str(inter / "step_streamline_half_even.onnx")))
    return {"verification": table, "io": contract, "spec": spec, "final_model": final_path,
            "inputs_key": info["key"], "branch_merge": decisions,
            "timing_s": {"finn_flow": round(flow_s, 1),
                         "verification": round(time.time() - t1, 1),
                         "resumed_from": info["resumed_from"],
                         "finn_steps": step_times(build_dir / "report" / STEP_TIMES)}}


SOURCE_DIRS = ("configs", "train", "export", "hw", "host", "phy", "tests", ".git", ".ci",
               ".venv")


class PackageOutError(ValueError):
    """``--out`` names a folder that a package must not replace."""


def check_out_dir(out: Path, run: Path) -> None:
    """Refuse an ``--out`` that is, holds or lies inside the run folder or the source tree,
    or an existing folder that is not a package (it would be replaced)."""
    o, r = out.resolve(), run.resolve()
    if o == r or o.is_relative_to(r) or r.is_relative_to(o):
        raise PackageOutError(f"--out {out} is, holds or lies inside the run folder {run}: "
                              "replacing it would delete the checkpoint and the export")
    if o == REPO_ROOT or REPO_ROOT.is_relative_to(o) or any(
            o.is_relative_to(REPO_ROOT / d) for d in SOURCE_DIRS):
        raise PackageOutError(f"--out {out} is, holds or lies inside the source tree "
                              f"({REPO_ROOT}); use bitstreams/<name>")
    if o.exists() and not (o / "manifest.json").is_file():
        if not o.is_dir() or any(o.iterdir()):
            raise PackageOutError(f"--out {out} exists and is not a package (no manifest.json); "
                                  "refusing to replace it")


def package_failed(manifest: dict[str, Any]) -> list[str]:
    """What failed in a manifest's verification (empty: verified): stages with mismatching
    vectors, and Thresholding layers whose exhaustive proof or RTL memory check failed."""
    table = manifest.get("verification", {})
    bad = [s for s, r in table.items() if s != EXHAUSTIVE and r.get("mismatches")]
    for layer, r in table.get(EXHAUSTIVE, {}).items():
        if r.get("mismatches") or (r.get("rtl_memory") or {}).get("mismatches"):
            bad.append(f"{EXHAUSTIVE}:{layer}")
    return bad


def _staging(out: Path, tag: str) -> Path:
    return out.parent / f".{out.name}.{tag}-{os.getpid()}"


def recover_interrupted_swap(out: Path) -> None:
    """A kill between the two renames of :func:`swap_in` leaves no ``out`` but the old
    package beside it: put it back. Left-over staging folders are deleted."""
    olds = sorted(out.parent.glob(f".{out.name}.old-*"))
    if not out.exists() and olds:
        os.rename(olds[-1], out)
        olds = olds[:-1]
    for p in olds + sorted(out.parent.glob(f".{out.name}.tmp-*")):
        shutil.rmtree(p, ignore_errors=True)


def swap_in(staged: Path, out: Path) -> None:
    """Replace ``out`` by the verified ``staged`` package: two renames on one file system."""
    old = _staging(out, "old")
    if out.exists():
        os.rename(out, old)
    inject_fault("swap_in")  # tests: a kill between the two renames
    os.rename(staged, out)
    shutil.rmtree(old, ignore_errors=True)


def build_package(design_name: str, board_name: str, run: Path, out: Path,
                  folding: Path | None = None, resume: bool = True,
                  cosim: bool = False, lock_timeout: float = -1,
                  speed: str | None = None) -> dict[str, Any]:
    """The whole ``make hw``: build, verify and package into a staging folder beside ``out``,
    then swap it in. A package that fails verification never replaces ``out``: it is kept
    as ``<out>.failed``. A build that stops (an error, e.g. the resource check's
    hw.errors.ResourceBudgetError) leaves ``out`` as it was and no staging folder. With
    ``cosim``, the Verilator co-simulation of the golden vectors (no Yosys) is part of the
    verification. Returns the manifest."""
    check_out_dir(out, run)
    out.parent.mkdir(parents=True, exist_ok=True)
    with build_lock(out.parent, lock_timeout, name=f".{out.name}.lock"):
        recover_interrupted_swap(out)
        staged = _staging(out, "tmp")
        try:
            manifest = _build_into(design_name, board_name, run, staged, folding, resume,
                                   speed)
            if cosim and not package_failed(manifest):
                manifest = cosimulate_golden(staged, out)
            failed = package_failed(manifest)
            if failed:
                kept = out.parent / f"{out.name}.failed"
                shutil.rmtree(kept, ignore_errors=True)
                os.rename(staged, kept)
                manifest["kept_as"] = str(kept)
                return manifest
            swap_in(staged, out)
            return manifest
        finally:
            shutil.rmtree(staged, ignore_errors=True)


def cosimulate_golden(staged: Path, out: Path) -> dict[str, Any]:
    """Verilator co-simulation of every golden vector under back-pressure, no Yosys; the
    ``rtlsim`` row joins the verification table. Work folder: that of ``make sim``."""
    from hw.rtlsim.run import run_sim

    golden = Golden.load(staged / "golden.npz")
    return run_sim(staged, Path("build") / "rtlsim" / out.name, len(golden), do_yosys=False)


def wants_search(design: dict[str, Any], speed: str | None) -> bool:
    """``SPEED=max``, ``target_fps: max`` or ``impl: auto``: the configuration search
    (hw/speed.py) decides folding and impl."""
    hw_cfg = design.get("hw", {})
    return speed == "max" or hw_cfg.get("target_fps") == "max" or hw_cfg.get("impl") == "auto"


def _build_into(design_name: str, board_name: str, run: Path, out: Path,
                folding: Path | None = None, resume: bool = True,
                speed: str | None = None) -> dict[str, Any]:
    """Build, verify and write a package into the (new) folder ``out``."""
    design, board = load_design(design_name), load_board(board_name)
    tag, search = f"{design_name}-{board_name}", None
    if wants_search(design, speed) and folding is None:
        from hw.speed import resolved_design, run_search

        tag += "-max"
        # beside the build folder, not in it: a build cleans files its journal lacks
        work = Path("build") / f"{tag}-search"
        search = run_search(design_name, board_name, run, work)
        design, folding = resolved_design(design, search, work)
    export_dir = run / "export"
    qonnx_path, golden_path = export_dir / "model_qonnx.onnx", export_dir / "golden.npz"
    for p in (qonnx_path, golden_path, export_dir / IOSPEC):
        if not p.is_file():
            raise FileNotFoundError(f"{p} not found: run `make export DESIGN={design_name}` first")
    if folding is None and design.get("hw", {}).get("folding_config"):
        folding = Path(design["hw"]["folding_config"])
        if not folding.is_absolute():  # the schema's word: relative to the repository root
            folding = REPO_ROOT / folding
    build_dir = Path("build") / tag
    golden = Golden.load(golden_path)
    inputs, expected = golden.inputs, golden.outputs
    reference = read_reference(export_dir)["checks"]["brevitas_cpu"]
    result = compile_and_verify(qonnx_path, build_dir, design, board, inputs, expected,
                                reference, folding, resume)
    final_path = result["final_model"]
    finn_model = ModelWrapper(str(final_path))
    contract, table = result["io"], result["verification"]

    (out / "reports").mkdir(parents=True)
    shutil.copyfile(qonnx_path, out / "model_qonnx.onnx")
    write_portable_model(final_path, out / "model_finn.onnx", result["spec"])
    shutil.copyfile(golden_path, out / "golden.npz")
    shutil.copyfile(export_dir / IOSPEC, out / IOSPEC)
    for f in packaged_reports(build_dir / "report"):
        shutil.copyfile(f, out / "reports" / f.name)
    rtl_files = collect_rtl(finn_model, out / "rtl")
    inject_fault("package_write")  # tests: a kill while the package is half written
    t_proof = time.time()
    # With unrolled layers the Thresholding nodes live on in UnrolledMLP nodes: prove them
    # on the graph before unrolling (same thresholds), then each unrolled table against them.
    unrolled = has_unrolled(finn_model)
    thr_model = ModelWrapper(str(build_dir / "intermediate_models"
                                 / "step_minimize_bit_width.onnx")) if unrolled else finn_model
    table["exhaustive"] = exhaustive_summary(prove_thresholds(
        ModelWrapper(str(qonnx_path)), thr_model, None if unrolled else out / "rtl"))
    if unrolled:
        table["exhaustive"].update(prove_unrolled_tables(finn_model))
    coverage = coverage_summary(threshold_coverage(thr_model, inputs), golden.sets)
    result["timing_s"]["threshold_proof"] = round(time.time() - t_proof, 1)
    manifest = {
        "design": design_name,
        "board": board_name,
        "part": board["part"],
        "clock_mhz": board["clock_mhz"],
        "board_config": board,
        "build": {"dir": str(build_dir), "inputs_key": result["inputs_key"]},
        "tools": tool_versions(),
        "io": contract,
        "folding": folding_of(finn_model),
        "branch_merge": {
            "rule": "parallel dense branches reading one tensor merge into one wider MatMul "
                    "when that costs no extra weight bits; otherwise the fork (or concat) "
                    "is kept (hw/transforms/branches.py)",
            "decisions": result["branch_merge"]},
        "folding_source": (str(folding) if folding
                           else f"target_fps={design['hw']['target_fps']}"),
        "impl": design["hw"].get("impl", "folded"),
        "speed_search": search,
        "rtl": {"filelist": "rtl/filelist.f", "files": rtl_files,
                "top_layers": [n.name for n in finn_model.graph.node]},
        "estimates": estimates_summary(build_dir / "report", board["clock_mhz"]),
        "resource_check": resource_check_summary(build_dir / "report"),
        "golden": {str(k): int((golden.sets == k).sum()) for k in np.unique(golden.sets)},
        "verification": table,
        "coverage": coverage,
        "timing_s": result["timing_s"],
        "vivado": "not run (make bitstream runs FINN's Vivado steps where Vivado is installed)",
    }
    write_manifest(out, manifest)
    return manifest
