"""UnrollDenseChains: folded dense layers -> one UnrolledMLP_rtl node per chain.

Runs after folding and bit-width minimization (the datatypes are final). A *chain* is a
maximal run of MVAU / Thresholding nodes where each feeds only the next one; an MVAU
followed by its Thresholding is one layer, a lone MVAU or Thresholding is a layer of
its own. Which nodes are unrolled is the design's ``hw.impl``:

* ``folded``: none (FINN's MVAU/Thresholding RTL, as before);
* ``unrolled``: every MVAU / Thresholding;
* a mapping ``{node name: folded | unrolled}`` with an optional ``default``: per layer.

(``auto`` is resolved to one of these by the configuration search, hw.speed.)
"""

from __future__ import annotations

from typing import Any

from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

IMPLS = ("folded", "unrolled")
DENSE = ("MVAU", "Thresholding")


def _kind(node: Any) -> str | None:
    base = node.op_type.split("_")[0]
    return base if base in DENSE else None


def selected(impl: str | dict[str, str], name: str) -> bool:
    """Whether node ``name`` is to be unrolled under ``impl`` (module doc)."""
    if isinstance(impl, str):
        choice = impl
    else:
        choice = impl.get(name, impl.get("default", "folded"))
    if choice not in IMPLS:
        raise ValueError(f"hw.impl for {name!r} is {choice!r}; allowed: {', '.join(IMPLS)} "
                         "(auto is resolved by the configuration search, SPEED=max)")
    return choice == "unrolled"


def check_supported(model: ModelWrapper, node: Any) -> None:
    """Raise ValueError naming the node if it cannot be unrolled."""
    inst = getCustomOp(node)
    if _kind(node) == "MVAU":
        if inst.get_nodeattr("binaryXnorMode"):
            raise ValueError(f"{node.name}: binary XNOR MVAU cannot be unrolled")
        if len(node.input) > 2 and not inst.get_nodeattr("noActivation"):
            raise ValueError(f"{node.name}: MVAU with embedded thresholds (noActivation=0) "
                             "is not supported by the unrolled backend; build with "
                             "standalone_thresholds")
    for i in node.input[1:]:
        if model.get_initializer(i) is None:
            raise ValueError(f"{node.name}: input {i} is not an initializer (weights and "
                             "thresholds must be constant to be unrolled)")


def chains(model: ModelWrapper, impl: str | dict[str, str]) -> list[list[Any]]:
    """Maximal runs of selected dense nodes, each feeding only the next (module doc)."""
    runs: list[list[Any]] = []
    seen: set[str] = set()
    for node in model.graph.node:
        if node.name in seen or not _kind(node) or not selected(impl, node.name):
            continue
        producer = model.find_producer(node.input[0])
        if (producer is not None and _kind(producer) and selected(impl, producer.name)
                and len(model.find_consumers(producer.output[0]) or []) == 1):
            continue  # not the head of its run: the producer's run includes it
        run = [node]
        while True:
            cons = model.find_consumers(run[-1].output[0]) or []
            if (len(cons) != 1 or not _kind(cons[0]) or not selected(impl, cons[0].name)
                    or cons[0].input[0] != run[-1].output[0]):
                break
            run.append(cons[0])
        seen.update(n.name for n in run)
        runs.append(run)
    return runs


def layer_nodes(run: list[Any]) -> list[tuple[Any | None, Any | None]]:
    """(MVAU or None, Thresholding or None) per layer of a run."""
    layers, i = [], 0
    while i < len(run):
        if _kind(run[i]) == "MVAU":
            nxt = run[i + 1] if i + 1 < len(run) and _kind(run[i + 1]) == "Thresholding" else None
            layers.append((run[i], nxt))
            i += 2 if nxt is not None else 1
        else:
            layers.append((None, run[i]))
            i += 1
    return layers


class UnrollDenseChains(Transformation):
    """Replace each selected chain by one UnrolledMLP_rtl node (module doc); the new
    node's ``latency`` and ``estLUT``/``estFF`` come from generating its RTL once here."""

    def __init__(self, impl: str | dict[str, str], cutoff: float = 2.0) -> None:
        super().__init__()
        self.impl, self.cutoff = impl, cutoff

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        from hw.custom_ops.unrolled_mlp import estimate_luts

        for k, run in enumerate(chains(model, self.impl)):
            for n in run:
                check_supported(model, n)
            first, last = run[0], run[-1]
            inputs, has_w, has_t, acts = [first.input[0]], [], [], []
            dtypes = [model.get_tensor_datatype(first.input[0]).name]
            for mv, th in layer_nodes(run):
                has_w.append(int(mv is not None))
                has_t.append(int(th is not None))
                if mv is not None:
                    inputs.append(mv.input[1])
                if th is not None:
                    inputs.append(th.input[1])
                    acts.append(int(getCustomOp(th).get_nodeattr("ActVal")))
                else:
                    acts.append(0)
                dtypes.append(model.get_tensor_datatype((th or mv).output[0]).name)
            mw = model.get_tensor_shape(first.input[0])[-1]
            mh = model.get_tensor_shape(last.output[0])[-1]
            name = f"UnrolledMLP_rtl_{k}"
            node = helper.make_node(
                "UnrolledMLP_rtl", inputs, [last.output[0]], name=name,
                domain="finn.custom_op.fpgadataflow.rtl", backend="fpgadataflow",
                hasWeights=has_w, hasThresholds=has_t, ActVals=acts, dataTypes=dtypes,
                MW=int(mw), MH=int(mh), cutoff=float(self.cutoff),
                numInputVectors=list(getCustomOp(first).get_nodeattr("numInputVectors")),
                foldedLayers=[n.name for n in run])
            pos = list(model.graph.node).index(first)
            for n in run:
                model.graph.node.remove(n)
            model.graph.node.insert(pos, node)
            inst = getCustomOp(model.graph.node[pos])  # insert() stored a copy of node
            design = inst.design(model)
            inst.set_nodeattr("latency", design.latency)
            inst.set_nodeattr("estLUT", estimate_luts(design))
            inst.set_nodeattr("estFF", design.registers)
        return model, False
