"""The DAG stitcher and the generated multi-stream testbench (hw.rtlsim) on a hand-built
FINN HW graph with two inputs and two outputs (two disconnected chains, hw.rtlsim.testgraphs):
exact under independent random back-pressure per stream, ports in contract order, and a
forced stall reported by stream name within a bounded number of cycles."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from hw.rtlsim import harness, testgraphs
from hw.rtlsim.verilate import StallError

N = 10_000


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> harness.Built:
    return harness.build(testgraphs.two_chains(seed=1), tmp_path_factory.mktemp("dag"))


@pytest.fixture(scope="module")
def vectors(built: harness.Built) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    x = harness.random_inputs(built, N, seed=5)
    return x, harness.expected(built, x)


def test_ports_in_contract_order(built: harness.Built) -> None:
    ports = json.loads((built.rtl_dir / "stitched" / "ports.json").read_text())
    assert [(p["port"], p["name"]) for p in ports["inputs"]] == [("s_axis_0", "a"),
                                                                  ("s_axis_1", "b")]
    assert [(p["port"], p["name"]) for p in ports["outputs"]] == [("m_axis_0", "p"),
                                                                   ("m_axis_1", "q")]
    assert built.stitch["graph"] == "dag" and built.stitch["reconvergent_fifos"] == []
    top = (built.rtl_dir / "stitched" / "finn_top.sv").read_text()
    assert "m_axis_1_tready" in top and "StreamingFIFO_rtl_0_maxcount" in top


@pytest.mark.parametrize("seed,p_valid,p_ready", [(3, 0.6, 0.5), (4, 1.0, 1.0),
                                                  (5, 0.3, 0.9)])
def test_two_streams_exact_under_backpressure(built: harness.Built, vectors: tuple,
                                              seed: int, p_valid: float,
                                              p_ready: float) -> None:
    x, want = vectors
    r = harness.simulate(built, x, seed, p_valid, p_ready, tag=f"bp{seed}")
    res = harness.compare(r.outputs, want)
    print(f"seed {seed} p_valid {p_valid} p_ready {p_ready}: {res}, cycles {r.cycles}, "
          f"latency {r.latency_cycles}, II {r.ii_cycles}, per-vector {r.vector_latency}, "
          f"FIFO peaks {r.fifo_peaks}")
    assert r.rc == 0 and res["vectors"] == N and res["mismatches"] == 0
    assert res["per_stream"] == {"p": {"mismatches": 0, "missing": 0},
                                 "q": {"mismatches": 0, "missing": 0}}
    if p_valid == p_ready == 1.0:  # the slower chain's II: FINN's estimate
        assert r.ii_cycles == pytest.approx(harness.analytic_ii(
            testgraphs.two_chains(seed=1)), rel=0.05)


def test_changed_input_is_caught(built: harness.Built, vectors: tuple) -> None:
    """Negative control: one code changed on stream b shows up as mismatches on q only."""
    x, want = vectors
    bad = {k: v.copy() for k, v in x.items()}
    bad["b"][10:20, 0] = np.where(bad["b"][10:20, 0] > 0, -20, 20)
    r = harness.simulate(built, bad, 3, 0.6, 0.5, tag="neg")
    res = harness.compare(r.outputs, want)
    assert res["per_stream"]["p"]["mismatches"] == 0
    assert 0 < res["per_stream"]["q"]["mismatches"] <= 10


def test_forced_stall_is_reported_by_name(built: harness.Built, vectors: tuple) -> None:
    """Output q never ready: the testbench stops within stall_limit cycles of the last
    handshake and the error names q (0 beats received) and b (blocked on TREADY)."""
    x, _ = vectors
    k = {n: v[:500] for n, v in x.items()}
    t0 = time.time()
    with pytest.raises(StallError) as e:
        harness.simulate(built, k, 3, 0.8, 0.8, stall_limit=2000, p_ready_of={"q": 0.0},
                         tag="stall")
    wall = time.time() - t0
    rep = e.value.report
    print(str(e.value), f"wall {wall:.2f} s")
    assert e.value.stalled == ["b", "q"]  # p and a completed
    assert "output 'q' (m_axis_1) received 0/4000 beats" in str(e.value)
    assert "input 'b' (s_axis_1)" in str(e.value) and "blocked on TREADY" in str(e.value)
    b = next(d for d in rep["inputs"] if d["name"] == "b")
    assert b["blocked_on_tready"] and b["sent"] < b["expected"]
    assert rep["stall_cycle"] - rep["last_progress"] == 2001
    assert any(f["count"] for f in rep["fifos"].values())  # occupancies reported
    assert wall < 30
