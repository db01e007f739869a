"""``python -m host verify|bench PACKAGE``.

verify: golden + fresh vectors through a backend, ``N passed, M failed``, exit 1 on any
mismatch. bench: CPU/GPU PyTorch and Brevitas latency/throughput vs the accelerator.
Both check the package first (host.package.open_package; ``--board`` also refuses a
package built for another board); a refused package prints the reason and exits 2, as
do out-of-range arguments (argparse) and a package with several named streams given to
``bench`` (it carries one input and one output stream; every backend of ``verify``
carries any number, one IODMA per stream on rtlsim and pynq).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path


def int_at_least(lo: int) -> Callable[[str], int]:
    """argparse type: an integer >= ``lo`` (argparse names the flag in its error)."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {lo}, got {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be an integer >= {lo}, got {v}")
        return v
    parse.__name__ = f"integer >= {lo}"
    return parse


def probability(text: str) -> float:
    """argparse type: a per-cycle probability in (0, 1] (0 would never transfer a beat)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0.0 < v <= 1.0:  # NaN fails too
        raise argparse.ArgumentTypeError(f"must be in (0, 1] (a probability per cycle; 0 "
                                         f"never transfers), got {text}")
    return v


def positive_seconds(text: str) -> float:
    """argparse type: a finite number of seconds > 0."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text}")
    return v


def batch_list(text: str) -> list[int]:
    """argparse type: comma-separated batch sizes, each an integer >= 1."""
    parse = int_at_least(1)
    try:
        sizes = [parse(t.strip()) for t in text.split(",")]
    except argparse.ArgumentTypeError as e:
        raise argparse.ArgumentTypeError(f"comma-separated batch sizes, each an integer "
                                         f">= 1: {e} (in {text!r})") from None
    return sizes


def _backend_opts(a: argparse.Namespace) -> dict:
    if a.backend == "rtlsim":
        return {"p_valid": a.p_valid, "p_ready": a.p_ready, "sim_seed": a.sim_seed}
    if a.backend == "reference":
        return {"kind": a.reference}
    return {}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m host", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("verify", help="bit-exactness on golden + fresh channel vectors")
    v.add_argument("package", type=Path)
    v.add_argument("--backend", default="auto",
                   choices=["auto", "pynq", "rtlsim", "reference", "integer"],
                   help="integer: the package's FINN graph in numpy (host.integer)")
    v.add_argument("--board", default=None,
                   help="refuse a package built for another board (e.g. pynq-z2)")
    v.add_argument("--vectors", type=int_at_least(0), default=20000,
                   help="fresh channel vectors (>= 0)")
    v.add_argument("--seed", type=int_at_least(0), default=777,
                   help="channel simulation seed (>= 0)")
    v.add_argument("--batch-size", type=int_at_least(1), default=1024, help="(>= 1)")
    v.add_argument("--reference", default="brevitas", choices=["brevitas", "qonnx"])
    v.add_argument("--p-valid", type=probability, default=0.6,
                   help="rtlsim: probability each input stream offers a beat per cycle, (0, 1]")
    v.add_argument("--p-ready", type=probability, default=0.5,
                   help="rtlsim: probability each output stream is ready per cycle, (0, 1]")
    v.add_argument("--sim-seed", type=int_at_least(0), default=1)
    b = sub.add_parser("bench", help="latency/throughput: CPU, CUDA, FPGA (RTL cycles)")
    b.add_argument("package", type=Path)
    b.add_argument("--out", type=Path, default=Path("results/host"))
    b.add_argument("--board", default=None,
                   help="refuse a package built for another board (e.g. pynq-z2)")
    b.add_argument("--batch-sizes", type=batch_list, default=[1, 16, 256, 8192],
                   help="comma-separated, each >= 1 (default 1,16,256,8192)")
    b.add_argument("--min-time", type=positive_seconds, default=0.3,
                   help="seconds per measurement (> 0)")
    b.add_argument("--backend", default="auto", choices=["auto", "pynq", "rtlsim"],
                   help="accelerator backend for wall-time (board) / cycle counts (rtlsim)")
    b.add_argument("--threads", type=int_at_least(1), default=1, help="torch CPU threads (>= 1)")
    a = ap.parse_args(argv)
    from host.driver import MultiStreamError
    from host.package import PackageIntegrityError
    try:
        return _run(a)
    except (PackageIntegrityError, MultiStreamError) as e:
        # a refused package (or one with more streams than the backend carries): the
        # reason, without a traceback
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 2


def _run(a: argparse.Namespace) -> int:
    if a.cmd == "verify":
        from host.verify import verify
        if a.backend == "auto":
            from host.driver import on_board
            a.backend = "pynq" if on_board() else "rtlsim"
        report, facts = verify(a.package, a.backend, a.vectors, a.seed, a.batch_size,
                               expect_board=a.board, **_backend_opts(a))
        print(f"package {facts['package']} "
              f"({facts['artifacts_checked']} artifacts sha256-checked, contract digest "
              f"{facts['contract_digest'][:16]}..., io re-derived from the ONNX models)")
        print(f"built for {facts['design']} on {facts['board']} ({facts['part']})"
              + (" = expected board" if a.board else ""))
        print(f"backend {facts['backend']}" + (f" (input valid p={a.p_valid}, output ready "
                                               f"p={a.p_ready}, seed {a.sim_seed})"
                                               if a.backend == "rtlsim" else ""))
        print(report.table())
        cuda = facts.get("cuda")
        if cuda is not None:
            print("CUDA: " + (f"{cuda['device']}: Brevitas GPU codes == CPU codes, "
                              f"{cuda['mismatches']} mismatching vectors" if cuda["available"]
                              else "not available (no GPU): GPU bit-exactness not measured"))
        if "fresh" in facts:
            print(facts["fresh"])
        print(f"wall {facts['wall_s']} s")
        print(f"{report.passed} passed, {report.failed} failed")
        return 1 if report.failed else 0

    from host.bench import run_bench
    return run_bench(a.package, a.out, a.batch_sizes, a.min_time, a.backend, a.threads,
                     expect_board=a.board)


if __name__ == "__main__":
    sys.exit(main())
