"""Per-stage bit-exactness of the offline FINN flow on a tie-heavy vector set."""

from __future__ import annotations

import json

import numpy as np
import pytest

import hw.steps
from export.golden import reference_codes
from hw.build import compile_and_verify, estimates_summary
from tests.conftest import FLOW_DESIGN

STAGES = ["brevitas_cpu", "qonnx", "finn_converted", "streamlined", "hw_folded"]


def test_golden_set_is_tie_heavy(small_mlp_export: dict) -> None:
    g = small_mlp_export["golden"]
    ties = g["ties"][g["set"] == "ties"]
    assert (ties > 0).all(), "every vector of the tie set must hit at least one exact tie"
    assert ties.sum() >= 1500
    ext = g["inputs"][g["set"] == "extremes"]
    assert ext.min() == -128 and ext.max() == 127


def test_every_stage_bit_exact(small_mlp_export: dict, pynq_z2: dict, tmp_path) -> None:
    g = small_mlp_export["golden"]
    ref = reference_codes(small_mlp_export["model"], g["inputs"])
    res = compile_and_verify(small_mlp_export["qonnx"], tmp_path / "build", FLOW_DESIGN, pynq_z2,
                             g["inputs"], g["outputs"], reference=ref)
    table = res["verification"]
    assert list(table) == STAGES
    for stage, row in table.items():
        assert row["vectors"] == len(g["inputs"]), stage
        assert row["mismatches"] == 0, f"{stage}: {row}"
    # The accelerator's output is integer codes; the scale stays on the host.
    assert res["io"]["outputs"][0]["datatype"] == "INT6"
    assert res["io"]["outputs"][0]["scale"] == 2.0**-5
    # Signed inputs: INT8 codes, negative ones included, enter the accelerator as they are.
    assert res["io"]["inputs"][0]["datatype"] == "INT8" and g["inputs"].min() == -128
    # FINN's per-layer report also holds a "total" row: the estimate counts each layer once.
    report = tmp_path / "build" / "report"
    layers = json.loads((report / "estimate_layer_resources.json").read_text())
    est = estimates_summary(report, pynq_z2["clock_mhz"])["resources"]
    for key in ("LUT", "DSP", "BRAM_18K"):
        by_layer = sum(float(r.get(key, 0)) for name, r in layers.items() if name != "total")
        assert est[key] == by_layer == float(layers["total"][key]), key
    assert est["LUT"] > 0


def test_half_up_thresholds_fail_on_ties(small_mlp_export: dict, pynq_z2: dict, tmp_path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Negative control: FINN's own half-up threshold placement mismatches Brevitas on ties."""
    monkeypatch.setattr(hw.steps, "place_half_even_after_conversion", lambda m: m)
    monkeypatch.setattr(hw.steps, "place_half_even_on_integers", lambda m: m)
    g = small_mlp_export["golden"]
    res = compile_and_verify(small_mlp_export["qonnx"], tmp_path / "build", FLOW_DESIGN, pynq_z2,
                             g["inputs"], g["outputs"], resume=False)
    table = res["verification"]
    assert table["qonnx"]["mismatches"] == 0
    for stage in ("finn_converted", "streamlined", "hw_folded"):
        assert table[stage]["mismatches"] > 0.05 * len(g["inputs"]), (stage, table[stage])
    tie_rows = np.flatnonzero(g["ties"] > 0)
    assert len(tie_rows) > 0


def test_interrupted_build_resumes_from_last_finished_step(small_mlp_export: dict,
                                                           pynq_z2: dict, tmp_path) -> None:
    from hw.flow import OFFLINE_STEPS, run_finn_build

    build = tmp_path / "build"
    first = run_finn_build(small_mlp_export["qonnx"], build, FLOW_DESIGN, pynq_z2)
    assert first["resumed_from"] is None
    assert run_finn_build(small_mlp_export["qonnx"], build, FLOW_DESIGN,
                          pynq_z2)["resumed_from"] == "done"
    # Simulate an interruption after step_specialize_layers: later checkpoints are missing.
    cut = OFFLINE_STEPS.index("step_specialize_layers") + 1
    for step in OFFLINE_STEPS[cut:]:
        (build / "intermediate_models" / f"{step}.onnx").unlink()
    again = run_finn_build(small_mlp_export["qonnx"], build, FLOW_DESIGN, pynq_z2)
    assert again["resumed_from"] == OFFLINE_STEPS[cut]
    assert (build / "intermediate_models" / "step_hw_codegen.onnx").is_file()
    # Changed inputs (another board) never resume from a stale build.
    other = dict(pynq_z2, part="xczu7ev-ffvc1156-2-e")
    assert run_finn_build(small_mlp_export["qonnx"], build, FLOW_DESIGN,
                          other)["resumed_from"] is None
