"""``python -m host verify PACKAGE``: bit-exactness of a backend on golden and fresh vectors.

Every check covers all named outputs: a vector passes when every code of every output is
equal (``==`` on integers; floats ``==`` too). Sets checked:

* ``golden:<set>``: the package's golden.npz (``contract.iospec.Golden``: named input and
  output codes; sets channel, ties, extremes), expected = the Brevitas CPU codes stored
  at export;
* ``fresh``: new vectors from the design's data set (``zoo.datasets.design_inputs``, seed
  ``--seed``), one float array per named input, quantized by the host's float->code rule
  per input; expected = the Brevitas network (``export.reference.load_brevitas``) on the
  CPU, and on CUDA when available (CUDA codes must equal CPU codes, checked); also
  checked: the host's input codes equal Brevitas' own input quantizer's (per input), and
  ``execute(x)`` (float in/out) equals the Brevitas float output exactly (for a codebook
  output: the codebook value).

Fresh vectors need torch and the model zoo (development side); on a board only golden
vectors run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from contract.iospec import Golden, mismatching_vectors
from host.driver import Accelerator


@dataclass
class Report:
    """Per-check rows and the totals printed as ``N passed, M failed``."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, check: str, got: dict[str, np.ndarray] | np.ndarray,
            expected: dict[str, np.ndarray] | np.ndarray, note: str = "") -> None:
        """One row: a vector fails if any value of any named tensor differs."""
        bad = mismatching_vectors(check, got, expected)
        self.rows.append({"check": check, "vectors": int(len(bad)), "failed": int(bad.sum()),
                          "first_failures": np.flatnonzero(bad)[:5].tolist(), "note": note})

    @property
    def passed(self) -> int:
        return sum(r["vectors"] - r["failed"] for r in self.rows)

    @property
    def failed(self) -> int:
        return sum(r["failed"] for r in self.rows)

    def table(self) -> str:
        lines = [f"{'check':<34}{'vectors':>9}{'failed':>8}  note", "-" * 70]
        for r in self.rows:
            extra = f" first: {r['first_failures']}" if r["failed"] else ""
            lines.append(f"{r['check']:<34}{r['vectors']:>9}{r['failed']:>8}  {r['note']}{extra}")
        return "\n".join(lines)


def golden_checks(acc: Accelerator, report: Report) -> None:
    """Every set of golden.npz through the accelerator, all named outputs."""
    g = Golden.load(acc.package.path("golden.npz"))
    if (sorted(g.inputs), sorted(g.outputs)) != (sorted(acc.input_names),
                                                 sorted(acc.output_names)):
        raise ValueError(f"golden.npz of {acc.package.name} holds inputs {sorted(g.inputs)} "
                         f"and outputs {sorted(g.outputs)}; the package's streams are "
                         f"{acc.input_names} and {acc.output_names}: rebuild the package")
    got = acc.execute_codes(g.inputs)
    for name in dict.fromkeys(g.sets.tolist()):
        sel = g.sets == name
        report.add(f"golden:{name}", {k: v[sel] for k, v in got.items()},
                   {k: v[sel] for k, v in g.outputs.items()}, "vs Brevitas CPU (export)")


def brevitas_input_codes(model: Any, x: dict[str, Any]) -> dict[str, np.ndarray]:
    """Brevitas' own input quantizer per named input: ``model.input_quant`` (one input,
    ``zoo.blocks.QuantMLP``) or ``model.input_quant[name]`` (a ModuleDict,
    ``zoo.network.QuantNet``)."""
    import torch

    iq = model.input_quant
    with torch.no_grad():
        return {k: (iq[k] if isinstance(iq, torch.nn.ModuleDict) else iq)(v).int().numpy()
                .astype(np.int64) for k, v in x.items()}


def brevitas_float(model: Any, x: dict[str, Any], names: list[str]) -> dict[str, np.ndarray]:
    """The Brevitas float outputs (``forward`` with the inputs in graph order), by name."""
    import torch

    with torch.no_grad():
        y = model(*x.values())
    ys = y if isinstance(y, (tuple, list)) else (y,)
    if len(ys) != len(names):
        raise ValueError(f"the Brevitas network returned {len(ys)} outputs, the package "
                         f"has {names}")
    return {k: getattr(v, "value", v).numpy() for k, v in zip(names, ys, strict=True)}


def fresh_checks(acc: Accelerator, report: Report, n: int, seed: int,
                 run_dir: Path | None = None) -> dict[str, Any]:
    """Fresh vectors of the design's data set; expected codes from Brevitas on CPU (and
    CUDA)."""
    import torch

    from configs import load_design
    from host.backends.reference import brevitas_codes, load_brevitas
    from zoo.datasets import design_inputs

    design = load_design(acc.package.manifest["design"])
    names = acc.input_names
    x = design_inputs(design, names, n, seed=seed, cache_dir=None)
    x = {k: np.ascontiguousarray(x[k], np.float32) for k in names}
    codes = {k: acc.inputs[k].to_codes(v) for k, v in x.items()}
    model = load_brevitas(acc.package, run_dir)
    xt = {k: torch.from_numpy(v) for k, v in x.items()}
    report.add("fresh:input-codes(host==brevitas)", codes, brevitas_input_codes(model, xt),
               "host float->code vs Brevitas input quantizer")
    y_ref = brevitas_float(model, xt, acc.output_names)
    exp_cpu = brevitas_codes(model, codes, device="cpu")
    cuda: dict[str, Any] = {"available": torch.cuda.is_available()}
    if cuda["available"]:
        exp_gpu = brevitas_codes(model, codes, device="cuda")
        report.add("fresh:brevitas-cuda==cpu", exp_gpu, exp_cpu,
                   f"Brevitas on {torch.cuda.get_device_name(0)} vs CPU")
        cuda["device"] = torch.cuda.get_device_name(0)
        cuda["mismatches"] = report.rows[-1]["failed"]
        model.cpu()
    got = acc.execute_codes(codes)
    report.add("fresh:codes", got, exp_cpu, f"{acc.backend.name} vs Brevitas CPU, seed {seed}")
    y = acc.execute(x)
    report.add("fresh:execute(float)", y, y_ref, "float in/out vs Brevitas float output (==)")
    return cuda


def verify(package: str | Path, backend: str = "auto", vectors: int = 20000, seed: int = 777,
           batch_size: int = 1024, expect_board: str | None = None,
           **backend_opts: Any) -> tuple[Report, dict[str, Any]]:
    """Run every check; returns the report and run facts (backend, timings, CUDA).

    ``expect_board``: refuse a package built for another board.
    """
    if vectors < 0 or batch_size < 1:
        raise ValueError(f"vectors {vectors} (>= 0) / batch_size {batch_size} (>= 1)")
    t0 = time.time()
    acc = Accelerator(package, backend, batch_size, expect_board=expect_board, **backend_opts)
    m = acc.package.manifest
    facts: dict[str, Any] = {"package": str(acc.package.root), "backend": acc.backend.name,
                             "artifacts_checked": len(acc.package.checked),
                             "contract_digest": acc.package.digest,
                             "design": m.get("design"), "board": m.get("board"),
                             "part": m.get("part"), "batch_size": batch_size}
    report = Report()
    try:
        golden_checks(acc, report)
        if vectors > 0:
            try:
                import torch  # noqa: F401
            except ImportError:
                facts["fresh"] = "skipped: torch not installed (board); golden vectors only"
            else:
                facts["cuda"] = fresh_checks(acc, report, vectors, seed,
                                             backend_opts.get("run_dir"))
    finally:
        acc.close()
    facts["wall_s"] = round(time.time() - t0, 1)
    return report, facts
