"""The I/O contract re-derived from a package's hashed ONNX files, without ``onnx``.

Board-side module: standard library only.

Why our own reader: the board runs numpy and pynq only; neither ``onnx`` nor
``protobuf`` is installed there (``host/requirements-board.txt``), and the contract must
be checked where it is used. An ONNX file is a protobuf ``ModelProto``; this module
decodes the protobuf wire format (varints, length-delimited fields, fixed32/64) and
reads exactly the fields below, skipping everything else. Field numbers are onnx's
``onnx.proto`` (checked against onnx 1.21.0; ``tests/test_host_integrity.py`` compares
this reader with ``onnx.load`` on real files)::

    ModelProto              graph = 7, metadata_props = 14
    GraphProto              node = 1, initializer = 5, input = 11, output = 12,
                            quantization_annotation = 14, metadata_props = 16
    NodeProto               input = 1, output = 2, name = 3, op_type = 4
    TensorProto             dims = 1, data_type = 2, float_data = 4, name = 8,
                            raw_data = 9, double_data = 10
    ValueInfoProto          name = 1, type = 2
    TypeProto               tensor_type = 1
    TypeProto.Tensor        elem_type = 1, shape = 2
    TensorShapeProto        dim = 1
    Dimension               dim_value = 1, dim_param = 2
    TensorAnnotation        tensor_name = 1, quant_parameter_tensor_names = 2
    StringStringEntryProto  key = 1, value = 2

What the package's contract is derived from (as ``hw.package.io_contract`` writes it),
per named tensor (the graph inputs and outputs of both models carry the contract's names,
in its order):

* input scales: the initializer of the scalar ``Mul`` that consumes each graph input of
  ``model_qonnx.onnx`` (``export.qonnx_export`` names it ``InputScale``; QONNX's
  cleanup renames it, e.g. ``Mul_0``, so it is found by the graph input it consumes);
* output scales: metadata ``host_output_scale:<tensor>`` of ``model_finn.onnx`` for each
  graph output (qonnx's ``ModelWrapper.set_metadata_prop`` writes it into
  ``GraphProto.metadata_props``; the model-level ``ModelProto.metadata_props`` is read as
  a fallback), ``<tensor>`` being the output's name, or FINN's name for it that
  ``contract_io`` records at that position, or its index (:func:`output_scale`); 1.0 for
  an output that already is a codebook index;
* names, shapes and FINN datatypes: the graph inputs/outputs of ``model_finn.onnx``
  (shape from the value type, datatype from the ``finn_datatype`` quantization
  annotation).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST_OUTPUT_SCALE = "host_output_scale"  # = hw.steps.HOST_OUTPUT_SCALE (":<tensor>" per output)
CONTRACT_IO = "contract_io"              # = hw.steps.CONTRACT_IO
FLOAT, DOUBLE = 1, 11                     # TensorProto.DataType
VARINT, I64, LEN, I32 = 0, 1, 2, 5        # protobuf wire types


class OnnxFormatError(ValueError):
    """The bytes are not a well-formed protobuf / ONNX message (truncated, bad wire type)."""


# --------------------------------------------------------------------------- wire format
def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise OnnxFormatError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise OnnxFormatError("varint longer than 10 bytes")


def fields(buf: bytes | memoryview) -> list[tuple[int, int, Any]]:
    """``(field number, wire type, value)`` of one message, in order.

    ``value`` is an int for varint/fixed32/fixed64 fields (the raw bits for fixed) and a
    memoryview of the payload for length-delimited ones (sub-messages, strings, bytes,
    packed repeated scalars). Groups (wire types 3/4, unused by ONNX) are refused.
    """
    buf = memoryview(buf)
    out, pos, n = [], 0, len(buf)
    while pos < n:
        key, pos = _varint(buf, pos)
        num, wt = key >> 3, key & 7
        if num == 0:
            raise OnnxFormatError(f"field number 0 at byte {pos}")
        if wt == VARINT:
            val, pos = _varint(buf, pos)
        elif wt == I64:
            if pos + 8 > n:
                raise OnnxFormatError("truncated fixed64")
            val, pos = int.from_bytes(buf[pos:pos + 8], "little"), pos + 8
        elif wt == I32:
            if pos + 4 > n:
                raise OnnxFormatError("truncated fixed32")
            val, pos = int.from_bytes(buf[pos:pos + 4], "little"), pos + 4
        elif wt == LEN:
            size, pos = _varint(buf, pos)
            if pos + size > n:
                raise OnnxFormatError(f"field {num}: {size} bytes announced, {n - pos} left")
            val, pos = buf[pos:pos + size], pos + size
        else:
            raise OnnxFormatError(f"field {num}: wire type {wt} is not used by ONNX")
        out.append((num, wt, val))
    return out


def _str(v: memoryview) -> str:
    return bytes(v).decode("utf-8")


def _int64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def packed_varints(v: memoryview) -> list[int]:
    """A packed run of varints (unsigned 64-bit values)."""
    vals, pos = [], 0
    while pos < len(v):
        x, pos = _varint(v, pos)
        vals.append(x)
    return vals


def repeated_ints(wt: int, v: Any, signed: bool = True) -> list[int]:
    """A repeated int field: one varint, or a packed run of them (two's complement int64
    unless ``signed`` is False)."""
    vals = [v] if wt == VARINT else packed_varints(v)
    return [_int64(x) for x in vals] if signed else vals


def _repeated_ints(wt: int, v: Any) -> list[int]:
    return repeated_ints(wt, v)


def repeated_fixed(wt: int, v: Any, fmt: str, size: int, fixed_wt: int) -> list[float]:
    """A repeated float/double field: one fixed value, or a packed run of them."""
    if wt == fixed_wt:
        return [struct.unpack(fmt, v.to_bytes(size, "little"))[0]]
    if len(v) % size:
        raise OnnxFormatError(f"packed {fmt} field of {len(v)} bytes")
    return [x[0] for x in struct.iter_unpack(fmt, bytes(v))]


# --------------------------------------------------------------------------- messages
@dataclass
class Node:
    name: str = ""
    op_type: str = ""
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


@dataclass
class Tensor:
    name: str = ""
    dims: list[int] = field(default_factory=list)
    data_type: int = 0
    float_data: list[float] = field(default_factory=list)
    double_data: list[float] = field(default_factory=list)
    raw_data: bytes = b""

    def values(self) -> list[float]:
        """The elements of a FLOAT or DOUBLE tensor (raw_data little-endian, or the lists)."""
        if self.data_type not in (FLOAT, DOUBLE):
            raise OnnxFormatError(f"tensor {self.name!r}: data_type {self.data_type}, "
                                  "only FLOAT (1) and DOUBLE (11) are read here")
        if self.raw_data:
            fmt = "<f" if self.data_type == FLOAT else "<d"
            size = struct.calcsize(fmt)
            if len(self.raw_data) % size:
                raise OnnxFormatError(f"tensor {self.name!r}: {len(self.raw_data)} raw bytes")
            return [x[0] for x in struct.iter_unpack(fmt, self.raw_data)]
        return list(self.float_data if self.data_type == FLOAT else self.double_data)


@dataclass
class ValueInfo:
    name: str = ""
    elem_type: int = 0
    shape: list[int | str] | None = None  # dim_value, or dim_param where symbolic


@dataclass
class Graph:
    nodes: list[Node] = field(default_factory=list)
    initializers: dict[str, Tensor] = field(default_factory=dict)
    inputs: list[ValueInfo] = field(default_factory=list)
    outputs: list[ValueInfo] = field(default_factory=list)
    annotations: dict[str, dict[str, str]] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class Model:
    graph: Graph
    metadata: dict[str, str] = field(default_factory=dict)  # ModelProto.metadata_props


def _entry(buf: memoryview) -> tuple[str, str]:
    key = value = ""
    for num, wt, v in fields(buf):
        if num == 1 and wt == LEN:
            key = _str(v)
        elif num == 2 and wt == LEN:
            value = _str(v)
    return key, value


def _node(buf: memoryview) -> Node:
    n = Node()
    for num, wt, v in fields(buf):
        if wt != LEN:
            continue
        if num == 1:
            n.inputs.append(_str(v))
        elif num == 2:
            n.outputs.append(_str(v))
        elif num == 3:
            n.name = _str(v)
        elif num == 4:
            n.op_type = _str(v)
    return n


def _tensor(buf: memoryview) -> Tensor:
    t = Tensor()
    for num, wt, v in fields(buf):
        if num == 1:
            t.dims += _repeated_ints(wt, v)
        elif num == 2 and wt == VARINT:
            t.data_type = v
        elif num == 4:
            t.float_data += repeated_fixed(wt, v, "<f", 4, I32)
        elif num == 8 and wt == LEN:
            t.name = _str(v)
        elif num == 9 and wt == LEN:
            t.raw_data = bytes(v)
        elif num == 10:
            t.double_data += repeated_fixed(wt, v, "<d", 8, I64)
    return t


def _shape(buf: memoryview) -> list[int | str]:
    dims: list[int | str] = []
    for num, wt, v in fields(buf):
        if num == 1 and wt == LEN:
            dim: int | str = "?"
            for dn, dwt, dv in fields(v):
                if dn == 1 and dwt == VARINT:
                    dim = _int64(dv)
                elif dn == 2 and dwt == LEN:
                    dim = _str(dv)
            dims.append(dim)
    return dims


def _value_info(buf: memoryview) -> ValueInfo:
    vi = ValueInfo()
    for num, wt, v in fields(buf):
        if num == 1 and wt == LEN:
            vi.name = _str(v)
        elif num == 2 and wt == LEN:                    # TypeProto
            for tn, twt, tv in fields(v):
                if tn == 1 and twt == LEN:              # tensor_type
                    for sn, swt, sv in fields(tv):
                        if sn == 1 and swt == VARINT:
                            vi.elem_type = sv
                        elif sn == 2 and swt == LEN:
                            vi.shape = _shape(sv)
    return vi


def _annotation(buf: memoryview) -> tuple[str, dict[str, str]]:
    name, params = "", {}
    for num, wt, v in fields(buf):
        if num == 1 and wt == LEN:
            name = _str(v)
        elif num == 2 and wt == LEN:
            k, val = _entry(v)
            params[k] = val
    return name, params


def _graph(buf: memoryview) -> Graph:
    g = Graph()
    for num, wt, v in fields(buf):
        if wt != LEN:
            continue
        if num == 1:
            g.nodes.append(_node(v))
        elif num == 5:
            t = _tensor(v)
            g.initializers[t.name] = t
        elif num == 11:
            g.inputs.append(_value_info(v))
        elif num == 12:
            g.outputs.append(_value_info(v))
        elif num == 14:
            name, params = _annotation(v)
            g.annotations.setdefault(name, {}).update(params)
        elif num == 16:
            k, val = _entry(v)
            g.metadata[k] = val
    return g


def parse_model(data: bytes) -> Model:
    """The fields above of a serialized ``ModelProto``."""
    graph, meta = None, {}
    for num, wt, v in fields(data):
        if num == 7 and wt == LEN:
            graph = _graph(v)
        elif num == 14 and wt == LEN:
            k, val = _entry(v)
            meta[k] = val
    if graph is None:
        raise OnnxFormatError("no graph (ModelProto field 7): not an ONNX model")
    return Model(graph, meta)


def load(path: str | Path) -> Model:
    path = Path(path)
    try:
        return parse_model(path.read_bytes())
    except OnnxFormatError as e:
        raise OnnxFormatError(f"{path.name}: {e}") from None


# --------------------------------------------------------------------------- the contract
def input_scale(qonnx: Model, name: str, where: str = "model_qonnx.onnx") -> tuple[float, str]:
    """The scale graph input ``name``'s codes are multiplied by, and where it was read."""
    g = qonnx.graph
    names = [vi.name for vi in g.inputs]
    if name not in names:
        raise OnnxFormatError(f"{where}: no graph input {name!r} (graph inputs: {names})")
    users = [n for n in g.nodes if name in n.inputs]
    if len(users) != 1 or users[0].op_type != "Mul":
        raise OnnxFormatError(f"{where}: graph input {name!r} feeds "
                              f"{[(n.name, n.op_type) for n in users]}, expected one Mul "
                              "(InputScale)")
    mul = users[0]
    others = [i for i in mul.inputs if i != name]
    if len(others) != 1 or others[0] not in g.initializers:
        raise OnnxFormatError(f"{where}: Mul {mul.name!r} has no constant scale input")
    vals = g.initializers[others[0]].values()
    if len(vals) != 1:
        raise OnnxFormatError(f"{where}: Mul {mul.name!r} scale has {len(vals)} elements")
    return float(vals[0]), f"{where} (Mul {mul.name!r}, initializer {others[0]!r})"


def _metadata(m: Model) -> list[tuple[str, dict[str, str]]]:
    return [("graph", m.graph.metadata), ("model", m.metadata)]


def recorded_outputs(finn: Model, where: str = "model_finn.onnx") -> list[str] | None:
    """The graph output names in contract order as the flow recorded them at streamlining
    (metadata ``contract_io``, ``hw.steps.CONTRACT_IO``), or None where there is none."""
    for _, meta in _metadata(finn):
        if CONTRACT_IO in meta:
            try:
                outs = json.loads(meta[CONTRACT_IO])["outputs"]
            except (ValueError, KeyError, TypeError):
                raise OnnxFormatError(f"{where}: metadata {CONTRACT_IO}="
                                      f"{meta[CONTRACT_IO]!r} is not {{\"inputs\": [...], "
                                      "\"outputs\": [...]}") from None
            return [str(o) for o in outs] if isinstance(outs, list) else None
    return None


def output_scale(finn: Model, index: int, where: str = "model_finn.onnx") -> tuple[float, str]:
    """The host-side scale of the ``index``-th graph output (1.0 for a codebook index
    output), and where it was read: metadata ``host_output_scale:<tensor>`` under the
    output's name, or under the name ``contract_io`` records for that position (FINN's
    name before the package restored the contract's), or ``host_output_scale:<index>``.
    Two of those present with different values are refused."""
    name = finn.graph.outputs[index].name
    keys = [f"{HOST_OUTPUT_SCALE}:{name}"]
    recorded = recorded_outputs(finn, where)
    if recorded is not None and len(recorded) == len(finn.graph.outputs):
        keys.append(f"{HOST_OUTPUT_SCALE}:{recorded[index]}")
    keys.append(f"{HOST_OUTPUT_SCALE}:{index}")
    found: list[tuple[float, str]] = []
    for key in dict.fromkeys(keys):
        for scope, meta in _metadata(finn):
            if key in meta:
                raw = meta[key]
                try:
                    found.append((float(raw), f"{where} ({scope} metadata {key}={raw!r})"))
                except ValueError:
                    raise OnnxFormatError(f"{where}: metadata {key}={raw!r} is not a "
                                          "number") from None
                break
    if len({v for v, _ in found}) > 1:
        raise OnnxFormatError(f"{where}: graph output {index} ({name!r}) has conflicting "
                              f"scales: {'; '.join(src for _, src in found)}")
    if found:
        return found[0]
    old = any(HOST_OUTPUT_SCALE in meta for _, meta in _metadata(finn))
    tried = " / ".join(repr(k) for k in dict.fromkeys(keys))
    raise OnnxFormatError(f"{where}: no metadata {tried} for graph output {index} "
                          f"({name!r})" + (
        f" (it has the single {HOST_OUTPUT_SCALE!r} of a model built before named I/O "
        "streams: rebuild the package)" if old else ""))


def _tensor_facts(g: Graph, vi: ValueInfo, kind: str, index: int, where: str
                  ) -> dict[str, Any]:
    what = f"graph {kind} {index}"
    return {"name": vi.name, "shape": vi.shape,
            "datatype": g.annotations.get(vi.name, {}).get("finn_datatype"),
            "source": {"name": f"{where} ({what})",
                       "shape": f"{where} ({what} {vi.name!r})",
                       "datatype": f"{where} (finn_datatype of {vi.name!r})"}}


def derive_io(qonnx_path: str | Path, finn_path: str | Path) -> dict[str, list[dict[str, Any]]]:
    """``io.inputs`` / ``io.outputs`` as the ONNX files state them, in graph order:
    ``{name, shape, datatype, scale}`` per tensor (names, shapes and datatypes from the
    graph inputs/outputs of ``model_finn.onnx``, which carry the contract's names; input
    scales from the ``Mul`` consuming each graph input of ``model_qonnx.onnx``, by name;
    output scales from ``host_output_scale:<tensor>``, :func:`output_scale`). Each tensor
    also has ``"source"``: where each value was read (for error messages).
    """
    q, f = load(qonnx_path), load(finn_path)
    qn, fn = Path(qonnx_path).name, Path(finn_path).name
    if not f.graph.inputs or not f.graph.outputs:
        raise OnnxFormatError(f"{fn}: graph has no input or no output")
    inputs, outputs = [], []
    for i, vi in enumerate(f.graph.inputs):
        t = _tensor_facts(f.graph, vi, "input", i, fn)
        t["scale"], t["source"]["scale"] = input_scale(q, vi.name, qn)
        inputs.append(t)
    for i, vi in enumerate(f.graph.outputs):
        t = _tensor_facts(f.graph, vi, "output", i, fn)
        t["scale"], t["source"]["scale"] = output_scale(f, i, fn)
        outputs.append(t)
    return {"inputs": inputs, "outputs": outputs}
