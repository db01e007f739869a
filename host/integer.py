"""A bit-exact integer executor of a package's FINN dataflow graph (numpy only).

Board-side module: standard library and numpy (1.x and 2.x); no onnx, qonnx or FINN at
run time. It is the hardware model in the link loop: :class:`IntegerModel` reads the
integer graph of ``model_finn.onnx`` ONCE into numpy arrays and runs it on integer codes
with vectorized numpy. ``host.backends.integer.IntegerBackend`` (``backend="integer"``)
puts it behind :class:`host.driver.Accelerator`; ``python -m host.integer PKG`` measures
it (:func:`bench`).

Reading the model (section 1)
    :mod:`host.onnx_facts` decodes the protobuf wire format for the I/O contract; this
    module adds what execution needs, from onnx's ``onnx.proto`` (onnx 1.21.0;
    ``tests/test_integer_executor.py`` compares it with ``onnx.load`` on real models)::

        GraphProto      node = 1, initializer = 5
        NodeProto       input = 1, output = 2, name = 3, op_type = 4, attribute = 5,
                        domain = 7
        AttributeProto  name = 1, f = 2, i = 3, s = 4, t = 5, floats = 7, ints = 8,
                        strings = 9, tensors = 10, type = 20
        TensorProto     dims = 1, data_type = 2, float_data = 4, int32_data = 5,
                        int64_data = 7, name = 8, raw_data = 9, double_data = 10,
                        uint64_data = 11, data_location = 14

Semantics (FINN's Python execution of the specialized layers, which the RTL equals)
    * ``MVAU`` / ``MVAU_rtl`` / ``MVAU_hls``: ``acc = x @ W`` with the initializer
      ``W`` of shape (MW, MH), exact integers; with ``noActivation=0`` its thresholds
      (input 2) follow as below. ``binaryXnorMode`` and BIPOLAR x BIPOLAR (XNOR-popcount)
      are refused by name.
    * ``Thresholding`` / ``_rtl`` / ``_hls``: ``y = count(T[c] <= a[:, c]) + ActVal``
      per channel c (channels last; a single threshold row serves every channel); a
      BIPOLAR output is ``2 y - 1``. Thresholds must be non-decreasing per channel (the
      RTL binary-searches them; unsorted ones are refused).
    * ``StreamingFIFO*`` / ``StreamingDataWidthConverter*``: identity on values.
    * ``UnrolledMLP`` / ``_rtl`` (hw/custom_ops/unrolled_mlp.py): the chain of matmul
      and threshold layers it computes, as above.
    * ``DuplicateStreams`` / ``_hls`` / ``_rtl``: every output is the input (no step:
      the outputs are aliases); ``NumOutputStreams`` must equal the node's outputs.
    * ``StreamingSplit`` / ``_hls`` / ``_rtl``: output i is channels
      ``[sum(P[:i]), sum(P[:i+1]))`` of each vector, ``P = ChannelsPerStream``
      (column views, no copy); one input, ``len(P)`` outputs, ``inputDataType``.
    * ``StreamingConcat`` / ``_hls`` / ``_rtl``: the inputs side by side per vector,
      in input order (``ChannelsPerStream[i]`` channels of input i, each inside
      ``inputDataTypes[i]``); the output datatype is FINN's
      ``StreamingConcat.get_output_datatype`` (:func:`concat_type`).
    * ``ElementwiseAdd`` / ``_hls`` / ``_rtl`` (ours, hw/custom_ops/elementwise_add.py:
      FINN's ``ElementwiseAdd.execute_node``): ``lhs + rhs`` exactly, two streamed
      integer inputs of equal shape (``lhs_shape == rhs_shape == out_shape``); the sum
      must lie inside ``out_dtype``. Constant operands (``*_style="const"``),
      broadcasting, float datatypes and MLO loop bodies are refused by name.
    * ``CodebookLookup`` / ``_rtl`` (ours, hw/custom_ops/codebook_lookup.py):
      ``y[..., c] = table[c or 0, min(idx[..., c], Levels - 1)]`` with the initializer
      ``table`` (NumChannels, Levels) or (1, Levels) (one shared row); indices inside
      the unsigned ``InputType``, the table inside ``OutputType``. Run as a ``lut``
      step: per channel, the entries of its reachable indices (at most its table row).
    * ``LabelSelect`` / ``_rtl`` (ours, hw/custom_ops/label_select.py), ``K = 1``: the
      index of the first maximum per vector (``np.argmax``: lowest index on ties);
      ``K > 1`` and ``LabelSelect_hls`` (its HLS tie order is not established here)
      are refused.
    * anything else: :class:`UnsupportedLayerError` naming the node and its op type.
    The graph is a DAG over tensor names, run in topological order: several inputs and
    outputs, forks and joins work. Every stream has ``numInputVectors`` vectors of its
    channels per graph vector (``prod(out_shape[:-1])`` for ElementwiseAdd).

How it is fast and why it is exact (section 3, :meth:`IntegerModel.describe`)
    * Value ranges. Every tensor gets a per-channel integer interval: graph inputs from
      their FINN datatype, a matmul column ``[sum min(W l, W h), sum max(W l, W h)]``,
      a threshold layer its output levels, a split / concat / fork the channels' own,
      an add ``[l_a + l_b, h_a + h_b]``, a lookup the min / max of the entries its
      reachable indices select, an argmax ``[0, Labels - 1]``. These must lie inside
      the datatypes the hardware was built with (the accumulator / input / output
      datatype attributes: ``inputDataTypes``, ``lhs_dtype``, ``out_dtype``,
      ``InputType`` / ``OutputType``, ...), else the layer is refused naming the node
      (the hardware would wrap or truncate where numpy would not).
    * Between steps every tensor holds exact integers (float32, float64 or int64; graph
      inputs as the caller gives them). A concat copies its inputs into a buffer of the
      narrowest of those holding its range exactly (float32 within ``2**24``, float64
      within ``2**53``, else int64); an add casts both operands to the one holding them
      and their sum, and adds there; a split hands out column views of its input.
    * Matmuls run in float32 BLAS where exact. Every partial sum of ``x @ W[:, j]``, in
      any summation order and with or without FMA, is an integer of magnitude
      ``<= P_j = sum_i max|x_i| |W_ij|``. If ``max_j P_j <= 2**24`` (in the units the
      values are multiples of, see below) every product and partial sum is a float32
      integer and the result is exact; else float64 (``<= 2**53``), else int64
      (``< 2**62``), else refused.
    * Threshold layers, three exact methods, chosen per layer at load:
      ``affine``: where each channel's thresholds are those of a power-of-two uniform
      quantizer, ``count(T <= a) + ActVal == clip(rint(a * m_c + q_c), ActVal,
      ActVal + K)`` with ``m_c = 2**-k`` (``np.rint`` rounds half to even, which also
      reproduces the half-to-even tie placement of ``hw/ties.py``). ``m_c`` is folded
      into the weights (a power-of-two scaling: exact), so the matmul result is
      ``a * m_c`` exactly (all values are multiples of ``m_c / 2``: the bound above is
      checked in those units), and the layer costs one add, one rint and one clip. The
      form is proved per channel, not assumed: both sides are non-decreasing in ``a``,
      so equality on every integer of the reachable range follows from equality at its
      ends and on both sides of every threshold inside it (checked at load).
      ``lut``: a table of the output level for every integer between each channel's
      first and last reachable threshold (``index = clip(a + off_c, base_c, top_c)``,
      one ``take``), up to :data:`LUT_MAX` entries per layer.
      ``searchsorted``: ``np.searchsorted(T_c, a[:, c], side="right")`` per channel.
      The first that applies is used. Measured alone (:func:`threshold_methods`) on the
      default design, one thread, 8192 vectors of a 48-channel x 63-threshold layer:
      affine 0.22 ms, lut 1.1 ms, searchsorted 8-9 ms, FINN's broadcast compare-and-sum
      24 ms (for its 6 x 62 tanh output layer, which only lut fits: 0.19, 1.1, 2.9 ms).
    * The hot path: per step one BLAS call and 2-4 in-place ufuncs on buffers kept per
      thread and batch size (fresh megabyte arrays per call cost page faults); per-channel
      vectors are added over views of k rows (k*C ~ :data:`FOLD_WIDTH`), as a C-wide
      broadcast runs an inner loop of C elements.
    :meth:`IntegerModel.run_plain` is the obvious int64 implementation (``x @ W`` in
    int64, thresholds counted by broadcast comparison), for tests and debugging.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from host import onnx_facts
from host.onnx_facts import (
    I32,
    I64,
    LEN,
    VARINT,
    OnnxFormatError,
    _int64,
    fields,
    repeated_fixed,
    repeated_ints,
)

MVAU_OPS = ("MVAU", "MVAU_rtl", "MVAU_hls", "MatrixVectorActivation")
THRESHOLD_OPS = ("Thresholding", "Thresholding_rtl", "Thresholding_hls")
IDENTITY_OPS = ("StreamingFIFO", "StreamingFIFO_rtl", "StreamingFIFO_hls",
                "StreamingDataWidthConverter", "StreamingDataWidthConverter_rtl",
                "StreamingDataWidthConverter_hls")
LUT_MAX = 1 << 22          # table entries per threshold layer (16 MiB of float32)
F32_EXACT, F64_EXACT, I64_SAFE = 1 << 24, 1 << 53, 1 << 62
FOLD_WIDTH = 768          # elements per row of the views that per-channel vectors span
WORKSPACES = 4             # batch sizes whose buffers are kept, per thread
PLAIN, AFFINE, LUT, SEARCH = range(4)
try:  # the clip ufunc itself: np.clip adds ~1 us of Python per call (numpy 2)
    from numpy._core.umath import clip as _clip
except ImportError:  # numpy 1.x
    try:
        from numpy.core.umath import clip as _clip
    except ImportError:
        _clip = np.clip


class UnsupportedLayerError(ValueError):
    """A node the integer executor does not model (named, with its op type and why)."""


class IntegerGraphError(ValueError):
    """The graph is not an executable integer graph (a cycle, a missing tensor, an
    attribute or initializer that disagrees with the layer)."""


# =========================================================================== 1. reading
# TensorProto.DataType -> numpy dtype (little-endian), and the repeated field holding the
# values when raw_data is absent (onnx.proto: int32_data carries every type of <= 32 bits
# but FLOAT and UINT32, FLOAT16 as its bit pattern; uint64_data carries UINT32 and UINT64).
_DTYPES = {1: "<f4", 2: "u1", 3: "i1", 4: "<u2", 5: "<i2", 6: "<i4", 7: "<i8", 9: "?",
           10: "<f2", 11: "<f8", 12: "<u4", 13: "<u8"}
_FIELD_OF = {1: "float_data", 2: "int32_data", 3: "int32_data", 4: "int32_data",
             5: "int32_data", 6: "int32_data", 7: "int64_data", 9: "int32_data",
             10: "int32_data", 11: "double_data", 12: "uint64_data", 13: "uint64_data"}
# AttributeProto.AttributeType
A_FLOAT, A_INT, A_STRING, A_TENSOR, A_FLOATS, A_INTS, A_STRINGS, A_TENSORS = 1, 2, 3, 4, 6, 7, 8, 9


@dataclass
class Tensor:
    """A TensorProto: its name, dims, data type and whichever value field it uses."""

    name: str = ""
    dims: list[int] = field(default_factory=list)
    data_type: int = 0
    raw_data: bytes | None = None
    float_data: list[float] = field(default_factory=list)
    int32_data: list[int] = field(default_factory=list)
    int64_data: list[int] = field(default_factory=list)
    double_data: list[float] = field(default_factory=list)
    uint64_data: list[int] = field(default_factory=list)
    external: bool = False

    def array(self) -> np.ndarray:
        """The values as a numpy array of shape ``dims`` (what ``numpy_helper.to_array``
        gives for the supported data types)."""
        where = f"tensor {self.name!r}"
        if self.external:
            raise OnnxFormatError(f"{where}: external data is not read here")
        if self.data_type not in _DTYPES:
            raise OnnxFormatError(f"{where}: data_type {self.data_type} is not read here "
                                  f"(supported: {sorted(_DTYPES)})")
        dt = np.dtype(_DTYPES[self.data_type])
        count = int(np.prod(self.dims, dtype=np.int64)) if self.dims else 1
        if self.raw_data is not None:
            if len(self.raw_data) != count * dt.itemsize:
                raise OnnxFormatError(f"{where}: {len(self.raw_data)} raw bytes for dims "
                                      f"{self.dims} of {dt}")
            a = np.frombuffer(self.raw_data, dtype=dt).copy()
        else:
            vals = getattr(self, _FIELD_OF[self.data_type])
            if len(vals) != count:
                raise OnnxFormatError(f"{where}: {len(vals)} values in "
                                      f"{_FIELD_OF[self.data_type]} for dims {self.dims}")
            if self.data_type == 10:  # FLOAT16: the bit patterns in int32_data
                a = np.array(vals, dtype=np.int64).astype(np.uint16).view(np.float16)
            else:
                a = np.array(vals, dtype=np.float64 if dt.kind == "f" else np.int64
                             if dt.kind == "i" else np.uint64 if dt.kind == "u" else None)
                a = a.astype(dt)
        return a.astype(dt.newbyteorder("="), copy=False).reshape(self.dims)


@dataclass(frozen=True)
class UnreadAttribute:
    """An attribute of a type this reader does not decode (graphs, sparse tensors,
    type protos); kept so that its presence is known."""

    type: int


@dataclass
class Node:
    """A NodeProto with its attributes (values as ``onnx.helper.get_attribute_value``
    gives them: float, int, bytes, :class:`Tensor`, or lists of those)."""

    name: str = ""
    op_type: str = ""
    domain: str = ""
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Graph:
    """The graph of a model: nodes in file order, initializers, and (from
    :mod:`host.onnx_facts`) the graph inputs/outputs and FINN datatype annotations."""

    nodes: list[Node]
    initializers: dict[str, Tensor]
    inputs: list[onnx_facts.ValueInfo]
    outputs: list[onnx_facts.ValueInfo]
    annotations: dict[str, dict[str, str]]


def _tensor(buf: memoryview) -> Tensor:
    t = Tensor()
    for num, wt, v in fields(buf):
        if num == 1:
            t.dims += repeated_ints(wt, v)
        elif num == 2 and wt == VARINT:
            t.data_type = v
        elif num == 4:
            t.float_data += repeated_fixed(wt, v, "<f", 4, I32)
        elif num == 5:
            t.int32_data += repeated_ints(wt, v)
        elif num == 7:
            t.int64_data += repeated_ints(wt, v)
        elif num == 8 and wt == LEN:
            t.name = bytes(v).decode("utf-8")
        elif num == 9 and wt == LEN:
            t.raw_data = bytes(v)
        elif num == 10:
            t.double_data += repeated_fixed(wt, v, "<d", 8, I64)
        elif num == 11:
            t.uint64_data += repeated_ints(wt, v, signed=False)
        elif num == 14 and wt == VARINT:
            t.external = v == 1
    return t


def _attribute(buf: memoryview) -> tuple[str, Any]:
    name, atype = "", 0
    seen: dict[int, Any] = {}
    lists: dict[int, list[Any]] = {7: [], 8: [], 9: [], 10: []}
    for num, wt, v in fields(buf):
        if num == 1 and wt == LEN:
            name = bytes(v).decode("utf-8")
        elif num == 20 and wt == VARINT:
            atype = v
        elif num == 2 and wt == I32:
            seen[A_FLOAT] = struct.unpack("<f", v.to_bytes(4, "little"))[0]
        elif num == 3 and wt == VARINT:
            seen[A_INT] = _int64(v)
        elif num == 4 and wt == LEN:
            seen[A_STRING] = bytes(v)
        elif num == 5 and wt == LEN:
            seen[A_TENSOR] = _tensor(v)
        elif num == 7:
            lists[7] += repeated_fixed(wt, v, "<f", 4, I32)
        elif num == 8:
            lists[8] += repeated_ints(wt, v)
        elif num == 9 and wt == LEN:
            lists[9].append(bytes(v))
        elif num == 10 and wt == LEN:
            lists[10].append(_tensor(v))
    if atype == 0:  # UNDEFINED (very old writers): the one field present
        atype = next(iter(seen), 0) or {7: A_FLOATS, 8: A_INTS, 9: A_STRINGS,
                                         10: A_TENSORS}.get(next((k for k, x in lists.items()
                                                                  if x), 0), 0)
    defaults = {A_FLOAT: 0.0, A_INT: 0, A_STRING: b""}
    if atype in defaults:
        return name, seen.get(atype, defaults[atype])
    if atype == A_TENSOR:
        return name, seen.get(A_TENSOR, Tensor())
    if atype in (A_FLOATS, A_INTS, A_STRINGS, A_TENSORS):
        return name, lists[{A_FLOATS: 7, A_INTS: 8, A_STRINGS: 9, A_TENSORS: 10}[atype]]
    return name, UnreadAttribute(atype)


def _node(buf: memoryview) -> Node:
    n = Node()
    for num, wt, v in fields(buf):
        if wt != LEN:
            continue
        if num == 1:
            n.inputs.append(bytes(v).decode("utf-8"))
        elif num == 2:
            n.outputs.append(bytes(v).decode("utf-8"))
        elif num == 3:
            n.name = bytes(v).decode("utf-8")
        elif num == 4:
            n.op_type = bytes(v).decode("utf-8")
        elif num == 5:
            k, val = _attribute(v)
            n.attributes[k] = val
        elif num == 7:
            n.domain = bytes(v).decode("utf-8")
    return n


def parse_graph(data: bytes, where: str = "model") -> Graph:
    """Nodes (with attributes), initializers, graph inputs/outputs and datatype
    annotations of a serialized ``ModelProto``."""
    try:
        facts = onnx_facts.parse_model(data)
        graph = next((v for num, wt, v in fields(data) if num == 7 and wt == LEN), None)
        if graph is None:
            raise OnnxFormatError("no graph (ModelProto field 7): not an ONNX model")
        nodes, inits = [], {}
        for num, wt, v in fields(graph):
            if num == 1 and wt == LEN:
                nodes.append(_node(v))
            elif num == 5 and wt == LEN:
                t = _tensor(v)
                inits[t.name] = t
    except OnnxFormatError as e:
        raise OnnxFormatError(f"{where}: {e}") from None
    g = facts.graph
    return Graph(nodes, inits, g.inputs, g.outputs, g.annotations)


def load_graph(path: str | Path) -> Graph:
    path = Path(path)
    return parse_graph(path.read_bytes(), path.name)


# =========================================================================== 2. layers
def int_range(datatype: str, what: str) -> tuple[int, int]:
    """``(min, max)`` of a FINN integer datatype name."""
    if datatype in ("BINARY",):
        return 0, 1
    if datatype in ("BIPOLAR", "TERNARY"):
        return -1, 1
    m = re.fullmatch(r"(U?)INT(\d+)", datatype or "")
    if not m or not 1 <= int(m.group(2)) <= 64:
        raise IntegerGraphError(f"{what}: datatype {datatype!r} is not an integer datatype "
                                "(INTn, UINTn, BINARY, BIPOLAR, TERNARY)")
    bits = int(m.group(2))
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if not m.group(1) else (0, (1 << bits) - 1)


def _s(v: Any) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


@dataclass
class Layer:
    """One node of the integer graph, as read (weights, thresholds, tables as numpy).

    ``inputs`` / ``outputs``: its data streams in the node's order (initializers such as
    weights, thresholds and tables are not streams). Every kind but ``duplicate`` /
    ``split`` (several outputs) and ``concat`` / ``add`` (several inputs) has one of each:
    :attr:`input`, :attr:`output`."""

    name: str
    op_type: str
    kind: str    # matmul, threshold, identity, duplicate, split, concat, add, lookup, argmax
    inputs: list[str]
    outputs: list[str]
    vectors: int = 1               # prod(numInputVectors): vectors per stream vector
    weights: np.ndarray | None = None        # (MW, MH) int64
    thresholds: np.ndarray | None = None     # (C or 1, K) float64, as stored
    levels: np.ndarray | None = None         # (K + 1,) int64: output value per count
    channels: int = 0              # MH, NumChannels, sum(ChannelsPerStream) or Labels
    in_type: str = ""
    out_type: str = ""             # the layer's output datatype (acc type without act.)
    acc_type: str = ""
    parts: list[int] = field(default_factory=list)     # split / concat: ChannelsPerStream
    in_types: list[str] = field(default_factory=list)  # concat / add: per input
    table: np.ndarray | None = None          # lookup: (NumTables, Levels) int64

    @property
    def input(self) -> str:
        return self.inputs[0]

    @property
    def output(self) -> str:
        return self.outputs[0]


def _attr(node: Node, key: str, default: Any = None) -> Any:
    if key in node.attributes:
        return node.attributes[key]
    if default is None:
        raise IntegerGraphError(f"node {node.name!r} ({node.op_type}): attribute {key!r} "
                                "missing")
    return default


def _initializer(node: Node, graph: Graph, index: int, what: str) -> np.ndarray:
    if len(node.inputs) <= index or node.inputs[index] not in graph.initializers:
        raise UnsupportedLayerError(
            f"node {node.name!r} ({node.op_type}): its {what} (input {index}"
            + (f", {node.inputs[index]!r}" if len(node.inputs) > index else "")
            + ") is not an initializer of the model (mem_mode 'external' / runtime "
            "weights are not modelled)")
    try:
        a = graph.initializers[node.inputs[index]].array()
    except OnnxFormatError as e:
        raise IntegerGraphError(f"node {node.name!r} ({node.op_type}): {what}: {e}") from None
    return a.astype(np.float64)


def _vectors(node: Node) -> int:
    nv = _attr(node, "numInputVectors", [1])
    return int(np.prod([int(v) for v in nv])) if isinstance(nv, list) else int(nv)


def _levels(k: int, scale: int, bias: int) -> np.ndarray:
    return np.arange(k + 1, dtype=np.int64) * scale + bias


def _integers(a: np.ndarray, node: Node, what: str) -> np.ndarray:
    if not np.all(np.isfinite(a)) or not np.all(a == np.rint(a)):
        raise IntegerGraphError(f"node {node.name!r} ({node.op_type}): {what} are not all "
                                "integers")
    if np.abs(a).max(initial=0) >= 2 ** 53:
        raise IntegerGraphError(f"node {node.name!r} ({node.op_type}): {what} beyond 2**53")
    return a.astype(np.int64)


def _thresholds(t: np.ndarray, node: Node, channels: int) -> np.ndarray:
    where = f"node {node.name!r} ({node.op_type})"
    if t.ndim != 2 or t.shape[0] not in (1, channels):
        raise IntegerGraphError(f"{where}: thresholds of shape {t.shape}, expected "
                                f"({channels}, K) or (1, K)")
    if np.isnan(t).any():
        raise IntegerGraphError(f"{where}: NaN thresholds")
    bad = np.flatnonzero((np.diff(t, axis=1) < 0).any(axis=1)) if t.shape[1] > 1 else []
    if len(bad):
        raise UnsupportedLayerError(
            f"{where}: thresholds of channel {int(bad[0])} are not non-decreasing: the RTL "
            "binary-searches its thresholds, so its output would not be count(T <= a)")
    return t


def read_layer(node: Node, graph: Graph) -> Layer:
    """The :class:`Layer` of one node; :class:`UnsupportedLayerError` for any other op."""
    op, where = node.op_type, f"node {node.name!r} ({node.op_type})"
    if op in IDENTITY_OPS:
        if len(node.inputs) < 1 or len(node.outputs) != 1:
            raise IntegerGraphError(f"{where}: expected one input and one output")
        return Layer(node.name, op, "identity", node.inputs[:1], list(node.outputs))
    if op in DAG_OPS:
        return read_dag_layer(node, graph)
    if len(node.outputs) != 1 or not node.inputs:
        raise IntegerGraphError(f"{where}: expected data input(s) and one output")
    if op in MVAU_OPS:
        mw, mh = int(_attr(node, "MW")), int(_attr(node, "MH"))
        idt, wdt = _s(_attr(node, "inputDataType")), _s(_attr(node, "weightDataType"))
        if int(_attr(node, "binaryXnorMode", 0)):
            raise UnsupportedLayerError(f"{where}: binaryXnorMode=1 (XNOR-popcount matmul) "
                                        "is not modelled; only integer weights")
        if idt == "BIPOLAR" and wdt == "BIPOLAR":
            raise UnsupportedLayerError(f"{where}: BIPOLAR x BIPOLAR (XNOR-popcount) is not "
                                        "modelled; only integer weights")
        w = _integers(_initializer(node, graph, 1, "weights"), node, "weights")
        if w.shape != (mw, mh):
            raise IntegerGraphError(f"{where}: weights of shape {w.shape}, attributes say "
                                    f"(MW, MH) = ({mw}, {mh})")
        odt = _s(_attr(node, "outputDataType"))
        layer = Layer(node.name, op, "matmul", node.inputs[:1], list(node.outputs),
                      _vectors(node), weights=w, channels=mh, in_type=idt, out_type=odt,
                      acc_type=_s(node.attributes.get("accDataType", odt)))
        if not int(_attr(node, "noActivation", 0)):
            t = _thresholds(_initializer(node, graph, 2, "thresholds"), node, mh)
            bip = odt == "BIPOLAR"
            layer.thresholds = t
            layer.levels = _levels(t.shape[1], 2 if bip else 1,
                                   -1 if bip else int(_attr(node, "ActVal", 0)))
        else:
            layer.acc_type = layer.out_type  # noActivation: the output is the accumulator
        return layer
    if op in THRESHOLD_OPS:
        c = int(_attr(node, "NumChannels"))
        t = _thresholds(_initializer(node, graph, 1, "thresholds"), node, c)
        odt = _s(_attr(node, "outputDataType"))
        lv = _levels(t.shape[1], 1, int(_attr(node, "ActVal", 0)))
        if odt == "BIPOLAR":
            lv = 2 * lv - 1
        return Layer(node.name, op, "threshold", node.inputs[:1], list(node.outputs),
                     _vectors(node), thresholds=t, levels=lv, channels=c,
                     in_type=_s(_attr(node, "inputDataType")), out_type=odt)
    raise UnsupportedLayerError(
        f"{where}: not modelled by the integer executor (it runs {', '.join(MVAU_OPS)}, "
        f"{', '.join(THRESHOLD_OPS)}, {', '.join(UNROLLED_OPS)}, "
        f"{', '.join(DAG_OPS)} and FIFO/width-converter nodes)")


UNROLLED_OPS = ("UnrolledMLP", "UnrolledMLP_rtl")
DUPLICATE_OPS = ("DuplicateStreams", "DuplicateStreams_hls", "DuplicateStreams_rtl")
SPLIT_OPS = ("StreamingSplit", "StreamingSplit_hls", "StreamingSplit_rtl")
CONCAT_OPS = ("StreamingConcat", "StreamingConcat_hls", "StreamingConcat_rtl")
ADD_OPS = ("ElementwiseAdd", "ElementwiseAdd_hls", "ElementwiseAdd_rtl")
LOOKUP_OPS = ("CodebookLookup", "CodebookLookup_rtl")
ARGMAX_OPS = ("LabelSelect", "LabelSelect_rtl")   # K = 1; LabelSelect_hls is not ours
DAG_OPS = DUPLICATE_OPS + SPLIT_OPS + CONCAT_OPS + ADD_OPS + LOOKUP_OPS + ARGMAX_OPS


def _int_type(node: Node, key: str, value: Any = None) -> str:
    """An integer datatype attribute (or ``value``); a non-integer one is refused."""
    dt = _s(_attr(node, key) if value is None else value)
    try:
        int_range(dt, "")
    except IntegerGraphError:
        raise UnsupportedLayerError(f"node {node.name!r} ({node.op_type}): {key} {dt!r} is "
                                    "not an integer datatype: only integer streams are "
                                    "modelled") from None
    return dt


def _ints(node: Node, key: str) -> list[int]:
    v = _attr(node, key)
    return [int(x) for x in v] if isinstance(v, list) else [int(v)]


def concat_type(types: list[str]) -> str:
    """The output datatype of FINN's StreamingConcat for ``inputDataTypes``
    (``StreamingConcat.get_output_datatype``: the smallest UINTn / INTn holding 0 and
    every input's range)."""
    lo = min([0] + [int_range(t, "concat")[0] for t in types])
    hi = max([0] + [int_range(t, "concat")[1] for t in types])
    if lo >= 0:
        return f"UINT{hi.bit_length()}"
    return f"INT{1 + (max(-lo, 1 + hi) - 1).bit_length()}"


def read_dag_layer(node: Node, graph: Graph) -> Layer:
    """The :class:`Layer` of a branching / joining node (module doc, Semantics), its
    attributes checked against its streams."""
    op, where = node.op_type, f"node {node.name!r} ({node.op_type})"
    ins, outs = list(node.inputs), list(node.outputs)

    def need(n_in: int | None, n_out: int | None) -> None:
        if (n_in is not None and len(ins) != n_in) or (n_out is not None
                                                        and len(outs) != n_out):
            raise IntegerGraphError(f"{where}: {len(ins)} inputs and {len(outs)} outputs, "
                                    f"expected {n_in or 'several'} and {n_out or 'several'}")
    if op in DUPLICATE_OPS:
        need(1, None)
        if int(_attr(node, "NumOutputStreams")) != len(outs):
            raise IntegerGraphError(f"{where}: NumOutputStreams="
                                    f"{int(_attr(node, 'NumOutputStreams'))}, the node has "
                                    f"{len(outs)} outputs")
        dt = _int_type(node, "inputDataType")
        return Layer(node.name, op, "duplicate", ins, outs, _vectors(node),
                     channels=int(_attr(node, "NumChannels")), in_type=dt, out_type=dt)
    if op in SPLIT_OPS or op in CONCAT_OPS:
        split = op in SPLIT_OPS
        parts = _ints(node, "ChannelsPerStream")
        if split:
            need(1, len(parts))
        else:
            need(len(parts), 1)
        if not parts or min(parts) < 1:
            raise IntegerGraphError(f"{where}: ChannelsPerStream={parts}")
        if split:
            dt = _int_type(node, "inputDataType")
            types, odt = [dt], dt
        else:
            types = [_int_type(node, "inputDataTypes", t)
                     for t in _attr(node, "inputDataTypes")]
            if len(types) != len(ins):
                raise IntegerGraphError(f"{where}: {len(types)} inputDataTypes for "
                                        f"{len(ins)} inputs")
            odt = concat_type(types)
        return Layer(node.name, op, "split" if split else "concat", ins, outs,
                     _vectors(node), channels=sum(parts), in_type=types[0], out_type=odt,
                     parts=parts, in_types=types)
    if op in ADD_OPS:
        need(2, 1)
        for side in ("lhs", "rhs"):
            style = _s(node.attributes.get(f"{side}_style", b"input"))
            if style != "input":
                raise UnsupportedLayerError(f"{where}: {side}_style={style!r}: a constant "
                                            "operand is not modelled (only two streams)")
        if int(node.attributes.get("mlo_max_iter", 0)):
            raise UnsupportedLayerError(f"{where}: an MLO loop body is not modelled")
        shapes = [_ints(node, f"{k}_shape") for k in ("lhs", "rhs", "out")]
        if not shapes[0] == shapes[1] == shapes[2]:
            raise UnsupportedLayerError(f"{where}: lhs/rhs/out shapes {shapes}: "
                                        "broadcasting is not modelled")
        types = [_int_type(node, "lhs_dtype"), _int_type(node, "rhs_dtype")]
        return Layer(node.name, op, "add", ins, outs,
                     int(np.prod(shapes[2][:-1], dtype=np.int64)), channels=shapes[2][-1],
                     in_type=types[0], out_type=_int_type(node, "out_dtype"),
                     in_types=types)
    if op in LOOKUP_OPS:
        need(2, 1)
        c, nt, lv = (int(_attr(node, k)) for k in ("NumChannels", "NumTables", "Levels"))
        idt, odt = _int_type(node, "InputType"), _int_type(node, "OutputType")
        if int_range(idt, where)[0] < 0:
            raise IntegerGraphError(f"{where}: InputType {idt} is signed: index codes are "
                                    "unsigned")
        t = _initializer(node, graph, 1, "table")
        if nt not in (1, c) or t.shape != (nt, lv) or lv < 1:
            raise IntegerGraphError(f"{where}: table of shape {t.shape}, attributes say "
                                    f"(NumTables, Levels) = ({nt}, {lv}); NumTables must be "
                                    f"NumChannels={c} or 1, Levels >= 1")
        t = _integers(t, node, "table entries")
        lo, hi = int_range(odt, where)
        if t.size and (int(t.min()) < lo or int(t.max()) > hi):
            raise IntegerGraphError(f"{where}: table spans [{int(t.min())}, {int(t.max())}], "
                                    f"outside OutputType {odt} [{lo}, {hi}]")
        return Layer(node.name, op, "lookup", ins[:1], outs, _vectors(node), channels=c,
                     in_type=idt, out_type=odt, table=t)
    assert op in ARGMAX_OPS
    need(1, 1)
    if int(_attr(node, "K")) != 1:
        raise UnsupportedLayerError(f"{where}: K={int(_attr(node, 'K'))}: only the top-1 "
                                    "index (K=1, lowest index on ties) is modelled")
    odt = _s(node.attributes.get("outputDataType", b""))
    return Layer(node.name, op, "argmax", ins, outs, _vectors(node),
                 channels=int(_attr(node, "Labels")), in_type=_int_type(node, "inputDataType"),
                 out_type=_int_type(node, "outputDataType", odt) if odt else "")


def read_unrolled(node: Node, graph: Graph) -> list[Layer]:
    """An UnrolledMLP node (the latency backend, hw/custom_ops/unrolled_mlp.py) as the
    chain of matmul and threshold layers it computes: per layer ``i``, ``W`` (MW_i, MH_i)
    if ``hasWeights[i]``, then ``count(T <= acc) + ActVals[i]`` if ``hasThresholds[i]``;
    ``dataTypes`` gives the type at every boundary. Inner tensors are named
    ``<node>/l<i>/acc`` and ``<node>/l<i>/out``."""
    where = f"node {node.name!r} ({node.op_type})"
    hw_, ht = list(_attr(node, "hasWeights")), list(_attr(node, "hasThresholds"))
    acts, dts = list(_attr(node, "ActVals")), [_s(d) for d in _attr(node, "dataTypes")]
    if not (len(hw_) == len(ht) == len(acts) == len(dts) - 1) or not hw_:
        raise IntegerGraphError(f"{where}: hasWeights/hasThresholds/ActVals/dataTypes "
                                f"lengths {len(hw_)}/{len(ht)}/{len(acts)}/{len(dts)} "
                                "disagree")
    layers, pos, x, n = [], 1, node.inputs[0], _vectors(node)
    for i in range(len(hw_)):
        out = node.outputs[0] if i == len(hw_) - 1 else f"{node.name}/l{i}/out"
        sub = f"{node.name}/l{i}"
        if int(hw_[i]):
            w = _integers(_initializer(node, graph, pos, f"layer {i} weights"), node,
                          f"layer {i} weights")
            pos += 1
            acc_out = f"{sub}/acc" if int(ht[i]) else out
            # before thresholds: no accumulator datatype to check against (da4ml sizes
            # every adder from its exact interval; the planner derives the range itself)
            acc = "" if int(ht[i]) else dts[i + 1]
            layers.append(Layer(f"{sub}/matmul", node.op_type, "matmul", [x], [acc_out], n,
                                weights=w, channels=w.shape[1], in_type=dts[i],
                                out_type=acc, acc_type=acc))
            x, in_t = acc_out, acc
        else:
            in_t = dts[i]
        if int(ht[i]):
            t = _initializer(node, graph, pos, f"layer {i} thresholds")
            pos += 1
            c = layers[-1].channels if int(hw_[i]) else t.shape[0]
            t = _thresholds(t, node, c)
            lv = _levels(t.shape[1], 1, int(acts[i]))
            if dts[i + 1] == "BIPOLAR":
                lv = 2 * lv - 1
            layers.append(Layer(f"{sub}/threshold", node.op_type, "threshold", [x], [out], n,
                                thresholds=t, levels=lv, channels=c, in_type=in_t,
                                out_type=dts[i + 1]))
        x = out
    return layers


def read_layers(node: Node, graph: Graph) -> list[Layer]:
    """The layers of one node: one, or an unrolled node's chain (:func:`read_unrolled`)."""
    if node.op_type in UNROLLED_OPS:
        return read_unrolled(node, graph)
    return [read_layer(node, graph)]


# =========================================================================== 3. plan
def _dtype_for(units: float) -> np.dtype | None:
    """The narrowest dtype holding every integer of magnitude <= ``units`` exactly, with
    BLAS (float32, float64) or numpy's integer matmul (int64); None beyond."""
    if units <= F32_EXACT:
        return np.dtype(np.float32)
    if units <= F64_EXACT:
        return np.dtype(np.float64)
    if units < I64_SAFE:
        return np.dtype(np.int64)
    return None


def _repr_dtype(lo: np.ndarray, hi: np.ndarray) -> np.dtype:
    """How a tensor with values in ``[lo, hi]`` is held between steps."""
    m = max(float(np.abs(lo).max(initial=0)), float(np.abs(hi).max(initial=0)))
    dt = _dtype_for(m)
    return dt if dt is not None and dt.kind == "f" else np.dtype(np.int64)


def _largest(a: np.ndarray) -> float:
    return float(np.max(a, initial=0))


@dataclass
class Threshold:
    """A threshold layer on channels whose inputs reach ``[amin, amax]`` (integers):
    thresholds ceil'ed and clipped to ``[amin, amax + 1]``, which keeps every count
    ``count(T <= a)`` of an integer ``a`` in that range."""

    t: np.ndarray        # (C, K) int64, non-decreasing per channel
    levels: np.ndarray   # (K + 1,) int64: the output for each count
    amin: np.ndarray     # (C,) int64
    amax: np.ndarray

    @classmethod
    def of(cls, layer: Layer, amin: np.ndarray, amax: np.ndarray) -> Threshold:
        assert layer.thresholds is not None and layer.levels is not None
        t = np.broadcast_to(layer.thresholds, (len(amin), layer.thresholds.shape[1]))
        t = np.clip(t, amin[:, None].astype(np.float64), amax[:, None] + 1.0)
        return cls(np.ceil(t).astype(np.int64), layer.levels, amin, amax)

    def level(self, c: int, a: np.ndarray) -> np.ndarray:
        """The output of channel ``c`` for integer inputs ``a`` (``levels[count]``)."""
        return self.levels[np.searchsorted(self.t[c], a, side="right")]

    def out_range(self) -> tuple[np.ndarray, np.ndarray]:
        lo = self.levels[(self.t <= self.amin[:, None]).sum(1)]
        hi = self.levels[(self.t <= self.amax[:, None]).sum(1)]
        return np.minimum(lo, hi), np.maximum(lo, hi)

    # ---- affine: clip(rint(a * m_c + q_c), levels[0], levels[-1]), m_c = 2**-k
    def fit_affine(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(m, q)`` per channel, each proved on the channel's reachable range; None
        where some channel is not such a quantizer (or the levels are not count +
        ActVal)."""
        k = self.t.shape[1]
        if not np.array_equal(self.levels, self.levels[0] + np.arange(k + 1)):
            return None
        ms, qs = [], []
        for c in range(len(self.amin)):
            mq = self._fit_channel(c)
            if mq is None:
                return None
            ms.append(mq[0])
            qs.append(mq[1])
        return np.array(ms), np.array(qs)

    def _fit_channel(self, c: int) -> tuple[float, float] | None:
        t, lo, hi = self.t[c], int(self.amin[c]), int(self.amax[c])
        inside = t[(t > lo) & (t <= hi)]          # the thresholds that change the output
        level0 = float(self.level(c, np.array([lo]))[0])
        cands: list[tuple[float, float]] = []
        if inside.size == 0:
            cands.append((0.0, level0))            # constant: its column scaled by 0
        else:
            if inside.size >= 2:
                est = (inside[-1] - inside[0]) / (inside.size - 1)
                if est < 1:
                    return None                    # several thresholds on one integer
                p = math.log2(est)
                steps = sorted({2.0 ** math.floor(p), 2.0 ** math.ceil(p)})
            else:                                  # one jump in range: a wide step
                steps = [2.0 ** math.ceil(math.log2(hi - lo + 2))]
            for s in steps:
                m = 1.0 / s
                # the first jump, level0 -> level0 + 1 at a = inside[0]: with the value
                # there level0 + 1/2 + delta*m, delta = 1 puts a tie (rounding down) at
                # inside[0] - 1, delta = 0 a tie (rounding up) at inside[0], 1/2 none
                for delta in (1.0, 0.0, 0.5):
                    cands.append((m, level0 + 0.5 + delta * m - float(inside[0]) * m))
        # both sides are non-decreasing in a: equal at the ends of the range and on both
        # sides of every threshold inside it means equal on every integer in between
        pts = np.unique(np.clip(np.concatenate([[lo, hi], inside - 1, inside]), lo, hi))
        want = self.level(c, pts)
        for m, q in cands:
            if m and not (q / (m / 2)).is_integer():
                continue  # q off the m/2 grid: not exact (module doc)
            got = np.clip(np.rint(pts * m + q), self.levels[0], self.levels[-1])
            if np.array_equal(got, want):
                return m, q
        return None

    # ---- lut: a table over each channel's reachable threshold span
    def lut(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """``(table, offset, base, top)`` with ``level = table[clip(a + offset, base,
        top)]`` per channel; None beyond :data:`LUT_MAX` entries."""
        k = self.t.shape[1]
        lo = np.clip(self.t[:, 0] - 1 if k else self.amin, self.amin, self.amax)
        hi = np.clip(self.t[:, -1] if k else self.amin, self.amin, self.amax)
        sizes = hi - lo + 1
        total = int(sizes.sum())
        if total > LUT_MAX:
            return None
        base = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        table = np.concatenate([self.level(c, np.arange(lo[c], hi[c] + 1))
                                for c in range(len(lo))])
        return table, base - lo, base, base + sizes - 1


def _buffer(ws: dict[Any, np.ndarray], key: Any, shape: tuple[int, ...],
            dtype: Any) -> np.ndarray:
    """The workspace's buffer ``key``, allocated on first use (a workspace serves one
    batch size, so a key's shape never changes)."""
    a = ws.get(key)
    if a is None:
        a = ws[key] = np.empty(shape, dtype=dtype)
    return a


@dataclass
class Step:
    """One executable step: a matmul (with the threshold layer it feeds, fused in), a
    standalone threshold layer, or a CodebookLookup (its tables as one ``lut``). Holds
    arrays ready for the hot path."""

    layer: str                     # node name(s)
    op: str
    input: str
    output: str
    vectors: int
    method: str                    # matmul | [matmul+]affine | [matmul+]lut | ...searchsorted
    dtype: np.dtype                # arithmetic dtype
    bound: float                   # largest magnitude reached, in units of the values' grid
    weights: np.ndarray | None = None         # (MW, MH), scaled by m for affine
    scale: np.ndarray | None = None           # standalone affine: per-channel m
    q: np.ndarray | None = None               # affine: per-channel offset (None: all 0)
    lo: float = 0.0                           # affine clip bounds
    hi: float = 0.0
    table: np.ndarray | None = None           # lut
    offset: np.ndarray | None = None
    base: np.ndarray | None = None
    top: np.ndarray | None = None
    sorted_t: list[np.ndarray] | None = None  # searchsorted
    levels: np.ndarray | None = None
    free: tuple[str, ...] = ()                # tensors dead after this step
    threshold: Threshold | None = None        # the threshold layer's proof data
    kind: int = PLAIN                         # PLAIN, AFFINE, LUT or SEARCH
    fold: int = 1                             # rows per view for per-channel vectors
    tiled: dict[int, list[np.ndarray] | None] = field(default_factory=dict)

    def __call__(self, env: dict[str, np.ndarray], n: int, ws: dict[Any, np.ndarray]
                 ) -> None:
        """Compute ``env[output]`` from ``env[input]`` for ``n`` vectors, in buffers of the
        workspace ``ws`` (reused between calls of the same ``n``; never a graph input)."""
        x = env[self.input]
        rows, key = n * self.vectors, id(self)
        if self.vectors != 1:
            x = x.reshape(rows, -1)
        width = self.weights.shape[1] if self.weights is not None else x.shape[1]
        a = _buffer(ws, key, (rows, width), self.dtype)
        if self.weights is not None:
            if x.dtype != self.dtype:
                xb = _buffer(ws, (key, 0), x.shape, self.dtype)
                np.copyto(xb, x, casting="unsafe")   # integers, exact (the bound)
                x = xb
            np.matmul(x, self.weights, out=a)
        elif self.scale is not None:
            np.multiply(x, self.scale, out=a, casting="unsafe")
        else:
            np.copyto(a, x, casting="unsafe")
        kind = self.kind
        if kind == AFFINE or kind == LUT:
            # per-channel vectors broadcast over rows of C values are slow (an inner
            # loop of C); over k rows at once (a view of k*C) they are not
            k = self.fold
            while rows % k:
                k //= 2
            av = a.reshape(rows // k, -1) if k > 1 else a
            per = self.tiled[k]
        if kind == AFFINE:
            if per is not None:
                np.add(av, per[0], out=av)
            np.rint(a, out=a)
            _clip(a, self.lo, self.hi, out=a)
            y = a
        elif kind == LUT:
            np.add(av, per[0], out=av)
            _clip(av, per[1], per[2], out=av)
            idx = _buffer(ws, (key, 1), a.shape, np.intp)
            np.copyto(idx, a, casting="unsafe")
            y = self.table.take(idx, out=_buffer(ws, (key, 2), a.shape, self.table.dtype),
                                mode="clip")  # idx in range
        elif kind == SEARCH:
            y = _buffer(ws, (key, 2), a.shape, self.levels.dtype)
            for c, t in enumerate(self.sorted_t):
                y[:, c] = self.levels.take(np.searchsorted(t, a[:, c], side="right"))
        else:
            y = a
        env[self.output] = y.reshape(n, -1) if self.vectors != 1 else y

    def compile(self) -> None:
        """Set :attr:`kind` (the hot path's branch) from :attr:`method`, and the
        per-channel vectors tiled k times for views of k rows (k a power of two up to
        :attr:`fold`, so that k*C is about :data:`FOLD_WIDTH`)."""
        self.kind = (AFFINE if self.method.endswith("affine") else LUT
                     if self.method.endswith("lut") else SEARCH
                     if self.method.endswith("searchsorted") else PLAIN)
        vecs = ([self.q] if self.q is not None else None) if self.kind == AFFINE else \
            [self.offset, self.base, self.top] if self.kind == LUT else None
        if self.kind in (AFFINE, LUT):
            c = len(self.q) if self.q is not None else len(self.offset) \
                if self.offset is not None else 1
            self.fold = 1 << max(0, int(math.log2(max(1, FOLD_WIDTH // c))))
            k, self.tiled = 1, {}
            while k <= self.fold:
                self.tiled[k] = None if vecs is None else [np.tile(v, k) for v in vecs]
                k *= 2

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,)

    @property
    def outputs(self) -> tuple[str, ...]:
        return (self.output,)


@dataclass
class Move:
    """A step of a branching / joining node: StreamingSplit (column views, no copy),
    StreamingConcat (one copy into a buffer), ElementwiseAdd (one add) or LabelSelect
    (one argmax). DuplicateStreams and FIFOs are no step: their outputs are their input.
    Values stay exact integers in ``dtype`` (chosen from their range: the module doc)."""

    layer: str
    op: str
    method: str                    # split | concat | add | argmax
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    vectors: int
    dtype: np.dtype                # of the output buffer (split: of the values, no buffer)
    bound: float                   # largest magnitude of the values in and out
    cuts: tuple[tuple[int, int], ...] = ()    # split / concat: channels [a, b) per stream
    width: int = 0                 # channels per vector of the input (split, argmax) or
    #                                output (concat, add)
    free: tuple[str, ...] = ()
    threshold: Threshold | None = None        # never: for code reading any step
    routes: list[tuple[str, slice]] = field(default_factory=list)

    def compile(self) -> None:
        """:attr:`routes`: (stream, its channels) per output (split) / input (concat)."""
        if self.cuts:
            names = self.outputs if self.method == "split" else self.inputs
            self.routes = [(t, slice(a, b)) for t, (a, b) in zip(names, self.cuts,
                                                                  strict=True)]

    def __call__(self, env: dict[str, np.ndarray], n: int, ws: dict[Any, np.ndarray]
                 ) -> None:
        raise NotImplementedError


class SplitStep(Move):
    def __call__(self, env: dict[str, np.ndarray], n: int, ws: dict[Any, np.ndarray]
                 ) -> None:
        x = env[self.inputs[0]]
        if self.vectors == 1:
            for o, cols in self.routes:
                env[o] = x[:, cols]                     # a view: no copy
        else:
            x3 = x.reshape(n, self.vectors, self.width)
            for o, cols in self.routes:
                env[o] = x3[:, :, cols].reshape(n, -1)


class ConcatStep(Move):
    def __call__(self, env: dict[str, np.ndarray], n: int, ws: dict[Any, np.ndarray]
                 ) -> None:
        y = _buffer(ws, id(self), (n, self.vectors * self.width), self.dtype)
        if self.vectors == 1:
            for t, cols in self.routes:
                np.copyto(y[:, cols], env[t], casting="unsafe")   # integers, exact (dtype)
        else:
            y3 = y.reshape(n, self.vectors, self.width)
            for t, cols in self.routes:
                np.copyto(y3[:, :, cols], env[t].reshape(n, self.vectors, -1),
                          casting="unsafe")
        env[self.outputs[0]] = y


class AddStep(Move):
    def __call__(self, env: dict[str, np.ndarray], n: int, ws: dict[Any, np.ndarray]
                 ) -> None:
        y = _buffer(ws, id(self), (n, self.vectors * self.width), self.dtype)
        # both operands cast to dtype (exact: it holds them and the sum), added in it
        np.add(env[self.inputs[0]], env[self.inputs[1]], out=y, dtype=self.dtype,
               casting="unsafe")
        env[self.outputs[0]] = y


class ArgmaxStep(Move):
    def __call__(self, env: dict[str, np.ndarray], n: int, ws: dict[Any, np.ndarray]
                 ) -> None:
        x = env[self.inputs[0]]
        rows = n * self.vectors
        y = _buffer(ws, id(self), (rows,), np.intp)
        np.argmax(x.reshape(rows, self.width), axis=1, out=y)   # first maximum: lowest index
        env[self.outputs[0]] = y.reshape(n, self.vectors)


@dataclass
class Stream:
    """A graph input or output: name, FINN datatype and its range, features per vector."""

    name: str
    datatype: str
    lo: int
    hi: int
    features: int


class IntegerModel:
    """The integer graph of a FINN model, loaded once, run on integer codes.

    ``IntegerModel.load("bitstreams/<pkg>/model_finn.onnx")``; :meth:`run` takes
    ``{input name: (N, F) integer codes}`` and returns ``{output name: (N, G) int64}``.
    Between calls it keeps only buffers (a workspace per thread and batch size), so it
    may be shared between threads.
    """

    def __init__(self, graph: Graph, where: str = "model") -> None:
        self.where = where
        self.inputs: dict[str, Stream] = {}
        self.outputs: dict[str, Stream] = {}
        for kind, vis, dest in (("input", graph.inputs, self.inputs),
                                ("output", graph.outputs, self.outputs)):
            for vi in vis:
                dt = graph.annotations.get(vi.name, {}).get("finn_datatype")
                if dt is None:
                    raise IntegerGraphError(f"{where}: graph {kind} {vi.name!r} has no "
                                            "finn_datatype annotation")
                lo, hi = int_range(dt, f"{where}: graph {kind} {vi.name!r}")
                if max(-lo, hi) > I64_SAFE:
                    raise IntegerGraphError(f"{where}: graph {kind} {vi.name!r}: datatype "
                                            f"{dt} beyond the executor's int64 range")
                shape = vi.shape or []
                if len(shape) < 2 or not all(isinstance(d, int) for d in shape[1:]):
                    raise IntegerGraphError(f"{where}: graph {kind} {vi.name!r} has shape "
                                            f"{shape}, expected [N, features, ...]")
                dest[vi.name] = Stream(vi.name, dt, lo, hi,
                                       int(np.prod(shape[1:], dtype=np.int64)))
        if not self.inputs or not self.outputs:
            raise IntegerGraphError(f"{where}: graph has no input or no output")
        self.layers = [lay for n in graph.nodes for lay in read_layers(n, graph)]
        self.order = self._topological()
        self.alias: dict[str, str] = {}
        self.steps: list[Step] = []
        self._plan()
        for st in self.steps:
            st.compile()
        self._local = threading.local()

    @classmethod
    def load(cls, path: str | Path) -> IntegerModel:
        path = Path(path)
        return cls(load_graph(path), path.name)

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "model") -> IntegerModel:
        return cls(parse_graph(data, where), where)

    def _refuse(self, lay: Layer, why: str) -> IntegerGraphError:
        return IntegerGraphError(f"{self.where}: node {lay.name!r} ({lay.op_type}): {why}")

    # ---------------------------------------------------------------- graph order
    def _topological(self) -> list[Layer]:
        produced: dict[str, Layer] = {}
        for lay in self.layers:
            for t in lay.outputs:
                if t in produced or t in self.inputs:
                    raise self._refuse(lay, f"tensor {t!r} is produced twice")
                produced[t] = lay
        ready, order, pending = set(self.inputs), [], list(self.layers)
        while pending:
            runnable = [lay for lay in pending if all(t in ready for t in lay.inputs)]
            if not runnable:
                lay = pending[0]
                t = next(t for t in lay.inputs if t not in ready)
                why = ("is produced by no node and is no graph input"
                       if t not in produced else "lies on a cycle")
                raise self._refuse(lay, f"needs tensor {t!r}, which {why}")
            for lay in runnable:
                order.append(lay)
                ready.update(lay.outputs)
                pending.remove(lay)
        missing = [o for o in self.outputs if o not in ready]
        if missing:
            raise IntegerGraphError(f"{self.where}: graph output(s) {missing} are produced "
                                    "by no node")
        return order

    # ---------------------------------------------------------------- planning
    def _plan(self) -> None:
        alias = self.alias
        for lay in self.order:   # FIFOs, width converters, forks: their input, no step
            if lay.kind in ("identity", "duplicate"):
                for t in lay.outputs:
                    alias[t] = alias.get(lay.input, lay.input)
        real = [lay for lay in self.order if lay.kind != "identity"]
        srcs = {lay.name: [alias.get(t, t) for t in lay.inputs] for lay in real}
        outs = {alias.get(o, o) for o in self.outputs}
        users: dict[str, list[Layer]] = {}
        for lay in real:
            if lay.kind != "duplicate":
                for t in srcs[lay.name]:
                    users.setdefault(t, []).append(lay)
        lo = {s.name: np.full(s.features, s.lo, dtype=np.int64) for s in self.inputs.values()}
        hi = {s.name: np.full(s.features, s.hi, dtype=np.int64) for s in self.inputs.values()}
        fused: set[str] = set()
        for lay in real:
            if lay.name in fused:
                continue
            if lay.kind not in ("matmul", "threshold"):
                self._plan_dag(lay, srcs[lay.name], lo, hi)
                continue
            x = srcs[lay.name][0]
            xl, xh, width = self._per_channel(lay, x, lo, hi)
            self._check_range(lay, "input", xl, xh, lay.in_type)
            mag = np.maximum(np.abs(xl.astype(np.float64)), np.abs(xh.astype(np.float64)))
            thr = lay if lay.thresholds is not None else None
            if lay.kind == "matmul":
                w = lay.weights
                assert w is not None
                if w.shape[0] != width:
                    raise self._refuse(lay, f"MW={w.shape[0]}, its input {x!r} has {width} "
                                            "features per vector")
                partial = mag @ np.abs(w).astype(np.float64)   # P_j: see the module doc
                if _largest(partial) >= I64_SAFE:
                    raise self._refuse(lay, "partial sums beyond 2**62")
                al = np.minimum(w * xl[:, None], w * xh[:, None]).sum(0)
                ah = np.maximum(w * xl[:, None], w * xh[:, None]).sum(0)
                self._check_range(lay, "accumulator", al, ah, lay.acc_type)
                nxt = users.get(lay.output, [])
                if (thr is None and lay.output not in outs and len(nxt) == 1
                        and nxt[0].kind == "threshold" and nxt[0].vectors == lay.vectors):
                    thr = nxt[0]
                    fused.add(thr.name)
                    if thr.channels != lay.channels:
                        raise self._refuse(thr, f"NumChannels={thr.channels} after "
                                                f"{lay.name!r} of MH={lay.channels}")
                    self._check_range(thr, "input", al, ah, thr.in_type)
                step, (ol, oh) = self._step(lay, thr, x, al, ah, partial)
            else:
                if lay.channels != width:
                    raise self._refuse(lay, f"NumChannels={lay.channels}, its input {x!r} "
                                            f"has {width} features per vector")
                step, (ol, oh) = self._step(lay, thr, x, xl, xh, mag)
            owner = thr if thr is not None else lay
            self._check_range(owner, "output", ol, oh, owner.out_type)
            lo[step.output] = np.tile(ol, lay.vectors)
            hi[step.output] = np.tile(oh, lay.vectors)
            self.steps.append(step)
        last = {t: i for i, st in enumerate(self.steps) for t in st.inputs}
        keep = set(self.inputs) | outs
        for t, i in last.items():
            if t not in keep:
                self.steps[i].free += (t,)

    def _per_channel(self, lay: Layer, x: str, lo: dict[str, np.ndarray],
                     hi: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, int]:
        """The range of tensor ``x`` per channel (over ``lay.vectors`` vectors) and the
        channels per vector."""
        if len(lo[x]) % lay.vectors:
            raise self._refuse(lay, f"input {x!r} of {len(lo[x])} features is not "
                                    f"{lay.vectors} vectors")
        width = len(lo[x]) // lay.vectors
        return (lo[x].reshape(lay.vectors, width).min(0),
                hi[x].reshape(lay.vectors, width).max(0), width)

    def _plan_dag(self, lay: Layer, xs: list[str], lo: dict[str, np.ndarray],
                  hi: dict[str, np.ndarray]) -> None:
        """Check a branching / joining layer's streams against its attributes and
        datatypes, give its outputs their ranges, and add its step (none for a fork)."""
        v = lay.vectors
        ranges = [self._per_channel(lay, x, lo, hi) for x in xs]
        widths = [r[2] for r in ranges]
        want = {"concat": lay.parts, "add": [lay.channels] * 2}.get(lay.kind, [lay.channels])
        if widths != want:
            raise self._refuse(lay, f"its inputs {xs} have {widths} features per vector, its "
                                    f"attributes say {want}")
        for i, (xl, xh, _) in enumerate(ranges):
            self._check_range(lay, "input" if len(xs) == 1 else f"input {i}", xl, xh,
                              lay.in_types[i] if lay.in_types else lay.in_type)
        mags = [max(float(np.abs(r[0]).max(initial=0)), float(np.abs(r[1]).max(initial=0)))
                for r in ranges]
        if lay.kind == "duplicate":       # aliased in _plan: its outputs are its input
            return
        if lay.kind == "split":
            xl, xh, _ = ranges[0]
            cuts = tuple(zip(np.cumsum([0] + lay.parts[:-1]).tolist(),
                             np.cumsum(lay.parts).tolist(), strict=True))
            for t, (a, b) in zip(lay.outputs, cuts, strict=True):
                lo[t], hi[t] = np.tile(xl[a:b], v), np.tile(xh[a:b], v)
            self.steps.append(SplitStep(lay.name, lay.op_type, "split", (xs[0],),
                                        tuple(lay.outputs), v, _repr_dtype(xl, xh), mags[0],
                                        cuts, lay.channels))
            return
        if lay.kind == "concat":
            ol = np.concatenate([r[0] for r in ranges])
            oh = np.concatenate([r[1] for r in ranges])
            cuts = tuple(zip(np.cumsum([0] + lay.parts[:-1]).tolist(),
                             np.cumsum(lay.parts).tolist(), strict=True))
            step: Move | Step = ConcatStep(lay.name, lay.op_type, "concat", tuple(xs),
                                           (lay.output,), v, _repr_dtype(ol, oh), max(mags),
                                           cuts, lay.channels)
        elif lay.kind == "add":
            ol, oh = ranges[0][0] + ranges[1][0], ranges[0][1] + ranges[1][1]
            big = max(mags + [float(np.abs(ol).max(initial=0)),
                              float(np.abs(oh).max(initial=0))])
            dt = _dtype_for(big)
            if dt is None:
                raise self._refuse(lay, "values beyond 2**62")
            step = AddStep(lay.name, lay.op_type, "add", tuple(xs), (lay.output,), v, dt,
                           big, width=lay.channels)
        elif lay.kind == "argmax":
            ol = np.zeros(1, np.int64)
            oh = np.full(1, lay.channels - 1, np.int64)
            step = ArgmaxStep(lay.name, lay.op_type, "argmax", (xs[0],), (lay.output,), v,
                              _repr_dtype(ranges[0][0], ranges[0][1]), mags[0],
                              width=lay.channels)
        else:
            assert lay.kind == "lookup" and lay.table is not None
            step, (ol, oh) = self._lookup_step(lay, xs[0], ranges[0][0], ranges[0][1])
        self._check_range(lay, "output", ol, oh, lay.out_type)
        lo[lay.output], hi[lay.output] = np.tile(ol, v), np.tile(oh, v)
        self.steps.append(step)

    def _lookup_step(self, lay: Layer, x: str, xl: np.ndarray, xh: np.ndarray
                     ) -> tuple[Step, tuple[np.ndarray, np.ndarray]]:
        """A CodebookLookup as a ``lut`` step: per channel c, the entries
        ``table[c or 0, min(k, L - 1)]`` for the reachable indices k (clipped at L - 1:
        the saturation), so at most the table's own C x L entries."""
        t = lay.table
        assert t is not None
        c, levels = lay.channels, t.shape[1]
        rows = np.broadcast_to(t, (c, levels))
        il, ih = np.minimum(xl, levels - 1), np.minimum(xh, levels - 1)
        sizes = ih - il + 1
        base = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        parts = [rows[j, il[j]:ih[j] + 1] for j in range(c)]
        ol = np.array([p.min() for p in parts], np.int64)
        oh = np.array([p.max() for p in parts], np.int64)
        off, top = base - il, base + sizes - 1
        big = _largest(np.maximum(np.abs(xl), np.abs(xh))) + _largest(np.abs(off)) \
            + _largest(top)
        dt = _dtype_for(big)
        if dt is None:
            raise self._refuse(lay, "indices beyond 2**62")
        step = Step(lay.name, lay.op_type, x, lay.output, lay.vectors, "lut", dt, big,
                    table=np.concatenate(parts).astype(_repr_dtype(ol, oh)),
                    offset=off.astype(dt), base=base.astype(dt), top=top.astype(dt))
        return step, (ol, oh)

    def _check_range(self, lay: Layer, what: str, lo: np.ndarray, hi: np.ndarray,
                     datatype: str) -> None:
        """Refuse a value range the hardware's datatype does not hold."""
        if not datatype or not len(lo):
            return
        dl, dh = int_range(datatype, f"{self.where}: node {lay.name!r} ({lay.op_type})")
        if int(lo.min()) < dl or int(hi.max()) > dh:
            raise self._refuse(lay, f"its {what} spans [{int(lo.min())}, {int(hi.max())}], "
                                    f"outside its datatype {datatype} [{dl}, {dh}]: the "
                                    "hardware would wrap where exact integers do not")

    def _step(self, lay: Layer, thr: Layer | None, x: str, al: np.ndarray, ah: np.ndarray,
              units: np.ndarray) -> tuple[Step, tuple[np.ndarray, np.ndarray]]:
        """The step of ``lay`` (a matmul, or a threshold layer when ``lay is thr``) and the
        threshold layer ``thr`` it feeds (or None). ``[al, ah]``: the range of the values
        thresholded (the accumulator), ``units``: their partial-sum bound per channel."""
        mm = lay.kind == "matmul"
        names = lay.name if thr is None or thr is lay else f"{lay.name}+{thr.name}"
        ops = lay.op_type if thr is None or thr is lay else f"{lay.op_type}+{thr.op_type}"
        out = thr.output if thr is not None else lay.output
        step = Step(names, ops, x, out, lay.vectors, "matmul", np.dtype(np.float32), 0.0)
        prefix = "matmul+" if mm else ""
        if thr is None:  # a plain matmul: its accumulator is the output
            dt = _dtype_for(_largest(units))
            if dt is None:
                raise self._refuse(lay, "partial sums beyond 2**62")
            step.dtype, step.bound, step.weights = dt, _largest(units), lay.weights.astype(dt)
            return step, (al, ah)
        th = step.threshold = Threshold.of(thr, al, ah)
        orange = th.out_range()
        out_dt = _repr_dtype(*orange)
        scale = None
        fit = th.fit_affine()
        if fit is not None:
            m, q = fit
            # values are multiples of m/2 (q too: checked by the fit): in those units
            big = np.where(m > 0, 2 * units + 2 * np.abs(q) / np.where(m > 0, m, 1.0),
                           np.abs(q))
            dt = _dtype_for(_largest(big))
            if dt is not None and dt.kind == "f":
                step.method, step.dtype, step.bound = prefix + "affine", dt, _largest(big)
                step.q = q.astype(dt) if np.any(q) else None
                step.lo, step.hi = float(th.levels[0]), float(th.levels[-1])
                scale = m
        if scale is None:
            lut = th.lut()
            if lut is not None:
                table, off, base, top = lut
                big = units + np.abs(off) + np.abs(top)
                dt = _dtype_for(_largest(big))
                if dt is not None:
                    step.method, step.dtype, step.bound = prefix + "lut", dt, _largest(big)
                    step.table = table.astype(out_dt)
                    step.offset, step.base, step.top = (off.astype(dt), base.astype(dt),
                                                        top.astype(dt))
            if step.table is None:  # thresholds reach amax + 1: one more than the values
                dt = _dtype_for(_largest(units) + 1)
                if dt is None:
                    raise self._refuse(lay, "values beyond 2**62")
                step.method, step.dtype, step.bound = prefix + "searchsorted", dt, \
                    _largest(units)
                step.sorted_t = [th.t[c].astype(dt) for c in range(th.t.shape[0])]
                step.levels = th.levels.astype(out_dt)
        if mm:
            w = lay.weights * scale[None, :] if scale is not None else lay.weights
            step.weights = w.astype(step.dtype)
        elif scale is not None and not np.all(scale == 1):
            step.scale = scale.astype(step.dtype)
        return step, orange

    # ---------------------------------------------------------------- running
    def check(self, codes: dict[str, Any]) -> tuple[dict[str, np.ndarray], int]:
        """The inputs as (N, F) arrays and N; refuses missing or unknown names, other
        shapes, different N, non-integers and values outside an input's datatype."""
        missing = [k for k in self.inputs if k not in codes]
        unknown = [k for k in codes if k not in self.inputs]
        if missing or unknown:
            raise ValueError(f"{self.where}: inputs are {list(self.inputs)}; "
                             + "; ".join(([f"missing {missing}"] if missing else [])
                                         + ([f"unknown {unknown}"] if unknown else [])))
        out, n = {}, -1
        for name, s in self.inputs.items():
            a = np.asarray(codes[name])
            if a.ndim != 2 or a.shape[1] != s.features:
                raise ValueError(f"{self.where}: input {name!r} of shape {a.shape}: "
                                 f"expected (N, {s.features})")
            if n >= 0 and len(a) != n:
                raise ValueError(f"{self.where}: inputs have different numbers of vectors "
                                 f"({n} and {len(a)} for {name!r})")
            n = len(a)
            if a.dtype.kind not in "iu" and not (
                    a.dtype.kind == "f" and np.isfinite(a).all() and (a == np.rint(a)).all()):
                raise ValueError(f"{self.where}: input {name!r}: codes must be integers "
                                 f"(dtype {a.dtype})")
            if a.size and (a.min() < s.lo or a.max() > s.hi):
                raise ValueError(f"{self.where}: input {name!r}: codes span [{a.min()}, "
                                 f"{a.max()}], outside {s.datatype} [{s.lo}, {s.hi}]")
            out[name] = a
        return out, n

    def run(self, codes: dict[str, Any], check: bool = True) -> dict[str, np.ndarray]:
        """``{input: (N, F) integer codes}`` -> ``{output: (N, G) int64 codes}`` (new
        arrays: nothing returned aliases the inputs or the workspace).

        ``check=False`` skips :meth:`check` (for callers that checked already): the
        results are proved exact for integer inputs inside each input's datatype only.
        """
        if check:
            env, n = self.check(codes)
        else:
            env = {k: codes[k] for k in self.inputs}
            n = len(env[next(iter(self.inputs))])
        if n == 0:
            return {o: np.empty((0, s.features), np.int64) for o, s in self.outputs.items()}
        ws = self._workspace(n)
        for step in self.steps:
            step(env, n, ws)
            for t in step.free:
                del env[t]
        return {o: env[self.alias.get(o, o)].astype(np.int64) for o in self.outputs}

    def _workspace(self, n: int) -> dict[Any, np.ndarray]:
        """This thread's buffers for batches of ``n`` (the last :data:`WORKSPACES` sizes
        are kept: allocating megabytes per call costs page faults)."""
        cache = getattr(self._local, "ws", None)
        if cache is None:
            cache = self._local.ws = OrderedDict()
        ws = cache.get(n)
        if ws is None:
            ws = cache[n] = {}
            while len(cache) > WORKSPACES:
                cache.popitem(last=False)
        else:
            cache.move_to_end(n)
        return ws

    __call__ = run

    def run_plain(self, codes: dict[str, Any]) -> dict[str, np.ndarray]:
        """The same graph the obvious way: int64 ``x @ W``, thresholds counted by
        broadcast comparison ``(a[..., None] >= T).sum(-1)`` with the thresholds as
        stored (FINN's ``multithreshold``). Slow; the fast path's reference."""
        env, n = self.check(codes)
        env = {k: v.astype(np.int64) for k, v in env.items()}
        for lay in self.order:
            xs = [env[t].reshape(n * lay.vectors, -1) for t in lay.inputs]
            if lay.kind in ("identity", "duplicate"):
                ys = xs * len(lay.outputs)
            elif lay.kind == "split":
                ys = np.split(xs[0], np.cumsum(lay.parts)[:-1], axis=1)
            elif lay.kind == "concat":
                ys = [np.concatenate(xs, axis=1)]
            elif lay.kind == "add":
                ys = [xs[0] + xs[1]]
            elif lay.kind == "lookup":
                t = lay.table
                ch = np.arange(lay.channels) if t.shape[0] > 1 else np.zeros(lay.channels,
                                                                              np.int64)
                ys = [t[ch, np.minimum(xs[0], t.shape[1] - 1)]]
            elif lay.kind == "argmax":
                ys = [np.argmax(xs[0], axis=1)]
            else:
                a = xs[0] @ lay.weights if lay.kind == "matmul" else xs[0]
                if lay.thresholds is not None:
                    a = lay.levels[(a[:, :, None] >= lay.thresholds[None]).sum(-1)]
                ys = [a]
            for t, y in zip(lay.outputs, ys, strict=True):
                env[t] = y.reshape(n, -1)
        return {o: env[o].astype(np.int64) for o in self.outputs}

    def describe(self) -> list[dict[str, Any]]:
        """Per step: layer(s), method, arithmetic dtype and the exactness bound reached
        (largest magnitude in units of the values' grid) against the dtype's limit
        (split, concat, add, argmax: the largest magnitude of their values)."""
        limit = {"float32": F32_EXACT, "float64": F64_EXACT, "int64": I64_SAFE}
        return [{"layer": s.layer, "op": s.op, "method": s.method, "dtype": s.dtype.name,
                 "bound": s.bound, "limit": limit[s.dtype.name]} for s in self.steps]


# =========================================================================== 4. bench
def load_package_model(pkg: Any) -> IntegerModel:
    """The integer graph of a checked :class:`host.package.Package`, read from the bytes
    whose sha256 equals the manifest's (checked again here, at the read)."""
    path = pkg.path("model_finn.onnx")
    data = path.read_bytes()
    want = pkg.manifest["artifacts"]["model_finn.onnx"]
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        from host.package import PackageIntegrityError
        raise PackageIntegrityError(f"{path}: sha256 {got}, the manifest says {want}")
    return IntegerModel.from_bytes(data, f"{pkg.name}/model_finn.onnx")


def thread_limit(threads: int) -> tuple[Any, str]:
    """Limit the BLAS/OpenMP threads of this process to ``threads`` (threadpoolctl,
    where installed). Returns a function restoring the previous limits, and how it was
    done (the libraries and their thread counts now)."""
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        return (lambda: None), ("threadpoolctl not installed: BLAS threads as set by "
                                "OPENBLAS_NUM_THREADS / OMP_NUM_THREADS at start")
    limiter = threadpool_limits(limits=threads)
    libs = [f"{i.get('internal_api')} {i.get('version')} num_threads={i.get('num_threads')}"
            for i in threadpool_info()]
    return limiter.restore_original_limits, (f"threadpoolctl.threadpool_limits({threads}): "
                                             + "; ".join(libs))


def measure(fn: Any, min_time: float, min_reps: int = 5, max_reps: int = 100000
            ) -> dict[str, float]:
    """Median and minimum wall time of ``fn()`` over >= ``min_reps`` calls and
    ``min_time`` seconds (after two warm-up calls)."""
    fn()
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_time:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
        if len(times) >= max_reps:
            break
    times.sort()
    return {"latency_s": times[len(times) // 2], "min_s": times[0], "reps": len(times)}


def random_codes(model: IntegerModel, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Uniform random codes over each input's whole datatype range."""
    rng = np.random.default_rng(seed)
    return {k: rng.integers(s.lo, s.hi + 1, (n, s.features), dtype=np.int64)
            for k, s in model.inputs.items()}


def bench_rows(model: IntegerModel, codes: dict[str, np.ndarray], batches: list[int],
               min_time: float = 0.5, check: bool = True) -> list[dict[str, Any]]:
    """vectors/s per batch size of :meth:`IntegerModel.run` (one row per batch size)."""
    rows = []
    for b in batches:
        c = {k: np.ascontiguousarray(v[:b]) for k, v in codes.items()}
        t = measure(lambda c=c: model.run(c, check=check), min_time)
        rows.append({"backend": "integer", "device": "cpu-numpy", "batch": b, **t,
                     "vectors_per_s": b / t["latency_s"], "checked_inputs": check})
    return rows


def threshold_methods(model: IntegerModel, n: int = 8192, min_time: float = 0.3,
                      seed: int = 1) -> list[dict[str, Any]]:
    """Each threshold layer of ``model`` alone, on ``n`` random accumulators uniform in
    each channel's reachable range, by every method that applies: ``affine`` (on
    accumulators already scaled by ``m``, as the folded matmul gives them), ``lut``,
    ``searchsorted`` per channel, and the broadcast ``compare`` and sum of FINN's
    ``multithreshold``; seconds per call (median), each method's output checked equal."""
    rng = np.random.default_rng(seed)
    rows = []
    for st in model.steps:
        if st.threshold is not None:
            th = st.threshold
            row = {"step": st.layer, "chosen": st.method, "channels": th.t.shape[0],
                   "thresholds": th.t.shape[1], "vectors": n}
            row.update(_time_methods(th, rng.integers(th.amin, th.amax + 1,
                                                      (n, th.t.shape[0])), min_time, st.layer))
            rows.append(row)
    return rows


def _time_methods(th: Threshold, a: np.ndarray, min_time: float, where: str
                  ) -> dict[str, float]:
    """:func:`threshold_methods` for one layer and accumulators ``a`` (int64)."""
    c = th.t.shape[0]
    want = np.stack([th.level(j, a[:, j]) for j in range(c)], axis=1)
    dt = _dtype_for(float(np.abs(a).max(initial=0)) + th.t.size
                    + float(np.abs(th.amin).max(initial=0)) + 1)
    dt = dt if dt is not None and dt.kind == "f" else np.dtype(np.float64)
    af, buf = a.astype(dt), np.empty(a.shape, dt)
    lv, t = th.levels.astype(dt), th.t.astype(dt)
    fns: dict[str, Any] = {}
    fit = th.fit_affine()
    if fit is not None:
        am, qd = af * fit[0].astype(dt), fit[1].astype(dt)
        lo, hi = float(lv[0]), float(lv[-1])

        def affine() -> np.ndarray:
            np.add(am, qd, out=buf)
            np.rint(buf, out=buf)
            return _clip(buf, lo, hi, out=buf)
        fns["affine"] = affine
    lut = th.lut()
    if lut is not None:
        table, off, base, top = (v.astype(dt) for v in lut)

        def lookup() -> np.ndarray:
            np.add(af, off, out=buf)
            _clip(buf, base, top, out=buf)
            return table.take(buf.astype(np.intp))
        fns["lut"] = lookup

    def search() -> np.ndarray:
        y = np.empty(af.shape, dt)
        for j in range(c):
            y[:, j] = lv.take(np.searchsorted(t[j], af[:, j], side="right"))
        return y
    fns["searchsorted"] = search
    fns["compare"] = lambda: lv.take((af[:, :, None] >= t[None]).sum(-1))
    out = {}
    for name, fn in fns.items():
        if not np.array_equal(fn(), want):
            raise AssertionError(f"{where}: threshold method {name} differs")
        out[f"{name}_s"] = measure(fn, min_time, min_reps=3)["latency_s"]
    return out


def bench(package: str | Path, out: str | Path | None = "results/host",
          batches: tuple[int, ...] = (1, 256, 8192), min_time: float = 1.0,
          threads: int = 1, methods: bool = True) -> dict[str, Any]:
    """Throughput and batch-1 latency of the integer executor on a package, one BLAS
    thread; codes equal :meth:`IntegerModel.run_plain` on the timed batch (checked);
    with ``methods``, every threshold method per layer (:func:`threshold_methods`).
    Writes ``<out>/integer-<package>.json`` (unless ``out`` is None)."""
    import platform

    from host.package import open_package

    pkg = open_package(package)
    t0 = time.perf_counter()
    model = load_package_model(pkg)
    load_s = time.perf_counter() - t0
    restore, how = thread_limit(threads)
    try:
        codes = random_codes(model, max(batches), seed=4242)
        got, want = model.run(codes), model.run_plain(codes)
        exact = all(np.array_equal(got[k], want[k]) for k in want)
        rows = bench_rows(model, codes, list(batches), min_time)
        rows += bench_rows(model, codes, [1], min_time, check=False)
        per_layer = threshold_methods(model, max(batches), min_time / 3) if methods else []
    finally:
        restore()
    result = {"package": pkg.name, "load_s": load_s, "threads": how,
              "exact_vs_plain_on_timed_batch": exact, "steps": model.describe(),
              "rows": rows, "threshold_methods": per_layer,
              "env": {"python": platform.python_version(), "numpy": np.__version__,
                      "cpu": platform.processor() or platform.machine()}}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"integer-{pkg.name}.json"
        path.write_text(json.dumps(result, indent=1, default=str) + "\n")
        result["path"] = str(path)
    return result


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m host.integer",
                                 description="benchmark the integer executor of a package")
    ap.add_argument("package", type=Path)
    ap.add_argument("--out", type=Path, default=Path("results/host"))
    ap.add_argument("--batch-sizes", default="1,256,8192")
    ap.add_argument("--min-time", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-methods", action="store_true",
                    help="skip timing every threshold method per layer")
    a = ap.parse_args(argv)
    batches = tuple(int(b) for b in a.batch_sizes.split(","))
    r = bench(a.package, a.out, batches, a.min_time, a.threads, not a.no_methods)
    print(f"{r['package']}: integer graph loaded in {r['load_s'] * 1e3:.1f} ms; {r['threads']}")
    for s in r["steps"]:
        print(f"  {s['layer']:<40} {s['method']:<20} {s['dtype']:<8} bound "
              f"{s['bound']:.0f} <= {s['limit']}")
    print(f"{'batch':>6}{'checked':>9}{'latency/call':>16}{'vectors/s':>15}")
    for row in r["rows"]:
        print(f"{row['batch']:>6}{str(row['checked_inputs']):>9}"
              f"{row['latency_s'] * 1e6:>13.2f} us{row['vectors_per_s']:>15,.0f}")
    if r["threshold_methods"]:
        print(f"threshold layers alone, {r['threshold_methods'][0]['vectors']} vectors "
              "(ms per call; all methods checked equal):")
        names = ("affine", "lut", "searchsorted", "compare")
        print(f"  {'step':<40}{'C x K':>9}" + "".join(f"{n:>14}" for n in names))
        for row in r["threshold_methods"]:
            cells = "".join(f"{row[n + '_s'] * 1e3:>14.3f}" if n + "_s" in row
                            else f"{'-':>14}" for n in names)
            print(f"  {row['step']:<40}{str(row['channels']) + 'x' + str(row['thresholds']):>9}"
                  + cells)
    print(f"codes == run_plain on the timed batch: {r['exact_vs_plain_on_timed_batch']}")
    if "path" in r:
        print(f"wrote {r['path']}")
    return 0 if r["exact_vs_plain_on_timed_batch"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
