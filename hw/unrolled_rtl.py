"""The latency backend: a chain of dense layers with constant weights, fully unrolled and
fully pipelined (II = 1, no DSPs), as one SystemVerilog module.

A *layer* is ``y = x @ W`` (integer W, optional) followed by an optional activation
quantizer given as FINN thresholds, ``out = #{k : y >= T[c, k]} + act_val`` (FINN's
MultiThreshold semantics). The module computes exactly these integers:

* **Constant-matrix-vector multiplication: da4ml.** ``x @ W`` is traced with da4ml
  (0.6.0): its CMVM optimizer turns the multiplications into shared shift-add trees (no
  multipliers, no DSPs), and :func:`da4ml.trace.to_pipeline` cuts them into stages of at
  most ``cutoff`` adder levels. We emit da4ml's combinational stage modules as they are.
* **Pipeline registers: ours.** da4ml's pipeline wrapper (``codegen.rtl.verilog.pipeline``)
  has a free-running clock and no enable, so a full output stream would lose data. An
  AXI-stream stage needs back-pressure: one clock enable ``ce = !out_valid | out_ready``
  for every register, ``in_ready = ce``; a valid bit travels with each stage.
* **Thresholds: ours, a per-channel table, not a comparator bank.** A bank of 63
  comparators per channel costs ~15 LUT each (240 channels: ~225k LUT); da4ml's lookup
  tables need ``$readmemh`` files beside the simulator's working folder. Instead each
  channel's sorted thresholds are cut into bins of ``2**k`` accumulator values, with
  ``2**k`` no wider than the closest gap between two distinct thresholds, so that a bin
  holds at most one of them: ``count = base[m] + (r >= off[m]) * inc[m]``, with
  ``m = (acc - t0) >> k`` and ``r`` its low ``k`` bits. (``base``, ``off``, ``inc``) is a
  small constant ROM (a few hundred entries) in LUTs. :func:`prove_table` checks it
  against the thresholds for every integer accumulator value the layer can produce.

The integers are those of the FINN graph: :func:`reference` is the numpy model, the
unrolled op's ``execute_node`` uses it, and the Verilator co-simulation compares the RTL
with it (tests/test_unrolled.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DEFAULT_CUTOFF = 2.0  # da4ml adder levels per pipeline stage (about 2 x 16-bit adds)


@dataclass
class Layer:
    """One dense layer: ``weights`` (MW, MH) integers or None (thresholds only);
    ``thresholds`` (MH or 1, N) integers, sorted along N, or None (the accumulator is the
    output); ``act_val`` added to the threshold count; ``in_bits``/``in_signed``: the
    input datatype; ``out_bits``/``out_signed``: the output datatype."""

    weights: np.ndarray | None
    thresholds: np.ndarray | None
    act_val: int
    in_bits: int
    in_signed: bool
    out_bits: int
    out_signed: bool

    @property
    def channels_in(self) -> int:
        if self.weights is not None:
            return int(self.weights.shape[0])
        assert self.thresholds is not None
        return int(self.thresholds.shape[0])

    @property
    def channels_out(self) -> int:
        return int(self.weights.shape[1]) if self.weights is not None else self.channels_in

    def input_range(self) -> tuple[int, int]:
        if self.in_signed:
            return -(1 << (self.in_bits - 1)), (1 << (self.in_bits - 1)) - 1
        return 0, (1 << self.in_bits) - 1


def reference(layers: list[Layer], x: np.ndarray) -> np.ndarray:
    """The integers the module computes, (N, MW0) -> (N, MH_last), int64 (FINN semantics:
    matmul, then MultiThreshold count + act_val)."""
    y = np.asarray(x).astype(np.int64)
    for layer in layers:
        if layer.weights is not None:
            y = y @ layer.weights.astype(np.int64)
        if layer.thresholds is not None:
            t = layer.thresholds.astype(np.int64)
            if t.shape[0] == 1:
                t = np.repeat(t, y.shape[1], axis=0)
            y = (y[:, :, None] >= t[None]).sum(axis=2) + layer.act_val
    return y


# --- the threshold tables --------------------------------------------------------------

@dataclass
class ChannelTable:
    """One channel's thresholds as bins (module doc). ``const``: the count below ``t0``
    (thresholds at or below the lowest reachable value); ``dmax`` the clip of
    ``acc - t0``; ``base``/``off``/``inc`` one entry per bin."""

    lo: int
    hi: int
    const: int
    t0: int
    dmax: int
    k: int
    base: list[int] = field(default_factory=list)
    off: list[int] = field(default_factory=list)
    inc: list[int] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """No threshold inside the reachable range: the count is ``const`` everywhere."""
        return not self.base

    def evaluate(self, acc: np.ndarray) -> np.ndarray:
        """The count the RTL computes for accumulator values ``acc`` (numpy, int64)."""
        acc = np.asarray(acc, np.int64)
        if self.empty:
            return np.full(acc.shape, self.const, np.int64)
        d = acc - self.t0
        dc = np.clip(d, 0, self.dmax)
        m, r = dc >> self.k, dc & ((1 << self.k) - 1)
        base, off, inc = (np.asarray(v, np.int64)[m] for v in (self.base, self.off, self.inc))
        cnt = base + (r >= off) * inc
        return np.where(d < 0, 0, cnt) + self.const


def channel_table(thresholds: np.ndarray, lo: int, hi: int) -> ChannelTable:
    """Bins for one channel's thresholds over the reachable accumulator range [lo, hi]."""
    t = np.sort(np.asarray(thresholds, np.int64))
    const = int((t <= lo).sum())
    inner = t[(t > lo) & (t <= hi)]
    if inner.size == 0:
        return ChannelTable(lo, hi, const, 0, 0, 0)
    values, mult = np.unique(inner, return_counts=True)
    t0 = int(values[0])
    gaps = np.diff(values)
    k = int(np.floor(np.log2(gaps.min()))) if gaps.size else 0
    dmax = int(values[-1] - t0)
    rel = values - t0
    bins = (dmax >> k) + 1
    base = np.zeros(bins, np.int64)
    off = np.zeros(bins, np.int64)
    inc = np.zeros(bins, np.int64)
    cum = np.concatenate([[0], np.cumsum(mult)])
    for j, (v, c) in enumerate(zip(rel, mult, strict=True)):
        m = int(v) >> k
        off[m], inc[m] = int(v) - (m << k), int(c)
        base[m] = cum[j]
    # bins without a threshold count every threshold below them
    last = 0
    for m in range(bins):
        if inc[m]:
            last = base[m] + inc[m]
        else:
            base[m] = last
    return ChannelTable(lo, hi, const, t0, dmax, k,
                        base.tolist(), off.tolist(), inc.tolist())


def prove_table(table: ChannelTable, thresholds: np.ndarray) -> int:
    """Mismatches of ``table`` against MultiThreshold over every integer in [lo, hi]."""
    acc = np.arange(table.lo, table.hi + 1, dtype=np.int64)
    want = (acc[:, None] >= np.asarray(thresholds, np.int64)[None]).sum(axis=1)
    return int(np.count_nonzero(table.evaluate(acc) != want))


def _bits(v: int) -> int:
    """Bits of the non-negative integer ``v`` (at least 1)."""
    return max(1, int(v).bit_length())


# --- the RTL ---------------------------------------------------------------------------

@dataclass
class Field:
    """One channel inside a packed vector: bits [offset, offset+width), two's complement
    if ``signed``; the value is ``field << shift``; reachable range [lo, hi]."""

    offset: int
    width: int
    signed: bool
    shift: int
    lo: int
    hi: int


@dataclass
class Stage:
    """A combinational module between two pipeline registers."""

    name: str
    in_width: int
    out_width: int
    text: str


@dataclass
class Unrolled:
    """The generated design: ``files`` {name: text}, ``top`` module name, pipeline
    ``latency`` in cycles, da4ml's ``cost`` (adder bits, ~LUTs) and the threshold
    ``tables`` per layer (for the proof and the resource estimate)."""

    top: str
    files: dict[str, str]
    latency: int
    in_width: int
    out_width: int
    cmvm_cost: float
    table_bits: int
    tables: list[list[ChannelTable]]
    registers: int


def _plain_fields(n: int, bits: int, signed: bool) -> list[Field]:
    lo = -(1 << (bits - 1)) if signed else 0
    hi = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
    return [Field(i * bits, bits, signed, 0, lo, hi) for i in range(n)]


def _cmvm_stages(layer: Layer, prefix: str, cutoff: float
                 ) -> tuple[list[Stage], list[Field], float]:
    """da4ml's pipelined CMVM for ``x @ W``: its stage modules and the output fields."""
    from da4ml.codegen.rtl.verilog.comb import comb_logic_gen
    from da4ml.trace import FixedVariableArray, comb_trace, to_pipeline
    from da4ml.types import minimal_kif

    w = layer.weights
    assert w is not None
    n_in = w.shape[0]
    k = np.full(n_in, int(layer.in_signed))
    x = FixedVariableArray.from_kif(k, np.full(n_in, layer.in_bits - int(layer.in_signed)),
                                    np.zeros(n_in, int))
    y = x @ w.astype(np.float64)
    comb = comb_trace(x, y, keep_dead_inputs=True)
    pipe = to_pipeline(comb, cutoff, verbose=False)
    stages = []
    for i, sol in enumerate(pipe.solutions):
        name = f"{prefix}_s{i}"
        iw = sum(map(sum, map(minimal_kif, sol.inp_qint)))
        ow = sum(map(sum, map(minimal_kif, sol.out_qint)))
        stages.append(Stage(name, iw, ow, comb_logic_gen(sol, name)))
    fields, off = [], 0
    for q in pipe.out_qint:
        kk, ii, ff = (int(v) for v in minimal_kif(q))
        width = kk + ii + ff
        if ff > 0:
            raise ValueError(f"{prefix}: fractional accumulator (step {q.step}); integer "
                             "weights and inputs are required")
        fields.append(Field(off, width, bool(kk), -ff, int(q.min), int(q.max)))
        off += width
    if stages and stages[0].in_width != n_in * layer.in_bits:
        raise AssertionError(f"{prefix}: da4ml packed the input into {stages[0].in_width} "
                             f"bits, not {n_in} x {layer.in_bits}")
    return stages, fields, float(pipe.cost)


def _field_expr(src: str, f: Field, width: int) -> str:
    """Verilog: the field's value, sign-extended and shifted to a ``width``-bit signed."""
    if f.width == 0:
        return f"{width}'sd0"
    raw = f"{src}[{f.offset + f.width - 1}:{f.offset}]"
    body = f"{{{raw}, {f.shift}'b0}}" if f.shift else raw
    bw = f.width + f.shift
    ext = width - bw
    top = f"{src}[{f.offset + f.width - 1}]" if f.signed else "1'b0"
    return f"$signed({{{{{ext}{{{top}}}}}, {body}}})" if ext > 0 else f"$signed({body})"


def _vlit(bits: int, v: int) -> str:
    return f"{bits}'h{int(v) % (1 << bits):x}"


def _threshold_stages(layer: Layer, fields: list[Field], prefix: str
                      ) -> tuple[list[Stage], list[ChannelTable], int]:
    """Two stages: (A) ``d = acc - t0``, clip, split into bin ``m`` and rest ``r``;
    (B) the bin's ROM entry, ``count``, ``+ const + act_val``. Returns the tables too."""
    t = layer.thresholds
    assert t is not None
    c = len(fields)
    rows = np.repeat(t, c, axis=0) if t.shape[0] == 1 else t
    tables = [channel_table(rows[j], fields[j].lo, fields[j].hi) for j in range(c)]
    in_width = max((f.offset + f.width for f in fields), default=0)
    a_lines, b_lines, a_off, rom_bits = [], [], 0, 0
    ob = layer.out_bits
    for j, (f, tab) in enumerate(zip(fields, tables, strict=True)):
        const = tab.const + layer.act_val
        if tab.empty:
            b_lines.append(f"assign model_out[{j * ob + ob - 1}:{j * ob}] = {_vlit(ob, const)};")
            continue
        span = max(abs(f.lo), abs(f.hi), abs(tab.t0), abs(f.hi - tab.t0), abs(f.lo - tab.t0))
        w = span.bit_length() + 2
        mb = _bits(tab.dmax >> tab.k)
        kb = tab.k
        a_lines += [
            f"wire signed [{w - 1}:0] acc{j} = {_field_expr('model_inp', f, w)};",
            f"wire signed [{w - 1}:0] d{j} = acc{j} - {w}'sd{tab.t0};" if tab.t0 >= 0 else
            f"wire signed [{w - 1}:0] d{j} = acc{j} + {w}'sd{-tab.t0};",
            f"wire [{w - 1}:0] dc{j} = d{j} > {w}'sd{tab.dmax} ? {w}'d{tab.dmax} : d{j};",
            f"assign model_out[{a_off + 1 + mb + kb - 1}:{a_off}] = "
            f"{{dc{j}[{kb + mb - 1}:0], d{j}[{w - 1}]}};",
        ]
        # B: the same layout read back: neg at a_off, then r (k bits), then m (mb bits)
        bb, ib = _bits(max(tab.base)), _bits(max(tab.inc))
        eb = bb + max(kb, 1) + ib
        entries = [(b << (max(kb, 1) + ib)) | (o << ib) | n
                   for b, o, n in zip(tab.base, tab.off, tab.inc, strict=True)]
        rom = "{" + ", ".join(_vlit(eb, e) for e in reversed(entries)) + "}"
        rom_bits += eb * len(entries)
        neg = f"model_inp[{a_off}]"
        m = f"model_inp[{a_off + 1 + kb + mb - 1}:{a_off + 1 + kb}]"
        b_lines += [
            f"localparam [{eb * len(entries) - 1}:0] ROM{j} = {rom};",
            f"wire [{eb - 1}:0] e{j} = ROM{j}[{m} * {eb} +: {eb}];",
        ]
        if kb:
            r = f"model_inp[{a_off + kb}:{a_off + 1}]"
            hit = f"({r} >= e{j}[{ib + kb - 1}:{ib}])"
        else:
            hit = "1'b1"
        cw = max(ob, bb + 1) + 1
        b_lines += [
            f"wire [{cw - 1}:0] n{j} = {neg} ? {cw}'d0 : "
            f"{cw}'(e{j}[{eb - 1}:{eb - bb}]) + ({hit} ? {cw}'(e{j}[{ib - 1}:0]) : {cw}'d0);",
            f"assign model_out[{j * ob + ob - 1}:{j * ob}] = {ob}'(n{j} + {_vlit(cw, const)});",
        ]
        a_off += 1 + kb + mb
    out_width = c * ob
    a = Stage(f"{prefix}_ta", in_width, max(a_off, 1), _module(
        f"{prefix}_ta", in_width, max(a_off, 1), a_lines or ["assign model_out = 1'b0;"]))
    b = Stage(f"{prefix}_tb", max(a_off, 1), out_width,
              _module(f"{prefix}_tb", max(a_off, 1), out_width, b_lines))
    return [a, b], tables, rom_bits


def _format_stage(fields: list[Field], bits: int, prefix: str) -> Stage:
    """The accumulator fields as the output datatype (``bits`` two's complement each)."""
    in_width = max((f.offset + f.width for f in fields), default=1)
    lines = [f"assign model_out[{j * bits + bits - 1}:{j * bits}] = "
             f"{bits}'({_field_expr('model_inp', f, bits + 1)});" for j, f in enumerate(fields)]
    return Stage(f"{prefix}_fmt", in_width, len(fields) * bits,
                 _module(f"{prefix}_fmt", in_width, len(fields) * bits, lines))


LIBRARY = ("binop", "multiplier", "mux", "negative", "shift_adder")


def _library(prefix: str) -> str:
    """da4ml's Verilog primitives (shift_adder, negative, ...), each module renamed to
    ``<prefix>_<name>`` so that two unrolled nodes in one design never declare the same
    module twice."""
    import da4ml

    src = __import__("pathlib").Path(da4ml.__file__).parent / "codegen/rtl/verilog/source"
    text = "\n".join((src / f"{m}.v").read_text() for m in LIBRARY)
    return _rename_library(text, prefix, declarations=True)


def _rename_library(text: str, prefix: str, declarations: bool = False) -> str:
    import re

    for m in LIBRARY:
        text = re.sub(rf"\b{m} #\(", f"{prefix}_{m} #(", text)
        if declarations:
            text = re.sub(rf"^module {m}\b", f"module {prefix}_{m}", text, flags=re.M)
    return text


def _module(name: str, iw: int, ow: int, body: list[str]) -> str:
    return "\n".join([f"module {name} (", f"    input [{iw - 1}:0] model_inp,",
                      f"    output [{ow - 1}:0] model_out", ");",
                      "    // verilator lint_off UNUSEDSIGNAL",
                      *("    " + ln for ln in body),
                      "    // verilator lint_on UNUSEDSIGNAL", "endmodule", ""])


def _top(name: str, stages: list[Stage], in_width: int, out_width: int) -> str:
    """Registers between the stages, one clock enable (module doc): latency len+1."""
    n = len(stages)
    regs = [f"reg [{in_width - 1}:0] r0;"]
    regs += [f"reg [{s.out_width - 1}:0] r{i + 1};" for i, s in enumerate(stages)]
    wires = [f"wire [{s.out_width - 1}:0] c{i};" for i, s in enumerate(stages)]
    insts = [f"{s.name} u{i} (.model_inp(r{i}), .model_out(c{i}));" for i, s in enumerate(stages)]
    shifts = ["r0 <= idat;"] + [f"r{i + 1} <= c{i};" for i in range(n)]
    return "\n".join([
        f"// Generated by hw.unrolled_rtl: {n} combinational stages, latency {n + 1} cycles.",
        f"module {name} (",
        "    input clk, input rst,",
        f"    input [{in_width - 1}:0] idat, input ivld, output irdy,",
        f"    output [{out_width - 1}:0] odat, output ovld, input ordy",
        ");",
        *("    " + ln for ln in regs + wires + insts),
        f"    reg [{n}:0] v;",
        f"    wire ce = !v[{n}] || ordy;",
        "    assign irdy = ce;",
        f"    assign ovld = v[{n}];",
        f"    assign odat = r{n};",
        "    always @(posedge clk) begin",
        f"        if (rst) v <= {n + 1}'d0;",
        f"        else if (ce) v <= {{v[{n - 1}:0], ivld}};" if n else
        "        else if (ce) v <= ivld;",
        "    end",
        "    always @(posedge clk) if (ce) begin",
        *("        " + s for s in shifts),
        "    end",
        "endmodule", ""])


def generate(layers: list[Layer], name: str, cutoff: float = DEFAULT_CUTOFF) -> Unrolled:
    """The module ``name`` for ``layers`` (module doc); raises ValueError naming the layer
    if a table does not reproduce its thresholds exactly."""
    stages: list[Stage] = []
    tables: list[list[ChannelTable]] = []
    cost, rom_bits = 0.0, 0
    fields = _plain_fields(layers[0].channels_in, layers[0].in_bits, layers[0].in_signed)
    in_width = layers[0].channels_in * layers[0].in_bits
    for i, layer in enumerate(layers):
        prefix = f"{name}_l{i}"
        if i and (layer.in_bits, layer.in_signed) != (layers[i - 1].out_bits,
                                                        layers[i - 1].out_signed):
            raise ValueError(f"{prefix}: input datatype differs from layer {i - 1}'s output")
        if layer.weights is not None:
            s, fields, c = _cmvm_stages(layer, prefix, cutoff)
            stages += s
            cost += c
        if layer.thresholds is not None:
            s, tabs, bits = _threshold_stages(layer, fields, prefix)
            rows = layer.thresholds
            for j, tab in enumerate(tabs):
                bad = prove_table(tab, rows[0 if rows.shape[0] == 1 else j])
                if bad:
                    raise ValueError(f"{prefix}: channel {j} table differs from the "
                                     f"thresholds at {bad} accumulator values")
            stages += s
            tables.append(tabs)
            rom_bits += bits
            fields = _plain_fields(layer.channels_out, layer.out_bits, layer.out_signed)
        elif i == len(layers) - 1 or fields != _plain_fields(
                layer.channels_out, layer.out_bits, layer.out_signed):
            stages.append(_format_stage(fields, layer.out_bits, prefix))
            fields = _plain_fields(layer.channels_out, layer.out_bits, layer.out_signed)
    out_width = layers[-1].channels_out * layers[-1].out_bits
    ts = "`timescale 1ns / 1ps\n"  # da4ml's primitives declare one: every file does
    files = {f"{name}_lib.sv": _library(name)}
    files.update({f"{s.name}.sv": ts + _rename_library(s.text, name) for s in stages})
    files[f"{name}.sv"] = ts + _top(name, stages, in_width, out_width)
    registers = in_width + sum(s.out_width for s in stages) + len(stages) + 1
    return Unrolled(name, files, len(stages) + 1, in_width, out_width, cost, rom_bits,
                    tables, registers)
