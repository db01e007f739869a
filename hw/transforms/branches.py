"""Parallel dense branches: merge where it costs no weights, keep the fork where it would.

A fork into several Dense layers reading ONE input (EQ-Net g: 12 branches, each
6 latents -> 48) is one wider MatMul with the weight columns concatenated (6 -> 576):
the same weights, one MVAU instead of a DuplicateStreams and 12 MVAUs. The branches
then continue separately behind a ``Split`` (FINN: StreamingSplit). Layers that read
*different* tensors (the 12 hidden 48 -> 48 layers behind that split, EQ-Net f_E's
y/H/sigma input layers before their concat) would merge only as one block-diagonal
layer, (sum K_i) x (sum M_i) weights instead of sum K_i*M_i (12x for g's hidden
layers): those stay forked. Every decision is logged (logger ``hw.transforms.branches``)
and recorded as JSON in the model's metadata ``branch_merge``.

Runs on the streamlined integer graph (MatMul with constant integer weights,
MultiThreshold); every rewrite is exact (the same integer products and thresholds).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
from onnx import NodeProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import SortGraph
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import get_by_name

log = logging.getLogger(__name__)

BRANCH_MERGE = "branch_merge"


def _attrs(node: NodeProto) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _readers(model: ModelWrapper, tensor: str) -> list[NodeProto]:
    return list(model.find_consumers(tensor) or [])


def _is_graph_output(model: ModelWrapper, tensor: str) -> bool:
    return tensor in {o.name for o in model.graph.output}


def _dense(model: ModelWrapper, node: NodeProto) -> np.ndarray | None:
    """The constant (K, M) weights of a MatMul on a dynamic 2-D input, else None."""
    if node.op_type != "MatMul" or model.get_initializer(node.input[0]) is not None:
        return None
    w = model.get_initializer(node.input[1])
    shape = model.get_tensor_shape(node.input[0])
    if w is None or w.ndim != 2 or shape is None or len(shape) != 2:
        return None
    return w


def _weight_bits(model: ModelWrapper, node: NodeProto) -> int:
    dt = model.get_tensor_datatype(node.input[1])
    return dt.bitwidth() if dt is not None else 32


def record_decision(model: ModelWrapper, decision: dict[str, Any]) -> None:
    """Append one decision to metadata ``branch_merge`` (a JSON list) and log it."""
    old = model.get_metadata_prop(BRANCH_MERGE)
    rows = json.loads(old) if old else []
    if any(sorted(r["branches"]) == sorted(decision["branches"]) for r in rows):
        return
    rows.append(decision)
    model.set_metadata_prop(BRANCH_MERGE, json.dumps(rows))
    log.info("branch merge: %s %d branches %s: weights merged %d vs forked %d -> %s",
                decision["kind"], len(decision["branches"]), decision["branches"],
                decision["weights_merged"], decision["weights_forked"], decision["chosen"])


def branch_decisions(model: ModelWrapper) -> list[dict[str, Any]]:
    """The recorded decisions (metadata ``branch_merge``), for the build's manifest."""
    old = model.get_metadata_prop(BRANCH_MERGE)
    return json.loads(old) if old else []


def _finish(model: ModelWrapper) -> ModelWrapper:
    model = model.transform(SortGraph(), make_deepcopy=False, cleanup=False)
    model = model.transform(InferShapes())
    return model.transform(InferDataTypes())


def _thresholds(model: ModelWrapper, mt: NodeProto, channels: int) -> np.ndarray:
    """A MultiThreshold's thresholds as (channels, S) (a single row broadcast)."""
    t = np.asarray(model.get_initializer(mt.input[1]), np.float32)
    return np.broadcast_to(t, (channels, t.shape[-1])).copy()


def _mergeable_thresholds(model: ModelWrapper, tensors: list[str]) -> list[NodeProto] | None:
    """The MultiThresholds that alone read each of ``tensors``, when they can act as one
    on the concatenated channels (all attributes equal, same number of thresholds)."""
    mts = []
    for t in tensors:
        readers = _readers(model, t)
        if len(readers) != 1 or readers[0].op_type != "MultiThreshold" or \
                _is_graph_output(model, t) or model.get_initializer(readers[0].input[1]) is None:
            return None
        mts.append(readers[0])
    # Every attribute agrees (output type, scale and bias, layout, and the flow's own
    # tags such as the threshold provenance and tie placement of hw.ties).
    steps = {model.get_initializer(m.input[1]).shape[-1] for m in mts}
    if len(steps) != 1 or any(_attrs(m) != _attrs(mts[0]) or m.doc_string != mts[0].doc_string
                              for m in mts):
        return None
    return mts


class MergeParallelMatMuls(Transformation):
    """MatMuls reading one tensor X -> one MatMul with concatenated columns, then a Split.

    X (N, K); branch i: W_i (K, M_i) -> (N, M_i). Merged when its weight bits (K * sum
    M_i at the widest weight type) do not exceed the branches' (sum K*M_i*bits_i): the
    same weights when the types agree. MultiThresholds that alone read each branch output
    (same attributes and threshold count) merge too, thresholds concatenated per channel
    ((sum M_i, S)), and so on down the branches while every branch continues with such a
    MultiThreshold; the ``Split`` (last axis, sizes M_i) comes after the last merged one.
    A Split whose outputs all go, each once and alone, into one Concat feeding a MatMul
    (a fork straight back into a join) is dropped: the Concat's order becomes a
    permutation of that MatMul's weight rows.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        groups: dict[str, list[NodeProto]] = {}
        for node in model.graph.node:
            if _dense(model, node) is not None:
                groups.setdefault(node.input[0], []).append(node)
        for x, mms in groups.items():
            if len(mms) < 2:
                continue
            k = model.get_tensor_shape(x)[-1]
            widths = [int(_dense(model, m).shape[1]) for m in mms]
            bits = [_weight_bits(model, m) for m in mms]
            forked_bits = sum(k * w * b for w, b in zip(widths, bits, strict=True))
            merged_bits = k * sum(widths) * max(bits)
            chosen = "merged" if merged_bits <= forked_bits else "forked"
            record_decision(model, {
                "kind": "shared_input", "input": x, "branches": [m.name for m in mms],
                "shapes": [[k, w] for w in widths], "weight_bits": bits,
                "weights_merged": k * sum(widths), "weights_forked": k * sum(widths),
                "weight_bits_merged": merged_bits, "weight_bits_forked": forked_bits,
                "chosen": chosen,
                "columns": {m.name: [int(sum(widths[:i])), int(sum(widths[:i + 1]))]
                            for i, m in enumerate(mms)}})
            if chosen == "merged":
                self._merge(model, x, mms, widths, bits)
                return _finish(model), True
        return model, False

    def _merge(self, model: ModelWrapper, x: str, mms: list[NodeProto], widths: list[int],
               bits: list[int]) -> None:
        w = np.concatenate([_dense(model, m) for m in mms], axis=1)
        wname = model.make_new_valueinfo_name()
        model.set_initializer(wname, w.astype(np.float32))
        widest = mms[int(np.argmax(bits))]
        model.set_tensor_datatype(wname, model.get_tensor_datatype(widest.input[1]))
        cur = model.make_new_valueinfo_name()
        name = "MatMul_merged_" + "_".join(m.name.split("_")[-1] for m in mms)
        new = [helper.make_node("MatMul", [x, wname], [cur], name=name)]
        tails = [m.output[0] for m in mms]
        # The branches' MultiThresholds, level by level, while every branch has one.
        level = 0
        while (mts := _mergeable_thresholds(model, tails)) is not None:
            t = np.concatenate([_thresholds(model, mt, c) for mt, c in
                                zip(mts, widths, strict=True)])
            tname = model.make_new_valueinfo_name()
            model.set_initializer(tname, t)
            out = model.make_new_valueinfo_name()
            attrs = _attrs(mts[0])
            new.append(helper.make_node("MultiThreshold", [cur, tname], [out],
                                        name=f"{name}_MultiThreshold_{level}",
                                        domain=mts[0].domain, **attrs))
            new[-1].doc_string = mts[0].doc_string
            for mt in mts:
                model.graph.node.remove(mt)
            cur, tails, level = out, [mt.output[0] for mt in mts], level + 1
        for m in mms:
            model.graph.node.remove(m)
        model.graph.node.extend(new)
        self._split(model, name, cur, tails, widths)

    def _split(self, model: ModelWrapper, name: str, cur: str, tails: list[str],
               widths: list[int]) -> None:
        """``cur`` (N, sum M_i) -> the branch tensors ``tails`` (N, M_i): a Split, or a
        permutation of the weight rows of a MatMul after a Concat of exactly them."""
        readers = [_readers(model, t) for t in tails]
        cat = readers[0][0] if len(readers[0]) == 1 else None
        if cat is not None and cat.op_type == "Concat" and \
                all(len(r) == 1 and r[0] is cat for r in readers) and \
                sorted(cat.input) == sorted(tails) and len(set(tails)) == len(tails) and \
                not any(_is_graph_output(model, t) for t in tails + [cat.output[0]]):
            after = _readers(model, cat.output[0])
            axis = get_by_name(cat.attribute, "axis")
            if len(after) == 1 and _dense(model, after[0]) is not None and axis is not None \
                    and axis.i in (-1, 1):
                mm = after[0]
                offsets = np.cumsum([0] + widths)
                # Concat position of merged channel j: rows of W in merged order.
                pos = {t: i for i, t in enumerate(cat.input)}
                cat_w = [widths[tails.index(t)] for t in cat.input]
                cat_off = np.cumsum([0] + cat_w)
                rows = np.concatenate([np.arange(cat_off[pos[t]], cat_off[pos[t]] + widths[i])
                                       for i, t in enumerate(tails)])
                assert len(rows) == offsets[-1]
                w = model.get_initializer(mm.input[1])
                wname = model.make_new_valueinfo_name()
                model.set_initializer(wname, w[rows])
                model.set_tensor_datatype(wname, model.get_tensor_datatype(mm.input[1]))
                mm.input[:] = [cur, wname]
                model.graph.node.remove(cat)
                log.info("branch merge: %s: split straight back into %s -> weight rows "
                            "of %s permuted instead", name, cat.name, mm.name)
                return
        sname = model.make_new_valueinfo_name()
        model.set_initializer(sname, np.asarray(widths, np.int64))
        model.set_tensor_datatype(sname, DataType["INT64"])
        model.graph.node.append(helper.make_node("Split", [cur, sname], tails, axis=-1,
                                                 name=f"{name}_Split"))


def _concat_sources(model: ModelWrapper, cat: NodeProto) -> list[NodeProto] | None:
    """For each Concat input, the MatMul it comes from through per-channel elementwise
    nodes read by nothing else (MultiThreshold, Mul/Add by constants), or None."""
    out = []
    for t in cat.input:
        for _ in range(8):
            prod = model.find_producer(t)
            if prod is None:
                return None
            if _dense(model, prod) is not None:
                out.append(prod)
                break
            if prod.op_type not in ("MultiThreshold", "Mul", "Add") or \
                    model.get_initializer(prod.input[1]) is None or \
                    len(_readers(model, prod.output[0])) != 1:
                return None
            t = prod.input[0]
        else:
            return None
    return out


class RecordForkedBranches(Transformation):
    """Record (no rewrite) the parallel layers that stay forked: MatMuls each reading
    a different output of one Split (the layers behind a merged one), and MatMuls whose
    outputs meet in one Concat (EQ-Net f_E's y/H/sigma input layers, g's output layers).
    As one layer they would be block-diagonal: (sum K_i) x (sum M_i) weights against
    sum K_i*M_i, so the fork (or the concat) is kept. Decisions: metadata ``branch_merge``.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        groups: list[tuple[str, str, list[NodeProto]]] = []
        for node in model.graph.node:
            if node.op_type == "Split":
                mms = [r for t in node.output for r in _readers(model, t)
                       if _dense(model, r) is not None]
                if len(mms) > 1 and len({m.input[0] for m in mms}) == len(mms):
                    groups.append(("split_siblings", node.name, mms))
            elif node.op_type == "Concat":
                mms = _concat_sources(model, node)
                if mms and len(mms) > 1 and len({m.input[0] for m in mms}) == len(mms):
                    groups.append(("concat_join", node.name, mms))
        for kind, at, mms in groups:
            shapes = [tuple(int(d) for d in _dense(model, m).shape) for m in mms]
            forked = sum(k * m for k, m in shapes)
            merged = sum(k for k, _ in shapes) * sum(m for _, m in shapes)
            chosen = ("merged" if merged <= forked else
                      "concat kept" if kind == "concat_join" else "forked")
            # A block-diagonal merge is never cheaper with two or more non-empty
            # branches; record the figures so that the manifest says why.
            record_decision(model, {
                "kind": kind, "at": at, "branches": [m.name for m in mms],
                "shapes": [list(s) for s in shapes],
                "weights_merged": merged, "weights_forked": forked, "chosen": chosen})
        return model, False


def merge_branches(model: ModelWrapper) -> ModelWrapper:
    """Merge parallel MatMuls on one input, then record the forks and concats kept."""
    model = model.transform(MergeParallelMatMuls())
    return model.transform(RecordForkedBranches())
