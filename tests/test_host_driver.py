"""host.driver through the rtlsim backend: batching, packing, the IODMA register/buffer
sequence, back-pressure, the float path, and the pynq backend's refusal off-board.

The package is the small test MLP compiled by the offline flow (tests.test_rtlsim_cosim);
its RTL runs in Verilator behind the modelled IODMAs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from host.backends.rtlsim import DRAM_BASE, SimulationError
from host.driver import (
    AP_DONE,
    AP_IDLE,
    AP_START,
    REG_ADDR_HI,
    REG_ADDR_LO,
    REG_CTRL,
    REG_NUM_REPS,
    Accelerator,
    BoardUnavailableError,
)
from tests.test_rtlsim_cosim import make_package

N = 45


def host_package(export: dict[str, Any], board: dict[str, Any], root: Path) -> Path:
    """tests.test_rtlsim_cosim.make_package, with ``model_finn.onnx`` as hw.build packages
    it (hw.build.write_portable_model: the graph's inputs and outputs under the contract's
    names, which the host re-derives the contract by), and the manifest re-sealed."""
    from contract.iospec import IOSpec
    from hw.build import write_portable_model
    from hw.package import write_manifest

    pkg = make_package(export, board, root)
    finn = pkg / "model_finn.onnx"
    write_portable_model(finn, finn, IOSpec.load(pkg / "iospec.json"))
    write_manifest(pkg, json.loads((pkg / "manifest.json").read_text()))
    return pkg


@pytest.fixture(scope="module")
def host_pkg(small_mlp_export: dict[str, Any], pynq_z2: dict[str, Any],
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("host_pkg")
    pkg = host_package(small_mlp_export, pynq_z2, root)
    g = small_mlp_export["golden"]
    return {"pkg": pkg, "work": root / "rtlsim", "inputs": g["inputs"][:N].astype(np.int64),
            "outputs": g["outputs"][:N].astype(np.int64), "model": small_mlp_export["model"]}


def acc_of(h: dict[str, Any], batch: int, **opts: Any) -> Accelerator:
    return Accelerator(h["pkg"], "rtlsim", batch_size=batch, work=h["work"], **opts)


@pytest.mark.parametrize("batch", [1, 7, 16, N, 64])
def test_batching_is_bit_exact(host_pkg: dict[str, Any], batch: int) -> None:
    with acc_of(host_pkg, batch) as acc:
        got = acc.execute_codes(host_pkg["inputs"])
        assert np.array_equal(got, host_pkg["outputs"])
        assert acc.last["calls"] == -(-N // batch)
        assert acc.backend.device.transfers == acc.last["calls"]


def test_register_and_buffer_sequence(host_pkg: dict[str, Any]) -> None:
    with acc_of(host_pkg, 16) as acc:
        dev = acc.backend.device
        acc.execute_codes(host_pkg["inputs"][:20])  # 16 + 4: the short batch reuses buffers
        ib, ob = acc.backend.ibuf, acc.backend.obuf
        assert ib.device_address >= DRAM_BASE > 0xFFFFFFFF  # high word in use
        seq = []
        for k in (16, 4):
            seq += [("flush", ib.device_address, ib.nbytes), ("read", "odma0", REG_CTRL, AP_IDLE)]
            for name, buf in (("odma0", ob), ("idma0", ib)):
                seq += [("write", name, REG_ADDR_LO, buf.device_address & 0xFFFFFFFF),
                        ("write", name, REG_ADDR_HI, buf.device_address >> 32),
                        ("write", name, REG_NUM_REPS, k), ("write", name, REG_CTRL, AP_START)]
            seq += [("read", "odma0", REG_CTRL, AP_DONE | AP_IDLE),
                    ("invalidate", ob.device_address, ob.nbytes)]
        assert dev.trace == seq
        assert ib.shape == acc.input.packed_shape(16) and ob.shape == acc.output.packed_shape(16)


def test_unflushed_input_buffer_is_not_seen(host_pkg: dict[str, Any]) -> None:
    """A cacheable buffer that is not flushed leaves DRAM stale, as on the board."""
    with acc_of(host_pkg, 8) as acc:
        x = host_pkg["inputs"][:8]
        acc.backend.ibuf.flush = lambda: None
        got = acc.execute_codes(x)
        zeros = acc_of(host_pkg, 8).execute_codes(np.zeros_like(x))
        assert np.array_equal(got, zeros) and not np.array_equal(got, host_pkg["outputs"][:8])


def test_mismatched_num_reps_would_stall(host_pkg: dict[str, Any]) -> None:
    with acc_of(host_pkg, 4) as acc:
        dev = acc.backend.device
        dev.odma.write(REG_NUM_REPS, 3)
        dev.odma.write(REG_CTRL, AP_START)
        dev.idma.write(REG_NUM_REPS, 4)
        with pytest.raises(SimulationError, match="would stall"):
            dev.idma.write(REG_CTRL, AP_START)


def test_backpressure_and_float_path(host_pkg: dict[str, Any]) -> None:
    """Random valid gaps/back-pressure; execute(float) equals the Brevitas float output."""
    model = host_pkg["model"]
    rng = np.random.default_rng(5)
    x = np.tanh(rng.normal(0, 2, (30, 12))).astype(np.float32)
    with acc_of(host_pkg, 11, p_valid=0.5, p_ready=0.4, sim_seed=3) as acc:
        assert np.array_equal(acc.execute_codes(host_pkg["inputs"]), host_pkg["outputs"])
        y = acc.execute(x)
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        assert y.dtype == np.float32 and np.array_equal(y, ref)
        codes = acc.input.to_codes(x)
        assert np.array_equal(acc.output.to_float(acc.execute_codes(codes)), ref)
        named = acc.execute({"x": x})  # by name: a dict back
        assert list(named) == ["y"] and np.array_equal(named["y"], ref)
        assert np.array_equal(acc.execute(x[0]), ref[0])


def test_pynq_backend_refuses_off_board(host_pkg: dict[str, Any]) -> None:
    with pytest.raises(BoardUnavailableError, match="PYNQ board|no .bit"):
        Accelerator(host_pkg["pkg"], "pynq")


def test_verify_cli_on_small_package(host_pkg: dict[str, Any], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    from host.__main__ import main

    rc = main(["verify", str(host_pkg["pkg"]), "--backend", "rtlsim", "--vectors", "0",
               "--batch-size", "333"])
    out = capsys.readouterr().out
    assert rc == 0 and out.strip().endswith("passed, 0 failed"), out


def test_fresh_checks_through_rtlsim(host_pkg: dict[str, Any],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """host verify's fresh checks on the RTL, with the small MLP (zoo QuantMLP: a single
    ``input_quant``) standing in for the design's checkpoint: named inputs from the
    (patched) zoo data set, host codes == Brevitas input quantizer, RTL codes == Brevitas,
    execute() floats == Brevitas floats."""
    import configs
    import export.reference
    import zoo.datasets
    from host.verify import verify

    model = host_pkg["model"]
    monkeypatch.setattr(export.reference, "load_brevitas", lambda name, run_dir=None: model)
    monkeypatch.setattr(configs, "load_design", lambda name: {"name": name})

    def design_inputs(design: dict[str, Any], names: list[str], n: int, seed: int,
                      cache_dir: Any = None) -> dict[str, np.ndarray]:
        assert names == ["x"] and cache_dir is None
        rng = np.random.default_rng(seed)
        return {"x": np.tanh(rng.normal(0, 2, (n, 12))).astype(np.float32)}

    monkeypatch.setattr(zoo.datasets, "design_inputs", design_inputs)
    report, facts = verify(host_pkg["pkg"], "rtlsim", vectors=150, seed=9, batch_size=64,
                           work=host_pkg["work"])
    rows = {r["check"]: (r["vectors"], r["failed"]) for r in report.rows}
    assert rows["fresh:input-codes(host==brevitas)"] == (150, 0)
    assert rows["fresh:codes"] == (150, 0) and rows["fresh:execute(float)"] == (150, 0)
    assert report.failed == 0 and facts["backend"] == "rtlsim"


def test_closed_backend_and_stalled_testbench(host_pkg: dict[str, Any]) -> None:
    """After close(): 'backend closed' (was a DMA-address error), close() twice is harmless.
    The real testbench given p_valid=0 (refused by the CLI and the backend, still possible
    through stream()) gives up after STALL_LIMIT cycles and says so, with the beat counts."""
    from host.backends.rtlsim import stream

    acc = acc_of(host_pkg, 4)
    assert np.array_equal(acc.execute_codes(host_pkg["inputs"][:4]), host_pkg["outputs"][:4])
    dev, si, so = acc.backend.device, acc.input, acc.output
    acc.close()
    acc.close()
    with pytest.raises(RuntimeError, match="backend closed"):
        acc.execute_codes(host_pkg["inputs"][:4])
    with pytest.raises(SimulationError, match=rf"stalled.*0 of {3 * si.beats} input beats "
                                              rf"accepted, 0 of {3 * so.beats} output beats"
                                              r".*input valid p=0.0"):
        stream(dev.binary, dev.rtl_dir, ["0"] * (3 * si.beats), 3, si.beats, so.beats, 1,
               0.0, 1.0)


def test_cached_binary_keeps_no_compile_intermediates(host_pkg: dict[str, Any]) -> None:
    """The cached model holds the linked binary, not its ~185 MB of precompiled headers
    and objects (hw.rtlsim.verilate.drop_intermediates), and still runs bit-exact."""
    with acc_of(host_pkg, 16) as acc:
        assert np.array_equal(acc.execute_codes(host_pkg["inputs"]), host_pkg["outputs"])
    (entry,) = [d for d in host_pkg["work"].iterdir() if (d / "binary.json").is_file()]
    obj = entry / "obj_dir"
    assert (obj / "Vfinn_top").is_file()
    left = [f.name for pat in ("*.gch", "*.o", "*.a") for f in obj.glob(pat)]
    assert left == []
    assert json.loads((entry / "binary.json").read_text())["freed_mb"] > 10


def test_prune_cache_keeps_the_most_recently_used(tmp_path: Path) -> None:
    import os

    from host.backends.rtlsim import prune_cache

    for i in range(5):
        (tmp_path / f"pkg-{i}").mkdir()
        (tmp_path / f"pkg-{i}" / "binary.json").write_text("{}")
        os.utime(tmp_path / f"pkg-{i}" / "binary.json", (1000 + i, 1000 + i))
    (tmp_path / "stray").mkdir()  # no stamp: not a cache entry, left alone
    os.utime(tmp_path / "pkg-0" / "binary.json", (5000, 5000))  # a cache hit touched it
    gone = prune_cache(tmp_path, keep=2)
    assert sorted(d.name for d in gone) == ["pkg-1", "pkg-2", "pkg-3"]
    assert sorted(d.name for d in tmp_path.iterdir()) == ["pkg-0", "pkg-4", "stray"]
    assert prune_cache(tmp_path, keep=2) == []  # negative control: nothing more to drop
