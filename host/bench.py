"""``python -m host bench PACKAGE``: the CPU (and CUDA) baselines vs the accelerator.

Measured in one run, at batch sizes 1, 16, 256, 8192 (EQ-Net Table I):

* ``onnxruntime-float``: the float twin (below) exported to ONNX by
  ``torch.onnx.export`` with a dynamic batch, run by onnxruntime's
  CPUExecutionProvider with one intra-op thread (device ``cpu-1t``) and with every core
  (``cpu-<n>t``). This is the fairest CPU baseline (DESIGN.md 4). Its outputs are
  checked against the float twin's before anything is timed;
* ``torch-float``: the float twin of the trained design (same topology, its float weights,
  no quantizers: :func:`export.reference.load_float_twin`);
* ``brevitas``: the trained QAT model (fake-quantized float forward,
  :func:`export.reference.load_brevitas`);
  each on the CPU (device ``cpu``: ``--threads`` torch threads) and, where CUDA is
  available, on it: median latency per call, vectors/s;
* ``integer``: the package's FINN graph executed bit-exactly in numpy
  (:class:`host.integer.IntegerModel`, the ``integer`` backend's executor; BLAS limited
  to ``--threads`` threads by threadpoolctl where installed): latency per call (batch 1:
  the executor's latency), vectors/s;
* ``fpga``: the accelerator's RTL (Verilator, full-rate streams) through the driver's
  buffer/register sequence: cycles from the first input beat accepted to the last output
  beat, at the board clock (DMA set-up and PS overheads are not included); on a board
  (``pynq`` backend) also the measured wall time per ``execute_codes`` call;
* ``fpga-dma``: the same RTL behind the IODMAs that FINN's Zynq shell would build
  (``rtlsim`` backend with ``dma_model=True``: :mod:`hw.iodma`'s width rule, each input
  at most one vector and each output drained at most one vector per IODMA
  ``cycles_per_vector``). Latency adds the IODMA words' fill/drain
  (:func:`host.backends.rtlsim.dma_latency_extra`). This is what a board would see, with
  DRAM taken as ideal.

The steady-state II, with and without the IODMA model, comes from a run of at least
:data:`II_VECTORS` vectors (the second half's completion cycles).

Writes ``<out>/bench-<package>.json`` and ``.png``. It prints one table (every backend)
and the ratios. ``ratios.latency_vs_best_cpu`` is the best CPU batch-1 latency over
the FPGA's batch-1 latency. ``ratios.throughput_vs_best_cpu`` is the FPGA's
throughput over the best CPU vectors/s at any batch. Both use the IODMA model, and
> 1 means the FPGA is faster. ``ratios.best_cpu`` names the CPU rows they compare
against. The earlier figures (``fpga_latency_over_best_cpu_batch1``, the GPU ratio) are
kept.

One input and one output stream (the accelerator's IODMA pair): a package with several
named streams is refused by name (:class:`host.driver.MultiStreamError`) before anything
is measured.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import tempfile
import warnings
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


def onnx_float_twin(design_name: str, path: Path, features: int) -> dict[str, Any]:
    """Export the float twin to ONNX at ``path`` with a dynamic batch dimension.
    ``torch.onnx.export``'s default (dynamo) exporter is tried first, then the
    TorchScript one. Returns which exporter it used."""
    import torch

    from export.reference import load_float_twin

    model = load_float_twin(design_name).eval()
    x = torch.zeros(4, features)
    # the dynamo exporter logs a warning per torchvision op it cannot register
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    try:
        batch = torch.export.Dim("batch", min=1, max=1 << 20)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            prog = torch.onnx.export(model, (x,), input_names=["x"], output_names=["y"],
                                     dynamic_shapes=({0: batch},), dynamo=True,
                                     verbose=False)
        prog.save(str(path))
        how = "torch.onnx.export (dynamo), dynamic batch"
    except Exception as e:  # noqa: BLE001  (any exporter failure: the TorchScript path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(model, (x,), str(path), input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
                              dynamo=False)
        how = f"torch.onnx.export (TorchScript; dynamo failed: {type(e).__name__})"
    return {"exporter": how, "model": model}


def ort_rows(design_name: str, x: np.ndarray, batches: list[int], min_time: float
             ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """onnxruntime (CPUExecutionProvider) on the float twin's ONNX export: one intra-op
    thread, and every core (``os.cpu_count()``, where that is more than one). Outputs on
    the largest batch must match the float twin's within 1e-4, or RuntimeError."""
    import onnxruntime as ort
    import torch

    threads = [1] + ([os.cpu_count()] if (os.cpu_count() or 1) > 1 else [])
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-ort-") as tmp:
        path = Path(tmp, "float_twin.onnx")
        exp = onnx_float_twin(design_name, path, x.shape[1])
        with torch.inference_mode():
            want = exp["model"](torch.from_numpy(x)).numpy()
        for t in threads:
            so = ort.SessionOptions()
            so.intra_op_num_threads, so.inter_op_num_threads = t, 1
            sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
            (name,) = [i.name for i in sess.get_inputs()]
            got = sess.run(None, {name: x})[0]
            err = float(np.max(np.abs(got - want)))
            if err > 1e-4:
                raise RuntimeError(f"onnxruntime float twin differs from torch by {err}")
            for b in batches:
                xb = np.ascontiguousarray(x[:b])
                tm = measure(lambda xb=xb, sess=sess, name=name: sess.run(None, {name: xb}),
                             min_time, max_reps=10000)
                rows.append({"backend": "onnxruntime-float", "device": f"cpu-{t}t",
                             "batch": b, **tm, "vectors_per_s": b / tm["latency_s"]})
        facts = {"exporter": exp["exporter"], "onnxruntime": ort.__version__,
                 "provider": "CPUExecutionProvider", "intra_op_threads": threads,
                 "max_abs_diff_vs_torch": err}
    return rows, facts


II_VECTORS = 2048  # vectors in the steady-state II run (at least; more if a batch is larger)


def fpga_rows(package: Any, x: np.ndarray, batches: list[int], backend: str,
              min_time: float) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Accelerator latency per batch from RTL cycle counts, without and with the IODMA
    model (and board wall time on a board); steady-state II both ways.

    ``package``: a checked :class:`host.package.Package` (or a path, checked here).
    """
    from hw.rtlsim.verilate import performance

    rows: list[dict[str, Any]] = []
    facts: dict[str, Any] = {}
    n_ii = max(max(batches), II_VECTORS)
    for dma in (False, True):
        with Accelerator(package, "rtlsim", batch_size=n_ii, dma_model=dma) as acc:
            pkg, clock = acc.package, acc.package.clock_mhz
            codes = acc.input.to_codes(x)
            device = acc.backend.device
            d = device.dma()
            extra = d["latency_extra_cycles"] if dma else 0
            for b in batches:
                acc.execute_codes(codes[:b])
                s = acc.last["per_call"][0]
                cycles = s["last_done"] - s["first_in"] + 1 + extra
                lat = cycles / (clock * 1e6)
                rows.append({"backend": "fpga-dma" if dma else "fpga",
                             "device": f"rtlsim{'+iodma' if dma else ''}@{clock:g}MHz",
                             "batch": b, "latency_s": lat, "cycles": cycles,
                             "first_out_cycles": s["first_out"] - s["first_in"] + extra,
                             "vectors_per_s": b / lat, "sim_wall_s": acc.last["wall_s"]})
            acc.execute_codes(np.resize(codes, (n_ii, codes.shape[1])))
            perf = performance(device.last_stats, clock)
            b1 = next(r for r in rows[::-1] if r["batch"] == 1)
            sfx = "_dma" if dma else ""
            facts |= {f"ii_cycles{sfx}": perf["ii_cycles"],
                      f"vectors_per_s{sfx}": perf["vectors_per_s_at_clock"],
                      f"latency_cycles{sfx}": b1["cycles"],
                      f"latency_s{sfx}": b1["latency_s"],
                      f"sim_steady_state{sfx}": perf}
            if dma:
                facts["iodma"] = d
    facts["clock_mhz"] = clock
    facts["ii_vectors"] = n_ii
    facts["dma_limited"] = facts["ii_cycles_dma"] > facts["ii_cycles"]
    facts["manifest_rtlsim"] = pkg.manifest.get("performance", {}).get("rtlsim")
    if backend == "pynq" or (backend == "auto" and on_board()):
        with Accelerator(package, "pynq", batch_size=max(batches)) as acc:
            codes = acc.input.to_codes(x)
            for b in batches:
                t = measure(lambda b=b: acc.execute_codes(codes[:b]), min_time, max_reps=10000)
                rows.append({"backend": "fpga-board", "device": "pynq", "batch": b, **t,
                             "vectors_per_s": b / t["latency_s"]})
    return rows, facts


def is_cpu(row: dict[str, Any]) -> bool:
    """A CPU baseline row (device ``cpu``, ``cpu-<n>t``, ``cpu-numpy-<n>t``)."""
    return str(row["device"]).startswith("cpu")


def ratios(rows: list[dict[str, Any]], facts: dict[str, Any]) -> dict[str, Any]:
    """FPGA advantage over the best CPU row, with the IODMA model:
    ``latency_vs_best_cpu`` = best CPU batch-1 latency / FPGA batch-1 latency;
    ``throughput_vs_best_cpu`` = FPGA steady-state vectors/s / best CPU vectors/s at any
    batch (> 1: the FPGA is faster); ``best_cpu``: the rows compared against. The same
    figures without the IODMA model (``*_no_dma``) and the earlier figures are kept."""
    cpu = [r for r in rows if is_cpu(r)]
    cpu1 = min((r for r in cpu if r["batch"] == 1), key=lambda r: r["latency_s"])
    cpu_tp = max(cpu, key=lambda r: r["vectors_per_s"])

    def pick(r: dict[str, Any], *keys: str) -> dict[str, Any]:
        return {k: r[k] for k in ("backend", "device", "batch", *keys)}

    names = {f"{r['backend']} ({r['device']})" for r in (cpu1, cpu_tp)}
    best = {"backend": " / ".join(sorted(names)) if len(names) > 1 else names.pop(),
            "latency": pick(cpu1, "latency_s"),
            "throughput": pick(cpu_tp, "vectors_per_s")}
    fpga_lat, fpga_tp = facts["latency_s_dma"], facts["vectors_per_s_dma"]
    out: dict[str, Any] = {
        "latency_vs_best_cpu": cpu1["latency_s"] / fpga_lat,
        "throughput_vs_best_cpu": fpga_tp / cpu_tp["vectors_per_s"],
        "best_cpu": best,
        "direction": "FPGA advantage: > 1 means the FPGA is faster",
        "fpga_model": "RTL (Verilator) behind FINN's Zynq-shell IODMAs (hw.iodma), batch-1 "
                      "latency and steady-state II at the board clock",
        "latency_vs_best_cpu_no_dma": cpu1["latency_s"] / facts["latency_s"],
        "throughput_vs_best_cpu_no_dma": facts["vectors_per_s"] / cpu_tp["vectors_per_s"],
        "fpga_latency_s": facts["latency_s"], "fpga_vectors_per_s": facts["vectors_per_s"],
        "fpga_latency_s_dma": fpga_lat, "fpga_vectors_per_s_dma": fpga_tp,
        "fpga_throughput_source": f"host rtlsim steady-state II over {facts['ii_vectors']} "
                                  "vectors (second half), full rate and with the IODMA model",
        "best_cpu_batch1": {k: cpu1[k] for k in ("backend", "device", "latency_s")},
        "fpga_latency_over_best_cpu_batch1": facts["latency_s"] / cpu1["latency_s"]}
    gpu = [r for r in rows if r["device"] == "cuda" and r["batch"] == 8192]
    if gpu:
        g = max(gpu, key=lambda r: r["vectors_per_s"])
        out["gpu_batch8192"] = {k: g[k] for k in ("backend", "vectors_per_s")}
        out["fpga_throughput_over_gpu_batch8192"] = fpga_tp / g["vectors_per_s"]
    else:
        out["fpga_throughput_over_gpu_batch8192"] = "no GPU"
    return out


def plot(rows: list[dict[str, Any]], title: str, path: Path,
         rat: dict[str, Any] | None = None, facts: dict[str, Any] | None = None) -> None:
    """Latency and throughput vs batch size, one line per backend and device; the FPGA's
    steady-state throughput (with and without the IODMA model) as dashed lines and the
    two ratios in the title."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.6))
    keys = list(dict.fromkeys((r["backend"], r["device"]) for r in rows))
    for key in keys:
        rs = sorted((r for r in rows if (r["backend"], r["device"]) == key),
                    key=lambda r: r["batch"])
        bs = [r["batch"] for r in rs]
        # the IODMA rows often lie on the plain FPGA rows: dashed, hollow, so both show
        style = {"fpga": ("s-", {}), "fpga-dma": ("D--", {"mfc": "none", "ms": 8})}.get(
            key[0], ("o-", {}))
        axes[0].loglog(bs, [r["latency_s"] * 1e6 for r in rs], style[0], label=" ".join(key),
                       **style[1])
        axes[1].loglog(bs, [r["vectors_per_s"] for r in rs], style[0], label=" ".join(key),
                       **style[1])
    if facts:
        for k, ls, what in (("vectors_per_s", ":", "FPGA steady state, II "),
                            ("vectors_per_s_dma", "--", "FPGA + IODMA steady state, II ")):
            ii = facts[k.replace("vectors_per_s", "ii_cycles")]
            axes[1].axhline(facts[k], color="k", ls=ls, lw=1, label=f"{what}{ii:g} cycles")
    axes[0].set(xlabel="batch size (vectors per call)", ylabel="latency per call (us)",
                title="latency vs batch size")
    axes[1].set(xlabel="batch size (vectors per call)", ylabel="vectors / s",
                title="throughput vs batch size")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    if rat:
        b = rat["best_cpu"]
        title += (f"\nFPGA (+IODMA) vs best CPU: latency x{rat['latency_vs_best_cpu']:.3g} "
                  f"(vs {b['latency']['backend']} {b['latency']['device']} batch 1), "
                  f"throughput x{rat['throughput_vs_best_cpu']:.3g} (vs "
                  f"{b['throughput']['backend']} {b['throughput']['device']} batch "
                  f"{b['throughput']['batch']}); > 1: FPGA faster")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(rows: list[dict[str, Any]], rat: dict[str, Any] | None = None) -> str:
    """Every row; with ``rat``, the FPGA's (+IODMA) advantage over each CPU/GPU row:
    latency (batch-1 rows) and throughput."""
    head = (f"{'backend':<19}{'device':<22}{'batch':>6}{'latency/call':>14}{'vectors/s':>14}"
            + (f"{'FPGA lat x':>12}{'FPGA tput x':>13}" if rat else ""))
    lines = [head, "-" * len(head)]
    for r in rows:
        lat = r["latency_s"]
        s = f"{lat * 1e6:.2f} us" if lat < 1e-3 else f"{lat * 1e3:.3f} ms"
        line = (f"{r['backend']:<19}{r['device']:<22}{r['batch']:>6}{s:>14}"
                f"{r['vectors_per_s']:>14,.0f}")
        if rat and not r["backend"].startswith("fpga"):
            lx = (f"{lat / rat['fpga_latency_s_dma']:.3g}" if r["batch"] == 1 else "")
            line += f"{lx:>12}{rat['fpga_vectors_per_s_dma'] / r['vectors_per_s']:>13.3g}"
        lines.append(line)
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
    batches = sorted(set(batches) | {1})  # the latency ratio compares batch-1 rows
    pkg = open_package(package, expect_board=expect_board)
    stream_in, _ = single_stream(pkg, "host bench", "benchmark it with host verify "
                                 "--backend reference (the FPGA row needs the rtlsim backend)")
    design = load_design(pkg.manifest["design"])
    x = design_inputs(design, [stream_in.name], max(batches), seed=4242,
                      cache_dir=None)[stream_in.name]
    x = np.ascontiguousarray(x, np.float32)
    rows, onnx = ort_rows(design["name"], x, batches, min_time)
    rows += torch_rows(design["name"], x, batches, min_time)
    irows, integer = integer_rows(pkg, x, batches, min_time, threads)
    rows += irows
    frows, facts = fpga_rows(pkg, x, batches, backend, min_time)
    rows += frows
    facts["integer"], facts["onnxruntime"] = integer, onnx
    rat = ratios(rows, facts)
    env = {"python": platform.python_version(), "torch": torch.__version__,
           "torch_threads": torch.get_num_threads(), "cpu": platform.processor() or
           platform.machine(), "cuda": torch.cuda.get_device_name(0)
           if torch.cuda.is_available() else "no GPU", "clock_mhz": pkg.clock_mhz}
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"bench-{pkg.name}"
    result = {"package": pkg.name, "env": env, "rows": rows, "fpga": facts, "ratios": rat}
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    plot(rows, f"{pkg.name}: CPU = {env['cpu']} (torch {env['torch_threads']} thread(s), "
               f"onnxruntime {onnx['intra_op_threads']} thread(s)), {env['cuda']}; FPGA = RTL "
               f"cycles at {pkg.clock_mhz:g} MHz", stem.with_suffix(".png"), rat, facts)
    print(table(rows, rat))
    b = rat["best_cpu"]
    print(f"FPGA II {facts['ii_cycles']:g} cycles, {facts['vectors_per_s']:,.0f} vectors/s; "
          f"with the IODMA model ({facts['iodma']['board']}, port "
          f"{facts['iodma']['port_width_bits']} bits: {_dma_line(facts['iodma'])}) II "
          f"{facts['ii_cycles_dma']:g} cycles, {facts['vectors_per_s_dma']:,.0f} vectors/s; "
          f"latency {facts['latency_cycles']} / {facts['latency_cycles_dma']} cycles "
          f"(without / with IODMA)")
    print(f"latency_vs_best_cpu    = {b['latency']['backend']} {b['latency']['device']} "
          f"batch-1 {b['latency']['latency_s'] * 1e6:.2f} us / FPGA+IODMA "
          f"{rat['fpga_latency_s_dma'] * 1e6:.2f} us = {rat['latency_vs_best_cpu']:.4g}"
          f"  (without IODMA {rat['latency_vs_best_cpu_no_dma']:.4g})")
    print(f"throughput_vs_best_cpu = FPGA+IODMA {rat['fpga_vectors_per_s_dma']:,.0f} / "
          f"{b['throughput']['backend']} {b['throughput']['device']} batch "
          f"{b['throughput']['batch']} {b['throughput']['vectors_per_s']:,.0f} vectors/s = "
          f"{rat['throughput_vs_best_cpu']:.4g}  (without IODMA "
          f"{rat['throughput_vs_best_cpu_no_dma']:.4g}); > 1: the FPGA is faster")
    r2 = rat["fpga_throughput_over_gpu_batch8192"]
    print("FPGA+IODMA throughput / GPU batch-8192 throughput: "
          + (f"{r2:.4f}" if isinstance(r2, float) else r2))
    print(f"wrote {stem.with_suffix('.json')} and {stem.with_suffix('.png')}")
    return 0


def _dma_line(d: dict[str, Any]) -> str:
    """``name intfW b -> N cycles/vector`` per IODMA."""
    return ", ".join(f"{k} {v['intf_width_bits']} b x {v['cycles_per_vector']}"
                     for k, v in [*d["inputs"].items(), *d["outputs"].items()])
