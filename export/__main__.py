"""Export a trained design: ``python -m export --design NAME --run runs/NAME``.

Writes into ``<run>/export/``:

* ``model_qonnx.onnx``: the QONNX model, integer-code graph inputs named as the contract;
* ``iospec.json``: the I/O spec (``contract.iospec``): named tensors, datatypes, scales or
  codebooks, host post-processing;
* ``golden.npz``: named golden input codes and the Brevitas CPU output codes;
* ``reference.json``: what the Brevitas reference is (checkpoint, hashes of the files
  above) and its own check: the exported QONNX executed on every golden vector gives the
  Brevitas codes. ``hw`` reads these files only; it never loads the checkpoint.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from configs import load_design
from export.golden import build_golden, channel_inputs
from export.qonnx_export import export_codes_model
from export.reference import write_reference
from zoo.checkpoint import load_trained


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--design", required=True)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--vectors", type=int, default=None,
                    help="channel-simulation vectors (default: the design's export.golden_vectors)")
    a = ap.parse_args()
    if a.vectors is not None and a.vectors < 1:
        ap.error(f"--vectors {a.vectors}: must be >= 1")
    design = load_design(a.design)
    model = load_trained(design, a.run)
    spec = model.iospec()
    out = a.run / "export"
    export_codes_model(model, out / "model_qonnx.onnx")
    n = a.vectors or design["export"]["golden_vectors"]
    x = channel_inputs(design, spec, n, seed=12345)
    golden = build_golden(model, x)
    np.savez_compressed(out / "golden.npz", **golden.to_npz())
    ref = write_reference(design, a.run, out)
    counts = {str(k): int((golden.sets == k).sum()) for k in np.unique(golden.sets)}
    print(f"exported {out / 'model_qonnx.onnx'} ({', '.join(spec.input_names)} -> "
          f"{', '.join(spec.output_names)}); golden vectors {counts}, exact ties "
          f"{int(golden.ties.sum())} in {int((golden.ties > 0).sum())} vectors")
    print("reference check: " + json.dumps(ref["checks"]))


if __name__ == "__main__":
    main()
