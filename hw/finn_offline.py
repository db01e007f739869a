"""Offline bootstrap for FINN (finn-plus 1.6.1) on a machine without Vivado.

What this stands in for, and nothing more:

* ``finn.xsi`` (FINN's RTL simulator binding, a pybind11 module around Vivado's
  xsim kernel). Importing ``finn.builder`` binds ``finn.xsi.SimEngine`` at import
  time, which raises ``XILINX_VIVADO environment variable not set`` without
  Vivado. We bind the lazy names to :class:`XsimUnavailable`, which raises a clear
  error *if* something tries to run xsim. Nothing in our flow does: RTL is
  simulated with Verilator (``make sim``).
* ``get_vivado_root()`` as seen by the builder's exit (it only names the tool
  version in ``metadata_builder.json``): it reports ``vivado-not-installed``.
* FINN's settings (normally created by the ``finn`` CLI, which needs Vivado and
  git-clones dependencies): we set ``FINN_BUILD_DIR`` to a folder of ours so
  nothing is written to ``~/.finn``.

Where Vivado *is* installed (``XILINX_VIVADO`` set), nothing is stubbed and
FINN's own xsim binding is used.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

NO_VIVADO = "vivado-not-installed"


class XsimUnavailable:
    """Stand-in for ``finn_xsi`` objects: any use names what is missing."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError(
            "FINN's RTL simulation (finn_xsi) needs Vivado's xsim, and XILINX_VIVADO is not set. "
            "This project simulates the generated RTL with Verilator instead: run `make sim`."
        )

    def __call__(self, *args: object, **kwargs: object) -> None:  # pragma: no cover
        XsimUnavailable()


def vivado_available() -> bool:
    """True if a Vivado installation is configured for FINN."""
    return bool(os.environ.get("XILINX_VIVADO"))


def bootstrap(build_dir: str | Path) -> None:
    """Make ``finn.builder`` importable and point FINN's scratch space at ``build_dir``.

    Must run before the first import of ``finn.builder`` or ``finn.custom_op``.
    """
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    # FINN caches its settings on first use: one scratch folder per process.
    os.environ["FINN_BUILD_DIR"] = str(build_dir)
    os.environ.setdefault("NUM_DEFAULT_WORKERS", str(os.cpu_count() or 1))
    if vivado_available():
        return
    import finn.xsi as xsi

    for name in getattr(xsi, "_LAZY_NAMES", ()):
        setattr(xsi, name, XsimUnavailable)
    # Anything already importing the lazy names through sys.modules sees the stand-in too.
    sys.modules["finn.xsi"] = xsi
    # The builder's exit writes metadata_builder.json with Vivado's folder name as
    # "tool_version", via get_vivado_root(), which raises without Vivado.
    import finn.builder.build_dataflow as build_dataflow

    build_dataflow.get_vivado_root = lambda: NO_VIVADO
