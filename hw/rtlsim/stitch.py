"""Stitch a package's layers into one top-level SystemVerilog module, without Vivado.

FINN stitches layers in Vivado IP integrator (CreateStitchedIP). We do the same wiring
in text: FINN's own InsertDWC and InsertFIFO transformations (RTL styles) decide where
width converters and FIFOs go, FINN generates their HDL from its templates, and the
top instantiates, in graph order, every layer wrapper, the memstream weight streamer
of each ``internal_decoupled`` MVAU, and the DWC/FIFO wrappers.

The top is ``finn_top`` with one AXI stream in (``s_axis_0``) and one out
(``m_axis_0``), byte-padded widths, like FINN's stitched IP.

FIFO depths (see :func:`fifo_depths`): the graph is a chain (checked; fan-out is
refused), so every handshake only waits on its successor and there is no cycle of
waits: no depth can deadlock. Depths are chosen for throughput: each layer's output
FIFO holds one whole output vector of that layer (at least 2 beats), so a producer
that emits in bursts never stalls a slower-but-steady consumer mid-vector. The
measured II is within 4% of FINN's max-cycles estimate (``make sim``: 100 vs 96 cycles
on pynq-z2, 194 vs 192 on zcu104, the bottleneck being MVAU_rtl_0 in both).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

STITCHED = "stitched"  # rtl/stitched/: the top, DWC/FIFO wrappers, patched library files
TOP = "finn_top"


def _pad8(bits: int) -> int:
    return (int(bits) + 7) // 8 * 8


def check_chain(model: ModelWrapper) -> None:
    """Refuse graphs that are not a single chain (fan-out needs deadlock analysis we don't do)."""
    for node in model.graph.node:
        for out in node.output:
            if len(model.find_consumers(out)) > 1:
                raise ValueError(f"{node.name}: fan-out is not supported by the stitcher")
    if len(model.graph.input) != 1 or len(model.graph.output) != 1:
        raise ValueError("the stitcher needs exactly one graph input and one graph output")


def fifo_depths(model: ModelWrapper) -> dict[str, int]:
    """Output FIFO depth per layer: one output vector in beats, at least 2 (module doc)."""
    depths = {}
    for node in model.graph.node:
        folded = getCustomOp(node).get_folded_output_shape()
        depths[node.name] = max(2, int(np.prod(folded[:-1])))
    return depths


def insert_dwc_fifo(model: ModelWrapper, fpgapart: str) -> ModelWrapper:
    """FINN's InsertDWC + InsertFIFO, specialized to their RTL variants."""
    from finn.transformation.fpgadataflow.insert_dwc import InsertDWC
    from finn.transformation.fpgadataflow.insert_fifo import InsertFIFO
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    check_chain(model)
    names = [n.name for n in model.graph.node]
    first = getCustomOp(model.graph.node[0])
    first.set_nodeattr("inFIFODepths", [max(2, int(np.prod(first.get_folded_input_shape()[:-1])))])
    for name, depth in fifo_depths(model).items():
        getCustomOp(model.get_node_from_name(name)).set_nodeattr("outFIFODepths", [depth])
    model = model.transform(InsertDWC())
    model = model.transform(InsertFIFO(create_shallow_fifos=True))
    for node in model.graph.node:
        inst = getCustomOp(node)
        if "preferred_impl_style" in inst.get_nodeattr_types() and node.name not in names:
            inst.set_nodeattr("preferred_impl_style", "rtl")
    model = model.transform(SpecializeLayers(fpgapart))
    # Unique names for the new nodes only: the layers keep theirs (their RTL is in rtl/<name>/).
    counts: dict[str, int] = {}
    for node in model.graph.node:
        if node.name in names:
            continue
        i = counts.get(node.op_type, 0)
        counts[node.op_type] = i + 1
        node.name = f"{node.op_type}_{i}"
    return model


def generate_glue_hdl(model: ModelWrapper, rtl_dir: Path, layers: list[str],
                      fpgapart: str, clk_ns: float) -> list[str]:
    """FINN's HDL for the inserted DWC/FIFO nodes into rtl/stitched/; returns their files."""
    from finn.util.settings import get_settings

    rtllib = Path(get_settings().finn_rtllib).resolve()
    out = rtl_dir / STITCHED
    files: list[str] = []
    for node in model.graph.node:
        if node.name in layers:
            continue
        inst = getCustomOp(node)
        gen = out / node.name
        gen.mkdir(parents=True, exist_ok=True)
        inst.set_nodeattr("code_gen_dir_ipgen", str(gen))
        inst.generate_hdl(model, fpgapart, clk_ns)
        for src in inst.get_rtl_file_list(abspath=True):
            src = Path(src).resolve()
            if src.is_relative_to(gen):
                rel = Path(STITCHED) / node.name / src.relative_to(gen)
            else:
                rel = Path(STITCHED) / "finn-rtllib" / src.relative_to(rtllib)
                (rtl_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, rtl_dir / rel)
            if str(rel) not in files:
                files.append(str(rel))
    return files


def _module_name(node: Any, rtl_dir: Path) -> str:
    inst = getCustomOp(node)
    if "gen_top_module" in inst.get_nodeattr_types() and inst.get_nodeattr("gen_top_module"):
        return inst.get_nodeattr("gen_top_module")
    return node.name


def _has_memstream(node: Any, rtl_dir: Path) -> bool:
    return (rtl_dir / node.name / f"{node.name}_memstream_wrapper.v").is_file()


def top_verilog(model: ModelWrapper, rtl_dir: Path, nodes: list[Any] | None = None) -> str:
    """The top module: every node in graph order, stream i -> stream i+1, weights from memstream.

    ``nodes`` (default: all) picks a sub-chain, e.g. one layer driven directly by the
    testbench with no FIFO in front of its output (the SIMD = MW overflow test).
    """
    nodes = list(model.graph.node) if nodes is None else nodes
    widths = [_pad8(getCustomOp(nodes[0]).get_instream_width())]
    widths += [_pad8(getCustomOp(n).get_outstream_width()) for n in nodes]
    lines = [
        "// Generated by hw.rtlsim.stitch from model_finn.onnx (+ FINN InsertDWC/InsertFIFO).",
        "// One AXI stream in, one out; the wiring FINN's CreateStitchedIP does in Vivado IPI.",
        f"module {TOP} (",
        "  input  wire ap_clk,",
        "  input  wire ap_rst_n,",
        f"  input  wire [{widths[0] - 1}:0] s_axis_0_tdata,",
        "  input  wire s_axis_0_tvalid,",
        "  output wire s_axis_0_tready,",
        f"  output wire [{widths[-1] - 1}:0] m_axis_0_tdata,",
        "  output wire m_axis_0_tvalid,",
        "  input  wire m_axis_0_tready",
        ");",
    ]
    for i, w in enumerate(widths):
        lines.append(f"  wire [{w - 1}:0] s{i}_tdata; wire s{i}_tvalid, s{i}_tready;")
    last = len(widths) - 1
    lines += [
        "  assign s0_tdata = s_axis_0_tdata; assign s0_tvalid = s_axis_0_tvalid;",
        "  assign s_axis_0_tready = s0_tready;",
        f"  assign m_axis_0_tdata = s{last}_tdata; assign m_axis_0_tvalid = s{last}_tvalid;",
        f"  assign s{last}_tready = m_axis_0_tready;",
    ]
    for i, node in enumerate(nodes):
        mod = _module_name(node, rtl_dir)
        ports = [".ap_clk(ap_clk)", ".ap_rst_n(ap_rst_n)",
                 f".in0_V_TDATA(s{i}_tdata)", f".in0_V_TVALID(s{i}_tvalid)",
                 f".in0_V_TREADY(s{i}_tready)",
                 f".out0_V_TDATA(s{i + 1}_tdata)", f".out0_V_TVALID(s{i + 1}_tvalid)",
                 f".out0_V_TREADY(s{i + 1}_tready)"]
        if node.op_type.startswith("MVAU"):
            ports.append(".ap_clk2x(ap_clk)")
        if node.op_type.startswith("Thresholding"):
            ports += _tie_axilite(prot=False) + [".in1_V_TVALID(1'b0)", ".in1_V_TDATA('0)",
                                       ".in1_V_TREADY()"]
        if node.op_type.startswith("StreamingFIFO"):
            ports += [".count()", ".maxcount()"]
        if _has_memstream(node, rtl_dir):
            ww = _pad8(getCustomOp(node).get_instream_width(1))
            lines += [f"  wire [{ww - 1}:0] {node.name}_w_tdata;",
                      f"  wire {node.name}_w_tvalid, {node.name}_w_tready;",
                      f"  {node.name}_memstream_wrapper {node.name}_memstream (",
                      "    .ap_clk(ap_clk), .ap_clk2x(ap_clk), .ap_rst_n(ap_rst_n),",
                      "    " + ", ".join(_tie_axilite()) + ",",
                      "    .s_axis_0_tready(), .s_axis_0_tvalid(1'b0), .s_axis_0_tdata('0),",
                      f"    .m_axis_0_tready({node.name}_w_tready),"
                      f" .m_axis_0_tvalid({node.name}_w_tvalid),"
                      f" .m_axis_0_tdata({node.name}_w_tdata)",
                      "  );"]
            ports += [f".in1_V_TDATA({node.name}_w_tdata)", f".in1_V_TVALID({node.name}_w_tvalid)",
                      f".in1_V_TREADY({node.name}_w_tready)"]
        lines.append(f"  {mod} {node.name}_inst (")
        lines.append("    " + ",\n    ".join(ports))
        lines.append("  );")
    lines.append(f"endmodule // {TOP}")
    return "\n".join(lines) + "\n"


def _tie_axilite(prot: bool = True) -> list[str]:
    """AXI-lite ports of a wrapper, tied off (parameters come from the .dat files)."""
    ins = ["AWVALID", "AWADDR", "WVALID", "WDATA", "WSTRB", "BREADY", "ARVALID", "ARADDR",
           "RREADY"] + (["AWPROT", "ARPROT"] if prot else [])
    outs = ["AWREADY", "WREADY", "BVALID", "BRESP", "ARREADY", "RVALID", "RRESP", "RDATA"]
    return [f".s_axilite_{p}('0)" for p in ins] + [f".s_axilite_{p}()" for p in outs]


def stitch(pkg: Path, fpgapart: str, clock_mhz: float) -> dict[str, Any]:
    """Write rtl/stitched/ (top, DWC/FIFO HDL) for the package; returns what was stitched."""
    rtl_dir = pkg / "rtl"
    if (rtl_dir / STITCHED).exists():
        shutil.rmtree(rtl_dir / STITCHED)
    model = ModelWrapper(str(pkg / "model_finn.onnx"))
    layers = [n.name for n in model.graph.node]
    model = insert_dwc_fifo(model, fpgapart)
    glue = generate_glue_hdl(model, rtl_dir, layers, fpgapart, 1000.0 / clock_mhz)
    top = rtl_dir / STITCHED / f"{TOP}.sv"
    top.write_text(top_verilog(model, rtl_dir))
    first, last = getCustomOp(model.graph.node[0]), getCustomOp(model.graph.node[-1])
    return {
        "top": TOP,
        "glue_files": glue,
        "nodes": [{"name": n.name, "op_type": n.op_type,
                   **({"depth": int(getCustomOp(n).get_nodeattr("depth"))}
                      if n.op_type.startswith("StreamingFIFO") else {})}
                  for n in model.graph.node],
        "in_width": _pad8(first.get_instream_width()),
        "out_width": _pad8(last.get_outstream_width()),
        "fifo_depth_rule": "one output vector of the producer in beats, >= 2; chain => no deadlock",
    }
