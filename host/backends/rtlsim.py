"""Simulated board: FINN's buffer/register sequence served by the Verilator simulation.

The accelerator is the package's real RTL: hw.rtlsim stitches the layers into
``finn_top`` (FINN's own DWC/FIFO RTL, the documented patches), Verilator builds it with
hw.rtlsim's C++ testbench, and every hardware batch streams through that binary. Only
the IODMAs and DRAM are modelled here, in software:

* :class:`SimBuffer` is a ``pynq.allocate``-like buffer: the CPU view is a numpy array,
  the device sees DRAM, ``flush`` copies CPU -> DRAM and ``invalidate`` DRAM -> CPU (a
  cacheable buffer that is not flushed is not seen by the DMA, as on the board);
* :class:`SimIODMA` is the AXI-lite register file of one IODMA (``ap_ctrl_hs``);
* :class:`SimDevice` starts a transfer once both IODMAs have ``ap_start``: the input
  IODMA reads ``num_reps`` packed vectors from DRAM at its address, each beat goes in
  as one AXI-stream word, the output beats are written to DRAM at the output IODMA's
  address, and both IODMAs report ``ap_done | ap_idle``. Optional random input valid
  gaps and output back-pressure come from the testbench (seeded).

The Verilator binary is built once per package content (cached under ``work``). The
stitched top has one input and one output AXI stream: a package with several named
streams is refused before anything is built (:class:`host.driver.MultiStreamError`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from host.driver import (
    AP_DONE,
    AP_IDLE,
    AP_START,
    REG_ADDR_HI,
    REG_ADDR_LO,
    REG_CTRL,
    REG_NUM_REPS,
    DmaBackend,
    single_stream,
)
from host.package import Package

REPO = Path(__file__).resolve().parents[2]
DRAM_BASE = 0x1_2000_0000  # above 4 GiB, so the high address word is exercised
STALL_LIMIT = 1_000_000  # cycles with no handshake before the testbench reports a stall


class SimulationError(RuntimeError):
    """The simulated transfer could not complete (what would hang or fault on the board)."""


class SimBuffer(np.ndarray):
    """CPU view of a DMA buffer in simulated DRAM."""

    device_address: int
    sim: SimDevice

    def flush(self) -> None:
        self.sim.dram_write(self.device_address, np.ascontiguousarray(self).view(np.uint8))
        self.sim.trace.append(("flush", self.device_address, self.nbytes))

    def invalidate(self) -> None:
        self[...] = self.sim.dram_read(self.device_address, self.nbytes).reshape(self.shape)
        self.sim.trace.append(("invalidate", self.device_address, self.nbytes))

    def freebuffer(self) -> None:
        self.sim.free(self.device_address)


class SimIODMA:
    """Register file of one FINN IODMA (``s_axi_control``)."""

    def __init__(self, name: str, device: SimDevice) -> None:
        self.name, self.device = name, device
        self.regs = {REG_CTRL: AP_IDLE, REG_ADDR_LO: 0, REG_ADDR_HI: 0, REG_NUM_REPS: 0}

    def read(self, offset: int) -> int:
        value = self.regs[offset]
        if offset == REG_CTRL:
            self.regs[REG_CTRL] &= ~AP_DONE  # ap_done is clear-on-read
        self.device.trace.append(("read", self.name, offset, value))
        return value

    def write(self, offset: int, value: int) -> None:
        if offset not in self.regs:
            raise SimulationError(f"{self.name}: no register at 0x{offset:02x}")
        self.device.trace.append(("write", self.name, offset, int(value)))
        if offset == REG_CTRL:
            if value & AP_START:
                self.regs[REG_CTRL] = AP_START
                self.device.started(self)
            return
        self.regs[offset] = int(value) & 0xFFFFFFFF

    @property
    def address(self) -> int:
        return self.regs[REG_ADDR_LO] | (self.regs[REG_ADDR_HI] << 32)

    def finish(self) -> None:
        self.regs[REG_CTRL] = AP_DONE | AP_IDLE


class SimDevice:
    """Simulated DRAM, two IODMAs and the Verilator binary of the accelerator."""

    def __init__(self, binary: Path, rtl_dir: Path, backend: DmaBackend, seed: int = 1,
                 p_valid: float = 1.0, p_ready: float = 1.0) -> None:
        self.binary, self.rtl_dir, self.backend = binary, rtl_dir, backend
        self.seed, self.p_valid, self.p_ready = seed, p_valid, p_ready
        self.dram: dict[int, np.ndarray] = {}
        self.next_addr = DRAM_BASE
        self.trace: list[tuple] = []
        self.idma, self.odma = SimIODMA("idma0", self), SimIODMA("odma0", self)
        self.transfers = 0
        self.last_stats: dict[str, Any] = {}

    # DRAM
    def allocate(self, shape: tuple[int, ...]) -> SimBuffer:
        nbytes = int(np.prod(shape))
        addr = self.next_addr
        self.next_addr += (nbytes + 4095) // 4096 * 4096 + 4096
        self.dram[addr] = np.zeros(nbytes, np.uint8)
        buf = np.zeros(shape, np.uint8).view(SimBuffer)
        buf.device_address, buf.sim = addr, self
        return buf

    def free(self, addr: int) -> None:
        self.dram.pop(addr, None)

    def _region(self, addr: int, nbytes: int) -> tuple[np.ndarray, int]:
        for base, mem in self.dram.items():
            if base <= addr and addr + nbytes <= base + len(mem):
                return mem, addr - base
        raise SimulationError(f"DMA access [0x{addr:x}, +{nbytes}) outside allocated buffers")

    def dram_read(self, addr: int, nbytes: int) -> np.ndarray:
        mem, off = self._region(addr, nbytes)
        return mem[off:off + nbytes].copy()

    def dram_write(self, addr: int, data: np.ndarray) -> None:
        mem, off = self._region(addr, data.size)
        mem[off:off + data.size] = data.ravel()

    # IODMA transfer
    def started(self, dma: SimIODMA) -> None:
        if self.idma.regs[REG_CTRL] & AP_START and self.odma.regs[REG_CTRL] & AP_START:
            self.transfer()

    def transfer(self) -> None:
        """Both IODMAs started: stream num_reps vectors from DRAM through the RTL and back."""
        n, n_out = self.idma.regs[REG_NUM_REPS], self.odma.regs[REG_NUM_REPS]
        if n != n_out or n < 1:
            raise SimulationError(f"idma0 num_reps {n} != odma0 num_reps {n_out}: "
                                  "the accelerator would stall")
        si, so = self.backend.input, self.backend.output
        packed = self.dram_read(self.idma.address, n * si.beats * si.bytes_per_beat)
        beats = packed.reshape(n * si.beats, si.bytes_per_beat)
        # one AXI-stream word per beat, little-endian bytes -> hex, most significant first
        in_hex = [b[::-1].tobytes().hex() for b in beats]
        out_hex, stats = stream(self.binary, self.rtl_dir, in_hex, n, si.beats, so.beats,
                                self.seed + self.transfers, self.p_valid, self.p_ready)
        self.transfers += 1
        nb = so.bytes_per_beat
        out = np.frombuffer(b"".join(bytes.fromhex(h.zfill(2 * nb))[::-1] for h in out_hex),
                            np.uint8)
        if out.size != n * so.beats * nb:
            raise SimulationError(f"RTL produced {out.size // nb} of {n * so.beats} output "
                                  f"beats (rc {stats['rc']}): {stats['log'][-500:]}")
        self.dram_write(self.odma.address, out)
        self.last_stats = stats
        self.idma.finish()
        self.odma.finish()


def check_probability(name: str, p: float) -> float:
    """``0 < p <= 1``: the testbench's per-cycle valid/ready probability (0 never transfers)."""
    p = float(p)
    if not 0.0 < p <= 1.0:  # also refuses NaN
        raise ValueError(f"{name} = {p!r}: must be in (0, 1] (probability per cycle that the "
                         "stream handshakes; 0 would never transfer)")
    return p


def stream(binary: Path, rtl_dir: Path, in_hex: list[str], n: int, in_beats: int,
           out_beats: int, seed: int, p_valid: float, p_ready: float,
           timeout_s: float = 3600) -> tuple[list[str], dict]:
    """Run hw.rtlsim's testbench binary on AXI-stream words; returns output words and stats.

    Command line and files are the testbench's (hw/rtlsim/tb_top.cpp); it runs in the
    RTL folder so the wrappers' relative ``.dat`` paths resolve. The testbench gives up
    (exit 2) when no beat moves on either stream for its STALL_LIMIT cycles; that, a
    crash, an RTL assertion or ``timeout_s`` raise :class:`SimulationError` with the beat
    counts, the probabilities and the log.
    """
    cond = f"input valid p={p_valid}, output ready p={p_ready}, seed {seed}"
    with tempfile.TemporaryDirectory(prefix="host-rtlsim-") as tmp:
        fin, fout, fst = Path(tmp, "in.hex"), Path(tmp, "out.hex"), Path(tmp, "stats.txt")
        fin.write_text("\n".join(in_hex) + "\n")
        cfg = Path(tmp, "tb.cfg")  # the testbench's key=value config (hw/rtlsim/tb_top.cpp)
        cfg.write_text("\n".join([
            f"n={n}", f"seed={seed}", f"p_valid={p_valid}", f"p_ready={p_ready}",
            f"stall_limit={STALL_LIMIT}", f"in0={fin}", f"in0_beats={in_beats}",
            f"out0={fout}", f"out0_beats={out_beats}", f"stats={fst}",
            f"report={Path(tmp, 'stall.txt')}"]) + "\n")
        try:
            r = subprocess.run([str(binary), str(cfg)], cwd=rtl_dir, capture_output=True,
                               text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as e:
            raise SimulationError(f"RTL simulation of {n} vectors did not finish in "
                                  f"{timeout_s} s ({cond})") from e
        log = (r.stdout + r.stderr).strip()
        stall_txt = Path(tmp, "stall.txt")
        if r.returncode == 2 and stall_txt.is_file():
            from hw.rtlsim.verilate import parse_stall_report, stall_message

            log = stall_message(parse_stall_report(stall_txt.read_text())) + "\n" + log
        raw = (dict(line.split("=", 1) for line in fst.read_text().splitlines() if "=" in line)
               if fst.is_file() else {})
        out = [x for x in fout.read_text().split() if x] if fout.is_file() else []
    if r.returncode or "cycles" not in raw:
        what = {2: "stalled", 3: "stopped by an RTL assertion ($stop/$error)"}.get(
            r.returncode, "failed")
        beats = (f"; after {raw['cycles']} cycles: {raw.get('sent_beats', '?')} of "
                 f"{n * in_beats} input beats accepted, {raw.get('got_beats', '?')} of "
                 f"{n * out_beats} output beats received" if "cycles" in raw else
                 "; no statistics written")
        stall = (f" (no beat moved on any stream for {STALL_LIMIT} cycles, "
                 "hw/rtlsim/tb_top.cpp)" if r.returncode == 2 else "")
        raise SimulationError(f"RTL simulation {what}: exit {r.returncode}{stall}{beats} "
                              f"({cond}); log: {log[-800:] or '(empty)'}")
    stats = {"rc": r.returncode, "log": log, "cycles": int(raw["cycles"]),
             "first_in": int(raw["first_in"]), "first_out": int(raw["first_out"]),
             "done": [int(x) for x in raw.get("done", "").split(",") if x]}
    return out, stats


def _content_key(package: Package) -> str:
    """Package content + hw.rtlsim code + Verilator flags: what the binary depends on."""
    from hw.rtlsim import run, verilate

    h = hashlib.sha256(json.dumps(sorted(package.manifest["artifacts"].items())).encode())
    for p in run.CODE:
        h.update(p.read_bytes())
    h.update(json.dumps(verilate.VERILATOR_FLAGS).encode())
    return h.hexdigest()


def ensure_binary(package: Package, work: Path | None = None) -> tuple[Path, Path]:
    """The Verilator binary of the package's stitched RTL and the RTL folder to run it in.

    Works on a private copy of the package (the package itself is never written): uses
    the package's ``rtl/stitched`` when ``make sim`` put one there, else stitches with
    hw.rtlsim (stitch + patches). Cached by content under ``work``.
    """
    import hw  # noqa: F401  (offline FINN bootstrap)
    from hw.rtlsim import patches, stitch, verilate

    key = _content_key(package)
    work = (work or REPO / "build" / "host" / "rtlsim") / f"{package.name}-{key[:16]}"
    binary, rtl = work / "obj_dir" / f"V{stitch.TOP}", work / "pkg" / "rtl"
    stamp = work / "binary.json"
    if stamp.is_file() and binary.is_file() and json.loads(stamp.read_text())["key"] == key:
        return binary, rtl
    if work.exists():
        shutil.rmtree(work)
    copy = work / "pkg"
    copy.mkdir(parents=True)
    for rel in package.checked or package.manifest["artifacts"]:
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(package.root / rel, copy / rel)
    sdir = rtl / stitch.STITCHED
    if (sdir / "filelist.f").is_file() and (sdir / stitch.HEADER).is_file():
        files = (sdir / "filelist.f").read_text().split()
    else:
        m = package.manifest
        info = stitch.stitch(copy, m["part"], m["clock_mhz"])
        patches.apply_patches(rtl, sdir)
        files = verilate.stitched_filelist(rtl, info["glue_files"])
        (sdir / "filelist.f").write_text("\n".join(files) + "\n")
    jobs = int(os.environ.get("HOST_VERILATOR_JOBS", "2"))
    build = verilate.build(rtl, files, work, jobs=jobs)
    stamp.write_text(json.dumps({"key": key, **build}, indent=1))
    return binary, rtl


class RtlsimBackend(DmaBackend):
    """The board's driver sequence, served by the Verilator simulation of the package's RTL."""

    name = "rtlsim"

    def __init__(self, package: Package, batch_size: int, work: str | Path | None = None,
                 sim_seed: int = 1, p_valid: float = 1.0, p_ready: float = 1.0) -> None:
        single_stream(package, f"backend {self.name!r}")  # before the Verilator build
        p_valid, p_ready = check_probability("p_valid", p_valid), check_probability(
            "p_ready", p_ready)
        binary, rtl = ensure_binary(package, Path(work) if work else None)
        self.device = SimDevice(binary, rtl, self, sim_seed, p_valid, p_ready)
        super().__init__(package, batch_size, self.device.idma, self.device.odma)

    def allocate(self, shape: tuple[int, ...]) -> np.ndarray:
        return self.device.allocate(shape)

    def info(self) -> dict[str, Any]:
        s = self.device.last_stats
        return {k: s[k] for k in ("cycles", "first_in", "first_out")} | {
            "last_done": s["done"][-1] if s.get("done") else None}

    def release(self) -> None:
        for buf in (self.ibuf, self.obuf):
            buf.freebuffer()
