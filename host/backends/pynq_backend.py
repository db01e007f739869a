"""The board: the package's ``.bit`` through the real PYNQ API (numpy and pynq only).

``pynq.Overlay`` loads the bitstream (its ``.hwh`` beside it), ``pynq.allocate`` gives the
physically contiguous DMA buffers, and the FINN IODMAs ``idma0``/``odma0`` are programmed
through their AXI-lite registers (``DefaultIP.read``/``write``), as FINN's PYNQ driver does.
One input and one output stream (that IODMA pair): a package with several named streams
is refused first (:class:`host.driver.MultiStreamError`). Off-board it raises
:class:`host.driver.BoardUnavailableError` with the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from host.driver import BoardUnavailableError, DmaBackend, single_stream
from host.package import Package


class PynqBackend(DmaBackend):
    """FINN's zynq-iodma driver sequence on a PYNQ board."""

    name = "pynq"

    def __init__(self, package: Package, batch_size: int, bitfile: str | Path | None = None,
                 download: bool = True, idma: str = "idma0", odma: str = "odma0",
                 set_clock: bool = True) -> None:
        single_stream(package, f"backend {self.name!r}")  # before the overlay is loaded
        try:
            import pynq
        except ImportError as e:
            raise BoardUnavailableError(
                "backend 'pynq' needs the pynq package on a PYNQ board (there: pip install -r "
                "host/requirements-board.txt); off-board use --backend rtlsim") from e
        bit = Path(bitfile) if bitfile else package.bitfile()
        if bit is None or not bit.is_file():
            raise BoardUnavailableError(
                f"{package.root} has no .bit: `make bitstream` produces it where Vivado is "
                "installed; until then use --backend rtlsim")
        try:
            self.overlay = pynq.Overlay(str(bit), download=download)
        except Exception as e:  # "No Devices Found" on a machine that is not a board
            raise BoardUnavailableError(f"pynq.Overlay({bit}) failed: {e} "
                                        "(backend 'pynq' runs on a PYNQ board)") from e
        if set_clock:
            from pynq.ps import Clocks
            Clocks.fclk0_mhz = package.clock_mhz
        self._pynq = pynq
        super().__init__(package, batch_size, getattr(self.overlay, idma),
                         getattr(self.overlay, odma))

    def allocate(self, shape: tuple[int, ...]) -> np.ndarray:
        return self._pynq.allocate(shape=shape, dtype=np.uint8, cacheable=True)

    def info(self) -> dict[str, Any]:
        return {"fclk0_mhz": self.package.clock_mhz}

    def release(self) -> None:
        for buf in (self.ibuf, self.obuf):
            buf.freebuffer()
