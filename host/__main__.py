"""``python -m host verify|bench PACKAGE``.

verify: golden + fresh vectors through a backend, ``N passed, M failed``, exit 1 on any
mismatch. bench: CPU/GPU PyTorch and Brevitas latency/throughput vs the accelerator.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


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
    v.add_argument("--backend", default="auto", choices=["auto", "pynq", "rtlsim", "reference"])
    v.add_argument("--vectors", type=int, default=20000, help="fresh channel vectors")
    v.add_argument("--seed", type=int, default=777, help="channel simulation seed")
    v.add_argument("--batch-size", type=int, default=1024)
    v.add_argument("--reference", default="brevitas", choices=["brevitas", "qonnx"])
    v.add_argument("--p-valid", type=float, default=0.6,
                   help="rtlsim: probability the input stream offers a beat per cycle")
    v.add_argument("--p-ready", type=float, default=0.5,
                   help="rtlsim: probability the output stream is ready per cycle")
    v.add_argument("--sim-seed", type=int, default=1)
    b = sub.add_parser("bench", help="latency/throughput: CPU, CUDA, FPGA (RTL cycles)")
    b.add_argument("package", type=Path)
    b.add_argument("--out", type=Path, default=Path("results/host"))
    b.add_argument("--batch-sizes", default="1,16,256,8192")
    b.add_argument("--min-time", type=float, default=0.3, help="seconds per measurement")
    b.add_argument("--backend", default="auto", choices=["auto", "pynq", "rtlsim"],
                   help="accelerator backend for wall-time (board) / cycle counts (rtlsim)")
    b.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    a = ap.parse_args(argv)

    if a.cmd == "verify":
        from host.verify import verify
        if a.backend == "auto":
            from host.driver import on_board
            a.backend = "pynq" if on_board() else "rtlsim"
        report, facts = verify(a.package, a.backend, a.vectors, a.seed, a.batch_size,
                               **_backend_opts(a))
        print(f"package {facts['package']} "
              f"({facts['artifacts_checked']} artifacts sha256-checked)")
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
    return run_bench(a.package, a.out, [int(s) for s in a.batch_sizes.split(",")],
                     a.min_time, a.backend, a.threads)


if __name__ == "__main__":
    sys.exit(main())
