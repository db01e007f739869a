"""Stitch a graph of FINN HW layers into one top-level SystemVerilog module, without Vivado.

FINN stitches layers in Vivado IP integrator (CreateStitchedIP); that needs Vivado, so we
do the same wiring in text. Every node's streams come from its
``get_verilog_top_module_intf_names()`` (``<intf>_TDATA/_TVALID/_TREADY`` for each
``s_axis`` / ``m_axis`` entry, the i-th ``s_axis`` entry being the node's i-th
non-initializer input and the i-th ``m_axis`` entry its i-th output), as CreateStitchedIP
connects them. Tensors are edges: a wire bundle per tensor. ``internal_decoupled`` MVAUs
get their memstream weight streamer; AXI-lite and every other input port of a wrapper
(found by reading the wrapper's port list) are tied to zero, other outputs left open.

The top ``finn_top`` has one AXI stream port per graph input (``s_axis_0``, ``s_axis_1``,
...) and per graph output (``m_axis_0``, ...), in the I/O contract's order
(:func:`hw.steps.contract_io_names`), byte-padded widths, like FINN's stitched IP. The
contract name of each port is recorded (``ports`` of :func:`stitch`'s result, and the
generated testbench header ``tb_streams.h``).

Glue (width converters, FIFOs):

* a **chain** (one input, one output, no fan-out) goes through FINN's own InsertDWC and
  InsertFIFO, as before: the results of ``make sim`` on the chain designs do not change;
* any **other graph** gets FINN's InsertDWC (it indexes multi-input/multi-output nodes
  correctly) and our :func:`insert_fifos`, because FINN's InsertFIFO (finn-plus 1.6.1)
  breaks on multi-output nodes: for an internal edge it takes the FIFO's folded shape,
  normal shape and datatype from the producer's output 0 whatever the output index
  (``get_folded_output_shape()`` with no index, insert_fifo.py:126/155), so a
  StreamingSplit with unequal outputs raises "Folded output shape ... is not the same",
  and a FIFO on a graph input that feeds input 1 of a join indexes ``inFIFODepths``
  without the clamp it uses for internal edges (IndexError for a one-entry list).

FIFO depths. Default (:func:`fifo_depths`): each layer's output FIFO holds one whole
output vector of that layer (at least 2 beats), the graph-input FIFO one input vector,
the FIFO after a width converter 2. In a chain, or in disconnected chains, every
handshake waits only on its successor and there is no cycle of waits, so no depth can
deadlock and the depths are chosen for throughput: a producer that emits in bursts never
stalls a slower-but-steady consumer mid-vector (the measured II is within 4% of FINN's
max-cycles estimate, ``make sim``: 100 vs 96 cycles on pynq-z2). A fork that joins again
(reconvergent paths, :func:`reconvergent_fifos`) can deadlock when the short path's FIFO
cannot hold what the fork emits before the join drains it: those depths are sized by
simulation (:mod:`hw.rtlsim.fifo_sizing`) and passed as ``depths`` overrides.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from onnx import helper as oh
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

STITCHED = "stitched"  # rtl/stitched/: the top, DWC/FIFO wrappers, patched library files
TOP = "finn_top"
HEADER = "tb_streams.h"  # generated testbench header (hw.rtlsim.tbgen), beside the top
PORTS = "ports.json"  # the top's streams and FIFOs, beside the top


def _pad8(bits: int) -> int:
    return (int(bits) + 7) // 8 * 8


# ------------------------------------------------------------------ graph structure
def stream_inputs(model: ModelWrapper, node: Any) -> list[str]:
    """The node's streamed input tensors (initializers, e.g. weights and thresholds, and
    empty names left out), in input order: the i-th pairs with the i-th ``s_axis``."""
    return [t for t in node.input if t and model.get_initializer(t) is None]


def is_chain(model: ModelWrapper) -> bool:
    """One graph input, one graph output, every node one streamed input and one output,
    every tensor at most one consumer."""
    if len(model.graph.input) != 1 or len(model.graph.output) != 1:
        return False
    for node in model.graph.node:
        if len(node.output) != 1 or len(stream_inputs(model, node)) != 1:
            return False
        if len(model.find_consumers(node.output[0])) > 1:
            return False
    return True


def check_chain(model: ModelWrapper) -> None:
    """Raise unless the graph is a single chain (:func:`is_chain`)."""
    for node in model.graph.node:
        for out in node.output:
            if len(model.find_consumers(out)) > 1:
                raise ValueError(f"{node.name}: fan-out is not a chain")
    if not is_chain(model):
        raise ValueError("not a chain: exactly one graph input and one graph output, and "
                         "one streamed input and output per node, are needed")


def check_dag(model: ModelWrapper) -> None:
    """Every tensor has at most one consumer: HW fan-out is a node (DuplicateStreams),
    not a wire (an AXI stream cannot be handshaken by two consumers)."""
    for name in [i.name for i in model.graph.input] + [t for n in model.graph.node
                                                       for t in n.output]:
        cons = model.find_consumers(name)
        if len(cons) > 1:
            raise ValueError(f"tensor {name!r} feeds {[c.name for c in cons]}: a stream "
                             "has one consumer; fork it with DuplicateStreams_rtl")


def reconvergent_fifos(model: ModelWrapper) -> list[str]:
    """FIFO nodes on a path from a fork (a node with several stream outputs) to a join (a
    node with several stream inputs) that the fork reaches: where a too-shallow FIFO can
    deadlock. (A node list after :func:`insert_fifos`.)"""
    nodes = {n.name: n for n in model.graph.node}
    succ: dict[str, set[str]] = {k: set() for k in nodes}
    for n in model.graph.node:
        for t in n.output:
            for c in model.find_consumers(t):
                succ[n.name].add(c.name)

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for s in succ[todo.pop()]:
                if s not in seen:
                    seen.add(s)
                    todo.append(s)
        return seen

    reach_of = {k: reach(k) for k in nodes}
    forks = [k for k, n in nodes.items() if len([t for t in n.output
                                                  if model.find_consumers(t)]) > 1]
    joins = {k for k, n in nodes.items() if len(stream_inputs(model, n)) > 1}
    out = []
    for name, n in nodes.items():
        if not n.op_type.startswith("StreamingFIFO"):
            continue
        for f in forks:
            if name in reach_of[f] and any(j in reach_of[f] and (j in reach_of[name])
                                           for j in joins):
                out.append(name)
                break
    return out


# ------------------------------------------------------------------ glue insertion
def fifo_depths(model: ModelWrapper) -> dict[str, int]:
    """Output FIFO depth per layer: one output vector in beats, at least 2 (module doc)."""
    depths = {}
    for node in model.graph.node:
        folded = getCustomOp(node).get_folded_output_shape()
        depths[node.name] = max(2, int(np.prod(folded[:-1])))
    return depths


def _specialize_new(model: ModelWrapper, layers: list[str], fpgapart: str) -> ModelWrapper:
    """RTL variants for the inserted glue; unique names for the new nodes only (the
    layers keep theirs: their RTL is in rtl/<name>/)."""
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    # SpecializeLayers ends with GiveUniqueNodeNames, which renames every node by its
    # position in the graph: in a DAG whose node order differs from its name order that
    # swaps layer names (MVAU_rtl_1 <-> MVAU_rtl_2) away from their rtl/<name>/ folders
    # and memstream wrappers. The layers' names are restored by their output tensors.
    keep = {tuple(n.output): n.name for n in model.graph.node if n.name in layers}
    for node in model.graph.node:
        inst = getCustomOp(node)
        if "preferred_impl_style" in inst.get_nodeattr_types() and node.name not in layers:
            inst.set_nodeattr("preferred_impl_style", "rtl")
    model = model.transform(SpecializeLayers(fpgapart))
    for node in model.graph.node:
        if tuple(node.output) in keep:
            node.name = keep[tuple(node.output)]
    counts: dict[str, int] = {}
    for node in model.graph.node:
        if node.name in layers:
            continue
        i = counts.get(node.op_type, 0)
        counts[node.op_type] = i + 1
        node.name = f"{node.op_type}_{i}"
    return model


def insert_dwc_fifo(model: ModelWrapper, fpgapart: str,
                    depths: dict[str, int] | None = None) -> ModelWrapper:
    """Width converters and FIFOs, RTL variants (module doc: FINN's for a chain, FINN's
    InsertDWC + our :func:`insert_fifos` otherwise). ``depths``: FIFO name -> depth
    overrides (names as this function assigns them: ``StreamingFIFO_rtl_<i>``)."""
    from finn.transformation.fpgadataflow.insert_dwc import InsertDWC
    from finn.transformation.fpgadataflow.insert_fifo import InsertFIFO

    layers = [n.name for n in model.graph.node]
    if is_chain(model) and not depths:
        first = getCustomOp(model.graph.node[0])
        first.set_nodeattr("inFIFODepths",
                           [max(2, int(np.prod(first.get_folded_input_shape()[:-1])))])
        for name, depth in fifo_depths(model).items():
            getCustomOp(model.get_node_from_name(name)).set_nodeattr("outFIFODepths", [depth])
        model = model.transform(InsertDWC())
        model = model.transform(InsertFIFO(create_shallow_fifos=True))
        return _specialize_new(model, layers, fpgapart)
    check_dag(model)
    model = model.transform(InsertDWC())
    model = _specialize_new(model, layers, fpgapart)  # DWC names settle before the FIFOs
    model = insert_fifos(model, layers)
    model = _specialize_new(model, [n.name for n in model.graph.node
                                    if not n.op_type == "StreamingFIFO"], fpgapart)
    for name, d in (depths or {}).items():
        node = model.get_node_from_name(name)
        if node is None:
            raise KeyError(f"depth override for {name!r}: no such FIFO; FIFOs are "
                           f"{[n.name for n in model.graph.node if 'FIFO' in n.op_type]}")
        if int(d) < 2:
            raise ValueError(f"{name}: depth {d} < 2 (finn-rtllib fifo.sv needs >= 2)")
        getCustomOp(node).set_nodeattr("depth", int(d))
    return model


def insert_fifos(model: ModelWrapper, layers: list[str]) -> ModelWrapper:
    """A StreamingFIFO on every stream edge, every graph input and every graph output
    (multi-input/-output nodes indexed properly; see the module doc for why not FINN's
    InsertFIFO). Depth: one vector of the producing layer (graph input: of the consuming
    node), 2 after a width converter."""
    graph = model.graph
    new_nodes: list[Any] = []

    def fifo(src: str, dst: str, inst: Any, idx: int, out_side: bool, depth: int) -> Any:
        folded = (inst.get_folded_output_shape(idx) if out_side
                  else inst.get_folded_input_shape(idx))
        normal = (inst.get_normal_output_shape(idx) if out_side
                  else inst.get_normal_input_shape(idx))
        dtype = inst.get_output_datatype(idx) if out_side else inst.get_input_datatype(idx)
        return oh.make_node("StreamingFIFO", [src], [dst],
                            domain="finn.custom_op.fpgadataflow", backend="fpgadataflow",
                            depth=int(depth), folded_shape=[int(x) for x in folded],
                            normal_shape=[int(x) for x in normal], dataType=dtype.name,
                            ram_style="auto")

    def new_tensor(like: str) -> str:
        name = model.make_new_valueinfo_name()
        model.set_tensor_shape(name, model.get_tensor_shape(like))
        model.set_tensor_datatype(name, model.get_tensor_datatype(like))
        return name

    graph_outs = {o.name for o in graph.output}
    for g in [i.name for i in graph.input]:
        cons = model.find_consumer(g)
        if cons is None:
            continue
        inst = getCustomOp(cons)
        idx = stream_inputs(model, cons).index(g)
        t = new_tensor(g)
        depth = max(2, int(np.prod(inst.get_folded_input_shape(idx)[:-1])))
        new_nodes.append(fifo(g, t, inst, idx, False, depth))
        cons.input[list(cons.input).index(g)] = t
    for node in list(graph.node):
        inst = getCustomOp(node)
        beats = [max(2, int(np.prod(inst.get_folded_output_shape(i)[:-1])))
                 for i in range(len(node.output))]
        for i, out in enumerate(list(node.output)):
            depth = beats[i] if node.name in layers else 2
            if out in graph_outs:
                t = new_tensor(out)
                node.output[i] = t
                new_nodes.append(fifo(t, out, inst, i, True, depth))
                continue
            cons = model.find_consumer(out)
            if cons is None:
                continue
            t = new_tensor(out)
            new_nodes.append(fifo(out, t, inst, i, True, depth))
            for k, x in enumerate(cons.input):
                if x == out:
                    cons.input[k] = t
    graph.node.extend(new_nodes)
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


# ------------------------------------------------------------------ the top module
@dataclass
class StreamPort:
    """One AXI stream of the top: ``port`` (s_axis_i / m_axis_i), the contract ``name``,
    FINN's ``tensor``, the padded ``width`` in bits and the ``node`` it attaches to."""

    port: str
    name: str
    tensor: str
    width: int
    node: str


@dataclass
class TopInfo:
    """What :func:`top_verilog` built: streams in port order, FIFOs (name, depth, edge)."""

    inputs: list[StreamPort] = field(default_factory=list)
    outputs: list[StreamPort] = field(default_factory=list)
    fifos: list[dict[str, Any]] = field(default_factory=list)
    monitor: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"inputs": [asdict(p) for p in self.inputs],
                "outputs": [asdict(p) for p in self.outputs],
                "fifos": self.fifos, "monitor": self.monitor}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TopInfo:
        return cls([StreamPort(**p) for p in d["inputs"]],
                   [StreamPort(**p) for p in d["outputs"]], list(d["fifos"]),
                   bool(d.get("monitor", False)))


def _module_name(node: Any, rtl_dir: Path | None = None) -> str:
    inst = getCustomOp(node)
    if "gen_top_module" in inst.get_nodeattr_types() and inst.get_nodeattr("gen_top_module"):
        return inst.get_nodeattr("gen_top_module")
    return node.name


def _has_memstream(node: Any, rtl_dir: Path) -> bool:
    return (rtl_dir / node.name / f"{node.name}_memstream_wrapper.v").is_file()


_PORT_RE = re.compile(r"^\s*(?:\(\*.*?\*\)\s*)*(input|output|inout)\b(.*)$")


def module_ports(rtl_dir: Path, node: Any, module: str) -> dict[str, str] | None:
    """``{port: direction}`` of the node's wrapper module, read from its HDL (rtl/<node>/
    or rtl/stitched/<node>/); None where the file is not found."""
    for folder in (rtl_dir / node.name, rtl_dir / STITCHED / node.name):
        for f in sorted(folder.glob("*.*v")) if folder.is_dir() else []:
            text = f.read_text(errors="replace")
            m = re.search(rf"^\s*module\s+{re.escape(module)}\b(.*?)\);", text, re.M | re.S)
            if not m:
                continue
            body = re.sub(r"//[^\n]*", "", m.group(1))
            body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
            ports: dict[str, str] = {}
            for line in body.replace(",", ",\n").splitlines():
                pm = _PORT_RE.match(line)
                if pm:
                    rest = re.sub(r"\[[^\]]*\]", " ", pm.group(2))
                    names = re.findall(r"[A-Za-z_]\w*", rest)
                    names = [x for x in names if x not in ("wire", "reg", "logic", "signed",
                                                           "unsigned")]
                    if names:
                        ports[names[-1]] = pm.group(1)
            return ports
    return None


def _tie_axilite(prot: bool = True) -> list[str]:
    """AXI-lite ports of a wrapper, tied off (parameters come from the .dat files)."""
    ins = ["AWVALID", "AWADDR", "WVALID", "WDATA", "WSTRB", "BREADY", "ARVALID", "ARADDR",
           "RREADY"] + (["AWPROT", "ARPROT"] if prot else [])
    outs = ["AWREADY", "WREADY", "BVALID", "BRESP", "ARREADY", "RVALID", "RRESP", "RDATA"]
    return [f".s_axilite_{p}('0)" for p in ins] + [f".s_axilite_{p}()" for p in outs]


def _top_io(model: ModelWrapper, nodes: list[Any],
            io_names: tuple[Sequence[str], Sequence[str]] | None
            ) -> tuple[list[str], list[str]]:
    """Tensors entering / leaving the node set, in contract order when given."""
    produced = {t for n in nodes for t in n.output}
    consumed = {t for n in nodes for t in stream_inputs(model, n)}
    g_out = {o.name for o in model.graph.output}
    ins = [t for n in nodes for t in stream_inputs(model, n) if t not in produced]
    outs = [t for n in nodes for t in n.output if t not in consumed or t in g_out]
    if io_names is not None:
        want_in, want_out = list(io_names[0]), list(io_names[1])
        if sorted(want_in) != sorted(ins) or sorted(want_out) != sorted(outs):
            raise ValueError(f"top streams {ins} -> {outs} are not the contract's "
                             f"{want_in} -> {want_out}")
        ins, outs = want_in, want_out
    return list(dict.fromkeys(ins)), list(dict.fromkeys(outs))


def top_verilog(model: ModelWrapper, rtl_dir: Path, nodes: list[Any] | None = None,
                io_names: tuple[Sequence[str], Sequence[str]] | None = None,
                contract_names: tuple[Sequence[str], Sequence[str]] | None = None,
                monitor: bool = False) -> str:
    """The top module text (see :func:`build_top`, which also returns the stream info)."""
    return build_top(model, rtl_dir, nodes, io_names, contract_names, monitor)[0]


def build_top(model: ModelWrapper, rtl_dir: Path, nodes: list[Any] | None = None,
              io_names: tuple[Sequence[str], Sequence[str]] | None = None,
              contract_names: tuple[Sequence[str], Sequence[str]] | None = None,
              monitor: bool = False) -> tuple[str, TopInfo]:
    """The top module: every node, one wire bundle per tensor, weights from memstream.

    ``nodes`` (default: all) picks a sub-graph, e.g. one layer driven directly by the
    testbench with no FIFO in front of its output (the SIMD = MW overflow test).
    ``io_names``: FINN tensor names of the top's inputs/outputs in port order (default:
    order of appearance); ``contract_names``: the contract's names for them (default: the
    tensor names). ``monitor``: each FIFO's ``count``/``maxcount`` become top outputs
    ``<fifo>_count``/``<fifo>_maxcount`` (32 bit) for the testbench's stall report and
    FIFO sizing.
    """
    nodes = list(model.graph.node) if nodes is None else nodes
    ins, outs = _top_io(model, nodes, io_names)
    cnames = contract_names or (ins, outs)
    wires: dict[str, int] = {}  # tensor -> padded width
    for n in nodes:
        intf = getCustomOp(n).get_verilog_top_module_intf_names()
        s_in = stream_inputs(model, n)
        if len(intf["s_axis"]) != len(s_in) or len(intf["m_axis"]) != len(n.output):
            raise ValueError(f"{n.name}: interface {intf['s_axis']} -> {intf['m_axis']} "
                             f"does not pair with streamed inputs {s_in} -> outputs "
                             f"{list(n.output)}")
        for (_, w), t in zip(intf["s_axis"] + intf["m_axis"], s_in + list(n.output),
                             strict=True):
            w = _pad8(w)
            if wires.setdefault(t, w) != w:
                raise ValueError(f"tensor {t}: stream widths {wires[t]} and {w} differ "
                                 "(a width converter is missing)")
    info = TopInfo(monitor=monitor)
    consumer = {t: n.name for n in nodes for t in stream_inputs(model, n)}
    producer = {t: n.name for n in nodes for t in n.output}
    for i, t in enumerate(ins):
        info.inputs.append(StreamPort(f"s_axis_{i}", str(cnames[0][i]), t, wires[t],
                                      consumer[t]))
    for i, t in enumerate(outs):
        info.outputs.append(StreamPort(f"m_axis_{i}", str(cnames[1][i]), t, wires[t],
                                       producer[t]))
    wid = {t: k for k, t in enumerate(wires)}
    lines = [
        "// Generated by hw.rtlsim.stitch from the FINN model (+ FINN InsertDWC, FIFOs).",
        "// One AXI stream per graph input/output; the wiring FINN's CreateStitchedIP does in",
        "// Vivado IPI. Streams: " + ", ".join(f"{p.port}={p.name}" for p in
                                                 info.inputs + info.outputs),
        f"module {TOP} (",
        "  input  wire ap_clk,",
        "  input  wire ap_rst_n,",
    ]
    decl = []
    for p in info.inputs:
        decl += [f"  input  wire [{p.width - 1}:0] {p.port}_tdata",
                 f"  input  wire {p.port}_tvalid", f"  output wire {p.port}_tready"]
    for p in info.outputs:
        decl += [f"  output wire [{p.width - 1}:0] {p.port}_tdata",
                 f"  output wire {p.port}_tvalid", f"  input  wire {p.port}_tready"]
    fifos = [n for n in nodes if n.op_type.startswith("StreamingFIFO")]
    if monitor:
        for f in fifos:
            decl += [f"  output wire [31:0] {f.name}_count",
                     f"  output wire [31:0] {f.name}_maxcount"]
    lines.append(",\n".join(decl))
    lines.append(");")
    for t, k in wid.items():
        # The edge by its (deterministically named) endpoints, not by tensor name: FINN's
        # InsertDWC/InsertFIFO name new tensors at random, and two clean builds of one
        # package must give the same top, byte for byte.
        prod = model.find_producer(t)
        cons = [c.name for c in model.find_consumers(t) or []]
        lines.append(f"  wire [{wires[t] - 1}:0] s{k}_tdata; wire s{k}_tvalid, s{k}_tready;"
                     f"  // {prod.name if prod else 'input'} -> {', '.join(cons) or 'output'}")
    for p in info.inputs:
        k = wid[p.tensor]
        lines += [f"  assign s{k}_tdata = {p.port}_tdata; assign s{k}_tvalid = {p.port}_tvalid;",
                  f"  assign {p.port}_tready = s{k}_tready;"]
    for p in info.outputs:
        k = wid[p.tensor]
        lines += [f"  assign {p.port}_tdata = s{k}_tdata; assign {p.port}_tvalid = s{k}_tvalid;",
                  f"  assign s{k}_tready = {p.port}_tready;"]
    for node in nodes:
        inst = getCustomOp(node)
        mod = _module_name(node, rtl_dir)
        intf = inst.get_verilog_top_module_intf_names()
        have = module_ports(rtl_dir, node, mod)
        conn: dict[str, str] = {"ap_clk": "ap_clk", "ap_rst_n": "ap_rst_n"}
        for (pname, _), t in zip(intf["s_axis"] + intf["m_axis"],
                                 stream_inputs(model, node) + list(node.output), strict=True):
            k = wid[t]
            conn |= {f"{pname}_TDATA": f"s{k}_tdata", f"{pname}_TVALID": f"s{k}_tvalid",
                     f"{pname}_TREADY": f"s{k}_tready"}
        if node.op_type.startswith(("MVAU", "VVAU")) or (have and "ap_clk2x" in have):
            conn["ap_clk2x"] = "ap_clk"
        if node.op_type.startswith("StreamingFIFO"):
            conn["count"] = f"{node.name}_count" if monitor else ""
            conn["maxcount"] = f"{node.name}_maxcount" if monitor else ""
            info.fifos.append({"name": node.name,
                               "depth": int(inst.get_nodeattr("depth")),
                               "from": model.find_producer(node.input[0]).name
                               if model.find_producer(node.input[0]) in nodes else
                               next(p.port for p in info.inputs if p.tensor == node.input[0]),
                               "to": model.find_consumer(node.output[0]).name
                               if model.find_consumer(node.output[0]) in nodes else
                               next(p.port for p in info.outputs
                                    if p.tensor == node.output[0]),
                               "width": wires[node.input[0]]})
        if _has_memstream(node, rtl_dir):
            ww = _pad8(inst.get_instream_width(1))
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
            conn |= {"in1_V_TDATA": f"{node.name}_w_tdata",
                     "in1_V_TVALID": f"{node.name}_w_tvalid",
                     "in1_V_TREADY": f"{node.name}_w_tready"}
        ports = [f".{p}({s})" for p, s in conn.items()]
        if have is not None:  # tie off every other input, leave other outputs open
            ports = [f".{p}({s})" for p, s in conn.items() if p in have]
            ports += [f".{p}('0)" if d == "input" else f".{p}()" for p, d in have.items()
                      if p not in conn]
        elif node.op_type.startswith("Thresholding"):  # the wrapper was not found: as before
            ports += _tie_axilite(prot=False) + [".in1_V_TVALID(1'b0)", ".in1_V_TDATA('0)",
                                                 ".in1_V_TREADY()"]
        lines.append(f"  {mod} {node.name}_inst (")
        lines.append("    " + ",\n    ".join(ports))
        lines.append("  );")
    lines.append(f"endmodule // {TOP}")
    return "\n".join(lines) + "\n", info


def write_top(model: ModelWrapper, rtl_dir: Path, nodes: list[Any] | None = None,
              io_names: tuple[Sequence[str], Sequence[str]] | None = None,
              contract_names: tuple[Sequence[str], Sequence[str]] | None = None,
              monitor: bool = False) -> TopInfo:
    """Write rtl/stitched/finn_top.sv, its testbench header and ports.json; return the info."""
    from hw.rtlsim import tbgen

    text, info = build_top(model, rtl_dir, nodes, io_names, contract_names, monitor)
    out = rtl_dir / STITCHED
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{TOP}.sv").write_text(text)
    (out / HEADER).write_text(tbgen.header(info))
    (out / PORTS).write_text(json.dumps(info.to_json(), indent=1) + "\n")
    return info


def read_ports(rtl_dir: Path) -> TopInfo:
    """The stream/FIFO info written beside the top by :func:`write_top`."""
    return TopInfo.from_json(json.loads((rtl_dir / STITCHED / PORTS).read_text()))


def stitch_model(model: ModelWrapper, rtl_dir: Path, fpgapart: str, clock_mhz: float,
                 contract_names: tuple[Sequence[str], Sequence[str]] | None = None,
                 depths: dict[str, int] | None = None,
                 monitor: bool | None = None) -> dict[str, Any]:
    """Stitch a FINN HW model whose layer RTL is in ``rtl_dir/<layer>/``: glue, top, header.

    ``monitor`` (default: on for anything but a chain) brings the FIFOs' count/maxcount
    out. Returns the result described in :func:`stitch`.
    """
    from hw.steps import contract_io_names

    if (rtl_dir / STITCHED).exists():
        shutil.rmtree(rtl_dir / STITCHED)
    io_names = contract_io_names(model)
    chain = is_chain(model) and not depths
    layers = [n.name for n in model.graph.node]
    model = insert_dwc_fifo(model, fpgapart, depths)
    glue = generate_glue_hdl(model, rtl_dir, layers, fpgapart, 1000.0 / clock_mhz)
    mon = (not chain) if monitor is None else monitor
    info = write_top(model, rtl_dir, io_names=io_names, contract_names=contract_names,
                     monitor=mon)
    return {
        "top": TOP,
        "glue_files": glue,
        "nodes": [{"name": n.name, "op_type": n.op_type,
                   **({"depth": int(getCustomOp(n).get_nodeattr("depth"))}
                      if n.op_type.startswith("StreamingFIFO") else {})}
                  for n in model.graph.node],
        "in_width": info.inputs[0].width,
        "out_width": info.outputs[0].width,
        "ports": info.to_json(),
        "graph": "chain" if chain else "dag",
        "reconvergent_fifos": [] if chain else reconvergent_fifos(model),
        "fifo_depth_rule": ("one output vector of the producer in beats, >= 2; chain => no "
                            "deadlock" if chain else
                            "one output vector of the producer in beats, >= 2 (2 after a "
                            "width converter); reconvergent fork/join FIFOs: as given by "
                            "depths (hw.rtlsim.fifo_sizing) or this default"),
    }


def stitch(pkg: Path, fpgapart: str, clock_mhz: float,
           depths: dict[str, int] | None = None) -> dict[str, Any]:
    """Write rtl/stitched/ (top, DWC/FIFO HDL, testbench header) for the package.

    Returns ``top``, ``glue_files``, ``nodes`` (with FIFO depths), ``ports`` (each stream:
    port, contract name, FINN tensor, width; each FIFO: depth and edge), ``graph``
    (chain/dag), ``reconvergent_fifos`` and the depth rule.
    """
    model = ModelWrapper(str(pkg / "model_finn.onnx"))
    names = None
    mf = pkg / "manifest.json"
    if mf.is_file():
        io = json.loads(mf.read_text()).get("io", {})
        if "inputs" in io:
            names = ([t["name"] for t in io["inputs"]], [t["name"] for t in io["outputs"]])
    return stitch_model(model, pkg / "rtl", fpgapart, clock_mhz, names, depths)
