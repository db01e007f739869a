"""Several named streams through the generated RTL: a two-input/two-output package
(``synth-two-io``: a (8 x INT8) -> p (4 x INT6), b (4 x INT6) -> q (2 x INT8)) built by
the commands ``make train export hw DESIGN=synth-two-io`` runs, then every golden vector
through ``python -m host verify <pkg> --backend rtlsim``: the simulated board drives the
package's stitched RTL through four IODMAs (idma0 -> s_axis_0 = a, idma1 -> s_axis_1 = b,
m_axis_0 = p -> odma0, m_axis_1 = q -> odma1) under random valid gaps and back-pressure.

Negative control: input b's DMA buffer is not flushed (the device reads stale DRAM, as on
the board): q mismatches on most vectors while p, fed by a alone, stays exact.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from contract.iospec import Golden
from host.driver import REG_CTRL, REG_NUM_REPS, Accelerator

ROOT = Path(__file__).resolve().parent.parent
DESIGN = "synth-two-io"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=1800)


@pytest.fixture(scope="module")
def two_io(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("two_io")
    run, pkg = root / "run", root / f"{DESIGN}-pynq-z2"
    for args in (("train", "--design", DESIGN, "--recipe", "short", "--out", str(run)),
                 ("export", "--design", DESIGN, "--run", str(run), "--vectors", "2000"),
                 ("hw", "--design", DESIGN, "--board", "pynq-z2", "--run", str(run),
                  "--out", str(pkg))):
        r = cli(*args)
        assert r.returncode == 0, f"{args}: {r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return {"pkg": pkg, "work": root / "rtlsim", "golden": Golden.load(pkg / "golden.npz")}


def test_host_verify_rtlsim_two_inputs_two_outputs(two_io: dict[str, Any]) -> None:
    r = cli("host", "verify", str(two_io["pkg"]), "--backend", "rtlsim", "--vectors", "0",
            "--p-valid", "0.7", "--p-ready", "0.5", "--batch-size", "1000")
    print(r.stdout)
    n = len(two_io["golden"])
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == f"{n} passed, 0 failed"
    assert n >= 4000


def test_iodma_per_stream_and_negative_control(two_io: dict[str, Any]) -> None:
    g = two_io["golden"]
    x = {k: v[:300] for k, v in g.inputs.items()}
    want = {k: v[:300] for k, v in g.outputs.items()}
    with Accelerator(two_io["pkg"], "rtlsim", batch_size=128, work=two_io["work"],
                     p_valid=0.5, p_ready=0.4, sim_seed=4) as acc:
        dev = acc.backend.device
        assert acc.input_names == ["a", "b"] and acc.output_names == ["p", "q"]
        assert [d.name for d in dev.idmas] == ["idma0", "idma1"]
        assert [d.name for d in dev.odmas] == ["odma0", "odma1"]
        got = acc.execute_codes(x)
        for k in ("p", "q"):
            assert np.array_equal(got[k], want[k]), k
        assert dev.transfers == acc.last["calls"] == 3
        starts = [t[1] for t in dev.trace if t[0] == "write" and t[2] == REG_CTRL]
        assert starts[:4] == ["odma0", "odma1", "idma0", "idma1"]  # outputs first
        reps = [t[3] for t in dev.trace if t[0] == "write" and t[2] == REG_NUM_REPS]
        assert reps == [128] * 8 + [44] * 4
        # negative control: b's buffer never flushed after the first call
        acc.execute_codes({k: v[:128] for k, v in x.items()})
        acc.backend.ibufs["b"].flush = lambda: None
        later = {k: v[128:256] for k, v in x.items()}
        stale = acc.execute_codes(later)
    assert np.array_equal(stale["p"], want["p"][128:256])
    bad_q = (stale["q"] != want["q"][128:256]).any(axis=1)
    print("stale b: q mismatches", int(bad_q.sum()), "of 128; p exact")
    assert bad_q.sum() > 64
