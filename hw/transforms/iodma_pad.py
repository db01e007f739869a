"""PadStreamsForIODMA: pad the graph's streams so that FINN's IODMA keeps up with II = 1.

FINN's Zynq shell gives every graph input and output an IODMA whose AXI-MM word is
``gcd(bits per vector, port width)`` (hw/iodma.py, ``insert_iodma.py:122-127``). A
vector of 12 INT8 inputs (96 bits) on a 128-bit port moves in 32-bit words, 3 cycles per
vector; 6 INT6 outputs (36 bits, 40 with byte padding) in 8-bit words, 5 cycles. A
latency-backend node takes a vector every cycle, so the DMA, not the RTL, would set the
II.

This transformation appends zero elements to such a stream (the node's ``inPad`` /
``outPad``): 12 -> 16 INT8 inputs (128 bits, one word) and 6 -> 10 INT6 outputs (60 bits,
64 with byte padding, one word). The padding lives in the node's folded shape, so
FINN's FIFOs, width converters and IODMAs, which are all sized from
``folded_shape[-1] * bitwidth``, carry it; the normal shape (the contract's features)
is unchanged. The host's codec writes zeros into the padding of an input and drops it
from an output (host/codec.py).

Only nodes that can carry padding are padded (UnrolledMLP_rtl, the II = 1 backend).
A folded FINN layer at a graph edge is left as it is: its own II is at least the DMA's
for the designs here (the step logs both), and its RTL has no padding to give.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from hw.iodma import best_pad_elements, cycles_per_vector

PADDABLE = ("UnrolledMLP",)


def _paddable(node: Any) -> bool:
    return node is not None and node.op_type.split("_")[0] in PADDABLE


class PadStreamsForIODMA(Transformation):
    """Set ``inPad`` / ``outPad`` of the graph-edge nodes that can carry padding so that
    each graph stream takes the fewest IODMA words per vector on a ``port_bits`` port.

    ``report`` (after ``apply``): one entry per graph stream, ``{tensor, node,
    direction, cycles_before, cycles_after, pad}``; ``pad`` is None where the node
    cannot be padded.
    """

    def __init__(self, port_bits: int) -> None:
        super().__init__()
        self.port_bits = int(port_bits)
        self.report: list[dict[str, Any]] = []

    def _stream(self, node: Any, direction: str, tensor: str) -> dict[str, Any]:
        inst = getCustomOp(node)
        if direction == "in":
            folded, dt = inst.get_folded_input_shape(0), inst.get_input_datatype(0)
            normal, attr = inst.get_normal_input_shape(0), "inPad"
        else:
            folded, dt = inst.get_folded_output_shape(0), inst.get_output_datatype(0)
            normal, attr = inst.get_normal_output_shape(0), "outPad"
        beats, bits = int(np.prod(folded[1:-1])), dt.bitwidth()
        before = cycles_per_vector(int(folded[-1]) * bits, beats, self.port_bits)
        entry = {"tensor": tensor, "node": node.name, "direction": direction,
                 "cycles_before": before, "cycles_after": before, "pad": None}
        if _paddable(node):
            pad, cycles = best_pad_elements(int(normal[-1]), bits, beats, self.port_bits)
            inst.set_nodeattr(attr, pad)
            entry.update(pad=pad, cycles_after=cycles)
        return entry

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        self.report = []
        for t in model.graph.input:
            for node in model.find_consumers(t.name) or []:
                self.report.append(self._stream(node, "in", t.name))
        for t in model.graph.output:
            node = model.find_producer(t.name)
            if node is not None:
                self.report.append(self._stream(node, "out", t.name))
        return model, False
