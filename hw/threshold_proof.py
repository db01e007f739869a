"""Exhaustive proof of every Thresholding layer, and how far test vectors reach its edges.

Vectors cannot prove hidden thresholds: a threshold that no vector's accumulator reaches
can move without any output changing. The proof here enumerates every integer the layer's
input (the accumulator of the MVAU before it) can take and compares, per channel:

- the FINN node's codes, ``count(T[c, j] <= a) + ActVal`` (FINN's ``Thresholding`` /
  qonnx ``multithreshold``: an input equal to a threshold is at the higher level), with
- reference codes from the QONNX (Brevitas) model: the accumulator ``a`` of the matching
  MatMul/Gemm is ``a * s_in * s_w`` in float (powers of two, exact in float32), run through
  the QONNX nodes after it (bias Add, Relu or Tanh, ...) up to the next ``Quant``, whose
  output divided by its scale is the code (a learned or codebook MultiThreshold ends the
  chain too: its count is the index). A Thresholding fed by a Thresholding (a codebook
  index on a quantizer's codes, a quantizer with a non-power-of-two scale) is proven from
  the QONNX output of the quantizer the first one was proven against: every code times
  its scale (float32, as qonnx's Quant computes it) through the nodes after it.

With a package's ``rtl/`` folder it also checks the ``Thresholding_rtl`` memory files
(``<node>_threshs_<pe>_<stage>.dat``) entry by entry and replays the RTL's binary search
(input saturation to the threshold width included) over the whole input range.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import qonnx_make_model

from hw.steps import contract_io_names
from hw.verify import with_batch
from zoo.quantizers import LOOKUP_OP

MAX_POINTS = 2**24  # values per channel enumerated at most (beyond: edge points only)
CHUNK_ELEMS = 2**22  # (values x channels) per QONNX execution
FIRST_MISMATCHES = 10
# FINN nodes that pass a stream through unchanged between an MVAU and its Thresholding.
PASS_THROUGH = ("StreamingFIFO", "StreamingDataWidthConverter")


def thresholding_nodes(finn_model: ModelWrapper) -> list:
    """The model's Thresholding layers (``Thresholding``, ``Thresholding_rtl``, ...)."""
    return [n for n in finn_model.graph.node if n.op_type.startswith("Thresholding")]


def _node(finn_model: ModelWrapper, name: str):  # noqa: ANN202
    for n in finn_model.graph.node:
        if n.name == name:
            return n
    raise KeyError(f"no node named {name!r}")


def layer_thresholds(finn_model: ModelWrapper, node) -> np.ndarray:  # noqa: ANN001
    """Thresholds of a Thresholding node, (C, S), a single row broadcast to all C channels."""
    t = np.asarray(finn_model.get_initializer(node.input[1]), dtype=np.float64)
    channels = getCustomOp(node).get_nodeattr("NumChannels")
    t = t.reshape(t.shape[0], -1)
    return np.broadcast_to(t, (channels, t.shape[1])) if t.shape[0] == 1 else t


def node_codes(thresholds: np.ndarray, act_val: int, values: np.ndarray,
               bipolar: bool = False) -> np.ndarray:
    """FINN's Thresholding of integer ``values``, (R,) for every channel or (R, C): codes (R, C).

    ``count(T[c, j] <= a) + ActVal`` (``2 * count - 1`` for a BIPOLAR output), as
    ``Thresholding.execute_node`` computes it through qonnx's ``multithreshold``.
    """
    values = np.asarray(values, dtype=np.float64)
    out = np.empty((len(values), thresholds.shape[0]), dtype=np.int64)
    for c, row in enumerate(thresholds):
        v = values if values.ndim == 1 else values[:, c]
        out[:, c] = np.searchsorted(np.sort(row), v, side="right")
    return 2 * out - 1 if bipolar else out + int(act_val)


def _node_codes_of(finn_model: ModelWrapper, node, values: np.ndarray) -> np.ndarray:  # noqa: ANN001
    inst = getCustomOp(node)
    bipolar = DataType[inst.get_nodeattr("outputDataType")] == DataType["BIPOLAR"]
    return node_codes(layer_thresholds(finn_model, node), inst.get_nodeattr("ActVal"),
                      values, bipolar)


# ---------------------------------------------------------------------------------------
# Reference codes from the QONNX model


def _const_tensors(model: ModelWrapper) -> dict[str, np.ndarray]:
    """Every tensor computable from initializers alone (quantized weights and biases)."""
    names = {i.name for i in model.graph.initializer}
    for node in model.graph.node:
        if node.input and all(i == "" or i in names for i in node.input):
            names.update(node.output)
    feed = {i.name: np.zeros(model.get_tensor_shape(i.name), np.float32)
            for i in model.graph.input}
    ctx = execute_onnx(model, feed, return_full_exec_context=True)
    return {k: np.asarray(ctx[k]) for k in names if k in ctx}


def _scalar(x: np.ndarray) -> float | None:
    x = np.asarray(x, dtype=np.float64).ravel()
    return float(x[0]) if x.size and np.all(x == x[0]) else None


def _activation_scale(model: ModelWrapper, tensor: str,
                      consts: dict[str, np.ndarray]) -> float | None:
    """Scale from the integer codes of ``tensor`` to its float value, or None if unknown.

    A graph input carries integer codes (scale 1); a ``Quant`` gives its scale; a ``Mul``
    by a constant (the export's input scale) multiplies the scale of its other input.
    """
    if tensor in [i.name for i in model.graph.input]:
        return 1.0
    prod = model.find_producer(tensor)
    if prod is None:
        return None
    if prod.op_type == "Quant":
        return _scalar(consts[prod.input[1]]) if prod.input[1] in consts else None
    if prod.op_type == LOOKUP_OP:  # a learned quantizer's integer levels (zoo.quantizers)
        return 1.0
    if prod.op_type == "Mul":
        a, b = prod.input
        if b in consts and a not in consts:
            inner, c = _activation_scale(model, a, consts), _scalar(consts[b])
        elif a in consts and b not in consts:
            inner, c = _activation_scale(model, b, consts), _scalar(consts[a])
        else:
            return None
        return None if inner is None or c is None else inner * c
    return None


def _attr(node, name: str, default: Any = None) -> Any:  # noqa: ANN001
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _integer_weights(model: ModelWrapper, node, consts: dict[str, np.ndarray],
                     shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray] | None:  # noqa: ANN001
    """(W_int (MW, MH), per-output weight scale (MH,)) of a MatMul/Gemm, in MVAU layout."""
    w_name = node.input[1]
    if w_name not in consts:
        return None
    wq = np.asarray(consts[w_name], dtype=np.float64)
    prod = model.find_producer(w_name)
    if prod is not None and prod.op_type == "Quant" and prod.input[1] in consts:
        s_w = np.broadcast_to(np.asarray(consts[prod.input[1]], np.float64), wq.shape)
    else:
        s_w = np.ones_like(wq)
    if wq.ndim != 2:
        return None
    orient = [wq.T, s_w.T] if node.op_type == "Gemm" and _attr(node, "transB", 0) else [wq, s_w]
    # The node's own layout first; the transpose only where that shape cannot fit (a
    # square matrix matching only transposed would be a wrong layout, not a match).
    w, s = orient if orient[0].shape == shape else (orient[0].T, orient[1].T)
    if w.shape != shape or not np.all(s == s[0:1, :]):
        return None  # wrong shape, or a scale varying along the reduction axis
    w_int = w / s
    if not np.all(w_int == np.round(w_int)):
        return None
    return w_int, np.array(s[0], dtype=np.float64)


def _feeding_mvau(finn_model: ModelWrapper, node):  # noqa: ANN001, ANN202
    tensor = node.input[0]
    while True:
        prod = finn_model.find_producer(tensor)
        if prod is None:
            return None
        if prod.op_type.startswith("MVAU") or prod.op_type.startswith("MatrixVectorActivation"):
            return prod
        if not prod.op_type.startswith(PASS_THROUGH):
            return None
        tensor = prod.input[0]


def _match_matmul(qonnx_model: ModelWrapper, finn_model: ModelWrapper, node,  # noqa: ANN001
                  consts: dict[str, np.ndarray]) -> tuple[dict[str, Any] | None, str]:
    """The QONNX MatMul/Gemm whose integer weights equal the MVAU's that feeds ``node``."""
    mvau = _feeding_mvau(finn_model, node)
    if mvau is None:
        return None, "no MVAU feeds this Thresholding layer (through FIFOs/DWCs only)"
    w_mvau = finn_model.get_initializer(mvau.input[1])
    if w_mvau is None:
        return None, f"{mvau.name}: weights are not an initializer"
    w_mvau = np.asarray(w_mvau, dtype=np.float64)
    mvaus = [n for n in finn_model.graph.node if n.op_type == mvau.op_type]
    position = mvaus.index(mvau)
    matches = []
    layers = [n for n in qonnx_model.graph.node if n.op_type in ("MatMul", "Gemm")]
    for i, mm in enumerate(layers):
        got = _integer_weights(qonnx_model, mm, consts, w_mvau.shape)
        if got is not None and np.array_equal(got[0], w_mvau):
            matches.append((i, mm, got[1]))
    if not matches:
        return None, (f"{mvau.name}: no QONNX MatMul/Gemm has these integer weights "
                      f"{w_mvau.shape}")
    i, mm, s_out = next((m for m in matches if m[0] == position), matches[0])
    s_in = _activation_scale(qonnx_model, mm.input[0], consts)
    if s_in is None:
        return None, f"{mm.name}: scale of the activation entering it is unknown"
    return {"mvau": mvau.name, "matmul": mm.name, "node": mm, "s_in": s_in,
            "s_w": s_out}, ""


def _reference_model(qonnx_model: ModelWrapper, mm, consts: dict[str, np.ndarray],  # noqa: ANN001
                     channels: int) -> tuple[ModelWrapper | None, str, str, float | np.ndarray]:
    """Sub-model from the accumulator product to the next Quant: (model, input name, output
    name, Quant scale), or (None, reason, "", 1.0) when the chain cannot be followed."""
    start = "proof_product"
    nodes, inits = [], {}
    tensor = mm.output[0]
    if mm.op_type == "Gemm":
        alpha, beta = float(_attr(mm, "alpha", 1.0)), float(_attr(mm, "beta", 1.0))
        if _attr(mm, "transA", 0):
            return None, f"{mm.name}: Gemm with transA is not supported", "", 1.0
        cur = start
        if alpha != 1.0:
            inits["proof_alpha"] = np.asarray(alpha, np.float32)
            nodes.append(helper.make_node("Mul", [cur, "proof_alpha"], ["proof_scaled"]))
            cur = "proof_scaled"
        if len(mm.input) > 2 and mm.input[2]:
            inits["proof_bias"] = (beta * consts[mm.input[2]]).astype(np.float32)
            nodes.append(helper.make_node("Add", [cur, "proof_bias"], [tensor]))
        else:
            nodes.append(helper.make_node("Identity", [cur], [tensor]))
    else:
        nodes.append(helper.make_node("Identity", [start], [tensor]))
    return _chain_model(qonnx_model, consts, nodes, inits, start, tensor, channels,
                        mm.name)


def _chain_model(qonnx_model: ModelWrapper, consts: dict[str, np.ndarray], nodes: list,
                 inits: dict[str, np.ndarray], start: str, tensor: str, channels: int,
                 after: str) -> tuple[ModelWrapper | None, str, str, float | np.ndarray]:
    """Follow single-consumer nodes with constant other inputs from ``tensor`` to the next
    Quant, or a MultiThreshold emitting indices (learned boundaries, a codebook index):
    (model from ``start``, start, output, code scale), or (None, reason, "", 1.0)."""
    quant = None
    for _ in range(16):
        cons = qonnx_model.find_consumers(tensor)
        if len(cons) != 1:
            return None, f"{tensor} has {len(cons)} consumers before the next Quant", "", 1.0
        nxt = cons[0]
        others = [i for i in nxt.input if i and i != tensor]
        if any(i not in consts for i in others):
            return None, f"{nxt.name} has a non-constant second input", "", 1.0
        nodes.append(nxt)
        inits.update({i: consts[i] for i in others})
        tensor = nxt.output[0]
        if nxt.op_type in ("Quant", "MultiThreshold"):
            quant = nxt
            break
    if quant is None:
        return None, f"no Quant within 16 nodes after {after}", "", 1.0
    if quant.op_type == "MultiThreshold":
        if float(_attr(quant, "out_scale", 1.0)) != 1.0 or \
                float(_attr(quant, "out_bias", 0.0)) != 0.0:
            return None, f"{quant.name}: a MultiThreshold with output scale or bias", "", 1.0
        q_scale: float | np.ndarray = np.ones(1)
    else:
        q_scale = np.asarray(consts[quant.input[1]], np.float64)
    graph = helper.make_graph(
        nodes, "threshold_proof",
        [helper.make_tensor_value_info(start, TensorProto.FLOAT, [1, channels])],
        [helper.make_tensor_value_info(tensor, TensorProto.FLOAT, None)],
        [helper.make_tensor(k, TensorProto.FLOAT, np.shape(v),
                            np.asarray(v, np.float32).ravel().tolist())
         for k, v in inits.items()])
    opsets = list(qonnx_model.model.opset_import)
    model = ModelWrapper(qonnx_make_model(graph, opset_imports=opsets))
    return model, start, tensor, q_scale


def _is_pow2(x: np.ndarray) -> bool:
    x = np.abs(np.asarray(x, np.float64))
    return bool(np.all(x > 0) and np.all(np.log2(x) == np.round(np.log2(x))))


def _expected_codes(sub: ModelWrapper, start: str, out: str, q_scale: np.ndarray,
                    values: np.ndarray, s_in: float, s_w: np.ndarray,
                    float32_product: bool = False) -> np.ndarray:
    """Reference codes (R, C) for accumulator ``values`` (R,), executed in chunks.

    The sub-model's input is ``values * s_in * s_w``: exact in float32 for an MVAU's
    accumulator (powers of two; refused otherwise). With ``float32_product`` (the input is
    a quantizer's codes times its scale, which may be any float), it is the float32
    product ``float32(code) * float32(scale)``, which is what qonnx's Quant computes. A
    Quant output with a scale that is not a power of two is a float32 product too, so
    its code is ``y / scale`` to the nearest integer (within 1e-3, refused otherwise)."""
    channels = len(s_w)
    rows = max(1, CHUNK_ELEMS // channels)
    cache: dict[int, ModelWrapper] = {}
    exact_out = _is_pow2(q_scale)
    codes = []
    for i in range(0, len(values), rows):
        acc = values[i:i + rows].astype(np.float64)
        if float32_product:
            prod = (acc.astype(np.float32)[:, None]
                    * np.asarray(s_in * s_w, np.float32)[None, :]).astype(np.float32)
        else:
            prod64 = acc[:, None] * (s_in * s_w)[None, :]
            prod = prod64.astype(np.float32)
            if not np.array_equal(prod.astype(np.float64), prod64):
                raise ArithmeticError("acc * s_in * s_w is not exact in float32")
        n = len(prod)
        if n not in cache:
            m = ModelWrapper(sub.model.__deepcopy__())
            m.set_tensor_shape(start, [n, channels])
            cache[n] = m.transform(InferShapes())
        y = execute_onnx(cache[n], {start: prod})[out]
        c = np.asarray(y, np.float64).reshape(n, channels) / q_scale.reshape(1, -1)
        if exact_out and not np.all(c == np.round(c)):
            raise ArithmeticError("QONNX Quant output is off its own grid")
        if not exact_out and not np.all(np.abs(c - np.round(c)) < 1e-3):
            raise ArithmeticError("QONNX Quant output is off its own (float32) grid")
        codes.append(np.round(c).astype(np.int64))
    return np.concatenate(codes)


# ---------------------------------------------------------------------------------------
# RTL threshold memories


def _wrapper_params(folder: Path) -> dict[str, str]:
    for v in sorted(folder.glob("*.v")):
        text = v.read_text()
        if "thresholding_axi" in text:
            return dict(re.findall(r'parameter\s+(\w+)\s*=\s*("[^"]*"|[^,;/\s]+)', text))
    raise FileNotFoundError(f"no thresholding wrapper (*.v) in {folder}")


def _read_memh(path: Path) -> list[int]:
    words = []
    for line in path.read_text().splitlines():
        line = line.split("//")[0].strip()
        for tok in line.split():
            if tok.startswith("@"):
                raise ValueError(f"{path}: address directives are not supported")
            words.append(int(tok, 16))
    return words


def check_rtl_memory(finn_model: ModelWrapper, node, folder: Path) -> dict[str, Any]:  # noqa: ANN001
    """Check a Thresholding_rtl layer's ``.dat`` memories against the node's thresholds.

    Layout (finn-rtllib ``thresholding.sv``, written by ``Thresholding_rtl.make_weight_file``):
    with N thresholds, M = clog2(N + 1) binary-search stages and CF = C / PE, file
    ``<prefix>threshs_<pe>_<stage>.dat`` holds CF * 2**stage hex words, one a line; word
    ``(cf << stage) | i`` is threshold ``T[cf * PE + pe, (i << (M - stage)) + 2**(M - stage - 1)
    - 1]`` as a WT-bit two's complement number, zero-padded to whole hex digits (indices
    >= N are padding, masked by the RTL). Thresholds are stored as they are (no offset).

    Returns ``files``, ``entries`` compared, ``mismatches`` (with the first few as
    ``(pe, stage, address, got, expected)``), ``padding`` entries, and the RTL's binary
    search replayed over every input value: ``search_points`` and ``search_mismatches``
    against the node's own codes.
    """
    inst = getCustomOp(node)
    p = _wrapper_params(folder)
    n_thr, wi, wt = int(p["N"]), int(p["WI"]), int(p["WT"])
    c_rtl, pe, bias = int(p["C"]), int(p["PE"]), int(p["BIAS"])
    signed = int(p["SIGNED"]) == 1
    if int(p.get("SETS", "1")) != 1 or int(p.get("FPARG", "0")) != 0:
        raise ValueError(f"{node.name}: SETS > 1 or float inputs are not supported here")
    prefix = p["THRESHOLDS_PATH"].strip().strip('"').split("/")[-1]
    m_stages = math.ceil(math.log2(n_thr + 1))
    cf = c_rtl // pe
    t = layer_thresholds(finn_model, node)
    mask = (1 << wt) - 1
    lo_t, hi_t = (-(1 << (wt - 1)), (1 << (wt - 1)) - 1) if signed else (0, mask)
    report: dict[str, Any] = {"files": 0, "entries": 0, "mismatches": 0, "padding": 0,
                              "first_mismatches": [], "missing_files": []}
    mems: dict[tuple[int, int], np.ndarray] = {}
    for stage in range(m_stages):
        for pe_i in range(pe):
            f = folder / f"{prefix}threshs_{pe_i}_{stage}.dat"
            depth = cf * 2**stage
            if not f.is_file():
                report["missing_files"].append(f.name)
                report["mismatches"] += depth
                mems[(pe_i, stage)] = np.zeros(depth, np.int64)
                continue
            report["files"] += 1
            words = _read_memh(f)
            if len(words) != depth:
                report["mismatches"] += abs(len(words) - depth)
                words = (words + [0] * depth)[:depth]
            vals = []
            for addr, word in enumerate(words):
                low = word & mask
                vals.append(low - (1 << wt) if signed and low >> (wt - 1) else low)
                ch, i = addr >> stage, addr & (2**stage - 1)
                j = (i << (m_stages - stage)) + 2**(m_stages - stage - 1) - 1
                if j >= n_thr:
                    report["padding"] += 1
                    continue
                report["entries"] += 1
                exp = t[(ch * pe + pe_i) % t.shape[0], j]
                ok = exp == round(exp) and lo_t <= exp <= hi_t and word == (int(exp) & mask)
                if not ok:
                    report["mismatches"] += 1
                    if len(report["first_mismatches"]) < FIRST_MISMATCHES:
                        report["first_mismatches"].append(
                            (pe_i, stage, addr, f"{word:x}", int(exp) if exp == round(exp)
                             else float(exp)))
            mems[(pe_i, stage)] = np.asarray(vals, np.int64)
    # Replay the RTL: saturate the input to WT bits, binary-search the memories.
    idt = finn_model.get_tensor_datatype(node.input[0])
    lo, hi = int(idt.min()), int(idt.max())
    if hi - lo + 1 > MAX_POINTS or not idt.is_integer():
        report["search_points"], report["search_mismatches"] = 0, None
        return report
    x = np.arange(lo, hi + 1, dtype=np.int64)
    xs = np.clip(x, lo_t, hi_t) if wt < wi else x
    want = _node_codes_of(finn_model, node, x)
    mism = 0
    for c in range(inst.get_nodeattr("NumChannels")):
        rc = c % c_rtl
        ch, pe_i = rc // pe, rc % pe
        ptr = np.zeros_like(x)
        for stage in range(m_stages):
            reduce = (2**(m_stages - stage - 1) + 2**m_stages - 1 - n_thr) >> (m_stages - stage)
            thr = mems[(pe_i, stage)][(ch << stage) | ptr]
            scope = ptr < 2**stage - reduce if reduce else np.ones_like(ptr, bool)
            ptr = (ptr << 1) | (scope & (thr <= xs))
        mism += int(np.sum(ptr + bias != want[:, c]))
    report["search_points"] = int(len(x) * inst.get_nodeattr("NumChannels"))
    report["search_mismatches"] = mism
    return report


# ---------------------------------------------------------------------------------------
# The proof


def _edge_values(t: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Integers either side of every threshold edge, plus the range ends."""
    edges = np.ceil(t[np.isfinite(t)]).astype(np.int64)
    v = np.concatenate([edges - 1, edges, [lo, hi]])
    return np.unique(np.clip(v, lo, hi))


def _feeding_thresholding(finn_model: ModelWrapper, node):  # noqa: ANN001, ANN202
    """The Thresholding layer feeding ``node`` (through FIFOs/DWCs only), or None."""
    tensor = node.input[0]
    while True:
        prod = finn_model.find_producer(tensor)
        if prod is None:
            return None
        if prod.op_type.startswith("Thresholding"):
            return prod
        if not prod.op_type.startswith(PASS_THROUGH):
            return None
        tensor = prod.input[0]


def _compare(res: dict[str, Any], finn_model: ModelWrapper, node, sub: ModelWrapper | None,  # noqa: ANN001
             start: str, out: str, q_scale: Any, values: np.ndarray, s_in: float,
             s_w: np.ndarray, span: int, float32_product: bool = False) -> None:
    """Reference codes vs the node's codes on ``values``; fills ``res`` in place."""
    if sub is None:
        res["reason"] = start  # the reason why not
        return
    try:
        want = _expected_codes(sub, start, out, q_scale, values, s_in, s_w, float32_product)
    except ArithmeticError as e:
        res["reason"] = str(e)
        return
    got = _node_codes_of(finn_model, node, values)
    bad = np.argwhere(got != want)
    res["points"] = int(got.size)
    res["mismatches"] = int(len(bad))
    res["exhaustive"] = span <= MAX_POINTS
    res["first_mismatches"] = [
        (int(c), int(values[r]), int(got[r, c]), int(want[r, c]))
        for r, c in bad[:FIRST_MISMATCHES]]


def prove_layer(qonnx_model: ModelWrapper, finn_model: ModelWrapper, node,  # noqa: ANN001
                consts: dict[str, np.ndarray] | None = None,
                rtl_dir: Path | None = None,
                fed: dict[str, tuple[str, Any]] | None = None) -> dict[str, Any]:
    """The proof of one Thresholding node; see :func:`prove_thresholds`. ``fed`` maps the
    FINN output tensor of every layer proven so far to its QONNX tensor and code scale, so
    that a Thresholding fed by one (a codebook index) is proven from there."""
    if consts is None:
        consts = _const_tensors(qonnx_model)
    inst = getCustomOp(node)
    idt = finn_model.get_tensor_datatype(node.input[0])
    t = layer_thresholds(finn_model, node)
    channels = t.shape[0]
    res: dict[str, Any] = {
        "input_datatype": idt.name, "output_datatype": inst.get_nodeattr("outputDataType"),
        "channels": channels, "thresholds": int(t.shape[1]),
        "act_val": int(inst.get_nodeattr("ActVal")), "points": 0, "mismatches": None,
        "exhaustive": False, "first_mismatches": []}
    if not idt.is_integer():
        res["reason"] = f"input datatype {idt.name} is not an integer type"
        return res
    lo, hi = int(idt.min()), int(idt.max())
    res["range"] = [lo, hi]
    span = hi - lo + 1
    if span > MAX_POINTS:
        values = _edge_values(t, lo, hi)
        res["reason"] = (f"{idt.name} has {span} values (> 2**24): checked only the integers "
                         "either side of every threshold and the range ends")
    else:
        values = np.arange(lo, hi + 1, dtype=np.int64)
    match, why = _match_matmul(qonnx_model, finn_model, node, consts)
    feeder = _feeding_thresholding(finn_model, node)
    if match is None and feeder is not None and fed is not None and feeder.output[0] in fed:
        # A Thresholding fed by a Thresholding (a codebook index on a quantizer's codes):
        # the reference starts at that quantizer's QONNX output, code * its scale.
        q_tensor, prev_scale = fed[feeder.output[0]]
        res["fed_by"] = feeder.name
        sub, start, out, q_scale = _chain_model(
            qonnx_model, consts, [helper.make_node("Identity", ["proof_product"], [q_tensor])],
            {}, "proof_product", q_tensor, channels, q_tensor)
        s_prev = np.broadcast_to(np.asarray(prev_scale, np.float64).ravel(), (channels,))
        _compare(res, finn_model, node, sub, start, out, q_scale, values, 1.0, s_prev, span,
                 float32_product=True)
        if res["mismatches"] is not None and fed is not None:
            fed[node.output[0]] = (out, q_scale)
    elif match is None:
        res["reason"] = why if feeder is None else (
            f"fed by {feeder.name}, whose own reference is unknown (not proven)")
    else:
        res.update({k: match[k] for k in ("mvau", "matmul", "s_in")})
        res["s_w"] = (float(match["s_w"][0]) if np.all(match["s_w"] == match["s_w"][0])
                      else match["s_w"].tolist())
        sub, start, out, q_scale = _reference_model(qonnx_model, match["node"], consts,
                                                    channels)
        if sub is None:
            res["reason"] = start  # the reason why not
        elif len(match["s_w"]) != channels:
            res["reason"] = f"{match['matmul']} has {len(match['s_w'])} outputs, not {channels}"
        else:
            _compare(res, finn_model, node, sub, start, out, q_scale, values, match["s_in"],
                     match["s_w"], span)
            if res["mismatches"] is not None and fed is not None:
                fed[node.output[0]] = (out, q_scale)
    if rtl_dir is not None:
        folder = Path(rtl_dir) / node.name
        if node.op_type.endswith("_rtl") and folder.is_dir():
            res["rtl_memory"] = check_rtl_memory(finn_model, node, folder)
        else:
            res["rtl_memory"] = {"files": 0, "mismatches": None,
                                 "reason": f"no RTL folder {folder} for a {node.op_type}"}
    return res


def prove_thresholds(qonnx_model: ModelWrapper, finn_model: ModelWrapper,
                     rtl_dir: Path | None = None) -> dict[str, dict]:
    """Prove every Thresholding layer of ``finn_model`` against ``qonnx_model`` exhaustively.

    Per layer (keyed by node name): ``points`` (range size x channels), ``mismatches``
    (None when not checked), ``exhaustive`` (+ ``reason`` when False), ``input_datatype``,
    ``range`` [lo, hi], ``channels``, ``thresholds`` (per channel), ``act_val``, the matched
    ``mvau``/``matmul`` with ``s_in``/``s_w``, ``first_mismatches`` as
    (channel, input, got, expected), and with ``rtl_dir`` the ``rtl_memory`` check
    (see :func:`check_rtl_memory`).
    """
    consts = _const_tensors(qonnx_model)
    fed: dict[str, tuple[str, Any]] = {}
    return {n.name: prove_layer(qonnx_model, finn_model, n, consts, rtl_dir, fed)
            for n in thresholding_nodes(finn_model)}


# ---------------------------------------------------------------------------------------
# Coverage of threshold edges by test vectors


def layer_values(finn_model: ModelWrapper, inputs: dict[str, np.ndarray] | np.ndarray,
                 batch: int = 4096) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per Thresholding layer: (input accumulators (N, C), output codes (N, C)) for
    integer input codes ``inputs`` ({graph input: (N, F)}, or one (N, F) array for a
    one-input model), from FINN's execution of the model."""
    layers = thresholding_nodes(finn_model)
    acc: dict[str, list] = {n.name: [] for n in layers}
    out: dict[str, list] = {n.name: [] for n in layers}
    names = contract_io_names(finn_model)[0]
    # Contract names map to FINN's (renamed) graph inputs by position.
    named = dict(zip(names, inputs.values() if isinstance(inputs, dict) else [inputs],
                     strict=True))
    total = len(next(iter(named.values())))
    cache: dict[int, ModelWrapper] = {}
    for i in range(0, total, batch):
        k = min(batch, total - i)
        if k not in cache:
            cache[k] = with_batch(finn_model, k)
        m = cache[k]
        feed = {nm: np.asarray(named[nm][i:i + k], np.float32).reshape(m.get_tensor_shape(nm))
                for nm in names}
        ctx = execute_onnx(m, feed, return_full_exec_context=True)
        for n in layers:
            c = getCustomOp(n).get_nodeattr("NumChannels")
            acc[n.name].append(np.asarray(ctx[n.input[0]]).reshape(-1, c))
            out[n.name].append(np.asarray(ctx[n.output[0]]).reshape(-1, c))
    return {k: (np.concatenate(acc[k]).astype(np.int64), np.concatenate(out[k]).astype(np.int64))
            for k in acc}


def threshold_coverage(finn_model: ModelWrapper,
                       inputs: dict[str, np.ndarray] | np.ndarray) -> dict[str, dict]:
    """How close test vectors ``inputs`` (N, F) come to every threshold edge, per layer.

    An edge (channel c, threshold j) lies between t - 1 and t = ceil(T[c, j]), the first
    integer at the higher level. ``edges_hit``: both t - 1 and t reached by some vector
    (what it takes to catch a one-step move either way); ``edges_touched``: at least one;
    ``untouched_edges``: (c, j) reached on neither side; ``codes_produced``: distinct
    output codes seen, of ``codes_possible`` levels; ``semantics_mismatches``: executed
    outputs differing from ``count(T <= a) + ActVal`` (0 confirms the proof's formula).
    """
    values = layer_values(finn_model, inputs)
    report = {}
    for node in thresholding_nodes(finn_model):
        acc, codes = values[node.name]
        t = layer_thresholds(finn_model, node)
        edge = np.ceil(t).astype(np.int64)
        lo_hit = np.zeros(t.shape, bool)
        hi_hit = np.zeros(t.shape, bool)
        for c in range(t.shape[0]):
            seen = np.unique(acc[:, c])
            lo_hit[c] = np.isin(edge[c] - 1, seen)
            hi_hit[c] = np.isin(edge[c], seen)
        formula = _node_codes_of(finn_model, node, acc)
        report[node.name] = {
            "vectors": int(len(acc)),
            "edges": int(t.size),
            "edges_hit": int(np.sum(lo_hit & hi_hit)),
            "edges_touched": int(np.sum(lo_hit | hi_hit)),
            "untouched_edges": [(int(c), int(j)) for c, j in np.argwhere(~(lo_hit | hi_hit))],
            "codes_produced": sorted(int(v) for v in np.unique(codes)),
            "codes_possible": int(t.shape[1] + 1),
            "semantics_mismatches": int(np.sum(formula != codes)),
        }
    return report


def shift_threshold(finn_model: ModelWrapper, layer: str, channel: int, index: int,
                    delta: int) -> ModelWrapper:
    """A copy of ``finn_model`` with threshold ``T[channel, index]`` of node ``layer`` moved
    by ``delta`` integer steps (a single broadcast row is first expanded to (C, S))."""
    m = ModelWrapper(finn_model.model.__deepcopy__())
    node = _node(m, layer)
    t = np.array(layer_thresholds(m, node), dtype=np.float32)
    t[channel, index] += delta
    m.set_initializer(node.input[1], t)
    return m
