"""FINN's Zynq-shell IODMA, as a pure function: its width, beats per vector and the II it allows.

FINN's Zynq shell (``ShellFlowType.VIVADO_ZYNQ``: ``step_synthesize_bitfile`` ->
``ZynqBuild``) puts one IODMA on every graph input and output. Its AXI-MM width is set
by a rule, not by the stream. The lines below are finn-plus 1.6.1, under
``finn/``:

* ``builder/build_dataflow_steps.py:2267-2270``: ``ZynqBuild(cfg.board, ...)``.
* ``transformation/fpgadataflow/make_zynq_proj.py:1815``:
  ``self.axi_port_width = pynq_native_port_width[platform]``.
  Lines 1851 and 1859 apply ``InsertIODMA(self.axi_port_width)`` and then
  ``InsertDWC()``.
* ``util/basic.py:99-110``: ``pynq_native_port_width``. Zynq-7000 boards (Pynq-Z1/Z2)
  have 64 bits (the HP ports); Zynq UltraScale+ boards (ZCU102/104/111, Ultra96,
  KV260, RFSoC, AUP-ZU3) have 128. This is :data:`PORT_WIDTH_BITS`.
* ``transformation/fpgadataflow/insert_iodma.py:122-127`` (input) and ``171-176``
  (output)::

      padded_instream_width = first_node_inst.get_instream_width_padded()
      transfer_bits = padded_instream_width * np.prod(in_folded_shape[:-1])
      intfwidth = math.gcd(transfer_bits, self.max_intfwidth)
      assert intfwidth % 8 == 0

  The stream is padded to whole bytes (``hwcustomop.py:390``,
  ``get_instream_width_padded``). ``transfer_bits`` is the bits of one vector:
  stream beats per vector (the folded shape without its last dimension, batch 1)
  times the padded width. The IODMA's width is the gcd of those bits and the board's
  port width, so a vector is a whole number of IODMA words.
* ``custom_op/fpgadataflow/hls/iodma_hls.py:54-64`` and ``docompute`` (``:223-330``):
  the IODMA moves one ``intfWidth`` word per cycle on AXI-MM (``Mem2Stream_Batch`` /
  ``Stream2Mem_Batch``, one burst per call). It converts to the stream width with
  ``StreamingDataWidthConverter_Batch``, through the lcm of the two widths when neither
  divides the other.

So one vector takes ``transfer_bits / intfWidth`` IODMA beats. At one beat per clock
cycle (an ideal burst; DRAM refresh, arbitration and the AXI read latency are not
modelled), that is the fewest cycles per vector a board can reach, whatever the RTL's
own II. For the default design on pynq-z2 the input is 2 x 48 = 96 bits: gcd(96, 64) is
32, so 3 beats. The output is 6 x 8 (INT6 padded to a byte) = 48 bits: gcd(48, 64) is
16, so 3 beats.

:func:`iodma` also finds the padding that minimizes this count: the smallest padded
stream width (the same beats per vector) with the fewest IODMA beats per vector. It
also finds the width of a one-beat-per-vector stream that the IODMA moves in one
cycle (96 bits -> 128 on a 128-bit port).

``hw.rtlsim``'s testbench models it as a rate limit: input stream ``i`` starts a vector
at most every ``cycles_per_vector`` cycles (``in<i>_interval``), and output ``j``
drains one at most every ``cycles_per_vector`` cycles (``out<j>_interval``,
``hw/rtlsim/tb_top.cpp``). The host's ``rtlsim`` backend drives it with
``dma_model=True``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

# finn/util/basic.py:99-110 (finn-plus 1.6.1): FINN board name -> the AXI-MM port width
# (bits) that ZynqBuild gives InsertIODMA as max_intfwidth.
PORT_WIDTH_BITS: dict[str, int] = {
    "Pynq-Z1": 64,
    "Pynq-Z2": 64,
    "Ultra96": 128,
    "Ultra96-V2": 128,
    "ZCU102": 128,
    "ZCU104": 128,
    "ZCU111": 128,
    "RFSoC2x2": 128,
    "RFSoC4x2": 128,
    "KV260_SOM": 128,
    "AUP-ZU3_8GB": 128,
}


def port_width(board: str | dict[str, Any]) -> int:
    """The port width (bits) of a board. ``board`` is a FINN board name (``"Pynq-Z2"``), or a
    board config (``configs/boards/*.yaml``, or a manifest's ``board_config``) with
    its ``finn_board``."""
    name = board.get("finn_board") if isinstance(board, dict) else board
    if name not in PORT_WIDTH_BITS:
        raise ValueError(f"FINN board {name!r}: no IODMA port width known (FINN's "
                         f"pynq_native_port_width has {sorted(PORT_WIDTH_BITS)})")
    return PORT_WIDTH_BITS[str(name)]


def pad8(bits: int) -> int:
    """An AXI stream's TDATA width: ``bits`` rounded up to whole bytes (FINN's
    ``get_instream_width_padded``)."""
    return -(-int(bits) // 8) * 8


def intf_width(bits_per_vector: int, port_bits: int) -> int:
    """FINN's IODMA AXI-MM width: ``gcd(bits_per_vector, port_bits)``
    (``insert_iodma.py:126``/``175``). It must be whole bytes (FINN asserts this)."""
    if port_bits < 8 or port_bits & (port_bits - 1):
        raise ValueError(f"port width {port_bits}: FINN requires a power of two "
                         "(insert_iodma.py:58)")
    w = math.gcd(int(bits_per_vector), int(port_bits))
    if w % 8:
        raise ValueError(f"{bits_per_vector} bits per vector: IODMA width gcd = {w} is not "
                         "whole bytes (FINN: 'No feasible interface width for transfer "
                         "size')")
    return w


def cycles_per_vector(stream_width_bits: int, beats_per_vector: int, port_bits: int) -> int:
    """IODMA beats (cycles, at one beat per cycle) per vector of a stream."""
    bits = pad8(stream_width_bits) * int(beats_per_vector)
    return bits // intf_width(bits, port_bits)


@dataclass(frozen=True)
class IODMA:
    """One IODMA as FINN's Zynq shell would build it, with the rate it allows.

    ``stream_width_bits``: the padded TDATA width. ``bits_per_vector``: FINN's
    ``transfer_bits``. ``intf_width_bits``: FINN's ``intfWidth``.
    ``cycles_per_vector``: IODMA beats per vector, the II floor it sets.
    ``padded_stream_width_bits`` / ``padded_cycles_per_vector``: the smallest padded
    width (same beats per vector) with the fewest beats per vector.
    ``one_beat_width_bits`` / ``one_beat_cycles_per_vector``: a stream carrying the
    whole vector in one beat, padded so that the IODMA moves it in the fewest cycles
    (1 when the vector fits the port).
    """

    direction: str
    port_width_bits: int
    stream_width_bits: int
    beats_per_vector: int
    bits_per_vector: int
    intf_width_bits: int
    cycles_per_vector: int
    padded_stream_width_bits: int
    padded_cycles_per_vector: int
    one_beat_width_bits: int
    one_beat_cycles_per_vector: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def widest_useful(width_bits: int, port_bits: int) -> int:
    """The widest padded stream worth trying for a ``width_bits`` (byte-padded) stream:
    the width that holds a power of two or a whole port multiple. Wider never takes
    fewer IODMA beats."""
    return max(1 << (width_bits - 1).bit_length(), -(-width_bits // port_bits) * port_bits)


def best_padding(stream_width_bits: int, beats_per_vector: int, port_bits: int
                 ) -> tuple[int, int]:
    """``(width, cycles)``: the smallest multiple of 8 ``>= stream_width_bits`` whose
    vectors (``beats_per_vector`` beats of it) take the fewest IODMA beats, and that
    count. The search stops at :func:`widest_useful`."""
    w0, k = pad8(stream_width_bits), int(beats_per_vector)
    top = widest_useful(w0, port_bits)
    best = (w0, cycles_per_vector(w0, k, port_bits))
    for w in range(w0 + 8, top + 1, 8):
        c = cycles_per_vector(w, k, port_bits)
        if c < best[1]:
            best = (w, c)
    return best


def best_pad_elements(elems: int, bits: int, beats: int, port_bits: int) -> tuple[int, int]:
    """``(pad, cycles)``: the fewest elements of ``bits`` bits to append to a beat of
    ``elems`` elements so that a vector (``beats`` beats) takes the fewest IODMA beats,
    and that count. Padding by whole elements keeps the stream a FINN stream
    (``folded_shape[-1] * bitwidth``), which FINN's FIFOs, width converters and IODMAs
    are sized from. The search stops at :func:`widest_useful`."""
    if elems < 1 or bits < 1 or beats < 1:
        raise ValueError(f"elems {elems}, bits {bits}, beats {beats}: each must be >= 1")
    w0 = pad8(elems * bits)
    top = widest_useful(w0, port_bits)
    best = (0, cycles_per_vector(w0, beats, port_bits))
    p = 1
    while pad8((elems + p) * bits) <= top:
        c = cycles_per_vector((elems + p) * bits, beats, port_bits)
        if c < best[1]:
            best = (p, c)
        p += 1
    return best


def iodma(stream_width_bits: int, beats_per_vector: int, board: str | dict[str, Any],
          direction: str = "in") -> IODMA:
    """FINN's IODMA for a stream of ``beats_per_vector`` beats of ``stream_width_bits``
    (padded to bytes as FINN pads it) on ``board`` (a FINN board name or a board
    config). ``direction`` is ``"in"`` or ``"out"``. The rule is the same both ways."""
    if direction not in ("in", "out"):
        raise ValueError(f"direction {direction!r}: 'in' or 'out'")
    if stream_width_bits < 1 or beats_per_vector < 1:
        raise ValueError(f"stream width {stream_width_bits} and beats per vector "
                         f"{beats_per_vector} must be >= 1")
    p = port_width(board)
    w, k = pad8(stream_width_bits), int(beats_per_vector)
    bits = w * k
    pw, pc = best_padding(w, k, p)
    one = 1 << (bits - 1).bit_length() if bits <= p else -(-bits // p) * p
    return IODMA(direction=direction, port_width_bits=p, stream_width_bits=w,
                 beats_per_vector=k, bits_per_vector=bits,
                 intf_width_bits=intf_width(bits, p),
                 cycles_per_vector=cycles_per_vector(w, k, p),
                 padded_stream_width_bits=pw, padded_cycles_per_vector=pc,
                 one_beat_width_bits=one, one_beat_cycles_per_vector=cycles_per_vector(
                     one, 1, p))


def dma_ii(inputs: list[IODMA], outputs: list[IODMA]) -> int:
    """The II floor that the IODMAs set: the slowest one's cycles per vector."""
    return max(d.cycles_per_vector for d in [*inputs, *outputs])
