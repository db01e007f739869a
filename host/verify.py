"""``python -m host verify PACKAGE``: bit-exactness of a backend on golden and fresh vectors.

Sets checked (a vector passes when every output code is equal, ``==`` on integers):

* ``golden:<set>``: the package's golden.npz (channel, ties, extremes), expected = the
  Brevitas CPU codes stored at export;
* ``fresh``: new channel-simulation vectors (phy, seed ``--seed``), quantized by the
  host's float->code rule; expected = the Brevitas model on the CPU, and on CUDA when
  available (CUDA codes must equal CPU codes, checked); also checked: the host's input
  codes equal Brevitas' own input quantizer's, and ``execute(x)`` (float in/out) equals
  the Brevitas float output exactly.

Fresh vectors need torch and phy (development side); on a board only golden vectors run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from host.codec import float_to_codes
from host.driver import Accelerator


@dataclass
class Report:
    """Per-check rows and the totals printed as ``N passed, M failed``."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, check: str, got: np.ndarray, expected: np.ndarray, note: str = "") -> None:
        if got.shape != expected.shape:
            raise AssertionError(f"{check}: shape {got.shape} != expected {expected.shape}")
        bad = np.any(got.reshape(len(got), -1) != expected.reshape(len(expected), -1), axis=1)
        self.rows.append({"check": check, "vectors": int(len(got)), "failed": int(bad.sum()),
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
    """Every set of golden.npz through the accelerator."""
    g = np.load(acc.package.path("golden.npz"))
    inputs, outputs = g["inputs"].astype(np.int64), g["outputs"].astype(np.int64)
    got = acc.execute_codes(inputs)
    sets = g["set"] if "set" in g.files else np.full(len(inputs), "all")
    for name in dict.fromkeys(sets.tolist()):
        sel = sets == name
        report.add(f"golden:{name}", got[sel], outputs[sel], "vs Brevitas CPU (export)")


def fresh_checks(acc: Accelerator, report: Report, n: int, seed: int,
                 run_dir: Path | None = None) -> dict[str, Any]:
    """Fresh channel-simulation vectors; expected codes from Brevitas on CPU (and CUDA)."""
    import torch

    from configs import load_design
    from export.golden import reference_codes
    from host.backends.reference import load_brevitas
    from train.data import design_features

    design = load_design(acc.package.manifest["design"])
    x = design_features(design, n, seed=seed, cache_dir=None)
    codes = float_to_codes(x, acc.input)
    model = load_brevitas(acc.package, run_dir)
    with torch.no_grad():
        brevitas_in = model.input_quant(torch.from_numpy(x)).int().numpy().astype(np.int64)
        y_ref = model(torch.from_numpy(x)).numpy()
    report.add("fresh:input-codes(host==brevitas)", codes, brevitas_in,
               "host float->code vs Brevitas input quantizer")
    exp_cpu = reference_codes(model, codes, device="cpu")
    cuda: dict[str, Any] = {"available": torch.cuda.is_available()}
    if cuda["available"]:
        exp_gpu = reference_codes(model, codes, device="cuda")
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
                facts["fresh"] = "skipped: torch/phy not installed (board); golden vectors only"
            else:
                facts["cuda"] = fresh_checks(acc, report, vectors, seed)
    finally:
        acc.close()
    facts["wall_s"] = round(time.time() - t0, 1)
    return report, facts
