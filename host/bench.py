"""``python -m host bench PACKAGE``: CPU/GPU PyTorch and Brevitas vs the accelerator.

Measured in one run, at batch sizes 1, 16, 256, 8192 (EQ-Net Table I):

* ``torch-float``: the float twin of the trained design (same topology, its float weights,
  no quantizers: :func:`export.reference.load_float_twin`);
* ``brevitas``: the trained QAT model (fake-quantized float forward,
  :func:`export.reference.load_brevitas`);
  each on the CPU and, where available, on CUDA: median latency per call, vectors/s;
* ``integer``: the package's FINN graph executed bit-exactly in numpy
  (:class:`host.integer.IntegerModel`, the ``integer`` backend's executor; BLAS limited
  to ``--threads`` threads by threadpoolctl where installed): latency per call (batch 1:
  the executor's latency), vectors/s;
* ``fpga``: the accelerator's RTL (Verilator, full-rate streams) through the driver's
  buffer/register sequence: cycles from the first input beat accepted to the last output
  beat, at the board clock (DMA set-up and PS overheads are not included); on a board
  (``pynq`` backend) also the measured wall time per ``execute_codes`` call.

Writes ``<out>/bench-<package>.json`` and ``.png`` and prints the table and the ratios
FPGA latency / best CPU batch-1 latency and FPGA throughput / GPU batch-8192 throughput.

One input and one output stream (the accelerator's IODMA pair): a package with several
named streams is refused by name (:class:`host.driver.MultiStreamError`) before anything
is measured.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import numpy as np

from host.driver import Accelerator, on_board, single_stream
from host.integer import measure


def torch_rows(design_name: str, x: np.ndarray, batches: list[int],
               min_time: float) -> list[dict[str, Any]]:
    """The float twin and the Brevitas model on CPU and (where available) CUDA."""
    import torch

    from export.reference import load_brevitas, load_float_twin

    models = {"brevitas": load_brevitas(design_name).eval()}
    try:
        models = {"torch-float": load_float_twin(design_name).eval(), **models}
    except NotImplementedError as e:  # a zoo network without a registered float twin
        print(f"torch-float skipped: {e}")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for dev in devices:
        for name, model in models.items():
            model = model.to(dev)
            for b in batches:
                xb = torch.from_numpy(x[:b]).to(dev)

                def call(model: Any = model, xb: Any = xb, dev: str = dev) -> None:
                    with torch.inference_mode():
                        model(xb)
                    if dev == "cuda":
                        torch.cuda.synchronize()

                t = measure(call, min_time, max_reps=10000)
                rows.append({"backend": name, "device": dev, "batch": b, **t,
                             "vectors_per_s": b / t["latency_s"]})
            model.to("cpu")
    return rows


def integer_rows(package: Any, x: np.ndarray, batches: list[int], min_time: float,
                 threads: int = 1) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The integer executor (:mod:`host.integer`) on the same vectors (as codes), one
    row per batch size; its steps and how the BLAS threads were limited. Its codes on
    the largest batch are checked against :meth:`host.integer.IntegerModel.run_plain`."""
    from host.integer import load_package_model, thread_limit

    model = load_package_model(package)
    stream_in, _ = single_stream(package, "host bench")
    codes = {stream_in.name: stream_in.to_codes(x)}
    restore, how = thread_limit(threads)
    rows = []
    try:
        got, want = model.run(codes), model.run_plain(codes)
        if any(not np.array_equal(got[k], want[k]) for k in want):
            raise RuntimeError("integer executor: codes differ from run_plain")
        for b in batches:
            cb = {k: np.ascontiguousarray(v[:b]) for k, v in codes.items()}
            t = measure(lambda cb=cb: model.run(cb), min_time, max_reps=10000)
            rows.append({"backend": "integer", "device": f"cpu-numpy-{threads}t", "batch": b,
                         **t, "vectors_per_s": b / t["latency_s"]})
    finally:
        restore()
    return rows, {"threads": how, "steps": model.describe()}


def fpga_rows(package: Any, x: np.ndarray, batches: list[int], backend: str,
              min_time: float) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Accelerator latency per batch from RTL cycle counts (and board wall time on a board).

    ``package``: a checked :class:`host.package.Package` (or a path, checked here).
    """
    rows, facts = [], {}
    with Accelerator(package, "rtlsim", batch_size=max(batches)) as acc:
        clock = acc.package.clock_mhz
        codes = acc.input.to_codes(x)
        for b in batches:
            acc.execute_codes(codes[:b])
            s = acc.last["per_call"][0]
            cycles = s["last_done"] - s["first_in"] + 1
            lat = cycles / (clock * 1e6)
            rows.append({"backend": "fpga", "device": f"rtlsim@{clock:g}MHz", "batch": b,
                         "latency_s": lat, "cycles": cycles, "first_out_cycles":
                         s["first_out"] - s["first_in"], "vectors_per_s": b / lat,
                         "sim_wall_s": acc.last["wall_s"]})
        from hw.rtlsim.verilate import performance
        stats = acc.backend.device.last_stats
        facts["sim_full_rate"] = performance(stats, clock)
        facts["manifest_rtlsim"] = acc.package.manifest.get("performance", {}).get("rtlsim")
    if backend == "pynq" or (backend == "auto" and on_board()):
        with Accelerator(package, "pynq", batch_size=max(batches)) as acc:
            codes = acc.input.to_codes(x)
            for b in batches:
                t = measure(lambda b=b: acc.execute_codes(codes[:b]), min_time, max_reps=10000)
                rows.append({"backend": "fpga-board", "device": "pynq", "batch": b, **t,
                             "vectors_per_s": b / t["latency_s"]})
    return rows, facts


def ratios(rows: list[dict[str, Any]], facts: dict[str, Any]) -> dict[str, Any]:
    """FPGA latency / best CPU batch-1 latency; FPGA throughput / GPU batch-8192 throughput."""
    perf = facts.get("manifest_rtlsim") or facts["sim_full_rate"]
    fpga_b1 = next(r for r in rows if r["backend"] == "fpga" and r["batch"] == 1)
    fpga_lat, fpga_tp = fpga_b1["latency_s"], perf["vectors_per_s_at_clock"]
    cpu1 = min((r for r in rows if r["device"] == "cpu" and r["batch"] == 1),
               key=lambda r: r["latency_s"])
    gpu = [r for r in rows if r["device"] == "cuda" and r["batch"] == 8192]
    out = {"fpga_latency_s": fpga_lat, "fpga_vectors_per_s": fpga_tp,
           "fpga_throughput_source": "manifest performance.rtlsim" if facts.get(
               "manifest_rtlsim") else "host rtlsim full-rate run (steady-state II)",
           "best_cpu_batch1": {k: cpu1[k] for k in ("backend", "latency_s")},
           "fpga_latency_over_best_cpu_batch1": fpga_lat / cpu1["latency_s"]}
    if gpu:
        g = max(gpu, key=lambda r: r["vectors_per_s"])
        out["gpu_batch8192"] = {k: g[k] for k in ("backend", "vectors_per_s")}
        out["fpga_throughput_over_gpu_batch8192"] = fpga_tp / g["vectors_per_s"]
    else:
        out["fpga_throughput_over_gpu_batch8192"] = "no GPU"
    return out


def plot(rows: list[dict[str, Any]], title: str, path: Path) -> None:
    """Latency and throughput vs batch size, one line per backend and device."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    keys = list(dict.fromkeys((r["backend"], r["device"]) for r in rows))
    for key in keys:
        rs = sorted((r for r in rows if (r["backend"], r["device"]) == key),
                    key=lambda r: r["batch"])
        bs = [r["batch"] for r in rs]
        style = "s-" if key[0].startswith("fpga") else "o-"
        axes[0].loglog(bs, [r["latency_s"] * 1e6 for r in rs], style, label=" ".join(key))
        axes[1].loglog(bs, [r["vectors_per_s"] for r in rs], style, label=" ".join(key))
    axes[0].set(xlabel="batch size (vectors per call)", ylabel="latency per call (us)",
                title="latency vs batch size")
    axes[1].set(xlabel="batch size (vectors per call)", ylabel="vectors / s",
                title="throughput vs batch size")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'backend':<12}{'device':<18}{'batch':>6}{'latency/call':>15}{'vectors/s':>15}",
             "-" * 66]
    for r in rows:
        lat = r["latency_s"]
        s = f"{lat * 1e6:.2f} us" if lat < 1e-3 else f"{lat * 1e3:.3f} ms"
        lines.append(f"{r['backend']:<12}{r['device']:<18}{r['batch']:>6}{s:>15}"
                     f"{r['vectors_per_s']:>15,.0f}")
    return "\n".join(lines)


def run_bench(package: Path, out: Path, batches: list[int], min_time: float,
              backend: str = "auto", threads: int = 1, expect_board: str | None = None) -> int:
    """The whole benchmark; writes JSON + PNG, prints table and ratios.

    ``expect_board``: refuse a package built for another board.

    ``threads``: torch CPU threads (default 1: the machine's cores are shared, and
    multi-threaded small-batch calls then wait on descheduled OpenMP workers).
    """
    import torch

    torch.set_num_threads(threads)

    from configs import load_design
    from host.package import open_package
    from zoo.datasets import design_inputs

    if not batches or min(batches) < 1 or not min_time > 0 or threads < 1:
        raise ValueError(f"batch sizes {batches} (each >= 1), min_time {min_time} (> 0), "
                         f"threads {threads} (>= 1)")
    pkg = open_package(package, expect_board=expect_board)
    stream_in, _ = single_stream(pkg, "host bench", "benchmark it with host verify "
                                 "--backend reference (the FPGA row needs the rtlsim backend)")
    design = load_design(pkg.manifest["design"])
    x = design_inputs(design, [stream_in.name], max(batches), seed=4242,
                      cache_dir=None)[stream_in.name]
    x = np.ascontiguousarray(x, np.float32)
    rows = torch_rows(design["name"], x, batches, min_time)
    irows, integer = integer_rows(pkg, x, batches, min_time, threads)
    rows += irows
    frows, facts = fpga_rows(pkg, x, batches, backend, min_time)
    rows += frows
    facts["integer"] = integer
    rat = ratios(rows, facts)
    env = {"python": platform.python_version(), "torch": torch.__version__,
           "torch_threads": torch.get_num_threads(), "cpu": platform.processor() or
           platform.machine(), "cuda": torch.cuda.get_device_name(0)
           if torch.cuda.is_available() else "no GPU", "clock_mhz": pkg.clock_mhz}
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"bench-{pkg.name}"
    result = {"package": pkg.name, "env": env, "rows": rows, "fpga": facts, "ratios": rat}
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    plot(rows, f"{pkg.name}: PyTorch/Brevitas on {env['cpu']} ({env['torch_threads']} "
               f"threads), {env['cuda']}; FPGA = RTL cycles at {pkg.clock_mhz:g} MHz",
         stem.with_suffix(".png"))
    print(table(rows))
    best = rat["best_cpu_batch1"]["backend"]
    print(f"FPGA latency (batch 1) / best CPU batch-1 latency ({best}): "
          f"{rat['fpga_latency_s'] * 1e6:.2f} us / "
          f"{rat['best_cpu_batch1']['latency_s'] * 1e6:.1f} us = "
          f"{rat['fpga_latency_over_best_cpu_batch1']:.4f}")
    r2 = rat["fpga_throughput_over_gpu_batch8192"]
    print(f"FPGA throughput ({rat['fpga_vectors_per_s']:,.0f} vectors/s) / GPU batch-8192 "
          "throughput: " + (f"{r2:.4f}" if isinstance(r2, float) else r2))
    print(f"wrote {stem.with_suffix('.json')} and {stem.with_suffix('.png')}")
    return 0
