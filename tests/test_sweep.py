"""Monte-Carlo sweeps on Ray (``sweep/``): worker-count independence, resume after SIGKILL,
a two-node cluster on this machine, the config validator, the stopping rule.

Every test starts and stops its own Ray (a local instance per ``run_sweep``, or a
``ray start --block`` head and worker node stopped by process id, never ``ray stop``,
which would end every Ray process of the user on the machine).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from configs import REPO_ROOT, ConfigError, load_design
from sweep.config import DETECTOR_NAMES, load_sweep, resolve
from sweep.journal import Journal
from sweep.runner import run_sweep
from sweep.stats import clopper_pearson, stop_reason

PY = sys.executable
RAY = str(Path(sys.executable).with_name("ray"))
DESIGN = "eqnet-fq-uniform-2x2-64qam"
RUN = REPO_ROOT / "runs" / DESIGN
PKG = REPO_ROOT / "bitstreams" / f"{DESIGN}-pynq-z2"


def write_sweep(folder: Path, name: str, **over: Any) -> Path:
    cfg: dict[str, Any] = {
        "name": name, "seed": 7,
        "link": {"n_t": 2, "n_r": 2, "bits_per_symbol": 6, "channel": "rayleigh"},
        "snr_db": [13.0, 15.0],
        "stopping": {"target_block_errors": 10, "max_blocks": 200, "chunk_blocks": 10,
                     "floor_bler": 0.002},
        "curves": [{"label": "ML", "mode": "ml"},
                   {"label": "ZF-SIC", "mode": "ml", "detector": "zf-sic"}],
    }
    cfg.update(over)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def untrained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder holding an untrained f_Q of the default design and an untrained
    training decoder: the float mode's whole path, without a trained run."""
    import torch

    from tests.synthetic import calibrate
    from zoo.blocks import FloatMLP
    from zoo.registry import build_network

    design = load_design(DESIGN)
    torch.manual_seed(0)
    net = calibrate(build_network(design), design["model"]["in_features"])
    m = design["model"]
    dec = FloatMLP(m["out_features"], design["train"]["decoder_hidden"], m["in_features"],
                   "tanh")
    run = tmp_path_factory.mktemp("untrained_run")
    torch.save({"design": DESIGN, "model": net.state_dict(), "decoder": dec.state_dict(),
                "recipe": "test"}, run / "checkpoint.pt")
    return run


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory, untrained_run: Path) -> dict[str, Any]:
    """The sweep of the worker and resume tests, and its uninterrupted 1-worker run."""
    folder = tmp_path_factory.mktemp("mixed")
    path = write_sweep(folder, "mixed", curves=[
        {"label": "ML", "mode": "ml"},
        {"label": "ZF-SIC", "mode": "ml", "detector": "zf-sic"},
        {"label": "untrained f_Q + g", "mode": "float", "design": DESIGN,
         "run": str(untrained_run)}])
    res = run_sweep(path, out=folder / "w1", workers=1, progress=False)
    return {"path": path, "folder": folder, "w1": res}


def journal_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_bytes().split(b"\n") if x.strip()
            and x.endswith(b"}")]


def test_one_and_two_workers_give_identical_points(mixed: dict[str, Any]) -> None:
    w1 = mixed["w1"]
    w2 = run_sweep(mixed["path"], out=mixed["folder"] / "w2", workers=2, progress=False)
    assert w2["run"]["slots"] == 2 and w1["run"]["slots"] == 1
    assert w1["points"] == w2["points"]  # every count, interval and status
    assert {p["status"] for p in w1["points"]} == {"target_errors", "max_blocks"}
    assert any(p["status"] == "target_errors" and p["chunks"] > 1 for p in w1["points"])
    # the second run really ran chunks side by side, in two worker processes
    recs = journal_lines(mixed["folder"] / "w2" / "mixed" / "journal.jsonl")
    assert len({r["pid"] for r in recs}) >= 2
    assert (mixed["folder"] / "w2" / "mixed" / "mixed.png").stat().st_size > 10_000
    # a finished sweep re-run computes nothing and gives the same points (no Ray at all)
    again = run_sweep(mixed["path"], out=mixed["folder"] / "w2", workers=2, progress=False)
    assert again["run"]["chunks_computed"] == 0 and again["points"] == w1["points"]


def _tree(pid: int) -> list[Any]:
    import psutil

    try:
        p = psutil.Process(pid)
        return [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _end(procs: list[Any], timeout: float = 3.0) -> list[int]:
    """Terminate (then kill) the given processes by id; the ids that had to be killed."""
    import psutil

    alive = [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    for p in alive:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, still = psutil.wait_procs(alive, timeout=timeout)
    for p in still:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    return [p.pid for p in still]


def test_resume_after_sigkill_loses_and_duplicates_no_chunk(mixed: dict[str, Any]) -> None:
    out = mixed["folder"] / "killed"
    journal = out / "mixed" / "journal.jsonl"
    proc = subprocess.Popen([PY, "-m", "sweep", str(mixed["path"]), "--workers", "1",
                             "--out", str(out), "--no-progress"], cwd=REPO_ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 90
        while len(journal_lines(journal)) < 4:
            assert proc.poll() is None, "the sweep ended before it could be killed"
            assert time.time() < deadline, "no chunk journaled in 90 s"
            time.sleep(0.02)
        tree = _tree(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(2)
    _end(tree[1:])  # Ray's own processes share the driver's fate; end any left, by id
    before = journal_lines(journal)
    full = mixed["w1"]["run"]["chunks_computed"]
    assert 4 <= len(before) < full, (len(before), full)
    with open(journal, "ab") as f:  # a torn last line (as a machine crash would leave)
        f.write(b'{"key":"00ff","counts":{"blo')
    res = run_sweep(mixed["path"], out=out, workers=1, progress=False)
    after = journal_lines(journal)
    keys = [r["key"] for r in after]
    assert len(keys) == len(set(keys)), "a chunk was journaled twice"
    assert [r["key"] for r in before] == keys[:len(before)], "a finished chunk was lost"
    assert res["run"]["chunks_reused"] == len(before)
    assert res["run"]["journal_torn_bytes"] > 0 and res["run"]["journal_duplicates"] == 0
    assert len(after) == full  # the same chunks as the uninterrupted run, once each
    assert res["points"] == mixed["w1"]["points"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sweep_on_a_two_node_cluster(tmp_path: Path) -> None:
    """A head and a worker node on 127.0.0.1 (1 CPU each); the sweep joins by --address,
    sees both nodes and runs chunks on both."""
    port = _free_port()
    address = f"127.0.0.1:{port}"
    # A temp dir of its own (short: Unix socket paths live in it), so that the cluster's
    # address file is not /tmp/ray/ray_current_cluster, which a plain ray.init() on this
    # machine would otherwise try to join after the test.
    temp = Path(tempfile.mkdtemp(prefix="raysw", dir="/tmp"))
    common = ["--block", "--node-ip-address=127.0.0.1", "--num-cpus=1",
              "--disable-usage-stats"]
    # Token authentication with a token of this test's own, on every node and the driver
    # (Ray 2.60: a worker node joins a token cluster only with RAY_AUTH_MODE=token).
    token = tmp_path / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_TOKEN"}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    log = open(tmp_path / "ray.log", "ab")  # noqa: SIM115
    procs: list[subprocess.Popen] = []
    trees: list[Any] = []
    t0 = time.time()
    try:
        procs.append(subprocess.Popen([RAY, "start", "--head", f"--port={port}",
                                       f"--temp-dir={temp}", "--include-dashboard=false",
                                       *common],
                                      stdout=log, stderr=log, start_new_session=True, env=env))
        deadline = time.time() + 60
        while True:  # the GCS listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert procs[0].poll() is None, (tmp_path / "ray.log").read_text()[-2000:]
                assert time.time() < deadline
                time.sleep(0.2)
        procs.append(subprocess.Popen([RAY, "start", f"--address={address}", *common],
                                      stdout=log, stderr=log, start_new_session=True, env=env))
        path = write_sweep(tmp_path, "cluster", snr_db=[13.0, 14.0],
                           stopping={"target_block_errors": 1000, "max_blocks": 300,
                                     "chunk_blocks": 50, "floor_bler": 1e-5},
                           curves=[{"label": "ML", "mode": "ml"}])
        wait = ("import ray,sys,time\nfrom sweep.runner import _init_ray\n"
                f"_init_ray({address!r}, None)\nt=time.time()\n"
                "while sum(n['Alive'] for n in ray.nodes())<2 and time.time()-t<60:"
                " time.sleep(0.2)\nsys.exit(0 if sum(n['Alive'] for n in ray.nodes())>=2 "
                "else 1)\n")
        assert subprocess.run([PY, "-c", wait], cwd=REPO_ROOT, timeout=120, env=env).returncode == 0
        r = subprocess.run([PY, "-m", "sweep", str(path), "--address", address, "--out",
                            str(tmp_path / "out"), "--no-progress"], cwd=REPO_ROOT,
                           capture_output=True, text=True, timeout=180, env=env)
        assert r.returncode == 0, r.stderr[-3000:]
        res = json.loads((tmp_path / "out" / "cluster" / "points.json").read_text())
        assert len(res["run"]["nodes"]) == 2
        assert res["run"]["slots"] == 2 and res["run"]["ray_started_here"] is True
        assert len(res["run"]["chunks_per_node"]) == 2  # both nodes ran chunks
        assert [(p["blocks"], p["chunks"]) for p in res["points"]] == [(300, 6)] * 2
    finally:
        for p in procs:
            trees += _tree(p.pid)
        for p in reversed(procs):  # `ray start --block` ends its node's processes on SIGTERM
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    pass
        _end(trees)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)
    assert not (Path("/tmp/ray/ray_current_cluster").is_file() and str(port) in Path(
        "/tmp/ray/ray_current_cluster").read_text())
    print(f"two-node cluster test: {time.time() - t0:.1f} s")


def test_validator_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, "bad", curves=[
        {"label": "ML", "mode": "ml"}, {"label": "B", "mode": "ml", "detecter": "lmmse"}])
    with pytest.raises(ConfigError) as e:
        load_sweep(path)
    msg = str(e.value)
    assert str(path) in msg and "curves[1].detecter" in msg
    assert "unknown key (did you mean 'detector'?)" in msg
    # several problems at once, each with its key path
    path = write_sweep(tmp_path, "bad2", colour=1, snr_db=[14.0, 13.0],
                       stopping={"max_blocks": 150, "chunk_blocks": 100},
                       curves=[{"label": "A", "mode": "mll"}, {"label": "A", "mode": "ml"}])
    with pytest.raises(ConfigError) as e:
        load_sweep(path)
    keys = {p.key for p in e.value.problems}
    assert {"colour", "snr_db", "stopping.max_blocks", "curves[0].mode"} <= keys, keys
    path = write_sweep(tmp_path, "bad3", curves=[{"label": "A", "mode": "ml"},
                                                 {"label": "A", "mode": "ml"}])
    with pytest.raises(ConfigError,
                       match=r"curves\[1\]\.label: 'A' is also the label of curves\[0\]"):
        load_sweep(path)
    path = write_sweep(tmp_path, "other-name")
    path = path.rename(tmp_path / "renamed.yaml")
    with pytest.raises(ConfigError, match="name: got 'other-name'"):
        load_sweep(path)


@pytest.mark.skipif(not (PKG / "manifest.json").is_file() or not (RUN / "checkpoint.pt")
                    .is_file(), reason="needs the default package and run (make main)")
def test_unknown_backend_names_the_key(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, "backend", curves=[
        {"label": "ML", "mode": "ml"},
        {"label": "int", "mode": "integer", "package": str(PKG), "backend": "no-such"}])
    with pytest.raises(ConfigError) as e:
        resolve(load_sweep(path), path)
    assert [p.key for p in e.value.problems] == ["curves[1].backend"]
    assert "unknown backend 'no-such'" in str(e.value) and str(path) in str(e.value)
    path = write_sweep(tmp_path, "norun", curves=[
        {"label": "f", "mode": "float", "design": DESIGN, "run": str(tmp_path / "none")}])
    with pytest.raises(ConfigError, match=r"curves\[0\]\.run: .*checkpoint.pt not found"):
        resolve(load_sweep(path), path)


def test_stopping_rule_and_intervals() -> None:
    rule = {"target_block_errors": 100, "floor_bler": 1e-3, "max_blocks": 10_000}
    assert stop_reason(0, 0, rule) is None
    assert stop_reason(500, 100, rule) == "target_errors"
    assert stop_reason(3600, 0, rule) is None           # 95% upper bound 1.02e-3
    assert stop_reason(3700, 0, rule) == "below_floor"  # 0.997e-3 < 1e-3
    assert stop_reason(10_000, 50, rule) == "max_blocks"
    lo, hi = clopper_pearson(0, 3700)
    assert lo == 0 and hi == pytest.approx(1 - 0.025 ** (1 / 3700))
    lo, hi = clopper_pearson(10, 100)  # tabulated exact interval
    assert (round(lo, 4), round(hi, 4)) == (0.0490, 0.1762)


def test_chunk_keys_of_existing_sweeps_are_unchanged(tmp_path: Path) -> None:
    """Keys computed before the CDL-A channel, estimation curves and the axis existed: the
    new link keys stay out of a non-CDL link's identity, so old journals are reused."""
    from sweep.runner import build_points

    path = write_sweep(tmp_path, "pinned")
    sweep = load_sweep(path)
    ml = build_points(sweep, resolve(sweep, path))[0]
    assert (ml.curve["label"], ml.snr_db) == ("ML", 13.0)
    assert ml.keys[:2] == ["896150dcedb118b8fa3c9cedc6e4ae6a", "7ab267a1230666ad7e3bba45cf91e1d6"]
    path = write_sweep(tmp_path, "pinned", link={"n_t": 2, "n_r": 2, "bits_per_symbol": 6,
                                                 "channel": "rayleigh", "csi_error_var": 0.01})
    sweep = load_sweep(path)
    assert build_points(sweep, resolve(sweep, path))[0].keys[:2] == [
        "d1865a5cd45253723b7c8f20efb63788", "2bb61c2ee8aae58ab3714c81a7207274"]


def test_detector_names_match_phy() -> None:
    from phy.link import DETECTORS

    assert set(DETECTOR_NAMES) == set(DETECTORS)


def test_journal_refuses_a_duplicate(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.jsonl")
    j.load()
    j.append({"key": "a", "counts": {}})
    with pytest.raises(RuntimeError, match="already journaled"):
        j.append({"key": "a", "counts": {}})
    j.close()
    with open(tmp_path / "j.jsonl", "a") as f:
        f.write('{"key": "a", "counts": {}}\n')
    j2 = Journal(tmp_path / "j.jsonl")
    assert list(j2.load()) == ["a"] and j2.duplicates == 1


@pytest.mark.slow
@pytest.mark.skipif(not (PKG / "manifest.json").is_file() or not (RUN / "checkpoint.pt")
                    .is_file(), reason="needs the default package and run (make main)")
def test_default_design_curves_on_a_tiny_grid(tmp_path: Path) -> None:
    """The default sweep's three curves on two SNRs: with common random numbers the float
    f_Q and the package's integers give the same counts (the package is bit-exact)."""
    from host.driver import BACKENDS

    cfg = yaml.safe_load((REPO_ROOT / "configs/sweeps" / f"{DESIGN}.yaml").read_text())
    for c in cfg["curves"]:  # the integer executor where it exists, else the reference
        if c["mode"] == "integer" and c.get("backend", "integer") not in BACKENDS:
            c["backend"] = "reference"
    cfg.update(name="tiny-default", snr_db=[13.0, 15.0],
               stopping={"target_block_errors": 30, "max_blocks": 300, "chunk_blocks": 50,
                         "floor_bler": 1e-5})
    path = tmp_path / "tiny-default.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    res = run_sweep(path, out=tmp_path, workers=2, progress=False)
    by = {(p["label"], p["snr_db"]): p for p in res["points"]}
    modes = {c["label"]: c["mode"] for c in res["curves"]}
    fl = next(k for k, v in modes.items() if v == "float")
    it = next(k for k, v in modes.items() if v == "integer")
    for snr in (13.0, 15.0):
        a, b = dict(by[(fl, snr)]), dict(by[(it, snr)])
        a.pop("label"), b.pop("label"), a.pop("mode"), b.pop("mode")
        assert a == b
    assert os.path.getsize(tmp_path / "tiny-default" / "tiny-default.png") > 10_000
