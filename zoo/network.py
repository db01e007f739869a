"""The deployable-network contract, and a network of named inputs, dense paths and heads.

Every deployable network (this module's :class:`QuantNet`, :class:`zoo.blocks.QuantMLP`)
declares:

* ``iospec() -> contract.iospec.IOSpec``: named inputs and outputs, in graph order, each
  with its shape, integer datatype and scale or codebook;
* ``output_codes(**codes) -> {output name: (N, features) int codes}``: the integer
  reference of the contract (Brevitas, exact);
* ``forward(*x)``: float inputs in input order -> float outputs (one tensor, or a tuple
  in output order): what training and the float path use.

A :class:`QuantNet` is built from blocks: one fixed power-of-two input quantizer per
named input, a dense stack per path (``QuantLinear`` + optional BatchNorm + ``QuantReLU``
hidden layers, optional residual blocks with a shared quantizer, a final
``QuantLinear``) reading one input or several concatenated through one shared quantizer
(paths reading the same input are parallel branches), and one head per named output: a Tanh/Sigmoid
or no activation followed by a fixed quantizer (:class:`QuantHead`), or by a fine
quantizer and a learned codebook (:class:`CodebookHead`, an index per value; the levels
travel in the I/O spec). :class:`UniformLevelsHead` (fixed decision boundaries into
uniform levels of any step, mid-rise included) is a standalone head of the same kind.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from brevitas.nn import QuantReLU
from brevitas.quant import Uint8ActPerTensorFixedPoint
from torch import nn

from contract.iospec import IOSpec, TensorSpec
from zoo.blocks import (
    OUTPUT_ACTIVATIONS,
    code_datatype,
    const_quant_identity,
    fixed_quant_identity,
    quant_linear,
)
from zoo.quantizers import (
    BoundaryQuantizer,
    grid_levels,
    index_bits,
    kmeans_levels,
    lookup_levels,
)


def _relu(bits: int) -> QuantReLU:
    return QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=bits,
                     return_quant_tensor=True)


class ResidualBlock(nn.Module):
    """(N, W) QuantTensor x -> relu_q(s(x) + s(Linear(relu_q(Linear(x))))): (N, W).

    Both summands go through ONE shared fixed quantizer ``s`` (signed, ``SHARED_BITS``
    bits, scale 2**``SHARED_SCALE_LOG2``), so the add is of two integer tensors on one
    grid: exactly FINN's streamed ElementwiseAdd (hw.custom_ops), with no float scale
    left on either input. (Adding the raw accumulator of the second Linear to the skip,
    on different grids, leaves a float Add that no FINN layer implements.)
    """

    SHARED_BITS = 8
    SHARED_SCALE_LOG2 = -4

    def __init__(self, width: int, weight_bits: int, act_bits: int, bias_bits: int) -> None:
        super().__init__()
        self.fc1 = quant_linear(width, width, weight_bits, bias_bits)
        self.act = _relu(act_bits)
        self.fc2 = quant_linear(width, width, weight_bits, bias_bits)
        self.shared = fixed_quant_identity(self.SHARED_BITS, self.SHARED_SCALE_LOG2)
        self.out = _relu(act_bits)

    def forward(self, x: Any) -> Any:
        return self.out(self.shared(x) + self.shared(self.fc2(self.act(self.fc1(x)))))


class DenseStack(nn.Module):
    """(N, in_f) QuantTensor -> [QuantLinear (-> BatchNorm) -> QuantReLU]* ->
    [ResidualBlock]* -> QuantLinear: (N, out_f) float pre-activations on the accumulator
    grid."""

    def __init__(self, in_f: int, hidden: list[int], out_f: int, weight_bits: int,
                 act_bits: int, bias_bits: int = 16, batch_norm: bool = False,
                 residual_blocks: int = 0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_f
        for h in hidden:
            layers.append(quant_linear(width, h, weight_bits, bias_bits))
            if batch_norm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(_relu(act_bits))
            width = h
        if residual_blocks and not hidden:
            raise ValueError("residual blocks need a hidden layer before them")
        layers += [ResidualBlock(width, weight_bits, act_bits, bias_bits)
                   for _ in range(residual_blocks)]
        layers.append(quant_linear(width, out_f, weight_bits, bias_bits))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Any) -> torch.Tensor:
        return self.layers(x)


class QuantHead(nn.Module):
    """Output head: activation (tanh | sigmoid | none) -> fixed power-of-two quantizer.
    Codes: (N, F) INT``bits``; value = code * 2**scale_log2."""

    def __init__(self, activation: str, bits: int, scale_log2: int,
                 narrow: bool = False) -> None:
        super().__init__()
        act = OUTPUT_ACTIVATIONS[activation]
        self.act = act() if act is not None else nn.Identity()
        self.quant = fixed_quant_identity(bits, scale_log2, True, narrow)
        self.bits, self.scale = bits, 2.0 ** scale_log2

    def quantized(self, y: torch.Tensor) -> Any:
        return self.quant(self.act(y))

    def value(self, y: torch.Tensor) -> torch.Tensor:
        return self.quantized(y).value

    def codes(self, y: torch.Tensor) -> torch.Tensor:
        return self.quantized(y).int()

    def spec(self, name: str, features: int) -> TensorSpec:
        return TensorSpec(name, (features,), code_datatype(self.bits), scale=self.scale)


class CodebookHead(QuantHead):
    """A learned non-uniform quantizer: activation -> fine fixed quantizer (codes c) ->
    index = #{boundaries b_j < c} into ``levels`` (float values, sorted).

    Boundaries sit between fine codes (at c + 1/2), so the index is an exact function of
    the integer fine code: ``count(c > floor(b_j))``. ``fit`` places them at the midpoints
    of k-means levels (scikit-learn), as EQ-Net's latent quantizer does.
    Codes: (N, F) UINTk indices, k = ceil(log2(levels)).
    """

    def __init__(self, activation: str, bits: int, scale_log2: int, levels: int,
                 narrow: bool = False) -> None:
        super().__init__(activation, bits, scale_log2, narrow)
        if levels < 2:
            raise ValueError("a codebook needs at least 2 levels")
        self.n_levels = levels
        init = torch.linspace(-1, 1, levels) * (2 ** (bits - 1) - 1) * self.scale
        self.register_buffer("levels", init)
        self.register_buffer("boundaries", self._midpoint_codes(init))

    def _midpoint_codes(self, levels: torch.Tensor) -> torch.Tensor:
        """Boundary j between levels j and j+1, as floor(midpoint / scale): an integer."""
        mid = (levels[1:] + levels[:-1]) / 2
        return torch.floor(mid / self.scale)

    @property
    def index_bits(self) -> int:
        return max(1, int(self.n_levels - 1).bit_length())

    @torch.no_grad()
    def fit(self, values: torch.Tensor, seed: int = 0) -> None:
        """Fit the levels to fine-quantized ``values`` (N,) by k-means (scikit-learn)."""
        v = values.reshape(-1, 1).double().cpu().numpy()
        levels = torch.from_numpy(kmeans_levels(v, self.n_levels, seed)[0]).float()
        self.levels.copy_(levels)
        self.boundaries.copy_(self._midpoint_codes(levels))

    def codes(self, y: torch.Tensor) -> torch.Tensor:
        fine = super().codes(y).to(torch.int64)
        return (fine.unsqueeze(-1) > self.boundaries.to(torch.int64)).sum(-1).int()

    def value(self, y: torch.Tensor) -> torch.Tensor:
        return self.levels[self.codes(y).long()]

    def spec(self, name: str, features: int) -> TensorSpec:
        return TensorSpec(name, (features,), code_datatype(self.index_bits, signed=False),
                          codebook=tuple(float(v) for v in self.levels), post="codebook")

    def thresholds(self) -> list[float]:
        """The index's thresholds on the fine quantizer's *dequantized* values: the
        exported MultiThreshold (``value >= (b + 1/2) * scale``)."""
        return [float((b + 0.5) * self.scale) for b in self.boundaries]


class LevelsHead(nn.Module):
    """Output head: activation (tanh | sigmoid) -> a uniform quantizer whose scale need not
    be a power of two (e.g. the soft-bit demapper's levels on [-max_value, max_value]).
    Its output is the level *index* into the level values, which travel in the I/O spec
    as a codebook: the accelerator never multiplies by the scale.

    Codes: (N, F) UINTk indices ``code - lowest`` of the signed narrow ``bits``-bit
    quantizer, k = ``bits``; levels ``float32(code) * float32(scale)``."""

    def __init__(self, activation: str, bits: int, max_value: float) -> None:
        super().__init__()
        act = OUTPUT_ACTIVATIONS[activation]
        if act is None:
            raise ValueError("a non-power-of-two scale is allowed only after tanh/sigmoid")
        self.act = act()
        self.quant = const_quant_identity(bits, max_value / (2 ** (bits - 1) - 1))
        self.bits = bits
        self.lowest = -(2 ** (bits - 1)) + 1  # narrow

    def quantized(self, y: torch.Tensor) -> Any:
        return self.quant(self.act(y))

    def scale(self) -> float:
        """The quantizer's float32 scale, as exported."""
        return float(self.quant.act_quant.scale().detach().float().item())

    def level_values(self) -> np.ndarray:
        """(L,) float32 level values, ascending, as qonnx computes them."""
        codes = np.arange(self.lowest, -self.lowest + 1).astype(np.float32)
        return codes * np.float32(self.scale())

    def codes(self, y: torch.Tensor) -> torch.Tensor:
        return self.quantized(y).int() - self.lowest

    def value(self, y: torch.Tensor) -> torch.Tensor:
        return self.quantized(y).value

    def spec(self, name: str, features: int) -> TensorSpec:
        return TensorSpec(name, (features,), code_datatype(self.bits, signed=False),
                          codebook=tuple(float(v) for v in self.level_values()),
                          post="codebook")

    def thresholds(self) -> list[float]:
        """Index thresholds on the quantizer's values: float32 midpoints of adjacent
        levels (strictly between them, so the index is exact)."""
        v = self.level_values().astype(np.float64)
        return [float(x) for x in ((v[1:] + v[:-1]) / 2).astype(np.float32)]


class _BoundaryHead(nn.Module):
    """An output head whose index is ``#{k : act(y) >= boundary_k}`` per feature (a
    :class:`zoo.quantizers.BoundaryQuantizer` ``self.quant`` after ``self.act``): exported
    as ``act -> MultiThreshold`` (provenance learned_boundaries)."""

    act: nn.Module
    quant: BoundaryQuantizer

    def _act(self, y: Any) -> torch.Tensor:
        return self.act(getattr(y, "value", y))

    def quantized(self, y: torch.Tensor) -> torch.Tensor:
        """The float index (what export traces: activation -> MultiThreshold)."""
        return self.quant.index(self._act(y))

    def codes(self, y: torch.Tensor) -> torch.Tensor:
        return self.quant.indices(self._act(y)).int()


class UniformLevelsHead(_BoundaryHead):
    """Output head: activation -> ``levels`` uniform levels on [lo, hi] by fixed decision
    boundaries (a :class:`zoo.quantizers.BoundaryQuantizer` with ``learned=False``).

    Level k = lo + k (hi - lo) / (L - 1), k = 0..L-1; boundary k = lo + (k + 1/2)
    (hi - lo) / (L - 1), k = 0..L-2, both computed in float64 and stored as float32. An
    even L is a mid-rise quantizer (zero is not a level), e.g. the soft-bit paper's 64
    levels on [-0.8, 0.8] after tanh, which a zero-point-0 Brevitas quantizer cannot
    express. Codes: (N, F) UINTk indices, k = ceil(log2 L),
    ``index = #{k : float32 act(y) >= boundary_k}`` (qonnx's MultiThreshold compare: a
    value equal to a boundary takes the higher level); the float32 level values travel
    in the I/O spec as a codebook.

    Exported as ``act -> MultiThreshold(boundaries, provenance learned_boundaries)``, which
    the hardware flow enumerates into exact integer thresholds on the accumulator
    (``hw.transforms.thresholds``). That enumeration executes the exported graph, whose
    Tanh/Sigmoid is onnxruntime's float32 kernel: it differs from ``torch.tanh`` by up to
    a few ulp on many inputs, so the index equals this head's torch reference exactly
    unless an activation value falls within those ulps of a boundary; check a model on
    every accumulator value (tests/test_learned_quantizers.py does).
    """

    def __init__(self, activation: str, levels: int, lo: float, hi: float) -> None:
        super().__init__()
        if levels < 2 or not hi > lo:
            raise ValueError("uniform levels need levels >= 2 and hi > lo")
        act = OUTPUT_ACTIVATIONS[activation]
        self.act = act() if act is not None else nn.Identity()
        step = (hi - lo) / (levels - 1)
        self.n_levels = levels
        self.level_values = (lo + np.arange(levels) * step).astype(np.float32)
        bounds = (lo + (np.arange(levels - 1) + 0.5) * step).astype(np.float32)
        self.quant = BoundaryQuantizer(torch.from_numpy(bounds)[None, :], learned=False)
        self.register_buffer("levels", torch.from_numpy(self.level_values.copy()))

    def value(self, y: torch.Tensor) -> torch.Tensor:
        """Level values; straight-through gradient to the activation."""
        a = self._act(y)
        v = self.levels[self.quant.indices(a)]
        return v + (a - a.detach())  # exactly v; gradient straight through to a

    def boundaries(self) -> np.ndarray:
        """(L-1,) float32 decision boundaries, as exported."""
        return self.quant.boundaries[0].detach().numpy().copy()

    def spec(self, name: str, features: int) -> TensorSpec:
        return TensorSpec(name, (features,), code_datatype(index_bits(self.n_levels), False),
                          codebook=tuple(float(v) for v in self.level_values),
                          post="codebook")


class KMeansHead(_BoundaryHead):
    """Output head: activation -> one scalar quantizer per feature with ``levels`` k-means
    levels (EQ-Net's latent quantizer: k-means++ per latent dimension after stage 1).

    Before :meth:`fit` the head is the activation itself (plus Gaussian noise of
    ``noise_std`` in training mode: the paper's training-time stand-in for the
    quantizer, sigma_u); after it, the value is the level of the index (straight-through
    to the activation). Boundaries (C, L-1) are the float32 midpoints of the sorted
    centres, compared ``act(y) >= b`` (qonnx's MultiThreshold): exported as
    ``act -> MultiThreshold(provenance learned_boundaries)``, which the hardware flow
    enumerates into exact integer thresholds; the float32 levels (C, L) travel in the
    I/O spec as one codebook per feature. Codes: (N, C) UINTk indices, k = ceil(log2 L).
    """

    def __init__(self, activation: str, channels: int, levels: int,
                 noise_std: float = 0.0) -> None:
        super().__init__()
        if levels < 2:
            raise ValueError("a k-means quantizer needs at least 2 levels")
        act = OUTPUT_ACTIVATIONS[activation]
        self.act = act() if act is not None else nn.Identity()
        self.n_levels, self.noise_std = levels, noise_std
        init = np.tile(np.linspace(-1, 1, levels), (channels, 1))
        self.quant = BoundaryQuantizer(torch.from_numpy(self._midpoints(init)), learned=False)
        self.register_buffer("levels", torch.from_numpy(init.astype(np.float32)))
        self.register_buffer("fitted", torch.tensor(False))

    @staticmethod
    def _midpoints(levels: np.ndarray) -> np.ndarray:
        return ((levels[:, 1:] + levels[:, :-1]) / 2).astype(np.float32)

    @torch.no_grad()
    def fit(self, activations: torch.Tensor | np.ndarray, seed: int = 0) -> None:
        """Fit the levels to (N, C) activation values (k-means++ per feature)."""
        a = activations.detach().cpu().numpy() if isinstance(activations, torch.Tensor) \
            else np.asarray(activations)
        centres = kmeans_levels(a, self.n_levels, seed)
        self.levels.copy_(torch.from_numpy(centres.astype(np.float32)))
        self.quant.boundaries.copy_(torch.from_numpy(self._midpoints(centres)))
        self.fitted.fill_(True)

    def value(self, y: torch.Tensor) -> torch.Tensor:
        a = self._act(y)
        if not bool(self.fitted):
            return a + self.noise_std * torch.randn_like(a) if self.training else a
        idx = self.quant.indices(a)
        v = torch.gather(self.levels.expand(len(a), -1, -1), 2, idx.unsqueeze(-1)).squeeze(-1)
        return v + (a - a.detach())  # exactly v; gradient straight through to a

    def spec(self, name: str, features: int) -> TensorSpec:
        if not bool(self.fitted):
            raise ValueError(f"{name}: the k-means quantizer has no levels yet (fit it)")
        return TensorSpec(name, (features,), code_datatype(index_bits(self.n_levels), False),
                          codebook=tuple(tuple(float(v) for v in row)
                                         for row in self.levels.numpy()),
                          post="codebook")


class CodebookInput(nn.Module):
    """A named input of codebook indices: (N, C) UINTk codes -> levels ``table[c, code]``
    on the grid 2**scale_log2 (``bits``-bit signed integers, one table (C, L) per feature).

    EQ-Net's g reads f_Q's k-means indices this way: the accelerator's input stream is
    the index, and the lookup is the hardware ``CodebookLookup`` (exported as
    IndexLookup + Mul). What an index *means* is ``levels`` (C, L) floats (f_Q's k-means
    levels, given to :meth:`set_levels`); the table is their nearest distinct integers on
    the grid, what the network computes with. The contract's codebook is ``levels``, so
    f_Q's float output (its levels) maps to the very index f_Q emitted, even where two
    levels round to one grid point (the table nudges them apart; a nearest-level rule on
    the table would not give the index back). Floats (:meth:`forward`): before
    :meth:`set_levels` the values themselves on the grid (training on continuous
    latents); after it the index of the nearest of ``levels``, then its table entry
    (straight-through), so ``forward(levels)`` and the index path compute the same.
    """

    def __init__(self, features: int, levels: int, bits: int, scale_log2: int) -> None:
        super().__init__()
        self.features, self.n_levels = features, levels
        self.bits, self.scale_log2 = bits, scale_log2
        self.grid = fixed_quant_identity(bits, scale_log2)
        hi = 2 ** (bits - 1) - 1
        init = grid_levels(np.tile(np.linspace(-hi, hi, levels).round(), (features, 1))
                           * 2.0 ** scale_log2, scale_log2, bits)
        self.register_buffer("table", torch.from_numpy(init))
        self.register_buffer("levels", torch.from_numpy(
            (init * 2.0 ** scale_log2).astype(np.float32)))
        self.register_buffer("fitted", torch.tensor(False))

    @torch.no_grad()
    def set_levels(self, levels: np.ndarray | torch.Tensor) -> None:
        """(C, L) float levels, strictly increasing per feature (e.g. a
        :class:`KMeansHead`'s): the meaning of each index, and the integer table (rounded
        onto the grid, duplicates nudged apart: ``zoo.quantizers.grid_levels``)."""
        lv = levels.detach().cpu().numpy() if isinstance(levels, torch.Tensor) else levels
        lv = np.asarray(lv, np.float32)
        if lv.shape != tuple(self.table.shape):
            raise ValueError(f"levels {lv.shape}; this input has {tuple(self.table.shape)}")
        if np.any(np.diff(lv, axis=1) <= 0):
            raise ValueError("codebook levels must be strictly increasing per feature")
        self.table.copy_(torch.from_numpy(grid_levels(lv, self.scale_log2, self.bits)))
        self.levels.copy_(torch.from_numpy(lv))
        self.fitted.fill_(True)

    def values(self) -> torch.Tensor:
        """(C, L) float values the network computes with (the table on its grid)."""
        return self.table * 2.0 ** self.scale_log2

    def indices(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C) floats -> (N, C) int64 index of the nearest level (ties: the higher, the
        contract's rule, computed as ``contract.iospec`` does, in float64)."""
        lv = self.levels.double()
        mids = (lv[:, 1:] + lv[:, :-1]) / 2
        return (x.detach().double().unsqueeze(-1) >= mids.unsqueeze(0)).sum(-1)

    def forward(self, x: torch.Tensor) -> Any:
        """(N, C) floats -> QuantTensor on the grid (see the class docstring)."""
        if not bool(self.fitted):
            return self.grid(x)
        v = self.values().to(x.dtype)
        idx = self.indices(x)
        q = torch.gather(v.expand(len(x), -1, -1), 2, idx.unsqueeze(-1)).squeeze(-1)
        return self.grid(q + (x - x.detach()))  # exactly q; straight-through gradient

    def lookup(self, codes: torch.Tensor) -> Any:
        """(N, C) integer indices -> QuantTensor of their levels (the exported path)."""
        return lookup_levels(codes, self.table, self.scale_log2, self.bits, self.training)

    def spec(self, name: str) -> TensorSpec:
        if not bool(self.fitted):
            raise ValueError(f"input {name}: the codebook has no levels yet (set_levels)")
        return TensorSpec(name, (self.features,),
                          code_datatype(index_bits(self.n_levels), False),
                          codebook=tuple(tuple(float(v) for v in row)
                                         for row in self.levels.numpy()),
                          post="codebook")


class QuantNet(nn.Module):
    """Named inputs -> one dense path per output -> one head per output.

    ``inputs``: ordered ``{name: {features, bits, scale_log2}}`` (codes on a power-of-two
    grid), or ``{name: {kind: codebook, features, levels, bits, scale_log2}}`` (indices
    into one table of levels per feature: :class:`CodebookInput`). ``paths``: ordered
    ``{output name: {from, hidden, out_features, head, residual_blocks, branches,
    input_layers}}``:

    * ``from``: one input, or several concatenated (on one shared quantizer, or through
      ``input_layers``);
    * ``input_layers``: ``{input: width}``, one Dense per input of ``from`` before the
      concatenation (inputs on different grids; the accumulators joined by one ReLU
      quantizer: EQ-Net f_E's input stage);
    * ``branches``: N identical stacks reading the same input, their ``out_features``
      outputs concatenated before the one head (EQ-Net g's 12 branches, one soft bit each).

    Input i: (N, features_i); output j: (N, branches_j * out_features_j).
    """

    def __init__(self, inputs: dict[str, dict[str, Any]], paths: dict[str, dict[str, Any]],
                 weight_bits: int, act_bits: int, bias_bits: int = 16,
                 batch_norm: bool = False) -> None:
        super().__init__()
        self.input_decl = inputs
        self.input_quant = nn.ModuleDict({n: _input(d) for n, d in inputs.items()})
        # Each path reads one input, or several concatenated through one shared quantizer
        # (or through one Dense layer each: input_layers).
        self.sources = {o: [p["from"]] if isinstance(p["from"], str) else list(p["from"])
                        for o, p in paths.items()}
        self.concat_quant = nn.ModuleDict()
        self.input_layers = nn.ModuleDict()
        self.join_act = nn.ModuleDict()
        in_width = {}
        for o, srcs in self.sources.items():
            for src in srcs:
                if src not in inputs:
                    raise ValueError(f"path {o!r} reads input {src!r}; inputs: {list(inputs)}")
            layers = paths[o].get("input_layers") or {}
            if layers:
                if set(layers) != set(srcs):
                    raise ValueError(f"path {o!r}: input_layers {sorted(layers)} must name "
                                     f"every input of from: {srcs}")
                self.input_layers[o] = nn.ModuleDict({
                    i: quant_linear(inputs[i]["features"], layers[i], weight_bits, bias_bits)
                    for i in srcs})
                self.join_act[o] = _relu(act_bits)
                in_width[o] = sum(layers[i] for i in srcs)
                continue
            in_width[o] = sum(inputs[i]["features"] for i in srcs)
            if len(srcs) > 1:
                grids = {(inputs[i]["bits"], inputs[i]["scale_log2"]) for i in srcs}
                if len(grids) != 1:
                    raise ValueError(f"path {o!r}: inputs {srcs} are on different grids; a "
                                     "concatenation needs one shared quantizer (or "
                                     "input_layers)")
                bits, log2 = grids.pop()
                self.concat_quant[o] = fixed_quant_identity(bits, log2)

        def stack(o: str, p: dict[str, Any]) -> DenseStack:
            return DenseStack(in_width[o], list(p.get("hidden", [])), p["out_features"],
                              weight_bits, act_bits, bias_bits, batch_norm,
                              p.get("residual_blocks") or 0)

        # One stack per path, or a list of N branch stacks (state_dict keys of a single
        # stack stay those of earlier checkpoints).
        self.stacks = nn.ModuleDict({
            o: stack(o, p) if (p.get("branches") or 1) == 1 else
            nn.ModuleList(stack(o, p) for _ in range(p["branches"]))
            for o, p in paths.items()})
        self.out_features = {o: p["out_features"] * (p.get("branches") or 1)
                             for o, p in paths.items()}
        self.heads = nn.ModuleDict({o: _head(p["head"], self.out_features[o])
                                    for o, p in paths.items()})

    def iospec(self) -> IOSpec:
        ins = tuple(q.spec(n) if isinstance(q, CodebookInput) else
                    TensorSpec(n, (d["features"],), code_datatype(d["bits"]),
                               scale=2.0 ** d["scale_log2"])
                    for (n, d), q in zip(self.input_decl.items(), self.input_quant.values(),
                                         strict=True))
        outs = tuple(self.heads[o].spec(o, self.out_features[o]) for o in self.heads)
        return IOSpec(ins, outs)

    def _pre(self, xs: dict[str, torch.Tensor], indices: bool = False
             ) -> dict[str, torch.Tensor]:
        """Inputs -> each path's pre-activations. ``indices``: codebook inputs hold codes
        (the exported and reference path), else floats."""
        q = {n: self.input_quant[n].lookup(x)
             if indices and isinstance(self.input_quant[n], CodebookInput)
             else self.input_quant[n](x) for n, x in xs.items()}
        out = {}
        for o, srcs in self.sources.items():
            if o in self.input_layers:  # one Dense per input, joined by one ReLU quantizer
                x = self.join_act[o](torch.cat(
                    [self.input_layers[o][s](q[s]) for s in srcs], dim=-1))
            elif len(srcs) == 1:
                x = q[srcs[0]]
            else:  # concatenation on one grid, re-quantized by the shared quantizer (exact)
                x = self.concat_quant[o](torch.cat([q[s].value for s in srcs], dim=-1))
            st = self.stacks[o]
            out[o] = torch.cat([b(x) for b in st], dim=-1) if isinstance(
                st, nn.ModuleList) else st(x)
        return out

    def forward(self, *xs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Floats in input order -> float outputs in output order (codebook values)."""
        pre = self._pre(dict(zip(self.input_quant, xs, strict=True)))
        out = tuple(self.heads[o].value(pre[o]) for o in self.heads)
        return out[0] if len(out) == 1 else out

    def export_forward(self, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """What the QONNX export traces: each head's quantizer output (for a codebook head
        the fine quantizer's; export appends the index thresholds)."""
        pre = self._pre(dict(zip(self.input_quant, xs, strict=True)), indices=True)
        return tuple(self.heads[o].quantized(pre[o]) for o in self.heads)

    @torch.no_grad()
    def output_codes(self, **codes: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named integer input codes -> named integer output codes (the contract's reference)."""
        xs = {n: codes[n] if d.get("kind") == "codebook" else codes[n] * 2.0 ** d["scale_log2"]
              for n, d in self.input_decl.items()}
        pre = self._pre(xs, indices=True)
        return {o: self.heads[o].codes(pre[o]) for o in self.heads}


def _input(d: dict[str, Any]) -> nn.Module:
    """An input's quantizer: fixed power-of-two codes, or a codebook of indices."""
    if d.get("kind", "quant") == "codebook":
        return CodebookInput(d["features"], d["levels"], d["bits"], d["scale_log2"])
    return fixed_quant_identity(d["bits"], d["scale_log2"])


def _head(cfg: dict[str, Any], features: int) -> nn.Module:
    kind = cfg.get("kind", "quant")
    if kind == "kmeans":
        return KMeansHead(cfg.get("activation", "tanh"), features, cfg["levels"],
                          cfg.get("noise_std") or 0.0)
    common = {"activation": cfg.get("activation", "none"), "bits": cfg["bits"],
              "scale_log2": cfg["scale_log2"], "narrow": cfg.get("narrow", False)}
    if kind == "quant":
        return QuantHead(**common)
    if kind == "codebook":
        return CodebookHead(levels=cfg["levels"], **common)
    raise ValueError(f"head kind {kind!r}: quant, codebook or kmeans")
