"""SIMD = MW (SF = 1) MVAU_rtl under back-pressure must simulate exactly (with our patch
hw.rtlsim.patches: mvu-output-queue-lock-latency). Any lost result shows up as a
mismatch/missing vector, and the RTL's own "Overflowing output queue" $error as rc 3.

Not yet shown: that FINN's unpatched RTL overflows inside the stitched top. With an
output FIFO after every MVAU, back-pressure reaches the MVAU only when that FIFO is
full, and the settings below did not trigger it (the unpatched outcome is recorded,
not asserted)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hw.rtlsim.run import run_sim
from tests.test_rtlsim_cosim import make_package

# SF = MW/SIMD = 1 in every MVAU; PE > 1 feeding PE = 1 thresholds through a DWC, so the
# MVAU output sees back-pressure while results arrive every cycle.
SIMD_MW_FOLDING = {
    "Defaults": {},
    "MVAU_rtl_0": {"PE": 4, "SIMD": 12},
    "MVAU_rtl_1": {"PE": 4, "SIMD": 16},
    "MVAU_rtl_2": {"PE": 2, "SIMD": 16},
}


@pytest.mark.slow
def test_simd_equals_mw_overflow_and_fix(small_mlp_export: dict[str, Any],
                                         pynq_z2: dict[str, Any], tmp_path: Path) -> None:
    pkg = make_package(small_mlp_export, pynq_z2, tmp_path, SIMD_MW_FOLDING)
    m = run_sim(pkg, tmp_path / "unpatched", n_vectors=0, do_yosys=False,
                skip_patches=("mvu-output-queue-lock-latency",))
    assert all(f["SIMD"] == f["MW"] for f in m["folding"].values() if "MW" in f)
    unpatched = m["verification"]["rtlsim"]
    print("unpatched FINN RTL:", unpatched)
    m = run_sim(pkg, tmp_path / "patched", n_vectors=0, do_yosys=False)
    v = m["verification"]["rtlsim"]
    assert v["mismatches"] == 0 and v["details"]["rc"] == 0, v
    assert v["details"]["full_rate_run"]["mismatches"] == 0
