"""Slow: the 2x2 Tanh-BAE pair from nothing to two bit-exact packages and a working link.

``bae-rx-2x2-k2`` is trained end to end with its transmitter (``train.tasks.bae``), the
transmitter ``bae-tx-2x2-k2`` is taken from that run (``from_run``), both are exported
and built for the PYNQ-Z2 with Verilator co-simulation, by the same CLIs ``make train
export hw`` run. Then bits go through the transmitter package's integer model, the
coupled channel, and the receiver package's, and the link must beat MMSE-detected QPSK
at the training SNR (what the trained pair achieves: ~1e-3 against MMSE's 3e-3 here).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from configs import load_design
from phy.coupled_mimo import qam_ber

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def run(cwd: Path, *args: str) -> None:
    """A stage's CLI in ``cwd`` (so its ``runs/`` is the test's, not the checkout's)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=1800)
    assert r.returncode == 0, f"{args}: {r.stdout[-2000:]}\n{r.stderr[-3000:]}"


def test_bae_2x2_pair_builds_bit_exact_and_beats_mmse(tmp_path: Path) -> None:
    from paper.bae import ber_points, integer_curve

    pkgs = {}
    for role in ("rx", "tx"):  # the receiver's run holds the transmitter: rx first
        design = f"bae-{role}-2x2-k2"
        rundir, pkg = tmp_path / "runs" / design, tmp_path / f"{design}-pynq-z2"
        # tx (from_run) reads the receiver's run from runs/<rx design>, under tmp_path.
        run(tmp_path, "train", "--design", design, "--recipe", "short", "--out", str(rundir))
        run(tmp_path, "export", "--design", design, "--run", str(rundir), "--vectors", "3000")
        run(tmp_path, "hw", "--design", design, "--board", "pynq-z2", "--run", str(rundir),
            "--out", str(pkg), "--cosim")
        v = json.loads((pkg / "manifest.json").read_text())["verification"]
        for stage, row in v.items():
            if stage != "exhaustive":
                assert row["mismatches"] == 0 and row["vectors"] >= 3000, (design, stage, row)
        assert "rtlsim" in v
        layers = v["exhaustive"]
        # rx: three BatchNorm-folded hidden layers + the sigmoid head; tx: the tanh head
        # (its ReLU layers are FINN's own power-of-two conversion, checked as well).
        assert len(layers) == (4 if role == "rx" else 3), (design, list(layers))
        for name, row in layers.items():
            assert row["exhaustive"] and row["mismatches"] == 0, (design, name)
            assert row["rtl_memory"]["mismatches"] == 0, (design, name)
        pkgs[role] = pkg

    rx_d = load_design("bae-rx-2x2-k2")
    snr = float(rx_d["data"]["snr_db"][0])
    (ours,) = integer_curve(rx_d, pkgs["tx"], pkgs["rx"], [snr])
    mmse = qam_ber(2, 2, 0.3, snr, "mmse", n_vectors=100_000, seed=3)["ber"]
    assert ours["bits"] >= 1_000_000 and ours["ber"] < mmse, (ours, mmse)
    # Negative control: the same measurement with the transmitter's symbols sent for
    # other bits (rows shuffled) finds a broken link.
    from host.driver import Accelerator

    tx = Accelerator(pkgs["tx"], backend="integer")
    rx = Accelerator(pkgs["rx"], backend="integer")
    rng = np.random.default_rng(0)
    (broken,) = ber_points(rx_d, lambda b: rng.permutation(tx.execute({"bits": b})["x"]),
                           lambda y: rx.execute({"y": y})["p"], [snr], "shuffled",
                           bits=100_000)
    assert broken["ber"] > 0.4, broken
