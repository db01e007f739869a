"""Verilator co-simulation of a small compiled MLP: exact, back-pressured, negative control,
the SIMD = MW output-queue overflow, and `make bitstream` without Vivado."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qonnx.core.modelwrapper import ModelWrapper

from contract.iospec import Golden
from hw.build import compile_and_verify, write_portable_model
from hw.package import collect_rtl, folding_of, write_manifest
from hw.rtlsim import stitch, verilate
from hw.rtlsim.run import run_sim
from tests.conftest import FLOW_DESIGN

REPO = Path(__file__).resolve().parent.parent


def make_package(export: dict[str, Any], board: dict[str, Any], root: Path,
                 folding: dict[str, Any] | None = None) -> Path:
    """The package layout of hw.build.build_package, from the test MLP (no training run)."""
    fold_file = None
    if folding is not None:
        fold_file = root / "folding.json"
        fold_file.write_text(json.dumps(folding))
    g = export["golden"]
    res = compile_and_verify(export["qonnx"], root / "build", FLOW_DESIGN, board, g["inputs"],
                             g["outputs"].astype(np.int64), folding=fold_file)
    assert all(r["mismatches"] == 0 for r in res["verification"].values())
    pkg = root / "pkg"
    pkg.mkdir()
    write_portable_model(res["final_model"], pkg / "model_finn.onnx", res["spec"])
    shutil.copyfile(export["qonnx"], pkg / "model_qonnx.onnx")
    np.savez(pkg / "golden.npz", **Golden({"x": g["inputs"]}, {"y": g["outputs"]}, g["set"],
                                          g["ties"]).to_npz())
    shutil.copyfile(export["qonnx"].parent / "iospec.json", pkg / "iospec.json")
    model = ModelWrapper(str(res["final_model"]))
    files = collect_rtl(model, pkg / "rtl")
    write_manifest(pkg, {
        "design": "test-small-mlp", "board": "pynq-z2", "part": board["part"],
        "clock_mhz": board["clock_mhz"], "io": res["io"], "folding": folding_of(model),
        "rtl": {"files": files, "top_layers": [n.name for n in model.graph.node]},
        "verification": res["verification"]})
    return pkg


def rtlsim_mismatches(binary: Path, rtl: Path, io: dict[str, Any], golden: Any,
                      work: Path) -> int:
    """Mismatches of one back-pressured run of a built top over a package's golden vectors."""
    r = verilate.simulate(str(binary), rtl, io, golden["inputs"], work, 7, 0.6, 0.5)
    return verilate.compare_codes(r["codes"], golden["outputs"].astype(np.int64))["mismatches"]


def assert_changed_weight_mismatches(pkg: Path, sim_work: Path, tmp_path: Path) -> None:
    """Negative control: the top built by ``make sim`` in ``sim_work``, fed a copy of ``pkg``
    whose lowest weight in MVAU_rtl_0's memblock.dat is changed, reports mismatches; the
    unmodified package through the same binary is exact."""
    bad = tmp_path / "bad"
    shutil.copytree(pkg, bad)
    dat = bad / "rtl" / "MVAU_rtl_0" / "memblock.dat"
    lines = dat.read_text().splitlines()
    lines[0] = lines[0][:-1] + format(int(lines[0][-1], 16) ^ 0x3, "x")  # lowest weight, word 0
    dat.write_text("\n".join(lines) + "\n")
    m = json.loads((pkg / "manifest.json").read_text())
    gi, go = Golden.load(pkg / "golden.npz").single()
    g = {"inputs": gi, "outputs": go}
    binary = sim_work / "obj_dir" / f"V{stitch.TOP}"  # as hw.rtlsim.run builds it
    assert rtlsim_mismatches(binary, bad / "rtl", m["io"], g, tmp_path) > 0
    assert rtlsim_mismatches(binary, pkg / "rtl", m["io"], g, tmp_path) == 0


@pytest.fixture(scope="module")
def small_pkg(small_mlp_export: dict[str, Any], pynq_z2: dict[str, Any],
              tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_package(small_mlp_export, pynq_z2, tmp_path_factory.mktemp("rtlsim_pkg"))


@pytest.fixture(scope="module")
def simulated(small_pkg: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("rtlsim_work")
    manifest = run_sim(small_pkg, work, n_vectors=0, do_yosys=False)
    n = len(Golden.load(small_pkg / "golden.npz"))
    return {"manifest": manifest, "work": work, "golden_vectors": n}


def test_cosim_is_bit_exact_under_backpressure(simulated: dict[str, Any]) -> None:
    m = simulated["manifest"]
    v = m["verification"]["rtlsim"]
    assert v["vectors"] == simulated["golden_vectors"]  # every golden vector
    assert v["mismatches"] == 0
    assert v["details"]["rc"] == 0 and v["details"]["missing"] == 0
    assert v["details"]["full_rate_run"]["mismatches"] == 0
    p = m["performance"]["rtlsim"]
    assert p["latency_cycles"] > 0 and p["ii_cycles"] > 0
    assert {x["name"] for x in m["rtlsim"]["patches"]} >= {
        "add_multi-constant-function-to-module-scope", "mvu-output-queue-lock-latency"}
    # every artifact, the stitched top included, is hashed in the manifest
    assert "rtl/stitched/finn_top.sv" in m["artifacts"]


def test_make_sim_resumes(small_pkg: Path, simulated: dict[str, Any]) -> None:
    again = run_sim(small_pkg, simulated["work"], n_vectors=0, do_yosys=False)
    assert set(again["rtlsim"]["stages"].values()) == {"reused"}


def test_negative_control_changed_weight_is_caught(small_pkg: Path, simulated: dict[str, Any],
                                                   tmp_path: Path) -> None:
    """One changed weight in a generated .dat file must show up as mismatches."""
    assert_changed_weight_mismatches(small_pkg, simulated["work"], tmp_path)


def test_bitstream_without_vivado_fails_with_report(simulated: dict[str, Any],
                                                    small_pkg: Path) -> None:
    env = {k: v for k, v in __import__("os").environ.items() if k != "XILINX_VIVADO"}
    r = subprocess.run([sys.executable, "-m", "hw.vivado", "--design", "test-small-mlp",
                        "--board", "pynq-z2", "--pkg", str(small_pkg)], cwd=REPO, env=env,
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "MISSING: Vivado 2024.2" in r.stderr and "rtlsim" in r.stdout
    assert "Bitstream:" not in r.stdout
    assert not list(small_pkg.rglob("*.bit"))


def test_yosys_counts_layers(simulated: dict[str, Any], small_pkg: Path, tmp_path: Path) -> None:
    """Yosys (read_slang + synth_xilinx) maps an MVAU to DSP48E1 hard cells (the primitive
    stubs stay black boxes instead of being optimized away) and synthesizes a Thresholding
    layer (patch thresholding-scope-no-reversed-part-select); without that patch read_slang
    stops with "unsynthesizable feature"."""
    from hw.rtlsim import yosys

    m = simulated["manifest"]
    files = [f for f in (small_pkg / m["rtlsim"]["filelist"]).read_text().split()
             if not f.endswith("finn_top.sv")]
    mvau = yosys.synthesize(small_pkg / "rtl", files, "MVAU_rtl_0", m["part"], tmp_path / "a")
    assert mvau["counts"]["DSP"] > 0 and mvau["counts"]["LUT"] > 0
    th = yosys.synthesize(small_pkg / "rtl", files, "Thresholding_rtl_0", m["part"],
                          tmp_path / "b")
    assert th["counts"]["LUT"] > 0 and th["counts"]["FF"] > 0
    unpatched = [f.replace("stitched/finn-rtllib/thresholding", "finn-rtllib/thresholding")
                 for f in files]
    with pytest.raises(RuntimeError, match="unsynthesizable feature"):
        yosys.synthesize(small_pkg / "rtl", unpatched, "Thresholding_rtl_0", m["part"],
                         tmp_path / "c")


def test_top_instances_grouped_by_layer(simulated: dict[str, Any], small_pkg: Path) -> None:
    """Per-layer Yosys counts: every module of the top belongs to a layer or to the glue."""
    from hw.rtlsim import yosys

    m = simulated["manifest"]
    mods = yosys.top_instances(small_pkg / m["rtlsim"]["top"])
    layers = m["rtl"]["top_layers"]
    assert "module" not in mods and len(mods) == len(m["rtlsim"]["nodes"]) + sum(
        n.startswith("MVAU") for n in layers)  # + one memstream per MVAU
    assert {yosys.group_of(x, layers) for x in mods} == set(layers) | {"stream_glue"}
