"""ElementwiseAdd_rtl for two streamed INTEGER inputs (the residual add), in our own RTL.

Why not FINN's own ElementwiseAdd_rtl (finn-rtllib/eltwise, int/int path of binopi.sv)?

* SpecializeLayers never picks it here: ``_elementwise_rtl_possible``
  (transformation/fpgadataflow/specialize_layers.py) returns False for every
  non-Versal part first (pynq-z2 is xc7z020), and then for every int/int pair
  ("Int/int defaults to HLS to avoid bitwidth mismatch after MinimizeBitWidth").
* Its int/int path asserts equal widths AND equal signedness of the two inputs, and
  an output of exactly width+1 bits (generate_hdl). The residual add in our zoo adds a
  ReLU branch (UINT codes) to a signed branch (INT codes): refused by construction,
  and MinimizeAccumulatorWidth's ElementwiseAdd._derive_out_dtype can give INT(w+2).
* Its wrapper ports are PE*bits wide, not byte-padded (eltwise_template.v uses
  A_STREAM_BITS = PE*A_WIDTH), so they differ from get_instream_width_padded()
  whenever PE*bits is not a multiple of 8, and a stitcher connecting by FINN's
  interface widths would mis-wire them.
Where FINN's core does apply (same width, same signedness, padded widths equal), its
binopi adder is exact too (tests/test_rtl_ops.py simulates it over every INT8 x INT8
pair); we still use one core for every integer case so there is one thing to verify.

Ours (``hw/rtl/eltwise_add_axi.sv``): operands extended to the node's out_dtype,
one add, a joined handshake (both inputs taken in the same cycle). It is exact when
out_dtype holds every sum lhs.min+rhs.min .. lhs.max+rhs.max; generate_hdl refuses
otherwise, since the hardware would wrap where numpy does not.

The class replaces FINN's ``ElementwiseAdd_rtl`` in the rtl registry and subclasses
it: float, constant-operand, broadcast and MLO nodes go to FINN's implementation
unchanged. :class:`SpecializeIntegerElementwiseAdd` (run before SpecializeLayers)
turns eligible ``ElementwiseAdd`` nodes into ``ElementwiseAdd_rtl``, which
SpecializeLayers alone never does.

Shapes: lhs, rhs, out all (*batch, C); PE elements per beat (C % PE == 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from finn.custom_op.fpgadataflow import elementwise_binary
from finn.custom_op.fpgadataflow.rtl.elementwise_binary_rtl import (
    ElementwiseAdd_rtl as FinnElementwiseAdd_rtl,
)
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import GiveUniqueNodeNames

from hw.custom_ops._axis import AxisRTL, padded_slice


def integer_add_eligible(inst: Any) -> str | None:
    """None if our integer add can implement ``inst`` (an ElementwiseAdd[_rtl]), else why not."""
    if not (inst.lhs_dtype.is_integer() and inst.rhs_dtype.is_integer()):
        return "not both inputs integer"
    if inst.get_nodeattr("lhs_style") != "input" or inst.get_nodeattr("rhs_style") != "input":
        return "an input is a constant (FINN's memstream path)"
    if inst.get_nodeattr("mlo_max_iter"):
        return "MLO loop body"
    shapes = [list(inst.lhs_shape), list(inst.rhs_shape), list(inst.out_shape)]
    if not shapes[0] == shapes[1] == shapes[2]:
        return f"broadcasting shapes {shapes}"
    return None


class ElementwiseAdd_rtl(AxisRTL, FinnElementwiseAdd_rtl):  # noqa: N801 (FINN naming)
    """Integer + integer streamed add in our RTL; FINN's ElementwiseAdd_rtl for the rest."""

    CORE = "eltwise_add_axi"

    def _ours(self) -> bool:
        return integer_add_eligible(self) is None

    def check_supported(self, model: Any = None) -> None:
        why = integer_add_eligible(self)
        if why:
            raise ValueError(f"{self.onnx_node.name}: not our integer add ({why})")
        lo = self.lhs_dtype.min() + self.rhs_dtype.min()
        hi = self.lhs_dtype.max() + self.rhs_dtype.max()
        odt = self.out_dtype
        if not odt.is_integer() or lo < odt.min() or hi > odt.max():
            raise ValueError(
                f"{self.onnx_node.name}: out_dtype {odt.name} cannot hold every sum of "
                f"{self.lhs_dtype.name} + {self.rhs_dtype.name} ([{lo}, {hi}]); the hardware "
                "would wrap where numpy does not. Run MinimizeAccumulatorWidth (it derives "
                "an exact out_dtype) or widen out_dtype.")
        if self.out_shape[-1] % self.pe:
            raise ValueError(f"{self.onnx_node.name}: PE={self.pe} must divide "
                             f"{self.out_shape[-1]}")

    def core_instance(self, model: Any) -> str:
        pe = self.pe
        ab, bb, ob = (self.lhs_dtype.bitwidth(), self.rhs_dtype.bitwidth(),
                      self.out_dtype.bitwidth())
        a = padded_slice("in0_V_TDATA", pe * ab, self.get_instream_width_padded(0))
        b = padded_slice("in1_V_TDATA", pe * bb, self.get_instream_width_padded(1))
        o = padded_slice("out0_V_TDATA", pe * ob, self.get_outstream_width_padded(0))
        return (f"eltwise_add_axi #(.PE({pe}), .ABITS({ab}), .BBITS({bb}), .OBITS({ob}),\n"
                f"  .A_SIGNED({int(self.lhs_dtype.signed())}), "
                f".B_SIGNED({int(self.rhs_dtype.signed())})) core (\n"
                f"  {self._clk_rst()},\n"
                f"  .adat({a}), .avld(in0_V_TVALID), .ardy(in0_V_TREADY),\n"
                f"  .bdat({b}), .bvld(in1_V_TVALID), .brdy(in1_V_TREADY),\n"
                f"  .odat({o}), .ovld(out0_V_TVALID), .ordy(out0_V_TREADY)\n);\n"
                + self._tie_padding())

    def generate_hdl(self, model: Any, fpgapart: str, clk: float) -> None:
        if self._ours():
            AxisRTL.generate_hdl(self, model, fpgapart, clk)
        else:
            FinnElementwiseAdd_rtl.generate_hdl(self, model, fpgapart, clk)

    def get_rtl_file_list(self, abspath: bool = False) -> list[str]:
        if self._ours():
            return AxisRTL.get_rtl_file_list(self, abspath)
        return FinnElementwiseAdd_rtl.get_rtl_file_list(self, abspath)

    def code_generation_ipi(self) -> list[str]:
        if self._ours():
            return AxisRTL.code_generation_ipi(self)
        return FinnElementwiseAdd_rtl.code_generation_ipi(self)

    def execute_node(self, context: dict[str, np.ndarray], graph: Any) -> None:
        if self._ours():
            AxisRTL.execute_node(self, context, graph)
        else:
            FinnElementwiseAdd_rtl.execute_node(self, context, graph)

    def python_execute(self, context: dict[str, np.ndarray], graph: Any) -> None:
        elementwise_binary.ElementwiseAdd.execute_node(self, context, graph)

    def lut_estimation(self, fpgapart: str = "") -> int:
        """One LUT per output bit (carry-chain adder) plus the handshake."""
        if not self._ours():
            return FinnElementwiseAdd_rtl.lut_estimation(self, fpgapart)
        return self.pe * self.out_dtype.bitwidth() + 2

    def dsp_estimation(self, fpgapart: str = "") -> int:
        return 0 if self._ours() else FinnElementwiseAdd_rtl.dsp_estimation(self, fpgapart)


class SpecializeIntegerElementwiseAdd(Transformation):
    """ElementwiseAdd (two streamed integer inputs) -> ElementwiseAdd_rtl (ours).

    Run before SpecializeLayers, which would make them ElementwiseAdd_hls (module doc).
    Nodes with preferred_impl_style "hls", or that our add cannot implement, are left
    for SpecializeLayers.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        changed = False
        for i, node in enumerate(list(model.graph.node)):
            if node.op_type != "ElementwiseAdd" or node.domain != "finn.custom_op.fpgadataflow":
                continue
            inst = getCustomOp(node)
            if inst.get_nodeattr("preferred_impl_style") == "hls" or integer_add_eligible(inst):
                continue
            new = helper.make_node("ElementwiseAdd_rtl", node.input, node.output,
                                   domain="finn.custom_op.fpgadataflow.rtl", name=node.name)
            new.attribute.extend(a for a in node.attribute if a.name != "preferred_impl_style")
            model.graph.node.remove(node)
            model.graph.node.insert(i, new)
            changed = True
        if changed:
            model = model.transform(GiveUniqueNodeNames())
        return model, False
