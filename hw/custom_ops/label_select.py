"""LabelSelect_rtl: FINN's LabelSelect for K = 1 (top-1 index, argmax) as RTL.

FINN 1.6.1 has only LabelSelect_hls. Ours is ``hw/rtl/label_select_axi.sv``: a
running maximum over Labels/PE beats of PE values, one index beat per vector.

Ties: the LOWEST index wins, like np.argmax / torch.argmax (first occurrence). FINN's
LabelSelect.execute_node runs onnxruntime's TopK, whose K=1 result is also the lowest
index on ties (tests/test_rtl_ops.py checks it against np.argmax on tie-heavy
inputs); our python execution is np.argmax itself, so it states the contract
instead of relying on onnxruntime. K > 1 is refused (ValueError): use K=1.

Shapes: in0 (*numInputVectors, Labels), PE values per beat -> out0
(*numInputVectors, 1), one index per beat, outputDataType (FINN: UINT rounded up to
a multiple of 8 bits).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from finn.custom_op.fpgadataflow.labelselect import LabelSelect
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend

from hw.custom_ops._axis import AxisRTL, padded_slice


class LabelSelect_rtl(AxisRTL, LabelSelect, RTLBackend):  # noqa: N801 (FINN naming)
    """RTL argmax (K = 1) over Labels inputs, lowest index on ties."""

    CORE = "label_select_axi"

    def check_supported(self, model: Any = None) -> None:
        name, k = self.onnx_node.name, self.get_nodeattr("K")
        if k != 1:
            raise ValueError(f"{name}: LabelSelect_rtl implements K=1 (top-1 index) only; "
                             f"got K={k}. Use K=1, or LabelSelect_hls where Vitis HLS exists.")
        labels, pe = self.get_nodeattr("Labels"), self.get_nodeattr("PE")
        if labels % pe:
            raise ValueError(f"{name}: PE={pe} must divide Labels={labels}")
        idt, odt = self.get_input_datatype(), self.get_output_datatype()
        if not idt.is_integer():
            raise ValueError(f"{name}: input {idt.name} is not an integer type")
        if odt.signed() or odt.max() < labels - 1:
            raise ValueError(f"{name}: outputDataType {odt.name} cannot hold index {labels - 1}")

    def verify_node(self) -> list[str]:
        try:
            self.check_supported()
        except ValueError as e:
            return [str(e)]
        return ["LabelSelect_rtl attributes OK"]

    def core_instance(self, model: Any) -> str:
        pe, labels = self.get_nodeattr("PE"), self.get_nodeattr("Labels")
        idt, odt = self.get_input_datatype(), self.get_output_datatype()
        i = padded_slice("in0_V_TDATA", pe * idt.bitwidth(), self.get_instream_width_padded(0))
        o = padded_slice("out0_V_TDATA", odt.bitwidth(), self.get_outstream_width_padded(0))
        return (f"label_select_axi #(.PE({pe}), .FOLDS({labels // pe}), "
                f".IBITS({idt.bitwidth()}), .SIGNED({int(idt.signed())}), "
                f".OBITS({odt.bitwidth()})) core (\n"
                f"  {self._clk_rst()},\n"
                f"  .idat({i}), .ivld(in0_V_TVALID), .irdy(in0_V_TREADY),\n"
                f"  .odat({o}), .ovld(out0_V_TVALID), .ordy(out0_V_TREADY)\n);\n"
                + self._tie_padding())

    def python_execute(self, context: dict[str, np.ndarray], graph: Any) -> None:
        """np.argmax over the label axis (lowest index on ties), as float32 like FINN."""
        self.check_supported()
        node = self.onnx_node
        x = np.asarray(context[node.input[0]])
        idx = np.argmax(x, axis=-1)[..., None]
        context[node.output[0]] = idx.astype(np.float32).reshape(self.get_normal_output_shape())

    def lut_estimation(self, fpgapart: str = "") -> int:
        """PE-1 in-beat compares + 1 running compare, each ~IBITS/2 LUT (carry chain) plus
        the index muxes (OBITS each), plus the fold counter."""
        pe = self.get_nodeattr("PE")
        ib, ob = self.get_input_datatype().bitwidth(), self.get_output_datatype().bitwidth()
        return pe * ((ib + 1) // 2 + ib + ob) + 8
