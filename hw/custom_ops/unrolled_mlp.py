"""UnrolledMLP (a new HWCustomOp) and UnrolledMLP_rtl: the latency backend.

A chain of dense layers (MVAU + Thresholding pairs of a folded FINN graph) as one fully
unrolled, fully pipelined module: one whole input vector per beat, one whole output
vector per beat, II = 1, no DSPs (hw/unrolled_rtl.py: da4ml shift-add trees, threshold
tables, clock-enabled pipeline). :class:`hw.transforms.unroll.UnrollDenseChains` makes
these nodes from the folded layers where the design's ``hw.impl`` asks for it.

Attribute contract:

=====================  =======  ======================================================
attribute              type     meaning
=====================  =======  ======================================================
``hasWeights``         ints     per layer: 1 if input ``W`` is present
``hasThresholds``      ints     per layer: 1 if input ``T`` is present
``ActVals``            ints     per layer: added to the threshold count
``dataTypes``          strings  datatype at every boundary: input, out of layer 0, ...
``MW`` / ``MH``        int      input / output channels of the whole chain
``cutoff``             float    da4ml adder levels per pipeline stage
``latency``            int      pipeline latency in cycles (set from the generated RTL)
``estLUT`` / ``estFF``  int      our resource estimate (hw.unrolled_rtl.Unrolled)
``numInputVectors``    ints     leading dims, e.g. [1] or [N]
``foldedLayers``       strings  names of the FINN nodes this node replaced
``inPad`` / ``outPad``  int      zero elements the input / output stream carries after
                                the vector (hw.transforms.iodma_pad: one IODMA word
                                per vector); the core ignores / drives zeros in them
=====================  =======  ======================================================

Inputs: ``input[0]`` the streamed vector (*numInputVectors, MW); then, per layer in
order, ``W`` (MW_i, MH_i) if ``hasWeights[i]`` and ``T`` (MH_i or 1, N_i) if
``hasThresholds[i]``, all initializers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from finn.custom_op.fpgadataflow.hwcustomop import HWCustomOp
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend
from qonnx.core.datatype import DataType

from hw.custom_ops._axis import AxisRTL, padded_slice


class UnrolledMLP(HWCustomOp):
    """Dense layers with constant weights, unrolled (module doc)."""

    def get_nodeattr_types(self) -> dict[str, Any]:
        attrs = {
            "hasWeights": ("ints", True, []),
            "hasThresholds": ("ints", True, []),
            "ActVals": ("ints", True, []),
            "dataTypes": ("strings", True, []),
            "MW": ("i", True, 0),
            "MH": ("i", True, 0),
            "cutoff": ("f", False, 2.0),
            "latency": ("i", False, 0),
            "estLUT": ("i", False, 0),
            "estFF": ("i", False, 0),
            "numInputVectors": ("ints", False, [1]),
            "foldedLayers": ("strings", False, []),
            "inPad": ("i", False, 0),
            "outPad": ("i", False, 0),
        }
        attrs.update(super().get_nodeattr_types())
        return attrs

    # --- shapes and types ---------------------------------------------------------------
    def get_normal_input_shape(self, ind: int = 0) -> tuple[int, ...]:
        return tuple(list(self.get_nodeattr("numInputVectors")) + [self.get_nodeattr("MW")])

    def get_normal_output_shape(self, ind: int = 0) -> tuple[int, ...]:
        return tuple(list(self.get_nodeattr("numInputVectors")) + [self.get_nodeattr("MH")])

    def get_folded_input_shape(self, ind: int = 0) -> tuple[int, ...]:
        """One beat of the MW inputs and ``inPad`` padding elements."""
        return tuple(list(self.get_nodeattr("numInputVectors"))
                     + [1, self.get_nodeattr("MW") + self.get_nodeattr("inPad")])

    def get_folded_output_shape(self, ind: int = 0) -> tuple[int, ...]:
        """One beat of the MH outputs and ``outPad`` padding elements."""
        return tuple(list(self.get_nodeattr("numInputVectors"))
                     + [1, self.get_nodeattr("MH") + self.get_nodeattr("outPad")])

    def get_input_datatype(self, ind: int = 0) -> Any:
        return DataType[self.get_nodeattr("dataTypes")[0]]

    def get_output_datatype(self, ind: int = 0) -> Any:
        return DataType[self.get_nodeattr("dataTypes")[-1]]

    def get_instream_width(self, ind: int = 0) -> int:
        if ind != 0:
            return 0  # weights and thresholds are baked into the RTL
        return self.get_folded_input_shape()[-1] * self.get_input_datatype().bitwidth()

    def get_outstream_width(self, ind: int = 0) -> int:
        return self.get_folded_output_shape()[-1] * self.get_output_datatype().bitwidth()

    def get_number_output_values(self) -> int:
        return int(np.prod(self.get_nodeattr("numInputVectors")))

    def get_exp_cycles(self) -> int:
        """Cycles for the node's vectors: one per cycle after the pipeline fills."""
        return self.get_number_output_values() + int(self.get_nodeattr("latency"))

    def make_shape_compatible_op(self, model: Any) -> Any:
        return super().make_const_shape_op(self.get_normal_output_shape())

    def infer_node_datatype(self, model: Any) -> None:
        model.set_tensor_datatype(self.onnx_node.output[0], self.get_output_datatype())

    def verify_node(self) -> list[str]:
        return ["UnrolledMLP: layers are checked when the RTL is generated"]

    # --- the layers ---------------------------------------------------------------------
    def layers(self, params: dict[str, np.ndarray]) -> list[Any]:
        """hw.unrolled_rtl.Layer list from the node's initializers ({tensor: array})."""
        from hw.unrolled_rtl import Layer

        node = self.onnx_node
        hw_, ht = self.get_nodeattr("hasWeights"), self.get_nodeattr("hasThresholds")
        acts = self.get_nodeattr("ActVals")
        dts = [DataType[d] for d in self.get_nodeattr("dataTypes")]
        if not (len(hw_) == len(ht) == len(acts) == len(dts) - 1):
            raise ValueError(f"{node.name}: hasWeights/hasThresholds/ActVals/dataTypes lengths "
                             f"{len(hw_)}/{len(ht)}/{len(acts)}/{len(dts)} disagree")
        pos, layers = 1, []
        for i in range(len(hw_)):
            w = t = None
            if hw_[i]:
                w, pos = np.asarray(params[node.input[pos]]).astype(np.int64), pos + 1
            if ht[i]:
                t, pos = np.asarray(params[node.input[pos]]).astype(np.int64), pos + 1
            layers.append(Layer(w, t, int(acts[i]), dts[i].bitwidth(), dts[i].signed(),
                                dts[i + 1].bitwidth(), dts[i + 1].signed()))
        return layers

    def execute_node(self, context: dict[str, np.ndarray], graph: Any) -> None:
        """The chain's integers (hw.unrolled_rtl.reference), float32 container like FINN."""
        from hw.unrolled_rtl import reference

        node = self.onnx_node
        x = np.asarray(context[node.input[0]])
        lead = x.shape[:-1]
        y = reference(self.layers(context), x.reshape(-1, x.shape[-1]))
        context[node.output[0]] = y.reshape(*lead, -1).astype(np.float32)

    def resource_estimate(self) -> dict[str, int]:
        """Our estimate (hw.unrolled_rtl: da4ml's adder cost + threshold ROMs + registers)."""
        return {"LUT": int(self.get_nodeattr("estLUT")), "FF": int(self.get_nodeattr("estFF")),
                "DSP": 0, "BRAM18": 0}

    def lut_estimation(self, fpgapart: str = "") -> int:
        return int(self.get_nodeattr("estLUT"))

    def dsp_estimation(self, fpgapart: str = "") -> int:
        return 0

    def bram_estimation(self, fpgapart: str = "") -> int:
        return 0


def estimate_luts(design: Any) -> int:
    """LUT6 estimate of a generated module: da4ml's CMVM cost (one LUT per adder bit),
    the threshold ROMs (64 bits per LUT6) and ~6 LUT per threshold channel for the
    subtract/clip/compare/add around them."""
    channels = sum(len(t) for t in design.tables)
    return int(design.cmvm_cost + design.table_bits / 64 + 6 * channels)


class UnrolledMLP_rtl(AxisRTL, UnrolledMLP, RTLBackend):  # noqa: N801 (FINN naming)
    """UnrolledMLP as generated RTL (hw/unrolled_rtl.py) in FINN's AXI-stream wrapper."""

    CORE = "unrolled_mlp"

    def _params(self, model: Any) -> dict[str, np.ndarray]:
        params = {}
        for name in self.onnx_node.input[1:]:
            v = model.get_initializer(name)
            if v is None:
                raise ValueError(f"{self.onnx_node.name}: input {name} must be an initializer")
            params[name] = v
        return params

    def design(self, model: Any) -> Any:
        """The generated module for this node (hw.unrolled_rtl.generate)."""
        from hw.unrolled_rtl import generate

        return generate(self.layers(self._params(model)), f"{self.onnx_node.name}_core",
                        float(self.get_nodeattr("cutoff")))

    def generate_hdl(self, model: Any, fpgapart: str, clk: float) -> None:
        """The generated stages and pipeline, then FINN's AXI-stream wrapper around them."""
        out = self._code_gen_dir()
        d = self.design(model)
        if d.latency != self.get_nodeattr("latency"):
            self.set_nodeattr("latency", d.latency)
        for name, text in d.files.items():
            (out / name).write_text(text)
        i = padded_slice("in0_V_TDATA", d.in_width, self.get_instream_width_padded(0))
        o = padded_slice("out0_V_TDATA", d.out_width, self.get_outstream_width_padded(0))
        self._write_wrapper(out, d.top, (
            f"{d.top} core (\n  {self._clk_rst()},\n"
            f"  .idat({i}), .ivld(in0_V_TVALID), .irdy(in0_V_TREADY),\n"
            f"  .odat({o}), .ovld(out0_V_TVALID), .ordy(out0_V_TREADY)\n);\n"
            + self._tie_padding([d.out_width])))
        top = self.get_verilog_top_module_name()
        (out / "files.txt").write_text("\n".join([*d.files, f"{top}.v"]) + "\n")

    def get_rtl_file_list(self, abspath: bool = False) -> list[str]:
        """The generated files in dependency order (primitives, stages, pipeline, wrapper)."""
        d = Path(self.get_nodeattr("code_gen_dir_ipgen"))
        files = (d / "files.txt").read_text().split()
        return [str(d / f) for f in files] if abspath else files

    def python_execute(self, context: dict[str, np.ndarray], graph: Any) -> None:
        UnrolledMLP.execute_node(self, context, graph)
