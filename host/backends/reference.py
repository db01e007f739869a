"""Reference backends (development side): the Brevitas network or QONNX execution.

Any number of named streams (the package's ``io.inputs`` / ``io.outputs``):

* ``kind="brevitas"``: the trained QAT network, reached only through
  :func:`export.reference.load_brevitas` (the package's design, a run folder), on the CPU
  or on CUDA; integer codes through its ``output_codes(**codes)`` (the contract's
  integer reference, :mod:`zoo.network`);
* ``kind="qonnx"``: QONNX execution of the package's ``model_qonnx.onnx``
  (:func:`hw.verify.execute_codes`, tensors by contract name).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from host.driver import Backend, Codes
from host.package import Package

KINDS = ("brevitas", "qonnx")


def load_brevitas(package: Package, run_dir: str | Path | None = None) -> Any:
    """The trained Brevitas network of the package's design (eval mode, CPU), checked to
    declare the package's named inputs and outputs."""
    from export.reference import load_brevitas as load

    model = load(package.manifest["design"], run_dir)
    if hasattr(model, "iospec"):
        spec = model.iospec()
        if (spec.input_names, spec.output_names) != (package.input_names,
                                                     package.output_names):
            raise ValueError(
                f"the Brevitas network of design {package.manifest['design']!r} declares "
                f"inputs {spec.input_names} and outputs {spec.output_names}; package "
                f"{package.name} has {package.input_names} and {package.output_names} "
                "(another run, or the package is older than the checkpoint)")
    return model


def brevitas_codes(model: Any, codes: Codes, device: str = "cpu",
                   batch: int = 8192) -> Codes:
    """``model.output_codes(**codes)`` in batches: named int64 codes in and out."""
    import torch

    n = len(next(iter(codes.values())))
    model = model.to(device).eval()
    parts: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for i in range(0, n, batch):
            c = {k: torch.from_numpy(np.ascontiguousarray(v[i:i + batch], np.float32))
                 .to(device) for k, v in codes.items()}
            for k, v in model.output_codes(**c).items():
                parts.setdefault(k, []).append(v.cpu().numpy().astype(np.int64))
    return {k: np.concatenate(v) for k, v in parts.items()}


class ReferenceBackend(Backend):
    """Integer codes from the Brevitas network (CPU/CUDA) or from QONNX execution."""

    name = "reference"

    def __init__(self, package: Package, batch_size: int, kind: str = "brevitas",
                 device: str = "cpu", run_dir: str | Path | None = None) -> None:
        super().__init__(package, batch_size)
        if kind not in KINDS:
            raise ValueError(f"reference kind {kind!r}: {' or '.join(KINDS)}")
        self.kind, self.device = kind, device
        self.name = f"reference-{kind}" + (f"-{device}" if kind == "brevitas" else "")
        self.model = load_brevitas(package, run_dir) if kind == "brevitas" else None
        # contract output scales, in output order (1.0 for a codebook index output)
        self.scales = {k: s.scale if s.scale is not None else 1.0
                       for k, s in self.outputs.items()}

    def run(self, codes: Codes) -> Codes:
        self.ensure_open()
        ordered = {k: codes[k] for k in self.inputs}  # graph input order
        if self.kind == "brevitas":
            return brevitas_codes(self.model, ordered, self.device, batch=len(
                next(iter(ordered.values()))))
        import hw  # noqa: F401  (offline FINN bootstrap)
        from hw.verify import execute_codes
        out = execute_codes(self.package.path("model_qonnx.onnx"), ordered, self.scales,
                            "qonnx", batch=len(next(iter(ordered.values()))))
        assert isinstance(out, dict)  # named inputs in: named outputs out
        return out
