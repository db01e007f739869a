"""Learned non-uniform quantizers and threshold provenance (the floor: no stage imports).

Threshold provenance
--------------------
Every ``MultiThreshold`` that reaches the hardware flow says where its thresholds came
from, as the node attribute :data:`PROVENANCE_ATTR` (values in :data:`PROVENANCES`):

* ``uniform_quantizer``: FINN's Quant -> MultiThreshold conversion of a uniform
  quantizer (level boundaries at ``(v - 1/2) * s``); the only kind whose odd-level
  thresholds the flow moves for round half to even (``hw.ties``);
* ``activation_staircase``: a monotonic activation followed by a quantizer, thresholds
  found by bisection over float32 (``hw.activation_thresholds``), already exact;
* ``learned_boundaries``: a :class:`BoundaryQuantizer`'s decision boundaries, any
  float32 values compared ``x >= b`` exactly as in torch: learned
  (:class:`LearnedQuantizer`) or fixed (``zoo.network.UniformLevelsHead``);
* ``codebook_index``: a codebook head's index thresholds, half-way between two fine
  codes (``zoo.network.CodebookHead``), so never on a tie;
* ``exact_integer``: integer thresholds found by enumerating the model's own function on
  every accumulator value (``hw.transforms.thresholds``).

A learned quantizer mid-network
-------------------------------
:class:`LearnedQuantizer` is the learned scalar ADC / per-dimension k-means codebook:
per channel c, index ``i = #{j : x >= b[c, j]}`` (float32 compare, exactly what
qonnx's ``MultiThreshold`` computes), then a lookup into an integer table
``table[c, i]`` whose values sit on a power-of-two grid ``2**scale_log2``, so the
next layer reads integer codes with a power-of-two scale (the integer contract).
It exports (TorchScript exporter, ``symbolic``) as::

    x -> MultiThreshold(b, provenance learned_boundaries) -> index
      -> IndexLookup(index, table) -> integer level -> Mul(2**scale_log2)

``IndexLookup`` is a qonnx custom op in domain :data:`LOOKUP_DOMAIN` (this package's
:mod:`zoo.onnx_ops`), so qonnx's ``execute_onnx`` runs the exported model as it is.
Why not standard ONNX (Cast + Add(offsets) + Gather): three nodes, int64 tensors that
FINN's datatype inference and streamlining do not expect between float nodes, and a
pattern the hardware transform would have to re-discover; one node with the contract of
the hardware op (``CodebookLookup``: index stream (N, C), integer table (C, L)) maps
one-to-one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from brevitas.quant_tensor import IntQuantTensor
from onnx import NodeProto, helper
from torch import nn

PROVENANCE_ATTR = "threshold_provenance"
UNIFORM_QUANTIZER = "uniform_quantizer"
ACTIVATION_STAIRCASE = "activation_staircase"
LEARNED_BOUNDARIES = "learned_boundaries"
CODEBOOK_INDEX = "codebook_index"
EXACT_INTEGER = "exact_integer"
PROVENANCES = (UNIFORM_QUANTIZER, ACTIVATION_STAIRCASE, LEARNED_BOUNDARIES, CODEBOOK_INDEX,
               EXACT_INTEGER)

LOOKUP_DOMAIN = "zoo.onnx_ops"
LOOKUP_OP = "IndexLookup"


def get_provenance(node: NodeProto) -> str | None:
    """The node's :data:`PROVENANCE_ATTR`, or None when it has none."""
    for a in node.attribute:
        if a.name == PROVENANCE_ATTR:
            v = helper.get_attribute_value(a)
            return v.decode() if isinstance(v, bytes) else str(v)
    return None


def set_provenance(node: NodeProto, provenance: str) -> None:
    """Set (or replace) the node's :data:`PROVENANCE_ATTR`."""
    if provenance not in PROVENANCES:
        raise ValueError(f"provenance {provenance!r}; known: {', '.join(PROVENANCES)}")
    for a in list(node.attribute):
        if a.name == PROVENANCE_ATTR:
            node.attribute.remove(a)
    node.attribute.append(helper.make_attribute(PROVENANCE_ATTR, provenance))


def index_bits(levels: int) -> int:
    """Bits of an unsigned index into ``levels`` levels."""
    return max(1, int(levels - 1).bit_length())


def lookup(index: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """``out[n, c] = table[c, index[n, c]]``: index (N, C) int, table (C, L) or (1, L)."""
    t = table.expand(index.shape[-1], -1) if table.shape[0] == 1 else table
    return torch.gather(t.unsqueeze(0).expand(index.shape[0], -1, -1), 2,
                        index.long().unsqueeze(-1)).squeeze(-1)


def boundary_index(x: torch.Tensor, boundaries: torch.Tensor) -> torch.Tensor:
    """(N, C) x, (C, L-1) or (1, L-1) boundaries -> (N, C) int64 ``#{j : x >= b[c, j]}``:
    a float32 compare, exactly what qonnx's ``MultiThreshold`` computes (an input equal to
    a boundary is at the higher index)."""
    return (x.unsqueeze(-1) >= boundaries.unsqueeze(0)).sum(-1)


def _index_node(g: Any, x: Any, boundaries: Any, levels: int) -> Any:
    """The exported index: ``MultiThreshold(x, boundaries)``, provenance learned_boundaries."""
    return g.op("qonnx.custom_op.general::MultiThreshold", x, boundaries,
                out_dtype_s=f"UINT{index_bits(levels)}", out_scale_f=1.0, out_bias_f=0.0,
                data_layout_s="NC", threshold_provenance_s=LEARNED_BOUNDARIES)


class _BoundaryIndexFn(torch.autograd.Function):
    """(N, C) float x -> (N, C) float index ``#{j : x >= b[c, j]}``; exports as the one
    MultiThreshold. Backward: straight-through for x."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, boundaries: torch.Tensor) -> torch.Tensor:
        return boundary_index(x, boundaries).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        return grad, None

    @staticmethod
    def symbolic(g: Any, x: Any, boundaries: Any) -> Any:
        return _index_node(g, x, boundaries, boundaries.type().sizes()[-1] + 1)


class _LearnedQuantFn(torch.autograd.Function):
    """(N, C) float x -> (N, C) float levels ``table[c, #{j: x >= b[c, j]}] * scale``.

    Forward in torch; ``symbolic`` emits the MultiThreshold, the IndexLookup and the
    scale Mul. Backward: straight-through for x (the levels' slope is 1 on average)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, boundaries: torch.Tensor, table: torch.Tensor,
                scale: torch.Tensor, out_dtype: str) -> torch.Tensor:
        return lookup(boundary_index(x, boundaries), table).to(x.dtype) * scale

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        return grad, None, None, None, None

    @staticmethod
    def symbolic(g: Any, x: Any, boundaries: Any, table: Any, scale: Any,
                 out_dtype: str) -> Any:
        idx = _index_node(g, x, boundaries, table.type().sizes()[-1])
        level = g.op(f"{LOOKUP_DOMAIN}::{LOOKUP_OP}", idx, table, out_dtype_s=out_dtype)
        return g.op("Mul", level, scale)


class _LookupFn(torch.autograd.Function):
    """(N, C) float index -> (N, C) float levels ``table[c, index] * scale``; exports as
    ``IndexLookup(index, table) -> Mul(scale)`` (a codebook input's first nodes)."""

    @staticmethod
    def forward(ctx: Any, index: torch.Tensor, table: torch.Tensor, scale: torch.Tensor,
                out_dtype: str) -> torch.Tensor:
        return lookup(index.long(), table).to(scale.dtype) * scale

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        return None, None, None, None

    @staticmethod
    def symbolic(g: Any, index: Any, table: Any, scale: Any, out_dtype: str) -> Any:
        level = g.op(f"{LOOKUP_DOMAIN}::{LOOKUP_OP}", index, table, out_dtype_s=out_dtype)
        return g.op("Mul", level, scale)


def lookup_levels(index: torch.Tensor, table: torch.Tensor, scale_log2: int,
                  level_bits: int, training: bool = False) -> IntQuantTensor:
    """(N, C) integer indices -> QuantTensor of ``table[c, index] * 2**scale_log2``
    (table (C, L) or (1, L) integers of ``level_bits`` signed bits); exported as
    IndexLookup + Mul, which the hardware flow makes a ``CodebookLookup``."""
    scale = torch.tensor(2.0 ** scale_log2)
    y = _LookupFn.apply(index, table.float(), scale, f"INT{level_bits}")
    return IntQuantTensor(y, scale, torch.tensor(0.0), torch.tensor(float(level_bits)),
                          signed=True, training=training)


def grid_levels(levels: np.ndarray, scale_log2: int, level_bits: int) -> np.ndarray:
    """(C, L) sorted float levels -> (C, L) distinct integer levels on the grid
    ``2**scale_log2`` (``level_bits`` signed bits): rounded, then duplicates nudged apart
    upwards (a table may repeat values, but distinct ones keep every index observable and
    the nearest-level rule of the contract well defined)."""
    hi = 2 ** (level_bits - 1) - 1
    out = np.clip(np.round(np.asarray(levels, np.float64) / 2.0 ** scale_log2), -hi, hi)
    out = np.atleast_2d(out)
    if out.shape[1] > 2 * hi + 1:
        raise ValueError(f"{out.shape[1]} distinct levels do not fit INT{level_bits} "
                         "(narrow range)")
    for row in out:
        for j in range(1, len(row)):  # upwards, then back down from the top where needed
            row[j] = max(row[j], row[j - 1] + 1)
        row[-1] = min(row[-1], hi)
        for j in range(len(row) - 2, -1, -1):
            row[j] = min(row[j], row[j + 1] - 1)
    return out


def kmeans_levels(x: np.ndarray, levels: int, seed: int = 0) -> np.ndarray:
    """(N, C) samples -> (C, L) sorted k-means++ centres per column (scikit-learn)."""
    from sklearn.cluster import KMeans

    x = np.asarray(x, np.float64)
    out = np.empty((x.shape[1], levels))
    for c in range(x.shape[1]):
        km = KMeans(levels, init="k-means++", n_init=4, random_state=seed).fit(x[:, c:c + 1])
        out[c] = np.sort(km.cluster_centers_.ravel())
    return out


class BoundaryQuantizer(nn.Module):
    """Per channel c, the index ``i = #{j : x >= boundaries[c, j]}`` in ``[0, L)``.

    ``boundaries`` (C, L-1), or (1, L-1) for every channel, sorted per row, any float32
    values; a ``nn.Parameter`` when ``learned``, else a fixed buffer. :meth:`index` is the
    index as a float tensor and exports as one ``MultiThreshold`` (provenance
    ``learned_boundaries``, UINTk, k = :func:`index_bits`): the hardware flow enumerates
    what precedes it into exact integer thresholds (``hw.transforms.thresholds``).
    """

    def __init__(self, boundaries: torch.Tensor, learned: bool = True) -> None:
        super().__init__()
        b = torch.as_tensor(boundaries, dtype=torch.float32)
        if b.ndim != 2 or b.shape[1] < 1 or bool((b.diff(dim=1) < 0).any()):
            raise ValueError("boundaries must be (C, L-1), L >= 2, sorted per channel")
        self.channels, self.levels = int(b.shape[0]), int(b.shape[1]) + 1
        if learned:
            self.boundaries = nn.Parameter(b.clone())
        else:
            self.register_buffer("boundaries", b.clone())

    def indices(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C) float -> (N, C) int64 indices (exactly the MultiThreshold's count)."""
        return boundary_index(getattr(x, "value", x), self.boundaries.detach())

    def index(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C) float -> (N, C) float indices; exported as the MultiThreshold alone."""
        return _BoundaryIndexFn.apply(getattr(x, "value", x), self.boundaries)


class LearnedQuantizer(BoundaryQuantizer):
    """A learned non-uniform scalar quantizer per channel, with integer level values.

    ``(N, C)`` float x -> ``(N, C)`` QuantTensor of levels ``table[c, i] * 2**scale_log2``,
    ``i = #{j : x >= boundaries[c, j]}`` in ``[0, L)``; ``boundaries`` (C, L-1) sorted
    per channel (learned, any float32), ``table`` (C, L) integers of ``level_bits``
    signed bits. :meth:`fit` places them by per-channel k-means (EQ-Net's latent codebook,
    the learned ADC of deep task-based quantization): levels at the centres rounded onto
    the grid, boundaries at the midpoints of the unrounded centres.
    """

    def __init__(self, channels: int, levels: int, level_bits: int, scale_log2: int) -> None:
        if levels < 2:
            raise ValueError("a learned quantizer needs at least 2 levels")
        scale = 2.0 ** scale_log2
        hi = 2 ** (level_bits - 1) - 1
        grid = torch.linspace(-hi, hi, levels).round()
        super().__init__(((grid[1:] + grid[:-1]) / 2 * scale).repeat(channels, 1))
        self.level_bits, self.scale = level_bits, scale
        self.register_buffer("table", grid.repeat(channels, 1))

    @property
    def out_dtype(self) -> str:
        return f"INT{self.level_bits}"

    def forward(self, x: Any) -> IntQuantTensor:
        x = getattr(x, "value", x)
        scale = torch.tensor(self.scale, dtype=x.dtype)
        y = _LearnedQuantFn.apply(x, self.boundaries, self.table.to(x.dtype), scale,
                                  self.out_dtype)
        return IntQuantTensor(y, scale, torch.tensor(0.0), torch.tensor(float(self.level_bits)),
                              signed=True, training=self.training)

    @torch.no_grad()
    def fit(self, x: torch.Tensor, seed: int = 0) -> None:
        """Per-channel k-means of ``x`` (N, C) (scikit-learn): levels on the grid, boundaries
        at the float midpoints of the centres (not on any grid: learned)."""
        centres = kmeans_levels(getattr(x, "value", x).double().cpu().numpy(), self.levels,
                                seed)
        table = grid_levels(centres, int(np.log2(self.scale)), self.level_bits)
        self.table.copy_(torch.as_tensor(table, dtype=self.table.dtype))
        self.boundaries.copy_(torch.as_tensor((centres[:, 1:] + centres[:, :-1]) / 2,
                                              dtype=self.boundaries.dtype))
