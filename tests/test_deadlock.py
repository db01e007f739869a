"""Reconvergent fork/join under back-pressure (hw.rtlsim): FIFO sizing by Verilator
simulation makes it complete exactly; a too-shallow short-path FIFO deadlocks and the
stall is reported by name within a bounded number of cycles.

Graph (hw.rtlsim.testgraphs.fork_join): x (8 x INT8) -> DuplicateStreams_rtl -> long path
(3 x MVAU_rtl 8x8 SIMD = PE = 1 + Thresholding_rtl) -> StreamingConcat_rtl in0; short path
(direct) -> in1. The concat drains in0 first, so the short path's FIFO must hold what the
fork emits while the long path computes (> 100 cycles of latency difference)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from hw.rtlsim import harness, testgraphs
from hw.rtlsim.verilate import StallError

N = 2000


def short_fifo(b: harness.Built) -> str:
    """The FIFO on the edge DuplicateStreams -> StreamingConcat (the short path)."""
    return next(f["name"] for f in b.stitch["ports"]["fifos"]
                if f["from"].startswith("DuplicateStreams") and
                f["to"].startswith("StreamingConcat"))


@pytest.fixture(scope="module")
def sized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("deadlock")
    model = testgraphs.fork_join(channels=8, depth=3, seed=2)
    x = {"x": harness.random_inputs_for(model, N, seed=7)["x"]}
    res = harness.size_fifos(model, root / "size", x)
    return {"model": model, "x": x, "res": res, "root": root,
            "want": harness.expected(res["built"], x)}


def test_latency_difference_over_100_cycles(sized: dict[str, Any]) -> None:
    r = harness.simulate(sized["res"]["built"], sized["x"], 1, 1.0, 1.0, tag="lat")
    # the long path alone: 3 MVAUs that need their whole input vector, ~64 cycles each
    assert r.latency_cycles > 100 and r.vector_latency["min"] > 100


def test_sized_fifos_complete_exactly_under_backpressure(sized: dict[str, Any]) -> None:
    res, built = sized["res"], sized["res"]["built"]
    short = short_fifo(built)
    print({k: (res["peaks"][k], res["depths"][k]) for k in res["depths"]})
    assert short in res["reconvergent_fifos"]
    assert res["depths"][short] == harness.margin(res["peaks"][short]) > 8
    assert all(v["rc"] == 0 for v in res["verified"])
    for seed, pv, pr in [(21, 0.6, 0.5), (22, 1.0, 0.3), (23, 1.0, 1.0)]:
        r = harness.simulate(built, sized["x"], seed, pv, pr, tag=f"s{seed}")
        got = harness.compare(r.outputs, sized["want"])
        print(seed, pv, pr, got["mismatches"], r.latency_cycles, r.ii_cycles, r.fifo_peaks)
        assert r.rc == 0 and got["mismatches"] == 0 and got["vectors"] == N
    # sizing bought throughput too: the default (one vector) short FIFO halves it or worse
    assert r.ii_cycles == pytest.approx(harness.analytic_ii(sized["model"]), rel=0.05)


def test_shallow_short_fifo_deadlocks_and_is_named(sized: dict[str, Any]) -> None:
    root: Path = sized["root"]
    probe = sized["res"]["built"]
    short = short_fifo(probe)
    b = harness.build(sized["model"], root / "shallow", depths={short: 2})
    assert b.fifos[short] == 2
    t0 = time.time()
    with pytest.raises(StallError) as e:
        harness.simulate(b, sized["x"], 21, 0.6, 0.5, stall_limit=5000, tag="dead")
    wall = time.time() - t0
    msg, rep = str(e.value), e.value.report
    print(msg, f"(wall {wall:.2f} s)")
    assert e.value.stalled == ["x", "y"]
    assert "input 'x' (s_axis_0)" in msg and "blocked on TREADY" in msg
    assert "output 'y' (m_axis_0) received 0/" in msg
    assert f"{short} " in msg and "(depth 2, DuplicateStreams_rtl_0 -> StreamingConcat_rtl_0)" \
        in msg
    assert rep["fifos"][short]["count"] >= 2  # full (fifo.sv's SRL holds up to 5)
    assert rep["stall_cycle"] < 5000 + 1000 and wall < 30
