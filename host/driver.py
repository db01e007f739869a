"""The accelerator driver: one class for the board, the RTL simulation and the references.

Board-side module: imports numpy and the board-side host modules only; a backend's
own module is imported when that backend is chosen.

A package has named input and output streams (``manifest.json`` ``io.inputs`` /
``io.outputs``, in graph order). :class:`Accelerator` converts floats to codes and codes
to floats per stream (:class:`host.codec.StreamSpec`, the rules of
:mod:`contract.iospec`), splits the vectors into hardware batches (the last may be
shorter), and hands each batch to a backend as ``{input name: (k, F) codes}``; the
backend answers ``{output name: (k, G) codes}``.

:class:`DmaBackend` is the buffer and register sequence of FINN's PYNQ driver for
``zynq-iodma`` platforms (``FINNExampleOverlay.execute_on_buffers``): pack into a
``uint8`` DMA buffer, flush, program the output then the input IODMA (buffer address low
and high words, number of vectors, ``ap_start``), poll the output IODMA's ``ap_done``,
invalidate and unpack. One IODMA per named stream, in the I/O spec's order, as FINN's
shell instantiates them (InsertIODMA walks the graph inputs and outputs in order):
input ``i`` is ``idma<i>``, output ``j`` is ``odma<j>`` (:func:`dma_names`); every output
IODMA is programmed before any input IODMA and every one is polled for ``ap_done``. The
``pynq`` and ``rtlsim`` backends differ only in who serves the buffers and the
registers; the ``reference`` backend runs any number of streams too.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from host.codec import StreamSpec, pack, unpack
from host.package import Package, open_package

# IODMA (Vitis HLS ap_ctrl_hs AXI-lite) register map, as FINN's PYNQ driver programs it.
REG_CTRL = 0x00       # bit0 ap_start, bit1 ap_done (clear on read), bit2 ap_idle, bit3 ap_ready
REG_ADDR_LO = 0x10    # DMA buffer address, low 32 bits
REG_ADDR_HI = 0x14    # DMA buffer address, high 32 bits
REG_NUM_REPS = 0x1C   # vectors in this transfer
AP_START, AP_DONE, AP_IDLE = 0x1, 0x2, 0x4
BACKENDS = ("pynq", "rtlsim", "reference", "integer")


class BoardUnavailableError(RuntimeError):
    """The pynq backend was asked for where there is no PYNQ board (or no bitfile)."""


class BackendClosedError(RuntimeError):
    """A backend (or its Accelerator) was used after ``close()``."""


class MultiStreamError(ValueError):
    """A single-stream path (an IODMA pair, a plain array) was asked to carry a package
    with several named input or output streams."""


class Register(Protocol):
    """What the driver needs of an IODMA: 32-bit register reads and writes (pynq DefaultIP)."""

    def read(self, offset: int) -> int: ...
    def write(self, offset: int, value: int) -> None: ...


Codes = dict[str, np.ndarray]


class Backend(ABC):
    """Runs one hardware batch of integer codes, stream by stream.

    ``inputs`` / ``outputs``: the package's streams by name, in graph order.
    ``close()`` releases what the backend holds (:meth:`release`) once; calling it again
    does nothing, and any later ``run`` raises :class:`BackendClosedError`.
    """

    name = "backend"
    closed = False

    def __init__(self, package: Package, batch_size: int) -> None:
        self.package = package
        self.batch_size = int(batch_size)
        self.inputs: dict[str, StreamSpec] = package.inputs
        self.outputs: dict[str, StreamSpec] = package.outputs

    @abstractmethod
    def run(self, codes: Codes) -> Codes:
        """``{input: (k, F) int64 codes}``, k <= batch_size -> ``{output: (k, G) int64}``."""

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


def single_stream(package: Package, what: str,
                  hint: str = "the Accelerator's backends (rtlsim, pynq, reference) carry "
                              "several streams by name") -> tuple[StreamSpec, StreamSpec]:
    """The one input and one output stream of ``package``; :class:`MultiStreamError`
    naming the streams (and ``what`` refused them) where it has several."""
    ins, outs = package.inputs, package.outputs
    if len(ins) != 1 or len(outs) != 1:
        raise MultiStreamError(
            f"{what} carries one input and one output stream (FINN's IODMA pair "
            f"idma0/odma0); package {package.name} has {len(ins)} input stream(s) "
            f"{list(ins)} and {len(outs)} output stream(s) {list(outs)}: {hint}")
    return next(iter(ins.values())), next(iter(outs.values()))


def dma_names(package: Package) -> tuple[list[str], list[str]]:
    """FINN's IODMA instance names for ``package``'s streams, in I/O spec order:
    ``(["idma0", ...], ["odma0", ...])`` (the zynq-iodma shell's naming)."""
    return ([f"idma{i}" for i in range(len(package.inputs))],
            [f"odma{j}" for j in range(len(package.outputs))])


class DmaBackend(Backend):
    """FINN's zynq-iodma buffer/register sequence on an abstract device, one IODMA and one
    DMA buffer per named stream.

    ``idmas`` / ``odmas``: the IODMAs' register files in I/O spec order (input ``i`` ->
    ``idmas[i]``), one per stream (else ValueError naming the streams). Buffers:
    ``ibufs`` / ``obufs`` ``{stream name: uint8 (batch_size, beats, bytes_per_beat)}``;
    ``ibuf``/``obuf``/``input``/``output``/``idma``/``odma``: the one stream's, for a
    single-stream package (:class:`MultiStreamError` otherwise).
    """

    poll_timeout_s = 10.0

    def __init__(self, package: Package, batch_size: int, idmas: Sequence[Register],
                 odmas: Sequence[Register]) -> None:
        super().__init__(package, batch_size)
        idmas, odmas = list(idmas), list(odmas)
        if len(idmas) != len(self.inputs) or len(odmas) != len(self.outputs):
            raise ValueError(
                f"backend {self.name!r}: {len(idmas)} input and {len(odmas)} output IODMAs "
                f"for package {package.name}'s {len(self.inputs)} input stream(s) "
                f"{list(self.inputs)} and {len(self.outputs)} output stream(s) "
                f"{list(self.outputs)}: one IODMA per stream")
        self.idmas = dict(zip(self.inputs, idmas, strict=True))
        self.odmas = dict(zip(self.outputs, odmas, strict=True))
        self.ibufs: dict[str, Any] = {}
        self.obufs: dict[str, Any] = {}
        for k, s in self.inputs.items():
            self.ibufs[k] = self.allocate(s.packed_shape(self.batch_size))
        for k, s in self.outputs.items():
            self.obufs[k] = self.allocate(s.packed_shape(self.batch_size))

    @abstractmethod
    def allocate(self, shape: tuple[int, ...]) -> np.ndarray:
        """Contiguous uint8 buffer with ``device_address``, ``flush`` and ``invalidate``."""

    def _one(self, table: dict[str, Any], what: str) -> Any:
        if len(table) != 1:
            raise MultiStreamError(f"backend {self.name!r}: package {self.package.name} has "
                                   f"{len(table)} {what}s {list(table)}: use .{what}s[name]")
        return next(iter(table.values()))

    @property
    def input(self) -> StreamSpec:
        """The one input stream (single-input packages)."""
        return self._one(self.inputs, "input")

    @property
    def output(self) -> StreamSpec:
        """The one output stream (single-output packages)."""
        return self._one(self.outputs, "output")

    @property
    def ibuf(self) -> Any:
        """The one input DMA buffer (single-input packages)."""
        return self._one(self.ibufs, "ibuf")

    @property
    def obuf(self) -> Any:
        """The one output DMA buffer (single-output packages)."""
        return self._one(self.obufs, "obuf")

    @property
    def idma(self) -> Register:
        """The one input IODMA (single-input packages)."""
        return self._one(self.idmas, "idma")

    @property
    def odma(self) -> Register:
        """The one output IODMA (single-output packages)."""
        return self._one(self.odmas, "odma")

    def run(self, codes: Codes) -> Codes:
        self.ensure_open()
        ks = {k: len(codes[k]) for k in self.inputs}
        k = next(iter(ks.values()))
        if len(set(ks.values())) != 1:
            raise ValueError(f"inputs have different numbers of vectors {ks}")
        if not 0 < k <= self.batch_size:
            raise ValueError(f"batch of {k} vectors; buffers hold 1..{self.batch_size}")
        for name, spec in self.inputs.items():
            buf = self.ibufs[name]
            buf[:k] = pack(codes[name], spec)
            buf.flush()
        self.execute_on_buffers(k)
        out = {}
        for name, spec in self.outputs.items():
            buf = self.obufs[name]
            buf.invalidate()
            out[name] = unpack(np.array(buf[:k]), spec)
        return out

    def execute_on_buffers(self, k: int) -> None:
        """Program every IODMA for ``k`` vectors (outputs first, then inputs, each in I/O
        spec order) and wait until every output IODMA has reported ``ap_done``."""
        for name, dma in self.odmas.items():
            if not dma.read(REG_CTRL) & AP_IDLE:
                raise RuntimeError(f"output IODMA of {name!r} is not idle")
        for dma, buf in [*((self.odmas[n], self.obufs[n]) for n in self.outputs),
                         *((self.idmas[n], self.ibufs[n]) for n in self.inputs)]:
            addr = int(buf.device_address)
            dma.write(REG_ADDR_LO, addr & 0xFFFFFFFF)
            dma.write(REG_ADDR_HI, (addr >> 32) & 0xFFFFFFFF)
            dma.write(REG_NUM_REPS, k)
            dma.write(REG_CTRL, AP_START)
        deadline = time.monotonic() + self.poll_timeout_s
        for name, dma in self.odmas.items():
            while not dma.read(REG_CTRL) & AP_DONE:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"output IODMA of {name!r} not done after "
                                       f"{self.poll_timeout_s} s ({k} vectors)")

    def release(self) -> None:
        """Free every DMA buffer."""
        for buf in [*self.ibufs.values(), *self.obufs.values()]:
            buf.freebuffer()


def on_board() -> bool:
    """True where pynq imports and finds a device (a PYNQ board)."""
    try:
        import pynq  # noqa: PLC0415
        return len(pynq.Device.devices) > 0
    except Exception:  # ImportError off-board, RuntimeError("No Devices Found") on x86
        return False


def make_backend(name: str | type[Backend], package: Package, batch_size: int,
                 **opts: Any) -> Backend:
    """Backend by name (``auto`` is ``pynq`` on a board and ``rtlsim`` elsewhere), or a
    :class:`Backend` subclass, constructed as ``cls(package, batch_size, **opts)``."""
    if isinstance(name, type) and issubclass(name, Backend):
        return name(package, batch_size, **opts)
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
    if name == "integer":
        from host.backends.integer import IntegerBackend
        return IntegerBackend(package, batch_size, **opts)
    raise ValueError(f"unknown backend {name!r}; choose from auto, {', '.join(BACKENDS)}")


def _named(arrays: Mapping[str, Any] | Any, streams: dict[str, StreamSpec],
           what: str) -> tuple[dict[str, Any], bool]:
    """``{name: array}`` in stream order from a dict (exactly the stream names) or from a
    plain array (one stream only); and whether a plain array was given."""
    if isinstance(arrays, Mapping):
        missing = [k for k in streams if k not in arrays]
        unknown = [k for k in arrays if k not in streams]
        if missing or unknown:
            raise ValueError(f"{what}: the package's inputs are {list(streams)}; "
                           + "; ".join(([f"missing {missing}"] if missing else [])
                                       + ([f"unknown {unknown}"] if unknown else [])))
        return {k: arrays[k] for k in streams}, False
    if len(streams) != 1:
        raise MultiStreamError(f"{what}: the package has {len(streams)} inputs "
                               f"{list(streams)}: pass a dict {{name: array}}")
    return {next(iter(streams)): arrays}, True


class Accelerator:
    """A package's accelerator: float or integer vectors in, the same kind out, per named
    stream.

    ``Accelerator("bitstreams/eqnet-fq-uniform-2x2-64qam-pynq-z2")`` checks the package
    (:func:`host.package.open_package`: contract digest, artifact hashes, no unlisted files,
    the I/O contract re-derived from the hashed models), then opens the backend (``auto``:
    the board where there is one, else the RTL simulation; or a :class:`Backend`
    subclass). ``expect_board="pynq-z2"`` refuses
    (:class:`host.package.BoardIntegrityError`) a package built for another board.

    :meth:`execute_codes` and :meth:`execute` take ``{input name: (N, F) array}`` and
    return ``{output name: (N, G) array}``; a package with one input also takes a plain
    array, and then returns a plain array where it has one output (else the dict).
    """

    def __init__(self, package: str | Path | Package, backend: str | type[Backend] = "auto",
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
        self.inputs: dict[str, StreamSpec] = self.backend.inputs
        self.outputs: dict[str, StreamSpec] = self.backend.outputs
        self.last: dict[str, Any] = {}

    @property
    def batch_size(self) -> int:
        return self.backend.batch_size

    @property
    def input_names(self) -> list[str]:
        return list(self.inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self.outputs)

    @property
    def input(self) -> StreamSpec:
        """The input stream of a one-input package (:class:`MultiStreamError` otherwise)."""
        return self._only(self.inputs, "input")

    @property
    def output(self) -> StreamSpec:
        """The output stream of a one-output package (:class:`MultiStreamError` otherwise)."""
        return self._only(self.outputs, "output")

    def _only(self, streams: dict[str, StreamSpec], kind: str) -> StreamSpec:
        if len(streams) != 1:
            raise MultiStreamError(f"package {self.package.name} has {len(streams)} {kind}s "
                                   f"{list(streams)}: use .{kind}s[name]")
        return next(iter(streams.values()))

    @staticmethod
    def _result(out: dict[str, np.ndarray], plain: bool) -> dict[str, np.ndarray] | np.ndarray:
        """A plain array for a plain array in and one output; else the dict."""
        return next(iter(out.values())) if plain and len(out) == 1 else out

    def execute_codes(self, codes: Mapping[str, np.ndarray] | np.ndarray
                      ) -> dict[str, np.ndarray] | np.ndarray:
        """``{input: (N, F) integer codes}`` -> ``{output: (N, G) int64 codes}``, in batches
        (a plain array for a one-input package; see the class docstring).

        Codes are checked per stream (:meth:`contract.iospec.TensorSpec.check_codes`:
        integers inside the datatype); every input must have the same N.
        """
        self.backend.ensure_open()
        named, plain = _named(codes, self.inputs, "execute_codes")
        a = {k: self.inputs[k].check_codes(v) for k, v in named.items()}
        counts = {k: len(v) for k, v in a.items()}
        if len(set(counts.values())) > 1:
            raise ValueError(f"execute_codes: inputs have different numbers of vectors "
                             f"{counts}")
        n = next(iter(counts.values()))
        out = {k: np.empty((n, s.features), dtype=np.int64) for k, s in self.outputs.items()}
        calls, infos, t0 = 0, [], time.perf_counter()
        for i in range(0, n, self.batch_size):
            batch = {k: v[i:i + self.batch_size] for k, v in a.items()}
            k = len(next(iter(batch.values())))
            got = self.backend.run(batch)
            if set(got) != set(out):
                raise RuntimeError(f"backend {self.backend.name} returned outputs "
                                   f"{sorted(got)}, the package's are {list(out)}")
            for name, v in got.items():
                if np.shape(v) != (k, self.outputs[name].features):
                    raise RuntimeError(f"backend {self.backend.name} returned output {name!r} "
                                       f"of shape {np.shape(v)}, expected "
                                       f"({k}, {self.outputs[name].features})")
                out[name][i:i + k] = v
            infos.append(self.backend.info())
            calls += 1
        self.last = {"vectors": n, "calls": calls, "wall_s": time.perf_counter() - t0,
                     "backend": self.backend.name, "per_call": infos}
        return self._result(out, plain)

    def execute(self, x: Mapping[str, np.ndarray] | np.ndarray
                ) -> dict[str, np.ndarray] | np.ndarray:
        """``{input: (N, F) floats}`` -> ``{output: (N, G) float32}`` (a plain array for a
        one-input package; one vector of shape (F,) per input gives (G,) per output).

        Floats become codes by each input's rule (:meth:`host.codec.StreamSpec.to_codes`:
        ``clip(round_half_even(x / scale), min, max)``, saturating; NaN refused), codes
        become floats by each output's (``code * scale``, or the codebook's value).
        """
        self.backend.ensure_open()
        named, plain = _named(x, self.inputs, "execute")
        arrays = {k: np.asarray(v) for k, v in named.items()}
        single = all(v.ndim == 1 for v in arrays.values())
        codes = {k: self.inputs[k].to_codes(np.atleast_2d(v)) for k, v in arrays.items()}
        got = self.execute_codes(codes)  # a dict in: a dict out
        y = {k: self.outputs[k].to_float(v) for k, v in dict(got).items()}
        if single:
            y = {k: v[0] for k, v in y.items()}
        return self._result(y, plain)

    def close(self) -> None:
        """Close the backend (idempotent); later calls raise :class:`BackendClosedError`."""
        self.backend.close()

    def __enter__(self) -> Accelerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
