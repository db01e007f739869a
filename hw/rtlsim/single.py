"""One layer of a package as its own top, driven directly by the testbench.

Inside the stitched top every MVAU feeds an output FIFO, which passes back-pressure on
only once it is full, so the MVAU's own output queue is hardly ever stressed. Here the
testbench's random ready goes straight to the layer's output. This is how the
"Overflowing output queue" of finn-rtllib ``mvu_vvu_axi.sv`` with SIMD = MW is
reproduced (FINN's RTL as generated) and shown fixed (patch
``mvu-output-queue-lock-latency``): tests/test_rtlsim_simd_mw.py.

The expected output of an MVAU layer is its integer matrix product ``x @ W`` (the
MVAU_rtl layers carry no thresholds: standalone Thresholding layers follow them).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from hw.rtlsim import patches, stitch, verilate


def layer_io(node: Any) -> dict[str, Any]:
    """The io contract (hw.rtlsim.verilate's packing) of one layer's two streams."""
    inst = getCustomOp(node)
    return {
        "inputs": [{"name": "in0", "datatype": inst.get_input_datatype().name,
                    "folded_shape": list(inst.get_folded_input_shape()),
                    "stream_width_bits": int(inst.get_instream_width())}],
        "outputs": [{"name": "out0", "datatype": inst.get_output_datatype().name,
                     "folded_shape": list(inst.get_folded_output_shape()),
                     "stream_width_bits": int(inst.get_outstream_width())}],
    }


def mvau_expected(model: ModelWrapper, node: Any, inputs: np.ndarray) -> np.ndarray:
    """Exact integer output of an MVAU layer: inputs @ W (int64)."""
    w = model.get_initializer(node.input[1]).astype(np.int64)
    return inputs.astype(np.int64) @ w


def build_layer(pkg: Path, layer: str, work: Path, skip_patches: tuple[str, ...] = ()
                ) -> dict[str, Any]:
    """Copy the package RTL to ``work``, write a top with only ``layer``, patch, verilate."""
    model = ModelWrapper(str(pkg / "model_finn.onnx"))
    node = model.get_node_from_name(layer)
    rtl = work / "rtl"
    if rtl.exists():
        shutil.rmtree(rtl)
    shutil.copytree(pkg / "rtl", rtl, ignore=shutil.ignore_patterns(stitch.STITCHED))
    (rtl / stitch.STITCHED).mkdir()
    stitch.write_top(model, rtl, nodes=[node], contract_names=(["in0"], ["out0"]))
    recs = patches.apply_patches(rtl, rtl / stitch.STITCHED, skip=skip_patches)
    files = verilate.stitched_filelist(rtl, [])
    build = verilate.build(rtl, files, work)
    return {"binary": build["binary"], "rtl": rtl, "io": layer_io(node), "model": model,
            "node": node, "patches": [r["name"] for r in recs]}


def simulate_layer(built: dict[str, Any], inputs: np.ndarray, expected: np.ndarray,
                   work: Path, seed: int, p_valid: float, p_ready: float) -> dict[str, Any]:
    """Drive ``inputs`` through the one-layer top; exact comparison with ``expected``."""
    r = verilate.simulate(built["binary"], built["rtl"], built["io"], inputs, work, seed,
                          p_valid, p_ready)
    return {**verilate.compare_codes(r["codes"], expected), "rc": r["rc"],
            "overflow_error": "Overflowing output queue" in r["log"], "log": r["log"][-1500:]}
