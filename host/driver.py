"""The accelerator driver: one class for the board, the RTL simulation and the references.

Board-side module: imports numpy and the board-side host modules only; a backend's
own module is imported when that backend is chosen.

:class:`Accelerator` converts floats to codes (manifest scales), splits the vectors into
hardware batches (the last may be shorter), and hands each batch to a backend.
:class:`DmaBackend` is the buffer and register sequence of FINN's PYNQ driver for
``zynq-iodma`` platforms (``FINNExampleOverlay.execute_on_buffers``): pack into a
``uint8`` DMA buffer, flush, program the output then the input IODMA (buffer address low
and high words, number of vectors, ``ap_start``), poll the output IODMA's ``ap_done``,
invalidate and unpack. The ``pynq`` and ``rtlsim`` backends differ only in who serves the
buffers and the registers.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from host.codec import StreamSpec, check_codes, codes_to_float, float_to_codes, pack, unpack
from host.package import Package, open_package

# IODMA (Vitis HLS ap_ctrl_hs AXI-lite) register map, as FINN's PYNQ driver programs it.
REG_CTRL = 0x00       # bit0 ap_start, bit1 ap_done (clear on read), bit2 ap_idle, bit3 ap_ready
REG_ADDR_LO = 0x10    # DMA buffer address, low 32 bits
REG_ADDR_HI = 0x14    # DMA buffer address, high 32 bits
REG_NUM_REPS = 0x1C   # vectors in this transfer
AP_START, AP_DONE, AP_IDLE = 0x1, 0x2, 0x4
BACKENDS = ("pynq", "rtlsim", "reference")


class BoardUnavailableError(RuntimeError):
    """The pynq backend was asked for where there is no PYNQ board (or no bitfile)."""


class BackendClosedError(RuntimeError):
    """A backend (or its Accelerator) was used after ``close()``."""


class Register(Protocol):
    """What the driver needs of an IODMA: 32-bit register reads and writes (pynq DefaultIP)."""

    def read(self, offset: int) -> int: ...
    def write(self, offset: int, value: int) -> None: ...


class Backend(ABC):
    """Runs one hardware batch of integer codes.

    ``close()`` releases what the backend holds (:meth:`release`) once; calling it again
    does nothing, and any later ``run`` raises :class:`BackendClosedError`.
    """

    name = "backend"
    closed = False

    def __init__(self, package: Package, batch_size: int) -> None:
        self.package = package
        self.batch_size = int(batch_size)
        self.input = StreamSpec.from_manifest(package.io["input"])
        self.output = StreamSpec.from_manifest(package.io["output"])

    @abstractmethod
    def run(self, codes: np.ndarray) -> np.ndarray:
        """(k, in_features) int64 codes, k <= batch_size -> (k, out_features) int64 codes."""

    def info(self) -> dict[str, Any]:
        """What was measured in the last ``run`` (backend-specific)."""
        return {}

    def ensure_open(self) -> None:
        """Raise :class:`BackendClosedError` if :meth:`close` was called."""
        if self.closed:
            raise BackendClosedError(
                f"backend closed: the {self.name} backend of package {self.package.name} "
                "was closed (its buffers are freed); open a new Accelerator")

    def close(self) -> None:
        """Release buffers, processes or the overlay (once; a second call does nothing)."""
        if self.closed:
            return
        self.closed = True
        self.release()

    def release(self) -> None:  # noqa: B027  (optional hook)
        """What ``close`` frees: buffers, processes or the overlay."""


class DmaBackend(Backend):
    """FINN's zynq-iodma buffer/register sequence on an abstract device."""

    poll_timeout_s = 10.0

    def __init__(self, package: Package, batch_size: int, idma: Register,
                 odma: Register) -> None:
        super().__init__(package, batch_size)
        self.idma, self.odma = idma, odma
        self.ibuf = self.allocate(self.input.packed_shape(self.batch_size))
        self.obuf = self.allocate(self.output.packed_shape(self.batch_size))

    @abstractmethod
    def allocate(self, shape: tuple[int, ...]) -> np.ndarray:
        """Contiguous uint8 buffer with ``device_address``, ``flush`` and ``invalidate``."""

    def run(self, codes: np.ndarray) -> np.ndarray:
        self.ensure_open()
        k = len(codes)
        if not 0 < k <= self.batch_size:
            raise ValueError(f"batch of {k} vectors; buffers hold 1..{self.batch_size}")
        self.ibuf[:k] = pack(codes, self.input)
        self.ibuf.flush()
        self.execute_on_buffers(k)
        self.obuf.invalidate()
        return unpack(np.array(self.obuf[:k]), self.output)

    def execute_on_buffers(self, k: int) -> None:
        """Program both IODMAs for ``k`` vectors and wait for the output IODMA's ap_done."""
        if not self.odma.read(REG_CTRL) & AP_IDLE:
            raise RuntimeError("output IODMA is not idle")
        for dma, buf in ((self.odma, self.obuf), (self.idma, self.ibuf)):
            addr = int(buf.device_address)
            dma.write(REG_ADDR_LO, addr & 0xFFFFFFFF)
            dma.write(REG_ADDR_HI, (addr >> 32) & 0xFFFFFFFF)
            dma.write(REG_NUM_REPS, k)
            dma.write(REG_CTRL, AP_START)
        deadline = time.monotonic() + self.poll_timeout_s
        while not self.odma.read(REG_CTRL) & AP_DONE:
            if time.monotonic() > deadline:
                raise TimeoutError(f"output IODMA not done after {self.poll_timeout_s} s "
                                   f"({k} vectors)")


def on_board() -> bool:
    """True where pynq imports and finds a device (a PYNQ board)."""
    try:
        import pynq  # noqa: PLC0415
        return len(pynq.Device.devices) > 0
    except Exception:  # ImportError off-board, RuntimeError("No Devices Found") on x86
        return False


def make_backend(name: str, package: Package, batch_size: int, **opts: Any) -> Backend:
    """Backend by name; ``auto`` is ``pynq`` on a board and ``rtlsim`` elsewhere."""
    if name == "auto":
        name = "pynq" if on_board() else "rtlsim"
    if name == "pynq":
        from host.backends.pynq_backend import PynqBackend
        return PynqBackend(package, batch_size, **opts)
    if name == "rtlsim":
        from host.backends.rtlsim import RtlsimBackend
        return RtlsimBackend(package, batch_size, **opts)
    if name == "reference":
        from host.backends.reference import ReferenceBackend
        return ReferenceBackend(package, batch_size, **opts)
    raise ValueError(f"unknown backend {name!r}; choose from auto, {', '.join(BACKENDS)}")


class Accelerator:
    """A package's accelerator: float or integer vectors in, the same kind out.

    ``Accelerator("bitstreams/eqnet-fq-2x2-64qam-pynq-z2")`` checks the package
    (:func:`host.package.open_package`: contract digest, artifact hashes, no unlisted files,
    the I/O contract re-derived from the hashed models), then opens the backend (``auto``:
    the board where there is one, else the RTL simulation). ``expect_board="pynq-z2"``
    refuses (:class:`host.package.BoardIntegrityError`) a package built for another board.
    """

    def __init__(self, package: str | Path | Package, backend: str = "auto",
                 batch_size: int = 1024, expect_board: str | None = None,
                 **backend_opts: Any) -> None:
        if isinstance(package, Package):
            package.expect_board(expect_board)
            self.package = package
        else:
            self.package = open_package(package, expect_board=expect_board)
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.backend = make_backend(backend, self.package, batch_size, **backend_opts)
        self.input, self.output = self.backend.input, self.backend.output
        self.last: dict[str, Any] = {}

    @property
    def batch_size(self) -> int:
        return self.backend.batch_size

    def execute_codes(self, codes: np.ndarray) -> np.ndarray:
        """(N, in_features) integer codes -> (N, out_features) int64 codes, in batches."""
        self.backend.ensure_open()
        a = check_codes(codes, self.input)
        out = np.empty((len(a), self.output.features), dtype=np.int64)
        calls, infos, t0 = 0, [], time.perf_counter()
        for i in range(0, len(a), self.batch_size):
            out[i:i + self.batch_size] = self.backend.run(a[i:i + self.batch_size])
            infos.append(self.backend.info())
            calls += 1
        self.last = {"vectors": len(a), "calls": calls, "wall_s": time.perf_counter() - t0,
                     "backend": self.backend.name, "per_call": infos}
        return out

    def execute(self, x: np.ndarray) -> np.ndarray:
        """(N, in_features) floats -> (N, out_features) float32, with the manifest's scales.

        Floats become codes by :func:`host.codec.float_to_codes` (saturating; NaN refused).
        """
        self.backend.ensure_open()
        x = np.asarray(x)
        single = x.ndim == 1
        y = codes_to_float(self.execute_codes(float_to_codes(np.atleast_2d(x), self.input)),
                           self.output)
        return y[0] if single else y

    def close(self) -> None:
        """Close the backend (idempotent); later calls raise :class:`BackendClosedError`."""
        self.backend.close()

    def __enter__(self) -> Accelerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
