"""Shared plumbing of our RTL custom ops: wrapper rendering, file lists, IPI tcl, exec.

Every op here renders ``hw/rtl/axis_wrapper_template.v`` (a Verilog-2001 top whose
ports are exactly FINN's ``get_verilog_top_module_intf_names()``: ap_clk, ap_rst_n,
in<i>_V_*, out<j>_V_*, TDATA byte-padded) around one SystemVerilog core from
``hw/rtl/``. The core is copied next to the wrapper with a per-node module name
(``<node>_<core>``, as FINN's SWG/FMPadding templates do with ``$TOP_MODULE_NAME$_impl``):
the node's ``code_gen_dir_ipgen`` is self-contained, and two nodes of one op type in
a stitched design never declare the same module twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

RTL_DIR = Path(__file__).resolve().parent.parent / "rtl"
TEMPLATE = RTL_DIR / "axis_wrapper_template.v"

RTLSIM_UNSUPPORTED = (
    "{name} ({op}): exec_mode='rtlsim' runs FINN's xsim (Vivado), which is not installed. "
    "Simulate the generated RTL with this project's Verilator flow instead "
    "(hw/rtlsim; tests/test_rtl_ops.py for single ops). Python execution: exec_mode='' or 'cppsim'."
)


def vlit(bits: int, value: int) -> str:
    """A sized Verilog literal (two's complement for negative values)."""
    return f"{bits}'h{value % (1 << bits):x}"


def packed_params(values: list[int], bits: int = 32) -> str:
    """Verilog concatenation for a packed [N-1:0][bits-1:0] parameter (element 0 at LSB)."""
    return "{" + ", ".join(vlit(bits, v) for v in reversed(values)) + "}"


def padded_slice(port: str, used: int, padded: int) -> str:
    """The used low bits of a padded TDATA input."""
    return port if used == padded else f"{port}[{used - 1}:0]"


def zero_pad(expr: str, used: int, padded: int) -> str:
    """Zero-extend ``expr`` (``used`` bits) to ``padded`` bits."""
    return expr if used == padded else f"{{{padded - used}'b0, {expr}}}"


class AxisRTL:
    """Mixin for our RTL ops (put it first in the bases, before the FINN parent and RTLBackend).

    A subclass gives ``CORE`` (the core module name, file ``hw/rtl/<CORE>.sv``) and
    ``core_instance()`` (Verilog text instantiating it, with ``ap_clk``/``ap_rst_n``
    and the interface ports).
    """

    CORE: str = ""

    # --- to be provided by the subclass -------------------------------------------------
    def core_instance(self, model: Any) -> str:  # pragma: no cover - abstract
        """Verilog-2001 text instantiating ``CORE`` inside the wrapper."""
        raise NotImplementedError

    def check_supported(self, model: Any = None) -> None:
        """Raise ValueError naming the node if this configuration cannot be built."""

    # --- FINN RTLBackend interface -------------------------------------------------------
    def get_nodeattr_types(self) -> dict[str, Any]:
        """The FINN HW op's attributes (the next base in the MRO) and RTLBackend's."""
        from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend

        attrs = dict(super().get_nodeattr_types())
        attrs.update(RTLBackend.get_nodeattr_types(self))
        return attrs

    def _ports(self) -> tuple[str, str]:
        """(port declarations, ASSOCIATED_BUSIF list) from FINN's interface names."""
        intf = self.get_verilog_top_module_intf_names()  # type: ignore[attr-defined]
        lines, busif = [], []
        for name, width in intf["s_axis"]:
            busif.append(name)
            lines += [f"output {name}_TREADY", f"input  {name}_TVALID",
                      f"input  [{width - 1}:0] {name}_TDATA"]
        for name, width in intf["m_axis"]:
            busif.append(name)
            lines += [f"input  {name}_TREADY", f"output {name}_TVALID",
                      f"output [{width - 1}:0] {name}_TDATA"]
        return "".join(f",\n{ln}" for ln in lines), ":".join(busif)

    def generate_hdl(self, model: Any, fpgapart: str, clk: float) -> None:
        """Render the wrapper into ``code_gen_dir_ipgen`` and copy the core next to it."""
        self.check_supported(model)
        top = self.get_verilog_top_module_name()  # type: ignore[attr-defined]
        core = f"{top}_{self.CORE}"
        out = self._code_gen_dir()
        body = self.core_instance(model).replace(f"{self.CORE} #(", f"{core} #(", 1)
        self._write_wrapper(out, self.CORE, body)
        src = (RTL_DIR / f"{self.CORE}.sv").read_text()
        src = src.replace(f"module {self.CORE}", f"module {core}")
        src = src.replace(f"endmodule : {self.CORE}", f"endmodule : {core}")
        (out / f"{core}.sv").write_text(f"// {self.CORE} from hw/rtl, renamed for node {top}\n"
                                        + src)

    def _code_gen_dir(self) -> Path:
        """The node's ``code_gen_dir_ipgen``, made (and recorded) if missing."""
        from finn.util.basic import make_build_dir

        code_gen_dir = self.get_nodeattr("code_gen_dir_ipgen")  # type: ignore[attr-defined]
        if not code_gen_dir or not Path(code_gen_dir).is_dir():
            name = self.onnx_node.name  # type: ignore[attr-defined]
            code_gen_dir = make_build_dir(prefix=f"code_gen_ipgen_{name}_")
            self.set_nodeattr("code_gen_dir_ipgen", str(code_gen_dir))  # type: ignore[attr-defined]
        return Path(code_gen_dir)

    def _write_wrapper(self, out: Path, core: str, body: str) -> None:
        """Render the wrapper template around ``body`` (which instantiates ``core``) into
        ``out/<top>.v`` and record the top module and IP paths on the node."""
        top = self.get_verilog_top_module_name()  # type: ignore[attr-defined]
        ports, busif = self._ports()
        text = TEMPLATE.read_text()
        for key, val in {"TOP_MODULE_NAME": top,
                         "OP_TYPE": self.onnx_node.op_type,  # type: ignore[attr-defined]
                         "CORE": core, "BUSIF": busif, "PORTS": ports, "BODY": body}.items():
            text = text.replace(f"${key}$", val)
        (out / f"{top}.v").write_text(text)
        self.set_nodeattr("gen_top_module", top)  # type: ignore[attr-defined]
        self.set_nodeattr("ipgen_path", str(out))  # type: ignore[attr-defined]
        self.set_nodeattr("ip_path", str(out))  # type: ignore[attr-defined]

    def get_rtl_file_list(self, abspath: bool = False) -> list[str]:
        """Core first, then the wrapper (absolute paths point into code_gen_dir_ipgen)."""
        top = self.get_nodeattr("gen_top_module") or self.get_verilog_top_module_name()  # type: ignore[attr-defined]
        files = [f"{top}_{self.CORE}.sv", f"{top}.v"]
        if abspath:
            d = Path(self.get_nodeattr("code_gen_dir_ipgen"))  # type: ignore[attr-defined]
            return [str(d / f) for f in files]
        return files

    def code_generation_ipi(self) -> list[str]:
        """Vivado IPI tcl: add the sources, instantiate the wrapper as a module reference."""
        cmd = [f"add_files -norecurse {f}" for f in self.get_rtl_file_list(abspath=True)]
        top = self.get_nodeattr("gen_top_module")  # type: ignore[attr-defined]
        cmd.append(f"create_bd_cell -type module -reference {top} {self.onnx_node.name}")  # type: ignore[attr-defined]
        return cmd

    def execute_node(self, context: dict[str, np.ndarray], graph: Any) -> None:
        """Python (numpy) semantics; rtlsim raises: it would need Vivado's xsim."""
        if self.get_nodeattr("exec_mode") == "rtlsim":  # type: ignore[attr-defined]
            raise RuntimeError(RTLSIM_UNSUPPORTED.format(name=self.onnx_node.name,  # type: ignore[attr-defined]
                                                         op=self.onnx_node.op_type))  # type: ignore[attr-defined]
        self.python_execute(context, graph)

    def python_execute(self, context: dict[str, np.ndarray], graph: Any) -> None:
        """The FINN parent's numpy semantics (each op names its parent explicitly)."""
        raise NotImplementedError(type(self).__name__)

    def _clk_rst(self) -> str:
        return ".clk(ap_clk), .rst(!ap_rst_n)"

    def _tie_padding(self, used_bits: list[int] | None = None) -> str:
        """Drive the padding bits of every output TDATA with zeros: those above the
        stream width (byte padding), or above ``used_bits[j]`` where the core drives
        fewer bits than the stream carries (a padded stream)."""
        intf = self.get_verilog_top_module_intf_names()  # type: ignore[attr-defined]
        lines = []
        for j, (name, width) in enumerate(intf["m_axis"]):
            used = (used_bits[j] if used_bits is not None
                    else self.get_outstream_width(j))  # type: ignore[attr-defined]
            if used < width:
                lines.append(f"assign {name}_TDATA[{width - 1}:{used}] = {width - used}'b0;")
        return "\n".join(lines)
