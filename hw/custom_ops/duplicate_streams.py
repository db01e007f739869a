"""DuplicateStreams_rtl: FINN's DuplicateStreams (fan-out) as RTL, any NumOutputStreams >= 2.

FINN 1.6.1 has only DuplicateStreams_hls (Vitis HLS, not installed here). Ours is
``hw/rtl/dup_streams_axi.sv``: a one-beat register with a per-output "taken" flag;
the next input beat is accepted only when every output has taken the held one, so
each output stalls independently and no beat is dropped or duplicated.

Shapes: in0 (*numInputVectors, NumChannels) -> out0..out{N-1}, the same, PE
elements per beat (folded (*numInputVectors, NumChannels/PE, PE)).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from finn.custom_op.fpgadataflow.duplicatestreams import DuplicateStreams
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend

from hw.custom_ops._axis import AxisRTL


class DuplicateStreams_rtl(AxisRTL, DuplicateStreams, RTLBackend):  # noqa: N801 (FINN naming)
    """RTL fork of one AXI stream into NumOutputStreams identical streams."""

    CORE = "dup_streams_axi"

    def check_supported(self, model: Any = None) -> None:
        n = self.get_num_output_streams()
        if n < 2 or n != len(self.onnx_node.output):
            raise ValueError(f"{self.onnx_node.name}: NumOutputStreams={n} must be >= 2 and "
                             f"equal the node's {len(self.onnx_node.output)} outputs")
        if self.get_nodeattr("NumChannels") % self.get_nodeattr("PE"):
            raise ValueError(f"{self.onnx_node.name}: PE must divide NumChannels")

    def core_instance(self, model: Any) -> str:
        n = self.get_num_output_streams()
        w = self.get_instream_width_padded(0)
        outs = list(range(n - 1, -1, -1))  # concatenation: output 0 at the LSB end
        cat = lambda sig: "{" + ", ".join(f"out{j}_V_{sig}" for j in outs) + "}"  # noqa: E731
        return (f"dup_streams_axi #(.N({n}), .W({w})) core (\n"
                f"  {self._clk_rst()},\n"
                "  .idat(in0_V_TDATA), .ivld(in0_V_TVALID), .irdy(in0_V_TREADY),\n"
                f"  .odat({cat('TDATA')}), .ovld({cat('TVALID')}), .ordy({cat('TREADY')})\n);")

    def python_execute(self, context: dict[str, np.ndarray], graph: Any) -> None:
        DuplicateStreams.execute_node(self, context, graph)

    def lut_estimation(self, fpgapart: str = "") -> int:
        """Ready/valid logic only (the data register is FFs): ~2 LUT per output + 1."""
        return 2 * self.get_num_output_streams() + 1
