"""Export a trained design: ``python -m export --design NAME --run runs/NAME``.

Writes ``<run>/export/model_qonnx.onnx`` (integer-code input) and ``<run>/export/golden.npz``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from configs import load_design
from export.golden import build_golden
from export.qonnx_export import export_codes_model
from train.checkpoint import load_trained
from train.data import design_features


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--design", required=True)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--vectors", type=int, default=None,
                    help="channel-simulation vectors (default: the design's export.golden_vectors)")
    a = ap.parse_args()
    design = load_design(a.design)
    model = load_trained(design, a.run)
    out = a.run / "export"
    export_codes_model(model, design["model"]["in_features"], out / "model_qonnx.onnx")
    n = a.vectors or design["export"]["golden_vectors"]
    x = design_features(design, n, seed=12345)
    golden = build_golden(model, x, design["model"]["input_quant"]["bits"])
    np.savez_compressed(out / "golden.npz", **golden)
    counts = {str(k): int((golden["set"] == k).sum()) for k in np.unique(golden["set"])}
    print(f"exported {out / 'model_qonnx.onnx'}; golden vectors {counts}, "
          f"exact ties {int(golden['ties'].sum())} in {int((golden['ties'] > 0).sum())} vectors")


if __name__ == "__main__":
    main()
