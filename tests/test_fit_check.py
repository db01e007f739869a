"""The build's resource check (hw.steps.step_check_resources): a folded design over the
board's utilization ceiling is refused before any RTL is generated, naming what does not
fit; a design that fits records its margin; ``RESOURCE_CHECK=warn`` / ``hw.resource_check:
warn`` lets an expert through; a refusal is a failed step (redone on the next run, never
journaled) and never touches the good package.

The step alone runs on small RTL graphs (hw.rtlsim.testgraphs): 12 -> 64 -> 4, W6 weights
on INT8 inputs (2 lanes per DSP), its first MVAU at SIMD 12 and PE ``pe``: PE 64 needs
32 x 12 = 384 DSPs of its own, over the 176 (80% of 220) of pynq-z2's xc7z020 and well
under zcu104's 1,382. The whole builder runs on the small MLP of tests/conftest.py (about
a second per build).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qonnx.core.modelwrapper import ModelWrapper

import hw  # noqa: F401  (offline FINN bootstrap)
from configs import boards, load_board
from contract.export_files import EXPORTED, GOLDEN, IOSPEC, QONNX, REFERENCE
from export.golden import build_golden
from hw import resources as R
from hw.build import build_package, packaged_reports, resource_check_summary
from hw.errors import ResourceBudgetError
from hw.flow import (
    OFFLINE_STEPS,
    build_inputs_key,
    dataflow_config,
    file_sha256,
    run_finn_build,
    step_code_files,
)
from hw.journal import JOURNAL, BuildJournal
from hw.steps import step_check_resources
from tests.conftest import FLOW_DESIGN

CHECK = "step_check_resources"
XC7Z020 = "xc7z020clg400-1"


def graph(pe: int) -> ModelWrapper:
    """x (12 x INT8) -> MVAU 12x64 (W6, SIMD 12, PE ``pe``) -> Thresholding -> MVAU 64x4."""
    from hw.rtlsim.testgraphs import GraphBuilder

    g = GraphBuilder(seed=1)
    x = g.input("x", "INT8", 12)
    t = g.threshold(g.mvau(x, 64, wbits=6, simd=12, pe=pe), obits=6)
    y = g.mvau(t, 4, wbits=6, simd=8, pe=2)
    return g.model(["x"], ["y"], {y: "y"})


def run_check(model: ModelWrapper, board_name: str, out: Path, **hw_keys: Any
              ) -> dict[str, Any]:
    """The step as the builder calls it; returns report/resource_check.json."""
    board = load_board(board_name)
    design = {"name": "tiny-fit", "hw": {"target_fps": 1000, **hw_keys}}
    cfg = dataflow_config(out, design, board, [])
    got = step_check_resources(model, cfg, {"design": design, "board": board})
    assert got is model  # the check changes nothing
    return json.loads((out / "report" / R.RESOURCE_REPORT).read_text())


# ------------------------------------------------------------------ the step alone
def test_a_design_that_fits_passes_and_records_its_margin(tmp_path: Path) -> None:
    rep = run_check(graph(4), "pynq-z2", tmp_path)
    assert rep["fits"] and rep["policy"] == "refuse" and rep["ceiling"] == 0.8
    assert (rep["design"], rep["board"], rep["part"]) == ("tiny-fit", "pynq-z2", XC7Z020)
    est = R.estimate(graph(4), XC7Z020)
    dsp = rep["resources"]["DSP"]
    # PE 4 / 2 lanes x SIMD 12 + PE 2 / 2 x SIMD 8: the RTL's count, not FINN's
    assert dsp["used"] == est["total"]["DSP"] == 2 * 12 + 1 * 8
    assert (dsp["available"], dsp["limit"], dsp["margin"]) == (220, 176, 176 - 32)
    for k in R.RES:
        r = rep["resources"][k]
        assert r["used"] == est["total"][k] and not r["over"]
        assert r["margin"] == r["limit"] - r["used"] > 0
    # the top layers by DSP are the two MVAUs, biggest first
    assert [t["name"] for t in rep["top_layers"]["DSP"]] == ["MVAU_rtl_0", "MVAU_rtl_1"]


def test_too_large_for_pynq_z2_is_refused_naming_what_does_not_fit(tmp_path: Path) -> None:
    with pytest.raises(ResourceBudgetError) as info:
        run_check(graph(64), "pynq-z2", tmp_path)
    e, msg = info.value, str(info.value)
    assert (e.design, e.board, e.part) == ("tiny-fit", "pynq-z2", XC7Z020)
    assert "tiny-fit does not fit pynq-z2 (xc7z020clg400-1)" in msg
    # the resource, used / available / percent / ceiling, and the layer that uses it
    assert "DSP: 392 used / 220 available = 178.2% (ceiling 80% = 176; over by 216)" in msg
    assert "MVAU_rtl_0 (MVAU_rtl): 384 DSP" in msg
    over = {o["resource"]: o for o in e.over}
    assert over["DSP"]["used"] == 392 and over["DSP"]["available"] == 220
    assert over["DSP"]["top_layers"][0]["name"] == "MVAU_rtl_0"
    assert "BRAM18" not in over and "BRAM18:" not in msg  # only what is over
    # what to do: the real options of this repository
    assert "make hw SPEED=max DESIGN=tiny-fit BOARD=pynq-z2" in msg
    assert "hw.target_fps" in msg and "hw.folding_config" in msg
    assert "make hw DESIGN=tiny-fit BOARD=pynq-z2 RESOURCE_CHECK=warn" in msg
    assert "hw.resource_check: warn" in msg
    # the refusal leaves its report (not journaled: the next run redoes the step)
    rep = json.loads((tmp_path / "report" / R.RESOURCE_REPORT).read_text())
    assert not rep["fits"] and rep["resources"]["DSP"]["over"]


def test_with_a_folding_json_the_advice_names_it(tmp_path: Path) -> None:
    board = load_board("pynq-z2")
    design = {"name": "tiny-fit", "hw": {"folding_config": "f.json", "impl": "auto"}}
    cfg = dataflow_config(tmp_path, design, board, [], folding_file=tmp_path / "f.json")
    with pytest.raises(ResourceBudgetError) as info:
        step_check_resources(graph(64), cfg, {"design": design, "board": board})
    msg = str(info.value)
    assert f"this build's folding is the JSON {tmp_path / 'f.json'}" in msg
    assert "lower hw.target_fps" not in msg and "hw.impl: folded" in msg


def test_the_same_design_fits_zcu104(tmp_path: Path) -> None:
    rep = run_check(graph(64), "zcu104", tmp_path)
    assert rep["fits"] and rep["resources"]["DSP"]["used"] == 392
    assert rep["resources"]["DSP"]["limit"] == 1382


def test_an_artificially_tiny_board_refuses_what_fits_pynq_z2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_check(graph(4), "pynq-z2", tmp_path / "real")["fits"]
    tiny = dataclasses.replace(R.PARTS["xc7z020"], LUT=2_000, FF=100_000, DSP=20, BRAM18=280)
    monkeypatch.setitem(R.PARTS, "xc7z020", tiny)
    with pytest.raises(ResourceBudgetError) as info:
        run_check(graph(4), "pynq-z2", tmp_path / "tiny")
    msg = str(info.value)
    assert "DSP: 32 used / 20 available = 160.0% (ceiling 80% = 16; over by 16)" in msg
    assert "LUT: " in msg and "FF: " not in msg


def test_escape_hatch_lets_it_through_and_records_the_overrun(tmp_path: Path) -> None:
    rep = run_check(graph(64), "pynq-z2", tmp_path, resource_check="warn")
    assert not rep["fits"] and rep["policy"] == "warn"
    assert rep["resources"]["DSP"]["margin"] == 176 - 392
    # the ceiling is the design's: at 1.0 the DSPs are still over (392 > 220)
    with pytest.raises(ResourceBudgetError, match=r"ceiling 100% = 220"):
        run_check(graph(64), "pynq-z2", tmp_path / "c", utilization_ceiling=1.0)
    with pytest.raises(ValueError, match="refuse, warn"):
        run_check(graph(4), "pynq-z2", tmp_path / "bad", resource_check="maybe")


def test_resource_check_env_sets_the_design_key() -> None:
    design = {"name": "d", "hw": {"target_fps": 1}}
    assert R.with_resource_check_env(design, {}) is design
    assert R.with_resource_check_env(design, {"RESOURCE_CHECK": ""}) is design
    got = R.with_resource_check_env(design, {"RESOURCE_CHECK": "warn"})
    assert got["hw"] == {"target_fps": 1, "resource_check": "warn"}
    assert design["hw"] == {"target_fps": 1}  # not mutated
    with pytest.raises(ValueError, match="RESOURCE_CHECK='yes'"):
        R.with_resource_check_env(design, {"RESOURCE_CHECK": "yes"})


def test_the_schema_knows_the_key() -> None:
    from configs.schema import HwConfig

    assert HwConfig.model_validate({"target_fps": 1, "resource_check": "warn"})
    with pytest.raises(Exception, match="resource_check"):
        HwConfig.model_validate({"target_fps": 1, "resource_check": "ignore"})


# ------------------------------------------------------------------ in the builder
def test_the_check_runs_in_every_build_between_folding_and_rtl() -> None:
    """Negative control for 'the check never ran': it is in the one step list the build
    uses for every board (run_finn_build's default; the SPEED=max build runs it too),
    after the folding is final and before any RTL or estimate report is generated."""
    i = OFFLINE_STEPS.index(CHECK)
    for before in ("step_target_fps_parallelization", "step_apply_folding_config",
                   "step_minimize_bit_width", "step_unroll_layers"):
        assert OFFLINE_STEPS.index(before) < i
    assert i < OFFLINE_STEPS.index("step_hw_codegen")
    assert OFFLINE_STEPS.count(CHECK) == 1


def _journal_steps(build_dir: Path) -> list[str]:
    return [r["step"] for r in json.loads((build_dir / JOURNAL).read_text())["done"]]


@pytest.mark.parametrize("board_name", sorted(boards()))
def test_builder_refuses_then_redoes_the_step_then_builds_when_it_fits(
        small_mlp_export: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        board_name: str) -> None:
    monkeypatch.delenv(R.RESOURCE_CHECK_ENV, raising=False)
    board = load_board(board_name)
    qonnx = small_mlp_export["qonnx"]
    tight = {**FLOW_DESIGN, "hw": {**FLOW_DESIGN["hw"], "utilization_ceiling": 0.001}}
    build = tmp_path / "build"
    with pytest.raises(ResourceBudgetError, match=f"does not fit {board_name}"):
        run_finn_build(qonnx, build, tight, board)
    # a failed step: journaled up to the step before it, no RTL generated
    assert _journal_steps(build) == OFFLINE_STEPS[:OFFLINE_STEPS.index(CHECK)]
    assert not (build / "intermediate_models" / "step_hw_codegen.onnx").exists()
    assert json.loads((build / JOURNAL).read_text())["steps"] == OFFLINE_STEPS
    # the next run with the same inputs starts at the check, and refuses again
    key = build_inputs_key(qonnx, tight, board, None)
    assert BuildJournal(build, key, OFFLINE_STEPS).open(True) == CHECK
    with pytest.raises(ResourceBudgetError):
        run_finn_build(qonnx, build, tight, board)
    assert _journal_steps(build)[-1] == "step_unroll_layers"
    # the escape hatch (make hw RESOURCE_CHECK=warn): through, inside the inputs key
    monkeypatch.setenv(R.RESOURCE_CHECK_ENV, "warn")
    res = run_finn_build(qonnx, build, tight, board)
    assert res["key"] != key and _journal_steps(build) == OFFLINE_STEPS
    rep = json.loads((build / "report" / R.RESOURCE_REPORT).read_text())
    assert not rep["fits"] and rep["policy"] == "warn"
    # ... and a later run without it refuses again (the key differs: no resume past it)
    monkeypatch.delenv(R.RESOURCE_CHECK_ENV)
    with pytest.raises(ResourceBudgetError):
        run_finn_build(qonnx, build, tight, board)
    # the default ceiling: it fits, the margin is in the reports a package takes
    res = run_finn_build(qonnx, build, FLOW_DESIGN, board)
    assert _journal_steps(build) == OFFLINE_STEPS
    assert (build / "report" / R.RESOURCE_REPORT) in packaged_reports(build / "report")
    summary = resource_check_summary(build / "report")
    assert summary["fits"] and summary["policy"] == "refuse" and summary["ceiling"] == 0.8
    assert summary["part"] == board["part"] and summary["top_layers"] == {}
    for k in R.RES:
        r = summary["resources"][k]
        assert r["available"] == getattr(R.part_info(board["part"]), k)
        assert 0 < r["margin"] == r["limit"] - r["used"]
    # resumed: nothing redone, the report still vouched for by the journal
    assert run_finn_build(qonnx, build, FLOW_DESIGN, board)["resumed_from"] == "done"


def test_without_the_step_the_same_build_goes_through(small_mlp_export: dict,
                                                      tmp_path: Path) -> None:
    """Negative control: the refusal comes from the step, nothing else in the flow."""
    tight = {**FLOW_DESIGN, "hw": {**FLOW_DESIGN["hw"], "utilization_ceiling": 0.001}}
    board = load_board("pynq-z2")
    steps = [s for s in OFFLINE_STEPS if s != CHECK]
    run_finn_build(small_mlp_export["qonnx"], tmp_path / "b", tight, board, steps=steps)
    assert (tmp_path / "b" / "intermediate_models" / "step_hw_codegen.onnx").is_file()
    assert not (tmp_path / "b" / "report" / R.RESOURCE_REPORT).exists()
    with pytest.raises(ResourceBudgetError):
        run_finn_build(small_mlp_export["qonnx"], tmp_path / "c", tight, board)


def test_build_key_covers_the_check() -> None:
    keyed = {f.resolve() for f in step_code_files()}
    root = Path(R.__file__).resolve().parent
    assert root / "resources.py" in keyed and root / "steps.py" in keyed
    assert root / "rtlsim" / "stitch.py" in keyed  # the FIFOs and DWCs the check counts


# ------------------------------------------------------------------ the package
def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): file_sha256(p) for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture
def run_dir(small_mlp_export: dict, tmp_path: Path) -> Path:
    """A run folder as ``make export`` leaves it, for the small MLP."""
    export = tmp_path / "run" / "export"
    export.mkdir(parents=True)
    for f in (QONNX, IOSPEC):
        shutil.copyfile(small_mlp_export["dir"] / f, export / f)
    rng = np.random.default_rng(3)
    g = build_golden(small_mlp_export["model"], {"x": np.tanh(rng.normal(0, 2, (200, 12)))},
                     n_ties=100)
    np.savez_compressed(export / GOLDEN, **g.to_npz())
    (export / REFERENCE).write_text(json.dumps({
        "design": "tiny-fit", "run": "run",
        "files": {f: file_sha256(export / f) for f in EXPORTED},
        "checks": {"brevitas_cpu": {"vectors": len(g), "mismatches": 0}}}))
    return export.parent


def test_refusal_never_replaces_the_good_package(run_dir: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """make hw on a design that does not fit: the error, the old package as it was, no
    staging folder and no ``.failed`` package (nothing was built); then the design at the
    default ceiling builds, its manifest and reports carrying the margin."""
    import hw.build as B

    monkeypatch.delenv(R.RESOURCE_CHECK_ENV, raising=False)
    monkeypatch.chdir(tmp_path)  # build/<design>-<board> goes here
    hw_keys = {"target_fps": 200_000, "utilization_ceiling": 0.001}
    monkeypatch.setattr(B, "load_design", lambda name: {"name": name, "hw": dict(hw_keys)})
    out = tmp_path / "bitstreams" / "pkg"
    out.mkdir(parents=True)
    (out / "manifest.json").write_text('{"good": true}')
    (out / "rtl.v").write_text("module good; endmodule\n")
    before = _tree(out)
    with pytest.raises(ResourceBudgetError, match="tiny-fit does not fit pynq-z2"):
        build_package("tiny-fit", "pynq-z2", run_dir, out)
    assert _tree(out) == before
    assert sorted(p.name for p in out.parent.iterdir() if not p.name.endswith(".lock")) == [
        "pkg"]
    # fits: built, verified and swapped in, the check in its manifest and reports
    hw_keys["utilization_ceiling"] = 0.8
    m = build_package("tiny-fit", "pynq-z2", run_dir, out)
    assert "kept_as" not in m and json.loads((out / "manifest.json").read_text()) == m
    rc = m["resource_check"]
    assert rc["fits"] and rc["ceiling"] == 0.8 and rc["report"] == "reports/resource_check.json"
    assert rc["resources"]["DSP"]["margin"] == 176 - rc["resources"]["DSP"]["used"]
    rep = json.loads((out / "reports" / R.RESOURCE_REPORT).read_text())
    assert rep["fits"] and rep["resources"] == rc["resources"]
