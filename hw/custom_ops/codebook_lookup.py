"""CodebookLookup (a new HWCustomOp) and CodebookLookup_rtl: index code -> integer level.

For non-uniform quantizers (k-means codebooks, learned ADC levels) whose index codes
must become integer levels inside the accelerator. FINN's Lookup is an embedding
gather (each index -> an EmbeddingDim vector, one table for all) with only an HLS
variant, so this is our own op; ``hw/rtl/codebook_lookup_axi.sv`` is a constant ROM
per PE lane.

Attribute contract (what a graph transformation creating these nodes must set; use
:func:`make_codebook_lookup_node`):

========================  =======  ====================================================
attribute                 type     meaning
========================  =======  ====================================================
``NumChannels``           int      C, the last axis of input and output
``PE``                    int      channels per beat, divides C
``Levels``                int      L, entries per table (table.shape[1])
``NumTables``             int      T = table.shape[0]: C (per channel) or 1 (shared)
``InputType``             str      index datatype, unsigned integer (e.g. ``UINT6``)
``OutputType``            str      level datatype: the smallest INT/UINT holding the
                                   table (:func:`smallest_int_type`)
``numInputVectors``       ints     leading dims, e.g. [1] or [N]
``backend``               str      ``"fpgadataflow"`` (FINN finds hw nodes by it)
========================  =======  ====================================================

Inputs: ``input[0]`` index codes (*numInputVectors, C), streamed; ``input[1]`` an
initializer, integer table (T, L) with T == C (one table per channel) or T == 1
(one table shared by all channels). Output: (*numInputVectors, C) with
``out[..., c] = table[c if T == C else 0, min(idx[..., c], L - 1)]``: an index >= L
saturates to the last level (only reachable when 2**bits(InputType) > L).

Streams: in0 (PE indices per beat), out0 (PE levels per beat), packed like FINN
(element 0 at the LSB). The table is not a stream (no in1_V): it is baked into the
RTL as a parameter.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from finn.custom_op.fpgadataflow.hwcustomop import HWCustomOp
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend
from onnx import NodeProto, helper
from qonnx.core.datatype import DataType

from hw.custom_ops._axis import AxisRTL, padded_slice, vlit

DOMAIN = "finn.custom_op.fpgadataflow"


def smallest_int_type(table: np.ndarray) -> Any:
    """Smallest UINTn (all levels >= 0) or INTn holding every entry of ``table``."""
    t = np.asarray(table)
    if not np.array_equal(t, np.round(t)):
        raise ValueError("codebook table entries must be integers (levels on the integer grid)")
    lo, hi = int(t.min()), int(t.max())
    if lo >= 0:
        return DataType[f"UINT{max(1, hi.bit_length())}"]
    bits = 1 + max((-lo - 1).bit_length(), hi.bit_length())
    return DataType[f"INT{max(2, bits)}"]


def make_codebook_lookup_node(inp: str, table_name: str, out: str, table: np.ndarray,
                         num_channels: int, input_type: str,
                         num_input_vectors: list[int] | None = None, pe: int = 1,
                         name: str | None = None) -> NodeProto:
    """A ``CodebookLookup`` node (domain finn.custom_op.fpgadataflow) for ``table`` (T, L).

    The caller adds ``table`` as the initializer named ``table_name``. T is
    ``num_channels`` (one table per channel) or 1 (shared). OutputType is derived from
    the table (:func:`smallest_int_type`).
    """
    table = np.asarray(table)
    if table.ndim != 2 or table.shape[0] not in (1, num_channels):
        raise ValueError(f"table shape {table.shape}: want (C={num_channels}, L) or (1, L)")
    idt = DataType[input_type]
    if not idt.is_integer() or idt.signed():
        raise ValueError(f"InputType {input_type}: index codes must be unsigned integers")
    if num_channels % pe:
        raise ValueError(f"PE={pe} must divide NumChannels={num_channels}")
    return helper.make_node(
        "CodebookLookup", [inp, table_name], [out], domain=DOMAIN,
        name=name or f"CodebookLookup_{out}", backend="fpgadataflow",
        NumChannels=int(num_channels), PE=int(pe), Levels=int(table.shape[1]),
        NumTables=int(table.shape[0]),
        InputType=idt.name, OutputType=smallest_int_type(table).name,
        numInputVectors=list(num_input_vectors or [1]))


class CodebookLookup(HWCustomOp):
    """Per-channel integer codebook: out[..., c] = table[c or 0, min(idx, L-1)] (module doc)."""

    def get_nodeattr_types(self) -> dict[str, Any]:
        attrs = {
            "NumChannels": ("i", True, 0),
            "PE": ("i", True, 1),
            "Levels": ("i", True, 0),
            "NumTables": ("i", True, 1),
            "InputType": ("s", True, ""),
            "OutputType": ("s", True, ""),
            "numInputVectors": ("ints", False, [1]),
        }
        attrs.update(super().get_nodeattr_types())
        return attrs

    # --- shapes and types ---------------------------------------------------------------
    def get_normal_input_shape(self, ind: int = 0) -> tuple[int, ...]:
        if ind == 1:
            return (self.get_num_tables(), self.get_nodeattr("Levels"))
        vecs = list(self.get_nodeattr("numInputVectors"))
        return tuple(vecs + [self.get_nodeattr("NumChannels")])

    def get_normal_output_shape(self, ind: int = 0) -> tuple[int, ...]:
        return self.get_normal_input_shape(0)

    def get_folded_input_shape(self, ind: int = 0) -> tuple[int, ...]:
        if ind == 1:
            return self.get_normal_input_shape(1)
        c, pe = self.get_nodeattr("NumChannels"), self.get_nodeattr("PE")
        return tuple(list(self.get_nodeattr("numInputVectors")) + [c // pe, pe])

    def get_folded_output_shape(self, ind: int = 0) -> tuple[int, ...]:
        return self.get_folded_input_shape(0)

    def get_num_tables(self) -> int:
        """T: NumChannels (a table per channel) or 1 (shared)."""
        return int(self.get_nodeattr("NumTables"))

    def get_input_datatype(self, ind: int = 0) -> Any:
        return DataType[self.get_nodeattr("InputType" if ind == 0 else "OutputType")]

    def get_output_datatype(self, ind: int = 0) -> Any:
        return DataType[self.get_nodeattr("OutputType")]

    def get_instream_width(self, ind: int = 0) -> int:
        if ind != 0:
            return 0  # the table is a parameter, not a stream
        return self.get_nodeattr("PE") * self.get_input_datatype(0).bitwidth()

    def get_outstream_width(self, ind: int = 0) -> int:
        return self.get_nodeattr("PE") * self.get_output_datatype().bitwidth()

    def get_number_output_values(self) -> int:
        return int(np.prod(self.get_folded_output_shape()[:-1]))

    def get_exp_cycles(self) -> int:
        return int(np.prod(self.get_folded_output_shape()[:-1]))

    def make_shape_compatible_op(self, model: Any) -> NodeProto:
        return super().make_const_shape_op(self.get_normal_output_shape())

    def infer_node_datatype(self, model: Any) -> None:
        node = self.onnx_node
        idt = model.get_tensor_datatype(node.input[0])
        if idt != self.get_input_datatype(0):
            self.set_nodeattr("InputType", idt.name)
        model.set_tensor_datatype(node.output[0], self.get_output_datatype())

    def verify_node(self) -> list[str]:
        return ["CodebookLookup: attributes are checked against the table at execution"]

    # --- the table ----------------------------------------------------------------------
    def checked_table(self, table: np.ndarray) -> np.ndarray:
        """The (T, L) int64 table, checked against the attributes; raises ValueError."""
        name = self.onnx_node.name
        t = np.asarray(table)
        c, lv = self.get_nodeattr("NumChannels"), self.get_nodeattr("Levels")
        nt = self.get_num_tables()
        if nt not in (1, c) or t.shape != (nt, lv):
            raise ValueError(f"{name}: table shape {t.shape}, want (NumTables={nt}, Levels={lv}); "
                             f"NumTables must be NumChannels={c} or 1")
        if not np.array_equal(t, np.round(t)):
            raise ValueError(f"{name}: table entries must be integers")
        odt = self.get_output_datatype()
        if t.min() < odt.min() or t.max() > odt.max():
            raise ValueError(f"{name}: table [{t.min()}, {t.max()}] does not fit {odt.name}")
        idt = self.get_input_datatype(0)
        if not idt.is_integer() or idt.signed():
            raise ValueError(f"{name}: InputType {idt.name} must be an unsigned integer type")
        return t.astype(np.int64)

    def execute_node(self, context: dict[str, np.ndarray], graph: Any) -> None:
        """out[..., c] = table[c or 0, min(idx[..., c], L-1)] (float32 container, like FINN)."""
        node = self.onnx_node
        t = self.checked_table(context[node.input[1]])
        idx = np.asarray(context[node.input[0]]).astype(np.int64)
        if idx.min(initial=0) < 0:
            raise ValueError(f"{node.name}: negative index code")
        k = np.minimum(idx, t.shape[1] - 1)
        ch = np.arange(idx.shape[-1]) if t.shape[0] > 1 else np.zeros(idx.shape[-1], np.int64)
        context[node.output[0]] = t[ch, k].astype(np.float32)


class CodebookLookup_rtl(AxisRTL, CodebookLookup, RTLBackend):  # noqa: N801 (FINN naming)
    """CodebookLookup as per-lane constant ROMs (hw/rtl/codebook_lookup_axi.sv)."""

    CORE = "codebook_lookup_axi"

    def check_supported(self, model: Any = None) -> None:
        if self.get_nodeattr("NumChannels") % self.get_nodeattr("PE"):
            raise ValueError(f"{self.onnx_node.name}: PE must divide NumChannels")
        if model is not None:
            self._table(model)

    def _table(self, model: Any) -> np.ndarray:
        t = model.get_initializer(self.onnx_node.input[1])
        if t is None:
            raise ValueError(f"{self.onnx_node.name}: input[1] (the table) must be an initializer")
        return self.checked_table(t)

    def core_instance(self, model: Any) -> str:
        t = self._table(model)
        pe, c = self.get_nodeattr("PE"), self.get_nodeattr("NumChannels")
        ib, ob = self.get_input_datatype(0).bitwidth(), self.get_output_datatype().bitwidth()
        ntab, lv = t.shape
        flat = 0
        for j, v in enumerate(t.reshape(-1).tolist()):  # entry (tab*L + k) at bits j*OBITS
            flat |= (int(v) % (1 << ob)) << (j * ob)
        i = padded_slice("in0_V_TDATA", pe * ib, self.get_instream_width_padded(0))
        o = padded_slice("out0_V_TDATA", pe * ob, self.get_outstream_width_padded(0))
        return (f"codebook_lookup_axi #(.PE({pe}), .FOLDS({c // pe}), .IBITS({ib}), "
                f".OBITS({ob}), .L({lv}), .SHARED({int(ntab == 1)}), .NTAB({ntab}),\n"
                f"  .TABLE({vlit(ntab * lv * ob, flat)})) core (\n"
                f"  {self._clk_rst()},\n"
                f"  .idat({i}), .ivld(in0_V_TVALID), .irdy(in0_V_TREADY),\n"
                f"  .odat({o}), .ovld(out0_V_TVALID), .ordy(out0_V_TREADY)\n);\n"
                + self._tie_padding())

    def python_execute(self, context: dict[str, np.ndarray], graph: Any) -> None:
        CodebookLookup.execute_node(self, context, graph)

    def lut_estimation(self, fpgapart: str = "") -> int:
        """Per lane and output bit, a ROM of (C/PE or 1)*L entries: ceil(entries/64) LUT6
        (plus a mux level above 64 entries)."""
        pe, c, lv = (self.get_nodeattr(a) for a in ("PE", "NumChannels", "Levels"))
        entries = (c // pe if self.get_num_tables() > 1 else 1) * lv
        per_bit = -(-entries // 64) + (entries > 64) * -(-entries // 256)
        return pe * self.get_output_datatype().bitwidth() * per_bit + 4
