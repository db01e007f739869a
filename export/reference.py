"""The reference export: the one documented way for later stages to reach the Brevitas
model and its float twin.

``hw`` never loads a checkpoint: it reads ``reference.json`` (written here at export)
for the ``brevitas_cpu`` row of its verification table. ``host`` reaches the Brevitas
network (``host verify``'s fresh vectors, the ``reference`` backend, ``host bench``)
only through :func:`load_brevitas` and :func:`load_float_twin` below, by the package's
design name and a run folder; the import-rule test allows exactly that path
(``host/backends/reference.py``, ``host/verify.py``, ``host/bench.py`` -> this module).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from configs import REPO_ROOT, load_design
from contract.export_files import EXPORTED, GOLDEN, REFERENCE, sha256_file
from contract.iospec import Golden
from export.golden import reference_codes
from zoo.checkpoint import load_trained
from zoo.registry import float_twin


def write_reference(design: dict[str, Any], run: Path, export_dir: Path) -> dict[str, Any]:
    """Check the Brevitas model against the golden codes again and write reference.json."""
    model = load_trained(design, run)
    golden = Golden.load(export_dir / GOLDEN)
    again = reference_codes(model, golden.inputs)
    bad = np.zeros(len(golden), bool)
    for name, codes in golden.outputs.items():
        bad |= np.any(again[name] != codes, axis=1)
    run_name = (str(run.resolve().relative_to(REPO_ROOT))
                if run.resolve().is_relative_to(REPO_ROOT) else run.name)
    ref = {"design": design["name"], "run": run_name,
           "checkpoint_sha256": sha256_file(run / "checkpoint.pt"),
           "files": {f: sha256_file(export_dir / f) for f in EXPORTED},
           "checks": {"brevitas_cpu": {"vectors": int(len(golden)),
                                       "mismatches": int(bad.sum())}}}
    (export_dir / REFERENCE).write_text(json.dumps(ref, indent=1) + "\n")
    return ref


def load_brevitas(design_name: str, run_dir: str | Path | None = None) -> nn.Module:
    """The trained Brevitas network of a design (eval, CPU); run folder default runs/<name>."""
    design = load_design(design_name)
    return load_trained(design, Path(run_dir) if run_dir else REPO_ROOT / "runs" / design_name)


def load_float_twin(design_name: str, run_dir: str | Path | None = None) -> nn.Module:
    """The float twin (same topology, float weights, no quantizers) of a trained design."""
    design = load_design(design_name)
    return float_twin(design, load_brevitas(design_name, run_dir))
