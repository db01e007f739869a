"""``python -m hw --design D --board B --run runs/D --out bitstreams/D-B``.

Runs FINN's builder offline (resuming from the last finished step), verifies every
stage bit-exactly on the golden vectors, and writes the package with its manifest.
Exits non-zero on any mismatch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hw.build import build_package


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--design", required=True)
    ap.add_argument("--board", required=True)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--folding", type=Path, default=None, help="FINN folding JSON")
    ap.add_argument("--no-resume", action="store_true", help="rebuild from the first step")
    a = ap.parse_args()
    m = build_package(a.design, a.board, a.run, a.out, a.folding, resume=not a.no_resume)
    from hw.verify import format_table

    e = m["estimates"]
    print(f"\n{a.design} on {a.board} ({m['part']}), package {a.out}")
    print(format_table(m["verification"]))
    r = e["resources"]
    print(f"FINN estimates: LUT {r['LUT']:.0f}, DSP {r['DSP']:.0f}, BRAM18 {r['BRAM_18K']:.0f}, "
          f"{e['max_cycles_per_vector']} cycles/vector, {e['fps_at_clock']:,.0f} vectors/s and "
          f"{e['latency_us_at_clock']:.2f} us latency at {e['clock_mhz']} MHz")
    t = m["timing_s"]
    print(f"FINN flow {t['finn_flow']} s, verification {t['verification']} s")
    if any(r["mismatches"] for r in m["verification"].values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
