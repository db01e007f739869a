"""``python -m hw.rtlsim --pkg bitstreams/D-B``: the ``make sim`` stages on a built package.

Exits non-zero on any mismatch, a missing vector, or a stalled/asserting simulation.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import hw  # noqa: F401  (offline FINN bootstrap)
from hw.rtlsim.run import resource_lines, run_sim, yosys_stages


def summary(m: dict) -> str:
    """What make sim prints: verification, performance, resources, patches, timing."""
    v, p, t = m["verification"]["rtlsim"], m["performance"]["rtlsim"], m["rtlsim"]["timing_s"]
    lines = [f"rtlsim: {v['vectors']} vectors, {v['mismatches']} mismatches "
             f"(random valid gaps/back-pressure, {v['details']['conditions']})",
             f"latency {p['latency_cycles']} cycles = {p['latency_us']} us, II {p['ii_cycles']} "
             f"cycles = {p['ii_us']} us, {p['vectors_per_s_at_clock']:,.0f} vectors/s "
             f"at {p['clock_mhz']} MHz"]
    lines += resource_lines(m.get("resources"))
    lines.append("patches: " + ", ".join(p["name"] for p in m["rtlsim"]["patches"]))
    lines.append(f"timing (s): {t}; stages: {m['rtlsim']['stages']}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pkg", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=None, help="default build/rtlsim/<pkg name>")
    ap.add_argument("--vectors", type=int, default=100_000, help="minimum vectors to simulate")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--yosys", default=None, metavar="0|top|layers|all",
                    help="Yosys resource counts (make sim YOSYS=): 0 none, top the whole "
                         "stitched top (default), layers each module on its own, all both "
                         "(run in parallel, one Yosys process per CPU)")
    ap.add_argument("--no-yosys", action="store_true", help="same as --yosys 0")
    ap.add_argument("--design", default=None, help="checked against configs/ (make sim)")
    ap.add_argument("--board", default=None, help="checked against configs/ (make sim)")
    a = ap.parse_args()
    if a.vectors < 1:
        ap.error(f"--vectors {a.vectors}: must be >= 1")
    if a.no_yosys and a.yosys not in (None, "0", "none"):
        ap.error(f"--no-yosys and --yosys {a.yosys} contradict each other")
    mode = "0" if a.no_yosys else a.yosys
    try:
        yosys_stages(mode)
    except ValueError as e:
        ap.error(str(e))
    try:
        from configs import load_board, load_design

        if a.design is not None:
            load_design(a.design)
        if a.board is not None:
            load_board(a.board)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    if not (a.pkg / "manifest.json").is_file():
        print(f"error: no package at {a.pkg} (no manifest.json): build it first with "
              f"`make hw DESIGN={a.design or '...'} BOARD={a.board or '...'}`", file=sys.stderr)
        sys.exit(2)
    work = a.work or Path("build") / "rtlsim" / a.pkg.resolve().name
    m = run_sim(a.pkg, work, a.vectors, a.seed, yosys_mode=mode)
    print(summary(m))
    from hw.verify import format_table

    print(format_table(m["verification"]))
    v = m["verification"]["rtlsim"]
    if v["mismatches"] or v["details"]["rc"] or v["details"]["full_rate_run"]["mismatches"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
