"""StreamingConcat_rtl: FINN's StreamingConcat (channel-axis concat) as RTL.

FINN 1.6.1 has only StreamingConcat_hls. Ours is ``hw/rtl/concat_axi.sv``, the same
beat order as FINN's HLS: per vector, ChannelsPerStream[0]/SIMD beats of input 0,
then input 1, ... Inputs may have different datatypes; each element is sign- or
zero-extended to FINN's output datatype (StreamingConcat.get_output_datatype).

Shapes: in i (*numInputVectors, ChannelsPerStream[i]) -> out0
(*numInputVectors, sum(ChannelsPerStream)); SIMD elements per beat everywhere.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from finn.custom_op.fpgadataflow.concat import StreamingConcat
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend

from hw.custom_ops._axis import AxisRTL, packed_params, padded_slice, zero_pad


class StreamingConcat_rtl(AxisRTL, StreamingConcat, RTLBackend):  # noqa: N801 (FINN naming)
    """RTL concatenation of len(ChannelsPerStream) AXI streams into one."""

    CORE = "concat_axi"

    def check_supported(self, model: Any = None) -> None:
        simd = self.get_nodeattr("SIMD")
        chans = list(self.get_nodeattr("ChannelsPerStream"))
        if len(chans) < 2 or any(c % simd for c in chans):
            raise ValueError(f"{self.onnx_node.name}: SIMD={simd} must divide every entry of "
                             f"ChannelsPerStream={chans} (>= 2 inputs)")
        for i in range(len(chans)):
            if not self.get_input_datatype(i).is_integer():
                raise ValueError(f"{self.onnx_node.name}: input {i} is not an integer type")

    def core_instance(self, model: Any) -> str:
        simd = self.get_nodeattr("SIMD")
        chans = list(self.get_nodeattr("ChannelsPerStream"))
        n = len(chans)
        ibits = [self.get_input_datatype(i).bitwidth() for i in range(n)]
        signed = sum(1 << i for i in range(n) if self.get_input_datatype(i).signed())
        iw_max = max(ibits)
        obits = self.get_output_datatype().bitwidth()
        idat = []
        for i in reversed(range(n)):
            used = simd * ibits[i]
            src = padded_slice(f"in{i}_V_TDATA", used, self.get_instream_width_padded(i))
            idat.append(zero_pad(src, used, simd * iw_max))
        cat = lambda sig: "{" + ", ".join(f"in{i}_V_{sig}" for i in reversed(range(n))) + "}"  # noqa: E731
        odat = padded_slice("out0_V_TDATA", simd * obits, self.get_outstream_width_padded(0))
        return (f"concat_axi #(.N({n}), .SIMD({simd}), .IW_MAX({iw_max}), .OBITS({obits}),\n"
                f"  .IN_BITS({packed_params(ibits)}), .IN_SIGNED({n}'d{signed}),\n"
                f"  .FOLDS({packed_params([c // simd for c in chans])})) core (\n"
                f"  {self._clk_rst()},\n"
                f"  .idat({{{', '.join(idat)}}}), .ivld({cat('TVALID')}), .irdy({cat('TREADY')}),\n"
                f"  .odat({odat}), .ovld(out0_V_TVALID), .ordy(out0_V_TREADY)\n);\n"
                + self._tie_padding())

    def python_execute(self, context: dict[str, np.ndarray], graph: Any) -> None:
        StreamingConcat.execute_node(self, context, graph)

    def lut_estimation(self, fpgapart: str = "") -> int:
        """An N:1 mux per output bit (N <= 4 fits one LUT6 per bit), plus counters."""
        n = len(self.get_nodeattr("ChannelsPerStream"))
        per_bit = max(1, -(-(n - 1) // 3))  # ceil((N-1)/3) LUT6 for an N:1 mux tree, roughly
        return self.get_outstream_width() * per_bit + 8 + 2 * n
