"""Figures for the zoo topologies (tests/test_topologies.py's cases) on one board.

    .venv/bin/python -m tests.topology_report [--case g_12_branches ...] [--board pynq-z2]

For each case: the FINN flow (every stage verified on >= 10,000 vectors), FIFO sizing
by Verilator simulation, a full-rate run (latency and II in cycles) and a back-pressure
run (mismatches), FINN's analytic estimates beside Yosys ``synth_xilinx`` counts of the
whole stitched top. Writes ``results/topologies/<case>-<board>.json`` and prints a table.
A benchmark, not a test: nothing here asserts a figure.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from qonnx.core.modelwrapper import ModelWrapper
from tqdm import tqdm

import hw  # noqa: F401  (offline FINN bootstrap)
from configs import REPO_ROOT, load_board
from hw.build import estimates_summary
from hw.rtlsim import harness, stitch, yosys
from tests.test_topologies import CASES, P_READY, P_VALID, _flow

OUT = REPO_ROOT / "results" / "topologies"


def report_case(case: str, board_name: str, work: Path) -> dict[str, Any]:
    """One case end to end; returns its JSON record."""
    board = load_board(board_name)
    t0 = time.time()
    res, x, y, spec = _flow(CASES[case], work)
    final = ModelWrapper(str(res["final_model"]))
    names = (spec.input_names, spec.output_names)
    sizing = harness.size_fifos(final, work / "fifo", x, fpgapart=board["part"],
                                clock_mhz=board["clock_mhz"], names=names)
    built = sizing.pop("built")
    fr = harness.simulate(built, x, seed=8, tag="full_rate")
    bp = harness.simulate(built, x, seed=7, p_valid=P_VALID, p_ready=P_READY, tag="bp")
    files = (built.rtl_dir / stitch.STITCHED / "filelist.f").read_text().split()
    ys = yosys.synthesize_top(built.rtl_dir, files, stitch.TOP, board["part"],
                              [n.name for n in final.graph.node], work / "yosys")
    est = estimates_summary(work / "build" / "report", board["clock_mhz"])
    return {
        "case": case, "what": CASES[case].what, "board": board_name,
        "part": board["part"], "clock_mhz": board["clock_mhz"],
        "layers": [f"{n.name} ({n.op_type})" for n in final.graph.node],
        "verification": {**res["verification"],
                         "verilator_backpressure": {
                             **harness.compare(bp.outputs, y),
                             "p_valid": P_VALID, "p_ready": P_READY},
                         "verilator_full_rate": harness.compare(fr.outputs, y)},
        "branch_merge": res["branch_merge"],
        "rtlsim": {"latency_cycles": fr.latency_cycles, "ii_cycles": fr.ii_cycles,
                   "latency_us": fr.latency_cycles / board["clock_mhz"],
                   "vectors_per_s": board["clock_mhz"] * 1e6 / fr.ii_cycles},
        "fifo_sizing": sizing,
        "finn_estimate": {"resources": est["resources"],
                          "max_cycles_per_vector": est["max_cycles_per_vector"],
                          "critical_path_cycles": est["critical_path_cycles"]},
        "yosys": {**ys.get("counts", {}), "family": ys.get("family"),
                  **({"error": ys["error"]} if "error" in ys else {}),
                  "label": "Yosys synth_xilinx of the whole stitched top (pre-place-and-route)"},
        "seconds": round(time.time() - t0, 1),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", action="append", choices=sorted(CASES),
                    help="a case of tests/test_topologies.py (default: all)")
    ap.add_argument("--board", default="pynq-z2")
    ap.add_argument("--work", type=Path, default=REPO_ROOT / "build" / "topologies")
    args = ap.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    for case in tqdm(args.case or sorted(CASES), desc="topologies"):
        rec = report_case(case, args.board, args.work / f"{case}-{args.board}")
        (OUT / f"{case}-{args.board}.json").write_text(json.dumps(rec, indent=1, default=str))
        rows.append(rec)
    print(f"{'case':28s} {'lat':>5s} {'II':>6s} {'mism.':>6s} {'Yosys LUT/FF/DSP/BRAM36':>26s}"
          f" {'FINN LUT/DSP/BRAM18':>22s}  FIFO depths (sized)")
    for r in rows:
        y, f = r["yosys"], r["finn_estimate"]["resources"]
        yc = (f"{y.get('LUT')}/{y.get('FF')}/{y.get('DSP')}/{y.get('BRAM_36K')}"
              if "error" not in y else "FAILED")
        mism = sum(v["mismatches"] for v in r["verification"].values())
        sized = {k: v for k, v in r["fifo_sizing"]["depths"].items()
                 if k in r["fifo_sizing"]["reconvergent_fifos"]}
        print(f"{r['case']:28s} {r['rtlsim']['latency_cycles']:5d} "
              f"{r['rtlsim']['ii_cycles']:6.1f} {mism:6d} {yc:>26s} "
              f"{f.get('LUT', 0):.0f}/{f.get('DSP', 0):.0f}/{f.get('BRAM_18K', 0):.0f}"
              f"{'':>8s}  {sized}")


if __name__ == "__main__":
    main()
