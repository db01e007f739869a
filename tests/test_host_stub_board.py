"""The pynq backend's code path with several named streams, off-board, on a stub board.

:class:`StubBoard` stands in for the ``pynq`` module (numpy only, so that
tests/test_host_numpy1.py can run it in the board's numpy-1 venv too): ``Overlay`` with
one FINN IODMA register file per stream (``idma0..``, ``odma0..``), ``allocate`` with
``flush``/``invalidate`` between a CPU view and stub DRAM, ``ps.Clocks``. Once every
IODMA has ``ap_start`` the board reads each input from DRAM, runs ``compute`` (``{input:
(k, F) codes}`` -> ``{output: (k, G) codes}``) and writes each output. The real
:class:`host.backends.pynq_backend.PynqBackend` runs on it, so the multi-stream buffer
and register sequence of :class:`host.driver.DmaBackend` (the one the rtlsim backend
drives its Verilator simulation with) is exercised through the board backend's own code.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from host.codec import StreamSpec, pack, unpack
from host.driver import (
    AP_DONE,
    AP_IDLE,
    AP_START,
    REG_ADDR_HI,
    REG_ADDR_LO,
    REG_CTRL,
    REG_NUM_REPS,
)

Codes = dict[str, np.ndarray]


class StubBuffer(np.ndarray):
    """``pynq.allocate``'s buffer: CPU view; ``flush`` / ``invalidate`` against stub DRAM."""

    device_address: int
    board: StubBoard

    def flush(self) -> None:
        self.board.dram[self.device_address] = np.array(self).copy()
        self.board.trace.append(("flush", self.device_address))

    def invalidate(self) -> None:
        self[...] = self.board.dram[self.device_address]
        self.board.trace.append(("invalidate", self.device_address))

    def freebuffer(self) -> None:
        self.board.dram.pop(self.device_address, None)


class StubIODMA:
    """One IODMA's AXI-lite registers (``ap_ctrl_hs``; ap_done clear-on-read)."""

    def __init__(self, name: str, board: StubBoard) -> None:
        self.name, self.board = name, board
        self.regs = {REG_CTRL: AP_IDLE, REG_ADDR_LO: 0, REG_ADDR_HI: 0, REG_NUM_REPS: 0}

    def read(self, offset: int) -> int:
        value = self.regs[offset]
        if offset == REG_CTRL:
            self.regs[REG_CTRL] &= ~AP_DONE
        self.board.trace.append(("read", self.name, offset, value))
        return value

    def write(self, offset: int, value: int) -> None:
        self.board.trace.append(("write", self.name, offset, int(value)))
        if offset == REG_CTRL and value & AP_START:
            self.regs[REG_CTRL] = AP_START
            self.board.started()
        else:
            self.regs[offset] = int(value)

    @property
    def address(self) -> int:
        return self.regs[REG_ADDR_LO] | (self.regs[REG_ADDR_HI] << 32)


class StubBoard:
    """A PYNQ board with FINN's zynq-iodma shell around ``compute``, as a ``pynq`` module."""

    def __init__(self, inputs: dict[str, StreamSpec], outputs: dict[str, StreamSpec],
                 compute: Callable[[Codes], Codes]) -> None:
        self.inputs, self.outputs, self.compute = inputs, outputs, compute
        self.dram: dict[int, np.ndarray] = {}
        self.trace: list[tuple] = []
        self.next_addr = 0x1_0000_0000
        self.idmas = {f"idma{i}": StubIODMA(f"idma{i}", self) for i in range(len(inputs))}
        self.odmas = {f"odma{j}": StubIODMA(f"odma{j}", self) for j in range(len(outputs))}

    def allocate(self, shape: tuple[int, ...], dtype: Any = np.uint8,
                 cacheable: bool = True) -> StubBuffer:
        buf = np.zeros(shape, dtype).view(StubBuffer)
        buf.device_address, buf.board = self.next_addr, self
        self.dram[self.next_addr] = np.zeros(shape, dtype)
        self.next_addr += 1 << 20
        return buf

    def started(self) -> None:
        dmas = [*self.idmas.values(), *self.odmas.values()]
        if not all(d.regs[REG_CTRL] & AP_START for d in dmas):
            return
        reps = {d.regs[REG_NUM_REPS] for d in dmas}
        assert len(reps) == 1, f"num_reps differ: {reps}"
        k = reps.pop()
        codes = {name: unpack(self.dram[d.address][:k], s) for d, (name, s) in
                 zip(self.idmas.values(), self.inputs.items(), strict=True)}
        got = self.compute(codes)
        for d, (name, s) in zip(self.odmas.values(), self.outputs.items(), strict=True):
            self.dram[d.address][:k] = pack(got[name], s)
        for d in dmas:
            d.regs[REG_CTRL] = AP_DONE | AP_IDLE

    def module(self, missing: tuple[str, ...] = ()) -> types.ModuleType:
        """A ``pynq`` module whose Overlay is this board (less the IODMAs in ``missing``)."""
        board = self
        mod = types.ModuleType("pynq")

        class Overlay:
            def __init__(self, bitfile: str, download: bool = True) -> None:
                self.bitfile = bitfile
                for name, dma in {**board.idmas, **board.odmas}.items():
                    if name not in missing:
                        setattr(self, name, dma)

        class Clocks:
            fclk0_mhz: float | None = None  # PynqBackend sets the package's clock

        ps = types.ModuleType("pynq.ps")
        ps.Clocks = Clocks  # type: ignore[attr-defined]
        mod.Overlay = Overlay  # type: ignore[attr-defined]
        mod.allocate = self.allocate  # type: ignore[attr-defined]
        mod.ps = ps  # type: ignore[attr-defined]
        mod.__version__ = "stub"  # type: ignore[attr-defined]
        return mod

    def install(self, missing: tuple[str, ...] = ()) -> dict[str, Any]:
        """Put the stub into ``sys.modules`` as ``pynq`` / ``pynq.ps``; returns what was
        there before (for :func:`restore`)."""
        before = {k: sys.modules.get(k) for k in ("pynq", "pynq.ps")}
        mod = self.module(missing)
        sys.modules["pynq"], sys.modules["pynq.ps"] = mod, mod.ps
        return before


def restore(before: dict[str, Any]) -> None:
    """Undo :meth:`StubBoard.install`."""
    for k, v in before.items():
        if v is None:
            sys.modules.pop(k, None)
        else:
            sys.modules[k] = v


def expected_trace(board: StubBoard, acc: Any, k: int) -> list[tuple]:
    """FINN's zynq-iodma sequence for one batch of ``k`` vectors over every stream: flush
    each input, every output IODMA idle, program outputs then inputs (I/O spec order),
    poll every output IODMA's ap_done, invalidate each output."""
    be = acc.backend
    seq: list[tuple] = [("flush", be.ibufs[n].device_address) for n in be.inputs]
    seq += [("read", d, REG_CTRL, AP_IDLE) for d in board.odmas]
    pairs = [*zip(board.odmas, be.obufs.values(), strict=True),
             *zip(board.idmas, be.ibufs.values(), strict=True)]
    for name, buf in pairs:
        a = buf.device_address
        seq += [("write", name, REG_ADDR_LO, a & 0xFFFFFFFF), ("write", name, REG_ADDR_HI,
                                                                a >> 32),
                ("write", name, REG_NUM_REPS, k), ("write", name, REG_CTRL, AP_START)]
    seq += [("read", d, REG_CTRL, AP_DONE | AP_IDLE) for d in board.odmas]
    seq += [("invalidate", be.obufs[n].device_address) for n in be.outputs]
    return seq


# ------------------------------------------------------------------ tests (main venv)
def _multi_with_bit(tmp_path: Path) -> Path:
    from tests.test_host_package import MULTI, fake_package

    return fake_package(tmp_path / "m-pynq-z2", streams=MULTI, extra={"accel.bit": b"\0" * 64})


def test_pynq_backend_runs_several_streams(tmp_path: Path) -> None:
    import pytest

    from contract.iospec import Golden
    from host.driver import Accelerator, BoardUnavailableError
    from host.package import open_package
    from tests.test_host_package import known_function

    root = _multi_with_bit(tmp_path)
    pkg = open_package(root)
    spec, g = pkg.iospec(), Golden.load(root / "golden.npz")
    board = StubBoard(pkg.inputs, pkg.outputs, lambda c: known_function(spec, c))
    before = board.install()
    try:
        with Accelerator(pkg, "pynq", batch_size=16) as acc:
            assert [type(d).__name__ for d in acc.backend.idmas.values()] == ["StubIODMA"] * 2
            assert list(acc.backend.idmas) == ["a", "b"]
            assert [d.name for d in acc.backend.odmas.values()] == ["odma0", "odma1"]
            got = acc.execute_codes(g.inputs)
            for k in ("y", "idx"):
                assert np.array_equal(got[k], g.outputs[k]), k
            assert acc.last["calls"] == 3
            assert sys.modules["pynq.ps"].Clocks.fclk0_mhz == pkg.clock_mhz
            board.trace.clear()
            acc.execute_codes({k: v[:5] for k, v in g.inputs.items()})
            assert board.trace == expected_trace(board, acc, 5)
            # negative control: input b's buffer not flushed: the board sees stale DRAM,
            # so only the output computed from b (idx) changes
            acc.backend.ibufs["b"].flush = lambda: None
            x = {k: v[:16] for k, v in g.inputs.items()}
            stale = acc.execute_codes({"a": x["a"], "b": np.zeros_like(x["b"])})
            assert np.array_equal(stale["y"], g.outputs["y"][:16])
            assert not np.array_equal(stale["idx"], known_function(
                spec, {"a": x["a"], "b": np.zeros_like(x["b"])})["idx"])
            with pytest.raises(Exception, match="MultiStreamError|use .ibufs"):
                _ = acc.backend.ibuf
    finally:
        restore(before)
    before = board.install(missing=("odma1",))
    try:
        with pytest.raises(BoardUnavailableError, match=r"no IODMA \['odma1'\]"):
            Accelerator(pkg, "pynq")
    finally:
        restore(before)
