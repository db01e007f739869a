"""Builds that cannot lie: interrupted builds resume to a clean build's artifacts or rebuild,
one build of a folder at a time, byte-reproducible artifacts, refused ``--out`` folders,
and package swaps that never lose the good package.

The kill tests build model A into a folder, then start model B (one weight tensor x 1.7)
in the same folder in a subprocess that signals itself when a given step starts
(``HW_BUILD_FAULT``), re-run B, and compare every artifact hash with a clean build of B.
On the old resume (inputs key written before the steps, any existing checkpoint
trusted) these fail: the re-run finished on A's later checkpoints and RTL.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from qonnx.core.modelwrapper import ModelWrapper

from configs import REPO_ROOT, load_board
from export.qonnx_export import export_codes_model
from hw.build import (
    PackageOutError,
    check_out_dir,
    packaged_reports,
    recover_interrupted_swap,
    swap_in,
    write_portable_model,
)
from hw.flow import (
    FAULT_ENV,
    OFFLINE_STEPS,
    BuildLockedError,
    build_lock,
    file_sha256,
    run_finn_build,
)
from hw.package import collect_rtl
from tests.conftest import FLOW_DESIGN, SMALL_MLP, sigint_as_on_a_terminal
from tests.synthetic import calibrate
from zoo.blocks import QuantMLP

FAST_KILLS = [("step_hw_codegen", "SIGKILL"), ("step_streamline_half_even", "SIGINT"),
              ("step_generate_estimate_reports", "SIGKILL")]
ALL_KILLS = [(s, sig) for s in OFFLINE_STEPS for sig in ("SIGKILL", "SIGINT")]


def artifact_hashes(build_dir: Path, scratch: Path) -> dict[str, str]:
    """What a package takes from a build: the final model (build paths made portable),
    every RTL file (as collect_rtl copies them) and FINN's reports, by sha256."""
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    final = build_dir / "intermediate_models" / "step_hw_codegen.onnx"
    write_portable_model(final, scratch / "model_finn.onnx")
    collect_rtl(ModelWrapper(str(final)), scratch / "rtl")
    for f in packaged_reports(build_dir / "report"):
        shutil.copyfile(f, scratch / f.name)
    return {str(p.relative_to(scratch)): file_sha256(p)
            for p in sorted(scratch.rglob("*")) if p.is_file()}


def run_worker(qonnx: Path, build_dir: Path, fault: str | None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop(FAULT_ENV, None)
    if fault:
        env[FAULT_ENV] = fault
    return subprocess.run([sys.executable, "-m", "tests.build_worker", str(qonnx),
                           str(build_dir)], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=600,
                          preexec_fn=sigint_as_on_a_terminal)


@pytest.fixture(scope="module")
def builds(small_mlp_export: dict, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Model A built once (kept as a snapshot), model B exported, and B's clean artifacts."""
    root = tmp_path_factory.mktemp("reliability")
    model_b = calibrate(QuantMLP(SMALL_MLP), 12)
    with torch.no_grad():
        model_b.body[0].weight.mul_(1.7)
    qonnx_b = root / "b" / "model_qonnx.onnx"
    export_codes_model(model_b, qonnx_b)
    board = load_board("pynq-z2")
    clean_b = root / "clean_b"
    run_finn_build(qonnx_b, clean_b, FLOW_DESIGN, board)
    shared = root / "shared_build"
    run_finn_build(small_mlp_export["qonnx"], shared, FLOW_DESIGN, board)
    snapshot = root / "a_snapshot"
    shutil.copytree(shared, snapshot)
    hashes_a = artifact_hashes(shared, root / "scratch_a")
    hashes_b = artifact_hashes(clean_b, root / "scratch_b")
    assert hashes_a != hashes_b, "the two models must give different artifacts"
    return {"root": root, "qonnx_a": small_mlp_export["qonnx"], "qonnx_b": qonnx_b,
            "shared": shared, "snapshot": snapshot, "clean_b": hashes_b, "board": board}


def kill_and_resume(b: dict[str, Any], step: str, sig: str) -> None:
    shared = b["shared"]
    shutil.rmtree(shared)
    shutil.copytree(b["snapshot"], shared)  # A fully built in the very same folder
    killed = run_worker(b["qonnx_b"], shared, f"{step}:{sig}")
    assert killed.returncode != 0, f"the {sig} at {step} did not stop the build"
    resumed = run_finn_build(b["qonnx_b"], shared, FLOW_DESIGN, b["board"])
    got = artifact_hashes(shared, b["root"] / "scratch_resumed")
    differ = sorted(k for k in set(got) | set(b["clean_b"]) if got.get(k) != b["clean_b"].get(k))
    assert not differ, (f"{sig} at {step}, resumed from {resumed['resumed_from']}: "
                        f"artifacts differ from a clean build: {differ[:8]}")


@pytest.mark.parametrize(("step", "sig"), FAST_KILLS)
def test_killed_build_resumes_to_clean_artifacts(builds: dict, step: str, sig: str) -> None:
    kill_and_resume(builds, step, sig)


@pytest.mark.slow
@pytest.mark.parametrize(("step", "sig"), ALL_KILLS)
def test_killed_build_resumes_at_every_step(builds: dict, step: str, sig: str) -> None:
    kill_and_resume(builds, step, sig)


def test_torn_checkpoint_is_not_trusted(builds: dict) -> None:
    """A checkpoint cut short (a kill inside FINN's save) is redone, not loaded."""
    shared = builds["shared"]
    run_finn_build(builds["qonnx_b"], shared, FLOW_DESIGN, builds["board"])
    ckpt = shared / "intermediate_models" / "step_tidy_up.onnx"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    res = run_finn_build(builds["qonnx_b"], shared, FLOW_DESIGN, builds["board"])
    assert res["resumed_from"] == "step_tidy_up"
    assert artifact_hashes(shared, builds["root"] / "scratch_torn") == builds["clean_b"]
    # Negative control: an untouched finished build is not redone at all.
    assert run_finn_build(builds["qonnx_b"], shared, FLOW_DESIGN,
                          builds["board"])["resumed_from"] == "done"


def test_changed_generated_rtl_is_rebuilt(builds: dict) -> None:
    """A generated .dat file edited after the build: the codegen step is not trusted."""
    shared = builds["shared"]
    run_finn_build(builds["qonnx_b"], shared, FLOW_DESIGN, builds["board"])
    final = ModelWrapper(str(shared / "intermediate_models" / "step_hw_codegen.onnx"))
    gen = next(Path(a.s.decode()) for a in final.get_nodes_by_op_type("MVAU_rtl")[0].attribute
               if a.name == "code_gen_dir_ipgen")
    dat = sorted(gen.glob("*.dat"))[0]
    dat.write_text(dat.read_text().replace("0", "1", 1))
    res = run_finn_build(builds["qonnx_b"], shared, FLOW_DESIGN, builds["board"])
    assert res["resumed_from"] == "step_hw_codegen"
    assert artifact_hashes(shared, builds["root"] / "scratch_dat") == builds["clean_b"]


def test_two_clean_builds_are_byte_identical(builds: dict) -> None:
    """No absolute or random paths in what is packaged: same inputs, same bytes."""
    again = builds["root"] / "clean_b_again"
    run_finn_build(builds["qonnx_b"], again, FLOW_DESIGN, builds["board"], resume=False)
    got = artifact_hashes(again, builds["root"] / "scratch_again")
    assert got == builds["clean_b"]
    text = (builds["root"] / "scratch_again" / "model_finn.onnx").read_bytes()
    assert str(again).encode() not in text and b"finn_tmp" not in text


def test_concurrent_builds_of_one_folder_are_serialized(builds: dict) -> None:
    shared = builds["shared"]
    run_finn_build(builds["qonnx_b"], shared, FLOW_DESIGN, builds["board"])
    with build_lock(shared), pytest.raises(BuildLockedError, match="lock"):
        run_finn_build(builds["qonnx_b"], shared, FLOW_DESIGN, builds["board"],
                       lock_timeout=0)
    # Serialized: a second build waits for the first to release the lock, then runs.
    released = threading.Event()

    def hold() -> None:
        with build_lock(shared):
            time.sleep(1.0)
        released.set()

    t = threading.Thread(target=hold)
    t.start()
    time.sleep(0.2)
    res = run_finn_build(builds["qonnx_b"], shared, FLOW_DESIGN, builds["board"],
                         lock_timeout=30)
    assert released.is_set() and res["resumed_from"] == "done"
    t.join()


# --- package folders: refused --out, swaps that never lose the good package ---------------

@pytest.mark.parametrize("rel", ["runs/x", "runs/x/export", "runs", ".", "hw/pkg", "configs",
                                 "/"])
def test_out_inside_run_or_source_is_refused(tmp_path: Path, rel: str) -> None:
    out = Path(rel) if rel.startswith("/") else REPO_ROOT / rel
    with pytest.raises(PackageOutError, match="--out"):
        check_out_dir(out, REPO_ROOT / "runs" / "x")


def test_out_that_is_not_a_package_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("x")
    with pytest.raises(PackageOutError, match="not a package"):
        check_out_dir(tmp_path / "mine", tmp_path / "run")
    # Positive controls: a new folder, an empty one, and an existing package are fine.
    check_out_dir(tmp_path / "new", tmp_path / "run")
    (tmp_path / "empty").mkdir()
    check_out_dir(tmp_path / "empty", tmp_path / "run")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "manifest.json").write_text("{}")
    check_out_dir(tmp_path / "pkg", tmp_path / "run")


def _pkg(path: Path, text: str) -> Path:
    path.mkdir(parents=True)
    (path / "manifest.json").write_text(text)
    return path


def test_swap_replaces_and_an_interrupted_swap_is_recovered(tmp_path: Path) -> None:
    out = _pkg(tmp_path / "pkg", "good")
    swap_in(_pkg(tmp_path / ".pkg.tmp-1", "new"), out)
    assert (out / "manifest.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg"]
    # A kill between the two renames: the old package sits beside, no package in place.
    os.rename(out, tmp_path / ".pkg.old-7")
    _pkg(tmp_path / ".pkg.tmp-7", "half")
    recover_interrupted_swap(out)
    assert (out / "manifest.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg"]


def _local_imports(path: Path) -> set[Path]:
    """The repository modules (hw.*, zoo.*, contract.*) a source file imports, as files."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module] if isinstance(node, ast.ImportFrom) and node.module
                 else [])
        for name in names:
            if name.split(".")[0] not in ("hw", "zoo", "contract"):
                continue
            base = REPO_ROOT.joinpath(*name.split("."))
            for f in (base.with_suffix(".py"), base / "__init__.py"):
                if f.is_file():
                    found.add(f.resolve())
    return found


def test_build_key_covers_every_module_the_steps_import() -> None:
    """A build resumes only if none of the code its output depends on changed: every
    repository module that our steps, transformations and custom ops import (transitively)
    is in the inputs key. Measurement-only modules (Yosys reports, the rtlsim harness)
    and package plumbing (__init__, errors) are exempt: they do not shape the graph or RTL."""
    from hw.flow import step_code_files

    keyed = {f.resolve() for f in step_code_files()}
    exempt = {"__init__.py", "errors.py"}
    todo, seen = [f for f in keyed if f.suffix == ".py"], set(keyed)
    while todo:
        for dep in _local_imports(todo.pop()):
            if dep not in seen and dep.name not in exempt and "rtlsim" not in dep.parts:
                seen.add(dep)
                todo.append(dep)
    missing = sorted(str(f.relative_to(REPO_ROOT)) for f in seen - keyed)
    assert missing == [], f"not in the build inputs key: {missing}"
