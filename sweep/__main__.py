"""``python -m sweep configs/sweeps/<name>.yaml [--address ...] [--workers N] [--out DIR]``"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from configs.schema import ConfigError


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m sweep",
        description="Monte-Carlo BLER/BER sweep on Ray (local by default, a cluster by "
                    "--address); resumable: finished chunks are journaled.")
    p.add_argument("config", help="configs/sweeps/<name>.yaml")
    p.add_argument("--address", default=None,
                   help="join an existing Ray cluster (host:port); default: start a local "
                        "Ray instance")
    p.add_argument("--workers", type=int, default=None,
                   help="chunks run at once (local: the instance's CPUs; default: all)")
    p.add_argument("--out", default=None, help="results folder (default results/sweeps)")
    p.add_argument("--fresh", action="store_true",
                   help="start over: move the journal aside instead of resuming")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    if a.workers is not None and a.workers < 1:
        p.error("--workers must be >= 1")
    from sweep.journal import JournalError
    from sweep.runner import DEFAULT_OUT, run_sweep

    try:
        res = run_sweep(a.config, out=a.out or DEFAULT_OUT, address=a.address,
                        workers=a.workers, progress=not a.no_progress, fresh=a.fresh)
    except (ConfigError, JournalError, ConnectionError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished chunks are in the journal; run the same command again "
              "to resume", file=sys.stderr)
        return 130
    print(format_table(res))
    return 0


def format_table(res: dict) -> str:
    run = res["run"]
    key = res.get("axis", "snr_db")
    head = "SNR" if key == "snr_db" else {"csi_error_var": "s_CSI"}.get(key, key[:6])
    lines = [f"{res['name']}: {len(res['points'])} points, chunks computed "
             f"{run.get('chunks_computed', 0)}, reused {run['chunks_reused']}, counted "
             f"{run['chunks_counted']}; {run.get('slots', '-')} slots; wall "
             f"{run['wall_s']:.1f} s",
             f"{'label':32s} {head:>6s} {'blocks':>8s} {'errors':>6s} {'BLER':>9s} "
             f"{'95% CI':>21s} {'BER':>9s}  status"]
    for q in res["points"]:
        x = f"{q[key]:6.2f}" if key == "snr_db" else f"{q[key]:6.3g}"
        if q["status"] == "skipped_below_floor":
            lines.append(f"{q['label'][:32]:32s} {x} {'':>8s} {'':>6s} "
                         f"{'':>9s} {'':>21s} {'':>9s}  {q['status']}")
            continue
        lo, hi = q["bler_ci95"]
        lines.append(f"{q['label'][:32]:32s} {x} {q['blocks']:8d} "
                     f"{q['block_errors']:6d} {q['bler']:9.2e} [{lo:9.2e},{hi:9.2e}] "
                     f"{q['ber']:9.2e}  {q['status']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
