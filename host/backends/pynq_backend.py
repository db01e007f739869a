"""The board: the package's ``.bit`` through the real PYNQ API (numpy and pynq only).

``pynq.Overlay`` loads the bitstream (its ``.hwh`` beside it), ``pynq.allocate`` gives the
physically contiguous DMA buffers, and the FINN IODMAs are programmed through their
AXI-lite registers (``DefaultIP.read``/``write``), as FINN's PYNQ driver does: one IODMA
per named stream, in I/O spec order, named as FINN's zynq-iodma shell names them
(``idma0..``, ``odma0..``; :func:`host.driver.dma_names`). Everything else, the buffer and
register sequence included, is :class:`host.driver.DmaBackend`, the code the ``rtlsim``
backend runs on its simulated IODMAs. Off-board it raises
:class:`host.driver.BoardUnavailableError` with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from host.driver import BoardUnavailableError, DmaBackend, dma_names
from host.package import Package


class PynqBackend(DmaBackend):
    """FINN's zynq-iodma driver sequence on a PYNQ board.

    ``idmas`` / ``odmas``: the overlay's IODMA instance names in I/O spec order (default
    :func:`host.driver.dma_names`: ``idma0..``, ``odma0..``).
    """

    name = "pynq"

    def __init__(self, package: Package, batch_size: int, bitfile: str | Path | None = None,
                 download: bool = True, idmas: Sequence[str] | None = None,
                 odmas: Sequence[str] | None = None, set_clock: bool = True) -> None:
        i_names, o_names = dma_names(package)
        i_names, o_names = list(idmas or i_names), list(odmas or o_names)
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
        missing = [n for n in i_names + o_names if not hasattr(self.overlay, n)]
        if missing:
            raise BoardUnavailableError(f"{bit}: the overlay has no IODMA {missing} for the "
                                        f"streams {list(package.inputs)} -> "
                                        f"{list(package.outputs)}")
        if set_clock:
            from pynq.ps import Clocks
            Clocks.fclk0_mhz = package.clock_mhz
        self._pynq = pynq
        super().__init__(package, batch_size, [getattr(self.overlay, n) for n in i_names],
                         [getattr(self.overlay, n) for n in o_names])

    def allocate(self, shape: tuple[int, ...]) -> np.ndarray:
        return self._pynq.allocate(shape=shape, dtype=np.uint8, cacheable=True)

    def info(self) -> dict[str, Any]:
        return {"fclk0_mhz": self.package.clock_mhz}
