"""Simulated board: FINN's buffer/register sequence served by the Verilator simulation.

The accelerator is the package's real RTL: hw.rtlsim stitches the layers into
``finn_top`` (FINN's own DWC/FIFO RTL, the documented patches), Verilator builds it with
hw.rtlsim's C++ testbench, and every hardware batch streams through that binary. Only
the IODMAs and DRAM are modelled here, in software:

* :class:`SimBuffer` is a ``pynq.allocate``-like buffer: the CPU view is a numpy array,
  the device sees DRAM, ``flush`` copies CPU -> DRAM and ``invalidate`` DRAM -> CPU (a
  cacheable buffer that is not flushed is not seen by the DMA, as on the board);
* :class:`SimIODMA` is the AXI-lite register file of one IODMA (``ap_ctrl_hs``);
* :class:`SimDevice` has one IODMA per named stream, in I/O spec order, named as FINN's
  shell names them (``idma0..``, ``odma0..``; :func:`host.driver.dma_names`). It starts a
  transfer once every IODMA has ``ap_start`` with the same ``num_reps`` (a different
  count would leave the accelerator waiting for vectors that never come: refused as
  a stall): each input IODMA reads its ``num_reps`` packed vectors from DRAM at its
  address, each beat goes in as one AXI-stream word on that stream's port
  (``s_axis_<i>`` of the stitched top), all streams at once; each output stream's beats
  are written to DRAM at its IODMA's address, and every IODMA reports
  ``ap_done | ap_idle``. Optional random input valid gaps and output back-pressure come
  from the testbench (seeded, independent per stream).

The IODMAs' rate (``dma_model=True``; off by default). FINN's Zynq shell sizes each
IODMA's AXI-MM port as gcd(bits per vector, the board's port width) (:mod:`hw.iodma`,
with the FINN source lines), so a vector takes ``cycles_per_vector`` IODMA beats. The
model limits each input stream to one vector per its IODMA's ``cycles_per_vector``
(testbench ``in<i>_interval``) and drains each output stream at one vector per its
IODMA's ``cycles_per_vector`` (``out<j>_interval``). The measured II is then what a board
would see, with DRAM and the AXI interconnect taken as ideal. :meth:`SimDevice.dma`
gives the IODMAs and their figures. The first vector's latency also includes filling
and draining the IODMA words. The testbench does not model this, and
:func:`dma_latency_extra` gives it.

The Verilator binary is built once per package content (cached under ``work``); the
stitched top's stream order is checked against the package's (``rtl/stitched``'s ports
file) before the first transfer.
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
    dma_names,
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
    """Simulated DRAM, one IODMA per named stream and the Verilator binary of the
    accelerator. ``idmas`` / ``odmas``: in I/O spec order (``idma`` / ``odma``: the first
    of each, ``idma0`` / ``odma0``)."""

    def __init__(self, binary: Path, rtl_dir: Path, package: Package, seed: int = 1,
                 p_valid: float = 1.0, p_ready: float = 1.0, dma_model: bool = False) -> None:
        self.binary, self.rtl_dir, self.package = binary, rtl_dir, package
        self.seed, self.p_valid, self.p_ready = seed, p_valid, p_ready
        self.dma_model = bool(dma_model)
        self.dram: dict[int, np.ndarray] = {}
        self.next_addr = DRAM_BASE
        self.trace: list[tuple] = []
        i_names, o_names = dma_names(package)
        self.idmas = [SimIODMA(n, self) for n in i_names]
        self.odmas = [SimIODMA(n, self) for n in o_names]
        self.idma, self.odma = self.idmas[0], self.odmas[0]
        self.transfers = 0
        self.last_stats: dict[str, Any] = {}

    def dma(self) -> dict[str, Any]:
        """The package's IODMAs as FINN's Zynq shell would build them (:func:`dma_facts`)."""
        return dma_facts(self.package)

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
        if all(d.regs[REG_CTRL] & AP_START for d in self.idmas + self.odmas):
            self.transfer()

    def transfer(self) -> None:
        """Every IODMA started: stream num_reps vectors per input from DRAM through the RTL
        (all inputs at once) and each output's beats back to DRAM."""
        reps = {d.name: d.regs[REG_NUM_REPS] for d in self.idmas + self.odmas}
        n = reps[self.idma.name]
        if len(set(reps.values())) != 1 or n < 1:
            raise SimulationError(f"IODMA num_reps {reps}: the accelerator would stall "
                                  "(every stream must carry the same number of vectors)")
        ins, outs = self.package.inputs, self.package.outputs
        in_hex = []
        for dma, si in zip(self.idmas, ins.values(), strict=True):
            packed = self.dram_read(dma.address, n * si.beats * si.bytes_per_beat)
            beats = packed.reshape(n * si.beats, si.bytes_per_beat)
            # one AXI-stream word per beat, little-endian bytes -> hex, most significant first
            in_hex.append([b[::-1].tobytes().hex() for b in beats])
        intervals = None
        if self.dma_model:
            d = self.dma()
            intervals = ([d["inputs"][k]["cycles_per_vector"] for k in ins],
                         [d["outputs"][k]["cycles_per_vector"] for k in outs])
        out_hex, stats = stream_many(
            self.binary, self.rtl_dir, in_hex, n, [s.beats for s in ins.values()],
            [s.beats for s in outs.values()], self.seed + self.transfers, self.p_valid,
            self.p_ready, names=(list(ins), list(outs)), intervals=intervals)
        self.transfers += 1
        for dma, (name, so), words in zip(self.odmas, outs.items(), out_hex, strict=True):
            nb = so.bytes_per_beat
            out = np.frombuffer(b"".join(bytes.fromhex(h.zfill(2 * nb))[::-1]
                                         for h in words), np.uint8)
            if out.size != n * so.beats * nb:
                raise SimulationError(f"RTL produced {out.size // nb} of {n * so.beats} "
                                      f"output beats on {name!r} (rc {stats['rc']}): "
                                      f"{stats['log'][-500:]}")
            self.dram_write(dma.address, out)
        self.last_stats = stats
        for d in self.idmas + self.odmas:
            d.finish()


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
    """:func:`stream_many` for a top with one input and one output stream."""
    out, stats = stream_many(binary, rtl_dir, [in_hex], n, [in_beats], [out_beats], seed,
                             p_valid, p_ready, timeout_s)
    return out[0], stats


def stream_many(binary: Path, rtl_dir: Path, in_hex: list[list[str]], n: int,
                in_beats: list[int], out_beats: list[int], seed: int, p_valid: float,
                p_ready: float, timeout_s: float = 3600,
                names: tuple[list[str], list[str]] | None = None,
                intervals: tuple[list[int], list[int]] | None = None
                ) -> tuple[list[list[str]], dict]:
    """Run hw.rtlsim's testbench binary on AXI-stream words, all streams at once.

    ``in_hex[i]``: the ``n * in_beats[i]`` words (hex) of input stream ``i`` (port
    ``s_axis_<i>``); returns one list of output words per output stream (``m_axis_<j>``,
    ``n * out_beats[j]`` of them) and the statistics. Config and files are the
    testbench's (hw/rtlsim/tb_top.cpp: ``in<i>=``, ``out<j>=`` ...); it runs in the RTL
    folder so the wrappers' relative ``.dat`` paths resolve. The testbench gives up
    (exit 2) when no beat moves on any stream for STALL_LIMIT cycles; that, a crash, an
    RTL assertion or ``timeout_s`` raise :class:`SimulationError` with the beat counts
    per stream, the probabilities and the log. ``names``: the streams' names, for the
    messages. ``intervals``: ``(per input, per output)`` cycles per vector at most (the
    IODMA model: ``in<i>_interval`` / ``out<j>_interval``; 0 or None: full rate).
    """
    names = names or ([f"in{i}" for i in range(len(in_hex))],
                      [f"out{j}" for j in range(len(out_beats))])
    cond = f"input valid p={p_valid}, output ready p={p_ready}, seed {seed}"
    if intervals and any([*intervals[0], *intervals[1]]):
        cond += f", IODMA model: cycles per vector in {intervals[0]}, out {intervals[1]}"
    with tempfile.TemporaryDirectory(prefix="host-rtlsim-") as tmp:
        fst = Path(tmp, "stats.txt")
        # the testbench's key=value config (hw/rtlsim/tb_top.cpp)
        cfg = [f"n={n}", f"seed={seed}", f"p_valid={p_valid}", f"p_ready={p_ready}",
               f"stall_limit={STALL_LIMIT}", f"stats={fst}",
               f"report={Path(tmp, 'stall.txt')}"]
        for i, (words, beats) in enumerate(zip(in_hex, in_beats, strict=True)):
            fin = Path(tmp, f"in{i}.hex")
            fin.write_text("\n".join(words) + "\n")
            cfg += [f"in{i}={fin}", f"in{i}_beats={beats}"]
            if intervals and intervals[0][i]:
                cfg.append(f"in{i}_interval={int(intervals[0][i])}")
        fouts = [Path(tmp, f"out{j}.hex") for j in range(len(out_beats))]
        for j, (fout, beats) in enumerate(zip(fouts, out_beats, strict=True)):
            cfg += [f"out{j}={fout}", f"out{j}_beats={beats}"]
            if intervals and intervals[1][j]:
                cfg.append(f"out{j}_interval={int(intervals[1][j])}")
        Path(tmp, "tb.cfg").write_text("\n".join(cfg) + "\n")
        try:
            r = subprocess.run([str(binary), str(Path(tmp, "tb.cfg"))], cwd=rtl_dir,
                               capture_output=True, text=True, timeout=timeout_s)
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
        out = [[x for x in f.read_text().split() if x] if f.is_file() else [] for f in fouts]
    if r.returncode or "cycles" not in raw:
        what = {2: "stalled", 3: "stopped by an RTL assertion ($stop/$error)"}.get(
            r.returncode, "failed")
        per = [f"input {k!r} {raw.get(f'in{i}_sent', '?')}/{n * in_beats[i]}"
               for i, k in enumerate(names[0])]
        per += [f"output {k!r} {raw.get(f'out{j}_got', '?')}/{n * out_beats[j]}"
                for j, k in enumerate(names[1])]
        beats = (f"; after {raw['cycles']} cycles: {raw.get('sent_beats', '?')} of "
                 f"{n * sum(in_beats)} input beats accepted, {raw.get('got_beats', '?')} of "
                 f"{n * sum(out_beats)} output beats received ({', '.join(per)})"
                 if "cycles" in raw else "; no statistics written")
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
        stamp.touch()  # recently used: prune_cache keeps it
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
    prune_cache(work.parent, keep=int(os.environ.get("HOST_RTLSIM_CACHE_KEEP", "8")))
    return binary, rtl


def prune_cache(root: Path, keep: int) -> list[Path]:
    """Keep the ``keep`` most recently used binaries under ``root``; delete the rest.

    Every package a test or a user verifies adds one entry (a tmp package too), so an
    unbounded cache fills the disk. Entries are ordered by their stamp's mtime, which a
    cache hit refreshes. Returns the deleted folders.
    """
    entries = sorted((d for d in root.iterdir() if (d / "binary.json").is_file()),
                     key=lambda d: (d / "binary.json").stat().st_mtime, reverse=True)
    for d in entries[keep:]:
        shutil.rmtree(d, ignore_errors=True)
    return entries[keep:]


class RtlsimBackend(DmaBackend):
    """The board's driver sequence, served by the Verilator simulation of the package's RTL
    (one simulated IODMA per named stream)."""

    name = "rtlsim"

    def __init__(self, package: Package, batch_size: int, work: str | Path | None = None,
                 sim_seed: int = 1, p_valid: float = 1.0, p_ready: float = 1.0,
                 dma_model: bool = False) -> None:
        p_valid, p_ready = check_probability("p_valid", p_valid), check_probability(
            "p_ready", p_ready)
        binary, rtl = ensure_binary(package, Path(work) if work else None)
        check_stream_order(package, rtl)
        self.device = SimDevice(binary, rtl, package, sim_seed, p_valid, p_ready, dma_model)
        super().__init__(package, batch_size, self.device.idmas, self.device.odmas)

    def allocate(self, shape: tuple[int, ...]) -> np.ndarray:
        return self.device.allocate(shape)

    def info(self) -> dict[str, Any]:
        s = self.device.last_stats
        return {k: s[k] for k in ("cycles", "first_in", "first_out")} | {
            "last_done": s["done"][-1] if s.get("done") else None}


def dma_facts(package: Package) -> dict[str, Any]:
    """The package's IODMAs (:func:`hw.iodma.iodma` per stream, on the package's board,
    in I/O spec order): ``{"inputs": {name: figures}, "outputs": {...}, "ii_cycles"
    (the II floor the IODMAs set), "latency_extra_cycles" (:func:`dma_latency_extra`),
    "board", "port_width_bits"}``."""
    from hw import iodma

    board = package.manifest.get("board_config") or package.manifest["board"]
    ins = {k: iodma.iodma(s.width_bits, s.beats, board, "in")
           for k, s in package.inputs.items()}
    outs = {k: iodma.iodma(s.width_bits, s.beats, board, "out")
            for k, s in package.outputs.items()}
    return {"board": board.get("finn_board") if isinstance(board, dict) else board,
            "port_width_bits": iodma.port_width(board),
            "inputs": {k: d.as_dict() for k, d in ins.items()},
            "outputs": {k: d.as_dict() for k, d in outs.items()},
            "ii_cycles": iodma.dma_ii(list(ins.values()), list(outs.values())),
            "latency_extra_cycles": dma_latency_extra(list(ins.values()),
                                                      list(outs.values())),
            "rule": "intfWidth = gcd(padded stream width x beats per vector, port width); "
                    "cycles per vector = bits per vector / intfWidth (finn "
                    "transformation/fpgadataflow/insert_iodma.py:122-127, 171-176; "
                    "make_zynq_proj.py:1815; util/basic.py:99-110)"}


def dma_latency_extra(ins: list[Any], outs: list[Any]) -> int:
    """Cycles that one vector's IODMA serialization adds to its latency beyond the
    full-rate stream. The input IODMA delivers the vector's bits in ``cycles_per_vector``
    cycles, where the stream took ``beats_per_vector``. The output IODMA writes them in
    ``cycles_per_vector`` cycles after they arrive in ``beats_per_vector``. Latency adds
    the slowest input's and the slowest output's excess. The AXI read/write latency of
    DRAM and the IODMA's own pipeline registers are not modelled."""
    def excess(ds: list[Any]) -> int:
        return max([0] + [d.cycles_per_vector - d.beats_per_vector for d in ds])

    return excess(ins) + excess(outs)


def check_stream_order(package: Package, rtl: Path) -> None:
    """The stitched top's AXI streams (``s_axis_<i>`` / ``m_axis_<j>``, hw.rtlsim's ports
    file) carry the package's streams in I/O spec order; SimulationError otherwise (the
    IODMA ``idma<i>`` would feed another stream's port)."""
    from hw.rtlsim.stitch import PORTS, STITCHED, read_ports

    if not (rtl / STITCHED / PORTS).is_file():
        return
    info = read_ports(rtl)
    have = ([p.name for p in info.inputs], [p.name for p in info.outputs])
    want = (list(package.inputs), list(package.outputs))
    if have != want:
        raise SimulationError(f"the stitched top's streams {have} are not the package's "
                              f"{want} in I/O spec order")
