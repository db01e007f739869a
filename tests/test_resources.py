"""hw.resources: the MVU's DSP packing rule, the corrected model on a small graph,
fits() with a negative control, the build's budget report (tests/test_fit_check.py has
the step that uses it); slow: the model against Yosys on the default package."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import hw  # noqa: F401  (FINN's offline bootstrap)
from hw import resources as R

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PKG = ROOT / "bitstreams" / "eqnet-fq-uniform-2x2-64qam-pynq-z2"
RTLLIB = Path(__import__("finn").__file__).parent / "finn-rtllib" / "mvu"


# ------------------------------------------------------------------ packing rule
@pytest.mark.parametrize("w, a, block, narrow, lanes", [
    (6, 6, "DSP48E1", False, 2),   # the default design: 2 per DSP, not FINN's 4
    (6, 6, "DSP48E2", False, 2),
    (6, 8, "DSP48E1", False, 2),   # first layer: INT8 input
    (4, 4, "DSP48E1", False, 3),
    (4, 4, "DSP48E1", True, 4),    # narrow weights free the sign-guard bit
    (8, 8, "DSP48E1", False, 2),
    (8, 8, "DSP48E2", True, 2),
    (2, 2, "DSP48E1", False, 8),
    (25, 2, "DSP48E1", False, 1),  # weights fill A: one lane
])
def test_lanes_known_cases(w: int, a: int, block: str, narrow: bool, lanes: int) -> None:
    assert R.mvu_lanes(w, a, block, narrow) == lanes


def test_lane_rule_is_the_rtl_rule() -> None:
    """The formula is finn-rtllib's own (mvu.sv and the copy in mvu_vvu_axi.sv): a FINN
    upgrade that changes it fails here."""
    rule = ("NUM_LANES = A_WIDTH == WEIGHT_WIDTH? 1 : 1 + (A_WIDTH - !NARROW_WEIGHTS - "
            "WEIGHT_WIDTH) / MIN_LANE_WIDTH;")
    for f in ("mvu.sv", "mvu_vvu_axi.sv"):
        text = " ".join((RTLLIB / f).read_text().split())
        assert rule in text, f
    mvu = " ".join((RTLLIB / "mvu.sv").read_text().split())
    assert "A_WIDTH = 25 + 2*(VERSION > 1);" in mvu
    assert "MIN_LANE_WIDTH = WEIGHT_WIDTH + ACTIVATION_WIDTH - 1;" in mvu
    assert "PIPE_COUNT = 1 + (PE-1)/NUM_LANES;" in mvu


def test_dsp_counts_measured_by_yosys() -> None:
    """Yosys synth_xilinx on the default design (W6/A6, xc7z020): PE 4 SIMD 6 maps 12
    DSP48E1, PE 16 SIMD 6 maps 48 (FINN: 6 and 24)."""
    assert R.mvau_dsp(4, 6, 6, 6, "xc7z020clg400-1") == 12
    assert R.mvau_dsp(16, 6, 6, 6, "xc7z020clg400-1") == 48
    assert R.mvau_dsp(3, 8, 6, 6, "xc7z020clg400-1") == 16  # odd PE: ceil(3/2) pipes
    assert R.finn_mvau_dsp(16, 6, "xc7z020clg400-1") == 24
    assert R.mvau_dsp(16, 6, 6, 6, "xczu7ev-ffvc1156-2-e") == 48
    # Versal DSP58 takes the INT8 core: PE * ceil(SIMD/3)
    assert R.dsp_block("xcvc1902-vsva2197-2MP-e-S") == "DSP58"
    assert R.mvau_dsp(4, 6, 6, 6, "xcvc1902-vsva2197-2MP-e-S") == 8


def test_fifo_style_follows_fifo_sv() -> None:
    assert R.fifo_style(2, 48) == "shift"
    assert R.fifo_style(48, 8) == "shift"          # <= 64 deep and < 12 bits
    assert R.fifo_style(48, 16) == "distributed"
    assert R.fifo_style(1000, 16) == "block"
    shift = R.fifo(12, 64)
    assert shift["FF"] >= 12 * 64                  # flip-flops, not SRLs, in this Yosys


@pytest.mark.parametrize("depth, width, writable, style, bram18", [
    (96, 144, True, "bram", 4),     # default hidden-layer weights: 2 RAMB36 by Yosys
    (96, 36, True, "lutram", 0),    # first-layer weights: RAM128X1S
    (24, 576, True, "lutram", 0),   # PE 16 SIMD 6 weights: shallow and wide, RAM32M
    (192, 18, True, "bram", 1),     # zcu104 first layer: one RAMB18
    (144, 12, True, "lutram", 0),
    (1536, 15, False, "bram", 2),   # threshold stage 5 of 48 channels: one RAMB36
    (768, 15, False, "bram", 1),
    (384, 15, False, "logic", 0),   # threshold ROMs below 8 Kib stay in LUT logic
])
def test_memory_map_as_yosys_maps(depth: int, width: int, writable: bool, style: str,
                                  bram18: int) -> None:
    got = R.memory_map(depth, width, writable)
    assert (got["style"], got["BRAM18"]) == (style, bram18)


# ------------------------------------------------------------------ a small graph
def small_graph(pe: int = 4, simd: int = 6):
    """x (12 x INT8) -> MVAU 12x8 (W6) -> Thresholding -> MVAU 8x4 -> y."""
    from hw.rtlsim.testgraphs import GraphBuilder

    g = GraphBuilder(seed=1)
    x = g.input("x", "INT8", 12)
    t = g.threshold(g.mvau(x, 8, wbits=6, simd=simd, pe=pe), obits=6)
    y = g.mvau(t, 4, wbits=6, simd=4, pe=2)
    return g.model(["x"], ["y"], {y: "y"})


def test_model_on_a_small_graph() -> None:
    part = "xc7z020clg400-1"
    m = small_graph()
    bare = R.estimate(m, part, glue="none")
    assert [r["op_type"] for r in bare["layers"].values()] == [
        "MVAU_rtl", "Thresholding_rtl", "MVAU_rtl"]
    names = list(bare["layers"])
    mv0 = bare["layers"][names[0]]
    # W6 x INT8: 2 lanes -> ceil(4/2) * 6 DSPs; FINN assumes 4 lanes
    assert mv0["model"]["DSP"] == 12 and mv0["finn"]["DSP"] == 6
    assert mv0["finn"]["LUT"] == 0 and mv0["model"]["LUT"] > 100  # FINN: 0 for MVAU_rtl
    assert set(mv0["model"]["parts"]) == {"", "_memstream_wrapper"}
    assert bare["layers"][names[2]]["model"]["DSP"] == 4
    for k in R.RES:
        assert bare["total"][k] == sum(r["model"][k] for r in bare["layers"].values())
    # the stream glue the stitcher inserts costs real resources
    full = R.estimate(m, part)
    glue = [r for r in full["layers"].values() if r["glue"]]
    assert glue and all(r["model"]["FF"] > 0 for r in glue)
    assert full["total"]["LUT"] > bare["total"]["LUT"]
    assert full["finn_total"] == bare["finn_total"]  # FINN's report has no glue
    # a graph that has its glue already is counted as it is
    again = R.estimate(R.with_glue(m, part), part)
    assert list(again["layers"]) == list(full["layers"]) and again["total"] == full["total"]
    # more parallelism, more of everything that scales with it
    wide = R.estimate(small_graph(pe=8, simd=12), part, glue="none")
    assert wide["total"]["DSP"] > bare["total"]["DSP"]
    assert wide["total"]["LUT"] > bare["total"]["LUT"]


def test_table_and_markdown() -> None:
    rows = R.estimates_table(small_graph(), "xc7z020clg400-1", glue="none")
    assert [r["op_type"] for r in rows] == ["MVAU_rtl", "Thresholding_rtl", "MVAU_rtl"]
    rows[0]["yosys"] = {"LUT": 1, "FF": 2, "DSP": 12, "BRAM18": 0}
    text = R.render_markdown(rows)
    assert "DSP corrected" in text and "DSP yosys" in text and "**total**" in text
    assert text.count("\n") == len(rows) + 3


def test_resource_estimate_hook() -> None:
    """A node whose op has resource_estimate() (the future UnrolledMLP_rtl) is counted by
    its own estimate."""
    from qonnx.custom_op.registry import getCustomOp

    m = small_graph()
    node = m.graph.node[1]
    cls = type(getCustomOp(node))

    def resource_estimate(self):
        return {"LUT": 1234, "FF": 567, "DSP": 0, "BRAM_18K": 1}

    cls.resource_estimate = resource_estimate
    try:
        got = R.node_estimate(node, m, "xc7z020clg400-1")
    finally:
        del cls.resource_estimate
    assert {k: got[k] for k in R.RES} == {"LUT": 1234, "FF": 567, "DSP": 0, "BRAM18": 1}


# ------------------------------------------------------------------ fits
def test_fits_positive_and_negative_control() -> None:
    ok, reasons = R.fits({"LUT": 10_000, "FF": 20_000, "DSP": 57, "BRAM18": 31}, "pynq-z2")
    assert ok and all(r.startswith("ok: ") for r in reasons)
    # FINN's "fits" for hidden PE 24 (108 DSP estimated) needs 318 DSPs by Yosys
    ok, reasons = R.fits({"LUT": 10_000, "FF": 20_000, "DSP": 318, "BRAM18": 31}, "pynq-z2")
    assert not ok and len(reasons) == 1 and reasons[0].startswith("over: DSP 318 of 220")
    # the same design fits the bigger part
    assert R.fits({"LUT": 10_000, "FF": 20_000, "DSP": 318, "BRAM18": 31}, "zcu104")[0]
    # 80% is the default ceiling: 177 of 220 DSPs is over, 176 is not
    assert not R.fits({"LUT": 0, "FF": 0, "DSP": 177, "BRAM18": 0}, "xc7z020clg400-1")[0]
    assert R.fits({"LUT": 0, "FF": 0, "DSP": 176, "BRAM18": 0}, "xc7z020clg400-1")[0]
    # Yosys-style keys (RAMB36 = 2 BRAM18)
    assert not R.fits({"LUT": 0, "FF": 0, "DSP": 0, "BRAM_18K": 0, "BRAM_36K": 120},
                      "pynq-z2")[0]


def test_fits_on_a_model() -> None:
    ok, reasons = R.fits(small_graph(), "pynq-z2")
    assert ok, reasons
    ok, reasons = R.fits(small_graph(), "pynq-z2", ceiling=0.0001)
    assert not ok and any("DSP" in r for r in reasons)


@pytest.mark.parametrize("ceiling, dsps", [(0.8, 220), (0.7, 220), (0.55, 220), (1.0, 220),
                                           (0.001, 220), (0.29, 100)])
def test_budget_report_agrees_with_fits(ceiling: float, dsps: int,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The build's check (budget_report) refuses exactly what fits() refuses, and its
    ``limit`` is the largest count that passes (float products on either side of an
    integer included: 0.55 * 220 = 121.00000000000001, 0.29 * 100 = 28.999999999999996)."""
    import dataclasses

    monkeypatch.setitem(R.PARTS, "xc7z020", dataclasses.replace(R.PARTS["xc7z020"], DSP=dsps))
    part = "xc7z020clg400-1"
    cap = {k: getattr(R.part_info(part), k) for k in R.RES}
    for dsp in range(0, dsps + 1):
        est = {"part": part, "family": "xc7", "dsp_block": "DSP48E1", "capacity": cap,
               "total": {"LUT": 0, "FF": 0, "DSP": dsp, "BRAM18": 0}, "layers": {},
               "finn_total": {}, "method": ""}
        rep = R.budget_report(est, ceiling)
        assert rep["fits"] == R.fits(est, part, ceiling)[0], dsp
        r = rep["resources"]["DSP"]
        assert r["over"] == (dsp > r["limit"]) and r["margin"] == r["limit"] - dsp
        assert [ln.startswith("DSP:") for ln in R.budget_lines(rep)] == [True] * r["over"]
    with pytest.raises(ValueError, match="ceiling"):
        R.budget_report(est, 1.5)


def test_part_capacities() -> None:
    z = R.part_info("xc7z020clg400-1")
    assert (z.LUT, z.FF, z.DSP, z.BRAM18) == (53_200, 106_400, 220, 280)
    u = R.part_info("xczu7ev-ffvc1156-2-e")
    assert (u.LUT, u.FF, u.DSP, u.BRAM18) == (230_400, 460_800, 1_728, 624)
    assert "DS190" in z.source and "DS891" in u.source
    with pytest.raises(KeyError):
        R.part_info("xc9unknown")


# ------------------------------------------------------------------ against Yosys
@pytest.mark.skipif(not (DEFAULT_PKG / "model_finn.onnx").is_file(),
                    reason="default package not built")
def test_default_package_close_to_yosys() -> None:
    """Yosys synth_xilinx per module (xc7) of the default package, with the FIFOs and
    width converters of its stitched top: LUT 11,024 (incl. LUTRAM sites), FF 24,268,
    DSP 57, BRAM18 31 (results/resources/calibration.json)."""
    from qonnx.core.modelwrapper import ModelWrapper

    manifest = json.loads((DEFAULT_PKG / "manifest.json").read_text())
    if manifest.get("folding", {}).get("MVAU_rtl_1", {}).get("PE") != 4:
        pytest.skip("the default package was rebuilt with another folding")
    est = R.estimate(ModelWrapper(str(DEFAULT_PKG / "model_finn.onnx")), manifest["part"])
    t = est["total"]
    assert t["DSP"] == 57 and t["BRAM18"] == 31
    assert abs(t["LUT"] - 11_024) / 11_024 < 0.10
    assert abs(t["FF"] - 24_268) / 24_268 < 0.05
    assert est["finn_total"]["DSP"] == 33


@pytest.mark.slow
@pytest.mark.skipif(not (DEFAULT_PKG / "model_finn.onnx").is_file(),
                    reason="default package not built")
def test_calibrate_default_package_with_yosys(tmp_path: Path) -> None:
    """Yosys per module on the default package (about 3 min), then the model's error."""
    from hw import resources_report as rr

    res = rr.calibrate([DEFAULT_PKG], tmp_path / "cal.json", tmp_path / "work")
    err = res["overall"]["corrected"]
    assert err["DSP"]["total_error"] == 0 and err["BRAM18"]["total_error"] == 0
    assert abs(err["LUT"]["total_error"]) < 0.10
    assert abs(err["FF"]["total_error"]) < 0.05
