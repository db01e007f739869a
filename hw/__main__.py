"""``python -m hw --design D --board B --run runs/D --out bitstreams/D-B``.

Runs FINN's builder offline (resuming after the last step its journal proves finished),
verifies every stage bit-exactly on the golden vectors (``--cosim``: the Verilator
co-simulation of the RTL too), and swaps the verified package in. A package that fails
verification never replaces the good one: it is kept as ``<out>.failed``, and the exit
code is 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hw.build import PackageOutError, build_package
from hw.errors import ResourceBudgetError
from hw.flow import BuildLockedError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--design", required=True)
    ap.add_argument("--board", required=True)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--folding", type=Path, default=None, help="FINN folding JSON")
    ap.add_argument("--no-resume", action="store_true", help="rebuild from the first step")
    ap.add_argument("--cosim", action="store_true",
                    help="also co-simulate the RTL on every golden vector (Verilator, "
                         "back-pressure, no Yosys) before the package is swapped in")
    ap.add_argument("--lock-timeout", type=float, default=-1,
                    help="seconds to wait for another build of this package (-1: for ever)")
    ap.add_argument("--speed", choices=["max"], default=None,
                    help="max: the fastest configuration (folding, impl) that fits the "
                         "board, chosen by hw/speed.py (like target_fps: max)")
    a = ap.parse_args(argv)
    try:
        m = build_package(a.design, a.board, a.run, a.out, a.folding, resume=not a.no_resume,
                          cosim=a.cosim, lock_timeout=a.lock_timeout,
                           speed=a.speed)
    except (PackageOutError, BuildLockedError, FileNotFoundError, ResourceBudgetError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from hw.verify import format_table

    e = m["estimates"]
    print(f"\n{a.design} on {a.board} ({m['part']}), package {m.get('kept_as', a.out)}")
    print(format_table(m["verification"]))
    cov = m.get("coverage", {}).get("layers", {})
    if cov:
        print(f"golden-vector coverage of threshold edges ({m['coverage']['vectors']} vectors; "
              "the exhaustive proof above covers every edge):")
        for layer, c in cov.items():
            print(f"  {layer:<22} edges hit {c['edges_hit']}/{c['edges']} (touched "
                  f"{c['edges_touched']}), output codes produced "
                  f"{len(c['codes_produced'])}/{c['codes_possible']}")
    r = e["resources"]
    print(f"FINN estimates: LUT {r['LUT']:.0f}, DSP {r['DSP']:.0f}, BRAM18 {r['BRAM_18K']:.0f}, "
          f"{e['max_cycles_per_vector']} cycles/vector, {e['fps_at_clock']:,.0f} vectors/s and "
          f"{e['latency_us_at_clock']:.2f} us latency at {e['clock_mhz']} MHz")
    t = m["timing_s"]
    print(f"FINN flow {t['finn_flow']} s (resumed from {t['resumed_from']}), "
          f"verification {t['verification']} s")
    if "kept_as" in m:
        print(f"FAILED verification: the package was not installed; kept as {m['kept_as']} "
              f"({a.out} is unchanged)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
