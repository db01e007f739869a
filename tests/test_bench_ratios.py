"""``host bench``'s ratios: the FPGA's advantage over the best CPU row (> 1: FPGA faster).

Fast: :func:`host.bench.ratios` on made-up rows. The best CPU row for latency is the
lowest batch-1 latency over every CPU device. For throughput it is the highest vectors/s
at any batch. The IODMA-model figures are used. GPU and FPGA rows never count as CPU. A
slower FPGA gives ratios below 1.

Slow: ``python -m host bench`` on the default package (short measurements). The JSON
holds ``ratios.latency_vs_best_cpu``, ``throughput_vs_best_cpu`` and ``best_cpu``,
recomputed here from its own rows. The onnxruntime float rows (1 thread and every core)
are present. The FPGA figures come with and without the IODMA model.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from host.bench import is_cpu, ratios, table

REPO = Path(__file__).resolve().parent.parent
PKG = REPO / "bitstreams" / "eqnet-fq-uniform-2x2-64qam-pynq-z2"


def row(backend: str, device: str, batch: int, latency_s: float) -> dict[str, Any]:
    return {"backend": backend, "device": device, "batch": batch, "latency_s": latency_s,
            "vectors_per_s": batch / latency_s}


def facts(lat: float, tp: float, lat_dma: float, tp_dma: float) -> dict[str, Any]:
    return {"latency_s": lat, "vectors_per_s": tp, "latency_s_dma": lat_dma,
            "vectors_per_s_dma": tp_dma, "ii_vectors": 2048}


ROWS = [
    row("onnxruntime-float", "cpu-1t", 1, 4e-6),
    row("onnxruntime-float", "cpu-1t", 8192, 2e-3),     # 4.1 M/s
    row("onnxruntime-float", "cpu-2t", 1, 6e-6),
    row("onnxruntime-float", "cpu-2t", 8192, 1.6e-3),   # 5.1 M/s: best throughput
    row("torch-float", "cpu", 1, 45e-6),
    row("integer", "cpu-numpy-1t", 1, 25e-6),
    row("integer", "cpu-numpy-1t", 8192, 3e-3),
    row("torch-float", "cuda", 1, 1e-6),                # a GPU row: not a CPU baseline
    row("torch-float", "cuda", 8192, 1e-4),
    row("fpga", "rtlsim@100MHz", 1, 1e-7),
    row("fpga-dma", "rtlsim+iodma@100MHz", 1, 1e-7),
]


def test_best_cpu_and_direction() -> None:
    r = ratios(ROWS, facts(lat=2e-6, tp=20e6, lat_dma=2.5e-6, tp_dma=10e6))
    b = r["best_cpu"]
    assert (b["latency"]["backend"], b["latency"]["device"], b["latency"]["batch"]) == (
        "onnxruntime-float", "cpu-1t", 1)
    assert (b["throughput"]["device"], b["throughput"]["batch"]) == ("cpu-2t", 8192)
    assert b["backend"] == "onnxruntime-float (cpu-1t) / onnxruntime-float (cpu-2t)"
    assert r["latency_vs_best_cpu"] == pytest.approx(4e-6 / 2.5e-6)      # IODMA model
    assert r["throughput_vs_best_cpu"] == pytest.approx(10e6 / (8192 / 1.6e-3))
    assert r["latency_vs_best_cpu_no_dma"] == pytest.approx(2.0)
    assert r["throughput_vs_best_cpu_no_dma"] == pytest.approx(20e6 / (8192 / 1.6e-3))
    assert r["latency_vs_best_cpu"] > 1 and r["throughput_vs_best_cpu"] > 1
    assert r["fpga_latency_over_best_cpu_batch1"] == pytest.approx(0.5)  # the old figure
    assert r["gpu_batch8192"]["vectors_per_s"] == pytest.approx(8192 / 1e-4)


def test_slower_fpga_gives_ratios_below_one() -> None:
    r = ratios(ROWS, facts(lat=7e-6, tp=1e6, lat_dma=7.5e-6, tp_dma=1e6))
    assert r["latency_vs_best_cpu"] < 1 and r["throughput_vs_best_cpu"] < 1
    assert r["fpga_throughput_over_gpu_batch8192"] < 1


def test_one_best_cpu_backend_is_named_once() -> None:
    rows = [row("onnxruntime-float", "cpu-1t", 1, 4e-6),
            row("onnxruntime-float", "cpu-1t", 256, 60e-6),
            row("brevitas", "cpu", 1, 4e-3)]
    r = ratios(rows, facts(1e-6, 1e6, 1e-6, 1e6))
    assert r["best_cpu"]["backend"] == "onnxruntime-float (cpu-1t)"
    assert r["fpga_throughput_over_gpu_batch8192"] == "no GPU"


def test_cpu_rows_and_table() -> None:
    assert [is_cpu(r) for r in ROWS[:7]] == [True] * 7
    assert not any(is_cpu(r) for r in ROWS[7:])
    r = ratios(ROWS, facts(2e-6, 20e6, 2.5e-6, 10e6))
    t = table(ROWS, r)
    assert "FPGA lat x" in t and "FPGA tput x" in t and "onnxruntime-float" in t
    # the onnxruntime 1-thread batch-1 row: its latency over the FPGA's (+IODMA) = 1.6
    line = next(ln for ln in t.splitlines() if "cpu-1t" in ln and " 1 " in ln)
    assert "1.6" in line


@pytest.mark.slow
@pytest.mark.skipif(not (PKG / "manifest.json").is_file(), reason="default package not built")
def test_bench_json_ratios(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "host", "bench", str(PKG), "--out",
                        str(tmp_path), "--min-time", "0.02", "--batch-sizes", "1,16,8192"],
                       cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads((tmp_path / f"bench-{PKG.name}.json").read_text())
    rows, rat, f = res["rows"], res["ratios"], res["fpga"]
    assert {"latency_vs_best_cpu", "throughput_vs_best_cpu", "best_cpu"} <= set(rat)
    keys = {(x["backend"], x["device"]) for x in rows}
    assert ("onnxruntime-float", "cpu-1t") in keys and len(
        [k for k in keys if k[0] == "onnxruntime-float"]) == 2
    assert {"fpga", "fpga-dma", "torch-float", "brevitas", "integer"} <= {k[0] for k in keys}
    assert any(x["device"] == "cuda" for x in rows) == (res["env"]["cuda"] != "no GPU")
    cpu = [x for x in rows if x["device"].startswith("cpu")]
    lat = min(x["latency_s"] for x in cpu if x["batch"] == 1)
    tp = max(x["vectors_per_s"] for x in cpu)
    assert rat["latency_vs_best_cpu"] == pytest.approx(lat / f["latency_s_dma"])
    assert rat["throughput_vs_best_cpu"] == pytest.approx(f["vectors_per_s_dma"] / tp)
    assert rat["best_cpu"]["latency"]["latency_s"] == lat
    assert rat["best_cpu"]["throughput"]["vectors_per_s"] == tp
    # the FPGA figures: II with and without the IODMA model, at the board clock
    assert f["ii_cycles"] == 100 and f["ii_cycles_dma"] == max(100, f["iodma"]["ii_cycles"])
    assert f["vectors_per_s_dma"] == pytest.approx(100e6 / f["ii_cycles_dma"])
    assert f["latency_cycles_dma"] == f["latency_cycles"] + f["iodma"]["latency_extra_cycles"]
    assert "latency_vs_best_cpu" in r.stdout and "throughput_vs_best_cpu" in r.stdout
