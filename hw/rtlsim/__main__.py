"""``python -m hw.rtlsim --pkg bitstreams/D-B``: the ``make sim`` stages on a built package.

Exits non-zero on any mismatch, a missing vector, or a stalled/asserting simulation.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import hw  # noqa: F401  (offline FINN bootstrap)
from hw.rtlsim.run import run_sim


def summary(m: dict) -> str:
    """What make sim prints: verification, performance, resources, patches, timing."""
    v, p, t = m["verification"]["rtlsim"], m["performance"]["rtlsim"], m["rtlsim"]["timing_s"]
    lines = [f"rtlsim: {v['vectors']} vectors, {v['mismatches']} mismatches "
             f"(random valid gaps/back-pressure, {v['details']['conditions']})",
             f"latency {p['latency_cycles']} cycles = {p['latency_us']} us, II {p['ii_cycles']} "
             f"cycles = {p['ii_us']} us, {p['vectors_per_s_at_clock']:,.0f} vectors/s "
             f"at {p['clock_mhz']} MHz"]
    r = m.get("resources")
    if r:
        y, f = r["yosys"], r["finn_estimate"]
        lines.append(f"resources ({r['label']}):")
        if "error" in y:
            lines.append(f"  Yosys {y['family']}: FAILED ({y['error'][:300]})")
        else:
            lines.append(f"  Yosys {y['family']}: LUT {y['LUT']}, FF {y['FF']}, DSP {y['DSP']}, "
                         f"BRAM18 {y['BRAM_18K']}, BRAM36 {y['BRAM_36K']}, LUTRAM {y['LUTRAM']}, "
                         f"SRL {y['SRL']}" + (f"  [{y['note']}]" if "note" in y else ""))
        lines.append(f"  FINN estimate: LUT {f.get('LUT', 0):.0f}, DSP {f.get('DSP', 0):.0f}, "
                     f"BRAM18 {f.get('BRAM_18K', 0):.0f}")
        pl = r.get("per_layer", {})
        for name, c in pl.get("layers", {}).items():
            y, e = c["yosys"], c["finn_estimate"]
            lines.append(f"  {name:20s} Yosys LUT {y['LUT']:5d} FF {y['FF']:5d} DSP {y['DSP']:3d} "
                         f"BRAM18/36 {y['BRAM_18K']}/{y['BRAM_36K']} | FINN LUT "
                         f"{e.get('LUT', 0):5.0f} DSP {e.get('DSP', 0):3.0f} "
                         f"BRAM18 {e.get('BRAM_18K', 0):.0f}")
    lines.append("patches: " + ", ".join(p["name"] for p in m["rtlsim"]["patches"]))
    lines.append(f"timing (s): {t}; stages: {m['rtlsim']['stages']}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pkg", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=None, help="default build/rtlsim/<pkg name>")
    ap.add_argument("--vectors", type=int, default=100_000, help="minimum vectors to simulate")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-yosys", action="store_true")
    a = ap.parse_args()
    work = a.work or Path("build") / "rtlsim" / a.pkg.resolve().name
    m = run_sim(a.pkg, work, a.vectors, a.seed, do_yosys=not a.no_yosys)
    print(summary(m))
    v = m["verification"]["rtlsim"]
    if v["mismatches"] or v["details"]["rc"] or v["details"]["full_rate_run"]["mismatches"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
