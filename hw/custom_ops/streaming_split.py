"""StreamingSplit_rtl: FINN's StreamingSplit (channel-axis split) as RTL.

FINN 1.6.1 has only StreamingSplit_hls. Ours is ``hw/rtl/split_axi.sv``, the same
beat order as FINN's HLS: per vector, ChannelsPerStream[0]/SIMD beats to output 0,
then ChannelsPerStream[1]/SIMD beats to output 1, ... One register per output, so
the outputs stall independently.

Shapes: in0 (*numInputVectors, sum(ChannelsPerStream)) -> out i
(*numInputVectors, ChannelsPerStream[i]); SIMD elements per beat everywhere.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend
from finn.custom_op.fpgadataflow.split import StreamingSplit

from hw.custom_ops._axis import AxisRTL, packed_params


class StreamingSplit_rtl(AxisRTL, StreamingSplit, RTLBackend):  # noqa: N801 (FINN naming)
    """RTL split of one AXI stream into len(ChannelsPerStream) streams."""

    CORE = "split_axi"

    def check_supported(self, model: Any = None) -> None:
        simd = self.get_nodeattr("SIMD")
        chans = list(self.get_nodeattr("ChannelsPerStream"))
        if len(chans) < 2 or any(c % simd for c in chans):
            raise ValueError(f"{self.onnx_node.name}: SIMD={simd} must divide every entry of "
                             f"ChannelsPerStream={chans} (>= 2 outputs)")

    def core_instance(self, model: Any) -> str:
        simd = self.get_nodeattr("SIMD")
        folds = [c // simd for c in self.get_nodeattr("ChannelsPerStream")]
        n = len(folds)
        w = self.get_instream_width_padded(0)
        outs = list(range(n - 1, -1, -1))
        cat = lambda sig: "{" + ", ".join(f"out{j}_V_{sig}" for j in outs) + "}"  # noqa: E731
        return (f"split_axi #(.N({n}), .W({w}), .FOLDS({packed_params(folds)})) core (\n"
                f"  {self._clk_rst()},\n"
                "  .idat(in0_V_TDATA), .ivld(in0_V_TVALID), .irdy(in0_V_TREADY),\n"
                f"  .odat({cat('TDATA')}), .ovld({cat('TVALID')}), .ordy({cat('TREADY')})\n);")

    def python_execute(self, context: dict[str, np.ndarray], graph: Any) -> None:
        StreamingSplit.execute_node(self, context, graph)

    def lut_estimation(self, fpgapart: str = "") -> int:
        """Beat counter and output select (~8 LUT) plus valid/ready per output."""
        return 8 + 2 * len(self.get_nodeattr("ChannelsPerStream"))
