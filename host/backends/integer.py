"""The package's integer graph in numpy: ``backend="integer"`` (board-side: numpy only).

:class:`IntegerBackend` runs ``model_finn.onnx`` of a checked package through
:class:`host.integer.IntegerModel`: the hardware's integer function (every layer our
compiler emits, see its docstring; bit-exact), without the board, the RTL simulation or
FINN. It reads the model once, from bytes whose sha256 it checks against the manifest
at the read, and carries any number of named input and output streams.
"""

from __future__ import annotations

from typing import Any

from host.driver import Backend, Codes
from host.integer import IntegerModel, load_package_model
from host.package import ModelIntegrityError, Package


class IntegerBackend(Backend):
    """Integer codes from the package's FINN graph, executed in numpy."""

    name = "integer"

    def __init__(self, package: Package, batch_size: int, check: bool = True) -> None:
        """``check``: check each batch's codes (integers inside each input's datatype,
        the range the exactness proof covers); :class:`host.driver.Accelerator` checks
        them before they get here, so a caller that goes through it may pass False."""
        super().__init__(package, batch_size)
        self.model: IntegerModel = load_package_model(package)
        self.check = bool(check)
        problems = []
        for side, streams, graph in (("input", self.inputs, self.model.inputs),
                                     ("output", self.outputs, self.model.outputs)):
            if list(streams) != list(graph):
                problems.append(f"{side}s: manifest {list(streams)}, model_finn.onnx "
                                f"{list(graph)}")
                continue
            for k, s in streams.items():
                g = graph[k]
                if (s.features, s.tensor.datatype) != (g.features, g.datatype):
                    problems.append(f"{side} {k!r}: manifest {s.features} x "
                                    f"{s.tensor.datatype}, model_finn.onnx {g.features} x "
                                    f"{g.datatype}")
        if problems:
            raise ModelIntegrityError(f"package {package.name}: the integer graph of "
                                      "model_finn.onnx disagrees with the manifest's io: "
                                      + "; ".join(problems))
        self._last: dict[str, Any] = {}

    def run(self, codes: Codes) -> Codes:
        self.ensure_open()
        k = len(next(iter(codes.values())))
        if not 0 < k <= self.batch_size:
            raise ValueError(f"batch of {k} vectors; this backend takes 1..{self.batch_size}")
        out = self.model.run({name: codes[name] for name in self.inputs}, check=self.check)
        self._last = {"vectors": k}
        return {name: out[name] for name in self.outputs}

    def info(self) -> dict[str, Any]:
        return dict(self._last)

    def describe(self) -> list[dict[str, Any]]:
        """The executor's steps: layers, method, dtype, exactness bound."""
        return self.model.describe()

    def release(self) -> None:
        self.model = None  # type: ignore[assignment]

