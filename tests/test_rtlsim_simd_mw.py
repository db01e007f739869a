"""SIMD = MW (SF = 1) MVAU_rtl under back-pressure: FINN's RTL overflows its output queue,
our patch (hw.rtlsim.patches: mvu-output-queue-lock-latency) makes it exact.

Reproduced on one MVAU layer driven directly by the testbench (hw.rtlsim.single), with
random ready on its output: a result every cycle (SF = 1) meets output stalls with no
FIFO in between. Inside the stitched top an output FIFO shields the MVAU, which is why
the stitched test did not show it. FINN's unpatched RTL must fail (its own
"Overflowing output queue" $error, rc 3, and/or lost/wrong results); the patched RTL
must be bit-exact on every vector, and a queue only one entry deeper than FINN's must
still overflow (the root cause: two results too many, see the patch). A final check
runs the whole stitched top with this folding (patched) exactly under back-pressure.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from qonnx.custom_op.registry import getCustomOp

from contract.iospec import Golden
from hw.rtlsim import patches
from hw.rtlsim.run import run_sim
from hw.rtlsim.single import build_layer, mvau_expected, simulate_layer
from tests.test_rtlsim_cosim import make_package

# SF = MW/SIMD = 1 in every MVAU; PE > 1 feeding PE = 1 thresholds through a DWC.
SIMD_MW_FOLDING = {
    "Defaults": {},
    "MVAU_rtl_0": {"PE": 4, "SIMD": 12},
    "MVAU_rtl_1": {"PE": 4, "SIMD": 16},
    "MVAU_rtl_2": {"PE": 2, "SIMD": 16},
}
PATCH = "mvu-output-queue-lock-latency"


@pytest.mark.slow
def test_simd_equals_mw_overflow_and_fix(small_mlp_export: dict[str, Any],
                                         pynq_z2: dict[str, Any], tmp_path: Path) -> None:
    pkg = make_package(small_mlp_export, pynq_z2, tmp_path, SIMD_MW_FOLDING)
    inputs = Golden.load(pkg / "golden.npz").single()[0]

    unpatched = build_layer(pkg, "MVAU_rtl_0", tmp_path / "unpatched", skip_patches=(PATCH,))
    assert PATCH not in unpatched["patches"]
    patched = build_layer(pkg, "MVAU_rtl_0", tmp_path / "patched")
    assert PATCH in patched["patches"]
    inst = unpatched["node"]
    op = getCustomOp(inst)
    assert op.get_nodeattr("SIMD") == op.get_nodeattr("MW")  # SF = 1
    expected = mvau_expected(unpatched["model"], inst, inputs)

    # Full-rate input, output ready with probability 0.3: results arrive every cycle.
    bad = simulate_layer(unpatched, inputs, expected, tmp_path / "unpatched", 3, 1.0, 0.3)
    print("FINN's unpatched RTL:", {k: v for k, v in bad.items() if k != "log"})
    assert bad["overflow_error"] and bad["rc"] == 3, bad
    assert bad["mismatches"] > 0

    # Root cause: the queue is short by two, not one. One entry deeper still overflows.
    i = next(k for k, p in enumerate(patches.PATCHES) if p.name == PATCH)
    orig = patches.PATCHES[i]
    patches.PATCHES[i] = dataclasses.replace(orig, new=patches._QUEUE.replace(
        "CORE_PIPELINE_DEPTH;", "CORE_PIPELINE_DEPTH + 1;"))
    try:
        plus1 = build_layer(pkg, "MVAU_rtl_0", tmp_path / "plus1")
    finally:
        patches.PATCHES[i] = orig
    r = simulate_layer(plus1, inputs, expected, tmp_path / "plus1", 3, 1.0, 0.3)
    assert r["overflow_error"] and r["rc"] == 3

    for seed, p_ready in ((3, 0.3), (4, 0.5), (5, 0.1)):
        good = simulate_layer(patched, inputs, expected, tmp_path / "patched", seed, 1.0,
                              p_ready)
        assert good["rc"] == 0 and not good["overflow_error"], good["log"]
        assert good["mismatches"] == 0 and good["vectors"] == len(inputs)

    m = run_sim(pkg, tmp_path / "stitched", n_vectors=0, do_yosys=False)
    assert all(f["SIMD"] == f["MW"] for f in m["folding"].values() if "MW" in f)
    v = m["verification"]["rtlsim"]
    assert v["mismatches"] == 0 and v["details"]["rc"] == 0, v
    assert v["details"]["full_rate_run"]["mismatches"] == 0
