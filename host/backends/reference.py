"""Reference backends (development side): the Brevitas checkpoint or QONNX execution.

``kind="brevitas"``: the trained QAT network (``runs/<design>/checkpoint.pt``) on the CPU
or on CUDA, integer codes through :meth:`train.models.QuantMLP.output_codes`.
``kind="qonnx"``: QONNX execution of the package's ``model_qonnx.onnx``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from host.driver import Backend
from host.package import Package

REPO = Path(__file__).resolve().parents[2]


def load_brevitas(package: Package, run_dir: str | Path | None = None) -> Any:
    """The trained Brevitas model of the package's design (eval mode, CPU)."""
    from configs import load_design
    from train.checkpoint import load_trained

    design = load_design(package.manifest["design"])
    return load_trained(design, Path(run_dir) if run_dir else REPO / "runs" / design["name"])


class ReferenceBackend(Backend):
    """Integer codes from the Brevitas model (CPU/CUDA) or from QONNX execution."""

    name = "reference"

    def __init__(self, package: Package, batch_size: int, kind: str = "brevitas",
                 device: str = "cpu", run_dir: str | Path | None = None) -> None:
        super().__init__(package, batch_size)
        if kind not in ("brevitas", "qonnx"):
            raise ValueError(f"reference kind {kind!r}: brevitas or qonnx")
        self.kind, self.device = kind, device
        self.name = f"reference-{kind}" + (f"-{device}" if kind == "brevitas" else "")
        self.model = load_brevitas(package, run_dir) if kind == "brevitas" else None

    def run(self, codes: np.ndarray) -> np.ndarray:
        self.ensure_open()
        if self.kind == "brevitas":
            from export.golden import reference_codes
            return reference_codes(self.model, codes, batch=len(codes), device=self.device)
        import hw  # noqa: F401  (offline FINN bootstrap)
        from hw.verify import execute_codes
        return execute_codes(self.package.path("model_qonnx.onnx"), codes,
                             self.output.scale, "qonnx", batch=len(codes))
