"""Per-bit-position maximum-mutual-information (max-MI) scalar quantizer of LLRs.

The baseline "[13]" of EQ-Net (Fig. 7) and "[12]" of the wideband soft-bit paper:
A. Winkelbauer, G. Matz, "On quantization of log-likelihood ratios for maximum mutual
information", SPAWC 2015. Each LLR position (bit position of the label, per stream)
gets its own ``2**bits``-level scalar quantizer whose cells maximise I(B; Q(L)).

Sign convention: the project's ``L = ln P(b=1 | y) / P(b=0 | y)`` (``phy.llr``), so
L > 0 favours bit 1; boundaries and reconstruction values are in these LLR units.

Algorithm (exact for its binning):

* For a binary input B, the MI-optimal deterministic quantizer of the channel output
  has cells that are contiguous intervals of the posterior P(B=1 | L), hence of L
  itself (L is a monotone function of the posterior; Kurkoski & Yagi 2014; Winkelbauer
  & Matz 2015). So only the ``levels - 1`` boundaries on the L axis are to be found.
  (For mismatched LLRs, e.g. max-log, this assumes the true posterior is still
  monotone in L; the DP is then optimal among interval quantizers of L.)
* Binning: the sorted training LLRs are cut into ``n_bins`` equal-mass bins (quantiles
  of L; quantiles of L and of the posterior sigmoid(L) are the same cuts, since the
  map is monotone), plus a forced cut at L = 0 so that the hard-decision (sign)
  quantizer lies in the search space. Candidate boundaries sit half-way between the
  neighbouring samples of two bins. Default 1,024 bins: on 2x2 64-QAM exact-ML LLRs
  at 14 dB (200,000 samples, 3 bits, soft fit) 4,096 bins gain at most 5e-7 bit of MI,
  against a quantization loss of ~8e-3 bit (``main`` prints this check).
* Dynamic programming over contiguous partitions of the bins into exactly ``levels``
  cells: ``D_k[j] = max_{i<j} D_{k-1}[i] + g(i, j)``, where ``g(i, j)`` is the MI
  contribution of the cell made of bins i..j-1. This is the plain O(levels * bins^2)
  DP (vectorised over i and j), not the SMAWK / monotone-split speed-up: it is exact
  without relying on the quadrangle inequality, and 1,024 bins x 16 levels take a
  fraction of a second.
* Reconstruction: the cell's posterior LLR ``ln P(b=1 | cell) / P(b=0 | cell)`` with
  the empirical bit prior, i.e. ``ln n1(cell) / n0(cell)`` of the training counts
  (the same kind of value as the input LLRs, which are posteriors under a uniform
  prior; for the project's uniform random bits the prior term ln(N1/N0) is O(1/sqrt
  N)). A cell that holds samples of only one bit value gets a half count for the
  other one, so its LLR stays finite. In soft mode the same ratio is formed from the
  posteriors, in the log domain (``logsumexp``), so huge LLRs do not underflow.

Two statistics modes: with the true bits ("hard", any LLRs, also mismatched max-log
ones) the counts n_b(cell) are counted; without them ("soft", Winkelbauer & Matz's
data-driven form for exact LLRs) each sample contributes P(b=1 | L) = sigmoid(L) to
n1 and 1 - sigmoid(L) to n0. In soft mode the quantized MI is below the unquantized
estimate exactly (Jensen), on any sample. For exact LLRs prefer soft: its counts are
far less noisy, so its boundaries sit closer to the optimum (BPSK/AWGN, 1e5 samples,
3 bits: 1e-5 bit below the true optimum, hard ~1e-3), and its fit MI is not inflated.
The hard fit's own (in-sample) MI is optimistic: the DP picks the partition whose
empirical counts look best (30,000 2x2 64-QAM samples, 4-5 bits: 1e-3 to 4e-3 bit above
even the unquantized MI); judge hard fits on held-out data.

The MI-optimal 1-bit quantizer is not always the sign: for the bits that tell inner
from outer PAM levels (64-QAM b2..b5) the LLR law is asymmetric and the best threshold
sits at L ~ +0.1..+0.25 (1.5e-3 bit above the sign at 14 dB). So the 3-bit cells of
these positions need not have a boundary at 0, and a few hard decisions change.

Index rule: ``index = number of boundaries <= L`` (a MultiThreshold with the
boundaries as thresholds), values 0 .. levels-1.

Run ``python -m phy.maxmi_quantizer --snr 14 --json out.json`` for the MI table of
2x2 64-QAM exact-ML LLRs over i.i.d. Rayleigh per bit position.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit, log_expit, logsumexp, xlogy

FORMAT = "maxmi-llr-quantizer"
VERSION = 1
DEFAULT_BINS = 1024
REFERENCE = ("A. Winkelbauer, G. Matz, On quantization of log-likelihood ratios for maximum "
             "mutual information, SPAWC 2015")
_LN2 = np.log(2.0)


# --------------------------------------------------------------------------- statistics


def _masses(llr: np.ndarray, bits: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample weights of b=0 and b=1: the true bit (hard) or the posterior (soft)."""
    if bits is None:
        w1 = expit(llr)
        return 1.0 - w1, w1
    b = np.asarray(bits).reshape(-1)
    if b.shape != llr.shape:
        raise ValueError(f"bits {b.shape} and llr {llr.shape} differ in shape")
    if not np.isin(b, (0, 1)).all():
        raise ValueError("bits must be 0/1")
    w1 = b.astype(np.float64)
    return 1.0 - w1, w1


def _cell_mi(a0: np.ndarray, a1: np.ndarray, pi0: float, pi1: float) -> np.ndarray:
    """MI contribution (bits) of cells with joint masses P(b=0, c)=a0, P(b=1, c)=a1.

    ``sum_b P(b, c) log2 P(b, c) / (P(b) P(c))``; 0 log 0 = 0. Summed over a partition
    this is I(B; Q). Each term is P(c) KL(P(b|c) || P(b)) >= 0, and splitting a cell
    never lowers the sum (a finer partition never has less MI).
    """
    a = a0 + a1
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (xlogy(a0, a0) + xlogy(a1, a1) - xlogy(a, a)
               - a0 * np.log(pi0 if pi0 > 0 else 1.0) - a1 * np.log(pi1 if pi1 > 0 else 1.0))
    return out / _LN2


def llr_mutual_information(llr: np.ndarray, bits: np.ndarray | None = None) -> float:
    """I(B; L) in bits of unquantized LLRs, estimated from samples.

    With the true bits: ``1 - E[log2(1 + exp(-(2b-1) L))]`` (exact for consistent LLRs
    of equiprobable bits; an achievable-rate lower bound for mismatched ones). Without
    them (soft, LLRs assumed exact): ``H2(E[sigmoid L]) - E[H2(sigmoid L)]``, the same
    estimator the soft-mode quantizer MI is computed with.
    """
    x = np.asarray(llr, dtype=np.float64).reshape(-1)
    if bits is None:
        p1 = expit(x)
        h = -(xlogy(p1, p1) + xlogy(1 - p1, 1 - p1)) / _LN2
        pi1 = float(p1.mean())
        h_b = -(xlogy(pi1, pi1) + xlogy(1 - pi1, 1 - pi1)) / _LN2
        return float(h_b - h.mean())
    s = 2.0 * np.asarray(bits, dtype=np.float64).reshape(-1) - 1.0
    return float(1.0 - np.mean(np.logaddexp(0.0, -s * x)) / _LN2)


def partition_mutual_information(llr: np.ndarray, bits: np.ndarray | None,
                                 boundaries: Sequence[float]) -> float:
    """Plug-in I(B; Q(L)) in bits for the cells cut at ``boundaries`` (index rule of the
    module: index = number of boundaries <= L), with empirical P(b, cell). Any sorted
    boundaries: the max-MI ones, a uniform quantizer's, the sign quantizer's ``[0.0]``."""
    x = np.asarray(llr, dtype=np.float64).reshape(-1)
    w0, w1 = _masses(x, bits)
    b = np.sort(np.asarray(boundaries, dtype=np.float64))
    idx = np.searchsorted(b, x, side="right")
    a0 = np.bincount(idx, w0, minlength=len(b) + 1) / len(x)
    a1 = np.bincount(idx, w1, minlength=len(b) + 1) / len(x)
    pi1 = float(a1.sum())
    return float(_cell_mi(a0, a1, 1.0 - pi1, pi1).sum())


# --------------------------------------------------------------------------- binning + DP


@dataclass
class Binning:
    """Training LLRs cut into contiguous bins: cut positions in the sorted sample, the
    boundary value of each cut, and the per-bin joint masses P(b=0, bin), P(b=1, bin)."""

    edges: np.ndarray  # (n_bins - 1,) boundary LLR between bin t and t+1
    a0: np.ndarray  # (n_bins,)
    a1: np.ndarray  # (n_bins,)
    starts: np.ndarray  # (n_bins,) first sorted-sample index of each bin
    sorted_llr: np.ndarray
    sorted_w1: np.ndarray

    @property
    def n_bins(self) -> int:
        return len(self.a0)


def make_bins(llr: np.ndarray, bits: np.ndarray | None, n_bins: int = DEFAULT_BINS,
              force_zero: bool = True) -> Binning:
    """Equal-mass (quantile) bins of the finite LLRs, plus a cut at L = 0.

    A cut never separates equal LLR values (ties stay in one bin), so heavy ties
    (saturated LLRs) can give fewer bins than asked for.
    """
    x = np.asarray(llr, dtype=np.float64).reshape(-1)
    b = None if bits is None else np.asarray(bits).reshape(-1)
    keep = np.isfinite(x)
    if not keep.all():
        raise ValueError("LLRs must be finite")
    order = np.argsort(x, kind="stable")
    xs = x[order]
    w0, w1 = _masses(xs, None if b is None else b[order])
    n = len(xs)
    if n < 2:
        raise ValueError("need at least two LLR samples")
    cuts = np.round(np.arange(1, n_bins) * (n / n_bins)).astype(np.int64)
    if force_zero:
        cuts = np.append(cuts, np.searchsorted(xs, 0.0, side="left"))
    cuts = np.unique(cuts[(cuts > 0) & (cuts < n)])
    cuts = cuts[xs[cuts - 1] < xs[cuts]]  # no cut inside a run of equal values
    edges = 0.5 * (xs[cuts - 1] + xs[cuts])
    # the index rule is "L >= boundary -> upper cell": the boundary must lie in
    # (left sample, right sample]; a midpoint of two adjacent floats may not.
    bad = ~(edges > xs[cuts - 1])
    edges[bad] = xs[cuts[bad]]
    if force_zero:
        z = np.searchsorted(xs, 0.0, side="left")
        edges[cuts == z] = 0.0  # exactly 0: the sign quantizer's threshold
    starts = np.concatenate([[0], cuts])
    a0 = np.add.reduceat(w0, starts) / n
    a1 = np.add.reduceat(w1, starts) / n
    return Binning(edges, a0, a1, starts, xs, w1)


def optimal_partition(a0: np.ndarray, a1: np.ndarray, levels: int,
                      pi: tuple[float, float] | None = None) -> tuple[float, np.ndarray]:
    """Exact max-MI partition of bins (joint masses a0, a1) into contiguous cells.

    Returns (MI in bits, cuts): ``cuts`` (levels - 1,) are bin indices, cell k holds the
    bins cuts[k-1] .. cuts[k]-1. O(levels * bins^2) DP, vectorised; at most ``bins``
    cells. ``pi`` = (P(b=0), P(b=1)), default the masses' sums.
    """
    a0 = np.asarray(a0, dtype=np.float64)
    a1 = np.asarray(a1, dtype=np.float64)
    n_bins = len(a0)
    levels = int(min(levels, n_bins))
    if levels < 1:
        raise ValueError("levels must be >= 1")
    pi0, pi1 = pi if pi is not None else (float(a0.sum()), float(a1.sum()))
    c0 = np.concatenate([[0.0], np.cumsum(a0)])
    c1 = np.concatenate([[0.0], np.cumsum(a1)])
    # g[i, j]: MI of the cell of bins i..j-1 (i < j); -inf elsewhere. Differences of
    # cumulative sums can go a hair negative by rounding: clip at 0.
    d0 = np.maximum(c0[None, :] - c0[:, None], 0.0)
    d1 = np.maximum(c1[None, :] - c1[:, None], 0.0)
    g = _cell_mi(d0, d1, pi0, pi1)
    g[np.tril_indices(n_bins + 1)] = -np.inf
    del d0, d1
    best = g[0].copy()  # D_1[j]: one cell covering bins 0..j-1
    arg = np.zeros((levels, n_bins + 1), dtype=np.int64)
    for k in range(1, levels):
        tot = best[:, None] + g  # (i, j)
        arg[k] = np.argmax(tot, axis=0)
        best = tot[arg[k], np.arange(n_bins + 1)]
    cuts = np.empty(levels - 1, dtype=np.int64)
    j = n_bins
    for k in range(levels - 1, 0, -1):
        j = int(arg[k, j])
        cuts[k - 1] = j
    return float(best[n_bins]), cuts


# --------------------------------------------------------------------------- quantizers


def _cell_llrs(binning: Binning, cuts: np.ndarray, soft: bool) -> np.ndarray:
    """Posterior LLR of each cell, ln P(b=1 | cell) / P(b=0 | cell) (see module doc)."""
    bounds = np.concatenate([[0], binning.starts[cuts], [len(binning.sorted_llr)]])
    out = np.empty(len(bounds) - 1)
    for k in range(len(out)):
        seg = slice(bounds[k], bounds[k + 1])
        if soft:  # log domain: cells of |L| > ~700 underflow sigmoid
            x = binning.sorted_llr[seg]
            out[k] = logsumexp(log_expit(x)) - logsumexp(log_expit(-x))
        else:
            n1 = float(binning.sorted_w1[seg].sum())
            n0 = float(bounds[k + 1] - bounds[k]) - n1
            out[k] = np.log(max(n1, 0.5)) - np.log(max(n0, 0.5))
    return out


@dataclass
class MaxMIQuantizer:
    """A fitted max-MI scalar quantizer of one LLR position.

    ``boundaries`` (levels-1,) sorted, in LLR units; ``levels`` (cells,) the
    reconstruction LLRs; index = number of boundaries <= L.
    """

    bits: int
    boundaries: np.ndarray
    levels: np.ndarray
    fit_info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.boundaries = np.asarray(self.boundaries, dtype=np.float64).reshape(-1)
        self.levels = np.asarray(self.levels, dtype=np.float64).reshape(-1)
        if len(self.levels) != len(self.boundaries) + 1:
            raise ValueError("need len(levels) == len(boundaries) + 1")
        if len(self.levels) > 2**self.bits:
            raise ValueError(f"{len(self.levels)} cells do not fit in {self.bits} bits")
        if np.any(np.diff(self.boundaries) <= 0):
            raise ValueError("boundaries must be strictly increasing")

    @classmethod
    def fit(cls, llr: np.ndarray, bits_true: np.ndarray | None = None, bits: int = 3,
            n_bins: int = DEFAULT_BINS, meta: dict | None = None) -> MaxMIQuantizer:
        """Fit on training LLRs of one position (N,) and their true bits (N,) ("hard"),
        or without bits ("soft": posterior sigmoid(L), for exact LLRs)."""
        if bits < 1:
            raise ValueError("bits must be >= 1")
        x = np.asarray(llr, dtype=np.float64).reshape(-1)
        t0 = time.perf_counter()
        binning = make_bins(x, bits_true, n_bins)
        pi1 = float(binning.a1.sum())
        mi, cuts = optimal_partition(binning.a0, binning.a1, 2**bits, (1.0 - pi1, pi1))
        soft = bits_true is None
        info = {
            "mode": "soft" if soft else "hard",
            "n_samples": len(x),
            "n_bins_requested": int(n_bins),
            "n_bins": binning.n_bins,
            "binning": "quantiles of L (= of the posterior) + a cut at L = 0",
            "prior_bit1": pi1,
            "mi": mi,  # in-sample; hard mode: optimistic (see module doc)
            "mi_unquantized": llr_mutual_information(x, bits_true),
            "seconds": time.perf_counter() - t0,
            **(meta or {}),
        }
        return cls(bits, binning.edges[cuts - 1], _cell_llrs(binning, cuts, soft), info)

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    def quantize(self, llr: np.ndarray) -> np.ndarray:
        """Cell indices (uint8 for bits <= 8), same shape as ``llr``."""
        idx = np.searchsorted(self.boundaries, np.asarray(llr, dtype=np.float64), side="right")
        return idx.astype(np.uint8 if self.bits <= 8 else np.uint16)

    def reconstruct(self, indices: np.ndarray) -> np.ndarray:
        """Reconstruction LLRs of cell indices."""
        return self.levels[np.asarray(indices, dtype=np.int64)]

    def __call__(self, llr: np.ndarray) -> np.ndarray:
        return self.reconstruct(self.quantize(llr))

    def mutual_information(self, llr: np.ndarray | None = None,
                           bits_true: np.ndarray | None = None) -> float:
        """I(B; Q(L)) in bits: of the fit on its training data (no arguments), or the
        plug-in estimate on given LLRs and bits (soft estimate when bits are None)."""
        if llr is None:
            return float(self.fit_info["mi"])
        return partition_mutual_information(llr, bits_true, self.boundaries)

    def to_dict(self) -> dict[str, Any]:
        return {"bits": self.bits, "boundaries": [float(v) for v in self.boundaries],
                "levels": [float(v) for v in self.levels], "fit": _jsonable(self.fit_info)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MaxMIQuantizer:
        return cls(int(d["bits"]), d["boundaries"], d["levels"], dict(d.get("fit", {})))


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, np.generic):
        return v.item()
    return v


@dataclass
class MaxMIQuantizerBank:
    """One ``MaxMIQuantizer`` per LLR position (column): a ``phy.link`` Processing.

    Calling the bank maps LLRs (N, positions) to reconstructed LLRs of the same shape,
    so ``simulate_link(cfg, process=bank)`` runs the baseline in a link sweep.
    """

    quantizers: list[MaxMIQuantizer]
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fit(cls, llr: np.ndarray, bits_true: np.ndarray | None = None, bits: int = 3,
            n_bins: int = DEFAULT_BINS, meta: dict | None = None) -> MaxMIQuantizerBank:
        """Fit per column on LLRs (N, P) and true bits (N, P) (or None: soft mode)."""
        x = np.asarray(llr, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError("llr must be (N, positions)")
        b = None if bits_true is None else np.asarray(bits_true)
        if b is not None and b.shape != x.shape:
            raise ValueError(f"bits {b.shape} and llr {x.shape} differ in shape")
        qs = [MaxMIQuantizer.fit(x[:, p], None if b is None else b[:, p], bits, n_bins,
                                 {"position": p}) for p in range(x.shape[1])]
        return cls(qs, dict(meta or {}))

    @property
    def bits(self) -> int:
        return max(q.bits for q in self.quantizers)

    @property
    def __name__(self) -> str:  # ``simulate_link`` records the processing's name
        return f"maxmi-{self.bits}bit"

    def _check(self, llr: np.ndarray) -> np.ndarray:
        x = np.asarray(llr, dtype=np.float64)
        if x.shape[-1] != len(self.quantizers):
            raise ValueError(f"{x.shape[-1]} LLR positions, {len(self.quantizers)} quantizers")
        return x

    def quantize(self, llr: np.ndarray) -> np.ndarray:
        x = self._check(llr)
        return np.stack([q.quantize(x[..., p]) for p, q in enumerate(self.quantizers)], -1)

    def reconstruct(self, indices: np.ndarray) -> np.ndarray:
        i = self._check(indices)
        return np.stack([q.reconstruct(i[..., p]) for p, q in enumerate(self.quantizers)], -1)

    def __call__(self, llr: np.ndarray) -> np.ndarray:
        return self.reconstruct(self.quantize(llr))

    def as_processing(self):
        """A plain function LLR (N, P) -> LLR (N, P) for ``phy.link.simulate_link``."""
        def process(llr: np.ndarray) -> np.ndarray:
            return self(llr)

        process.__name__ = self.__name__
        return process

    def mutual_information(self, llr: np.ndarray | None = None,
                           bits_true: np.ndarray | None = None) -> np.ndarray:
        """Per-position I(B; Q(L)) in bits (fit values, or estimated on given data)."""
        if llr is None:
            return np.array([q.mutual_information() for q in self.quantizers])
        x = self._check(llr)
        b = None if bits_true is None else np.asarray(bits_true)
        return np.array([q.mutual_information(x[:, p], None if b is None else b[:, p])
                         for p, q in enumerate(self.quantizers)])

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "bits": self.bits,
                "reference": REFERENCE, "llr_sign": "L = ln P(b=1)/P(b=0)",
                "index_rule": "index = number of boundaries <= L",
                "positions": [q.to_dict() for q in self.quantizers],
                "meta": _jsonable(self.meta)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MaxMIQuantizerBank:
        if d.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file (format={d.get('format')!r})")
        if int(d.get("version", 0)) != VERSION:
            raise ValueError(f"unsupported version {d.get('version')}")
        return cls([MaxMIQuantizer.from_dict(p) for p in d["positions"]], dict(d.get("meta", {})))

    def save(self, path: str | Path) -> Path:
        """JSON file; floats are written in repr form, so ``load`` is exact."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False))
        return p

    @classmethod
    def load(cls, path: str | Path) -> MaxMIQuantizerBank:
        return cls.from_dict(json.loads(Path(path).read_text()))


# --------------------------------------------------------------------------- measurement


def mi_table(snr_db: float = 14.0, n_train: int = 200_000, n_test: int = 200_000,
             bits: Sequence[int] = (2, 3, 4), n_bins: int = DEFAULT_BINS, n_t: int = 2,
             n_r: int = 2, bits_per_symbol: int = 6, seed: int = 0,
             cache_dir: str | None = None, save_dir: str | Path | None = None,
             check_bins: int = 4) -> dict:
    """Per-position MI of max-MI quantizers fitted on one data set (exact-ML LLRs, i.i.d.
    Rayleigh, one SNR) and evaluated on a held-out one, vs the unquantized MI.

    Both fit modes (hard: true bits; soft: posteriors) are fitted; every MI is estimated
    on the held-out set twice: "soft" (posterior-based, the low-variance estimator for
    exact LLRs, and quantized <= unquantized exactly) and "hard" (true bits, plug-in).
    ``check_bins`` > 1 also refits 3 bits with that many times the bins on the train set
    (the MI loss of binning); 0 skips it.
    """
    from phy.datasets import mimo_llr_dataset

    kw = {"n_t": n_t, "n_r": n_r, "bits_per_symbol": bits_per_symbol, "cache_dir": cache_dir}
    t0 = time.time()
    train = mimo_llr_dataset(n_train, [snr_db], seed=seed, **kw)
    test = mimo_llr_dataset(n_test, [snr_db], seed=seed + 1, **kw)
    t_data = time.time() - t0
    xs, bs = test["llr"].astype(np.float64), test["bits"]
    n_pos = xs.shape[1]
    mi: dict[str, Any] = {
        "unquantized_soft": [llr_mutual_information(xs[:, p]) for p in range(n_pos)],
        "unquantized_hard": [llr_mutual_information(xs[:, p], bs[:, p]) for p in range(n_pos)],
    }
    quantizers: dict[str, Any] = {}
    fits = {}
    meta = {"snr_db": snr_db, "n_t": n_t, "n_r": n_r, "bits_per_symbol": bits_per_symbol,
            "detector": "ml (exact)", "channel": "rayleigh", "train_seed": seed}
    for nb in bits:
        for mode in ("hard", "soft"):
            t0 = time.time()
            bank = MaxMIQuantizerBank.fit(train["llr"], train["bits"] if mode == "hard" else None,
                                          nb, n_bins, meta)
            key = f"{nb}bit_{mode}fit"
            fits[key] = time.time() - t0
            mi[f"{key}_train"] = bank.mutual_information().tolist()
            mi[f"{key}_test_soft"] = bank.mutual_information(xs).tolist()
            mi[f"{key}_test_hard"] = bank.mutual_information(xs, bs).tolist()
            quantizers[key] = bank.to_dict()
            if save_dir is not None:
                bank.save(Path(save_dir) / f"maxmi-{nb}bit-{mode}-snr{snr_db:g}.json")
    if check_bins > 1 and 3 in bits:
        # soft fits: the hard fit's train MI would also grow by over-fitting the counts
        fine = [MaxMIQuantizer.fit(train["llr"][:, p], None, 3, check_bins * n_bins)
                .fit_info["mi"] for p in range(n_pos)]
        mi["binning_loss_3bit_soft"] = (np.array(fine)
                                        - np.array(mi["3bit_softfit_train"])).tolist()
    return {"snr_db": snr_db, "n_train": n_train, "n_test": n_test, "n_bins": n_bins,
            "check_bins": check_bins, "bits": list(bits), "n_t": n_t, "n_r": n_r,
            "bits_per_symbol": bits_per_symbol, "seed": seed, "seconds_data": t_data,
            "seconds_fit": fits, "mi": mi, "quantizers": quantizers}


def format_table(res: dict) -> str:
    """Per-position table: unquantized MI, and for each bit width the held-out MI of the
    hard-fitted quantizer (loss vs unquantized) and the soft-fitted one's loss, all with
    the soft estimator; then means of every fit/estimator pair."""
    mi, bits, k = res["mi"], res["bits"], res["bits_per_symbol"]
    unq = np.array(mi["unquantized_soft"])
    lines = [f"MI per LLR position [bit/LLR], {res['n_t']}x{res['n_r']} {2**k}-QAM exact ML, "
             f"i.i.d. Rayleigh, SNR {res['snr_db']:g} dB (Es/N0); fit on {res['n_train']}, "
             f"held-out {res['n_test']} vectors, {res['n_bins']} bins; soft MI estimator",
             f"{'pos':<7} {'unquant':>7} "
             + " ".join(f"{f'{b}b hard':>8} {'(loss)':>8} {'(soft)':>8}" for b in bits),
             "(MI of the hard-fitted quantizer, its loss vs unquantized, the soft-fitted "
             "quantizer's loss)"]
    for p in range(len(unq)):
        cells = " ".join(
            f"{mi[f'{b}bit_hardfit_test_soft'][p]:8.4f} "
            f"({unq[p] - mi[f'{b}bit_hardfit_test_soft'][p]:.4f}) "
            f"({unq[p] - mi[f'{b}bit_softfit_test_soft'][p]:.4f})" for b in bits)
        lines.append(f"s{p // k}b{p % k:<4} {unq[p]:7.4f} {cells}")
    cells = " ".join(
        f"{np.mean(mi[f'{b}bit_hardfit_test_soft']):8.4f} "
        f"({unq.mean() - np.mean(mi[f'{b}bit_hardfit_test_soft']):.4f}) "
        f"({unq.mean() - np.mean(mi[f'{b}bit_softfit_test_soft']):.4f})" for b in bits)
    lines.append(f"{'mean':<7} {unq.mean():7.4f} {cells}")
    lines.append("means over positions (train = fit data; test = held-out):")
    for est in ("soft", "hard"):
        u = np.mean(mi[f"unquantized_{est}"])
        lines.append(f"  {est} estimator: unquantized {u:.4f}")
        for b in bits:
            parts = []
            for mode in ("hard", "soft"):
                t = np.mean(mi[f"{b}bit_{mode}fit_test_{est}"])
                tr = np.mean(mi[f"{b}bit_{mode}fit_train"])
                parts.append(f"{mode}-fit test {t:.4f} (loss {u - t:.4f}, {100 * (u - t) / u:.2f}%)"
                             f" train {tr:.4f}")
            lines.append(f"    {b} bit: " + "; ".join(parts))
    if "binning_loss_3bit_soft" in mi:
        bl = np.array(mi["binning_loss_3bit_soft"])
        lines.append(f"binning loss, 3 bits, soft fit, {res['n_bins']} vs "
                     f"{res['check_bins'] * res['n_bins']} bins (train MI): max {bl.max():.1e}, "
                     f"mean {bl.mean():.1e} bit")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description="MI per LLR position of max-MI quantizers "
                                "(Winkelbauer & Matz) on exact-ML MIMO LLRs")
    p.add_argument("--snr", type=float, default=14.0, help="SNR = Es/N0 in dB (phy.channels)")
    p.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4])
    p.add_argument("--n-train", type=int, default=200_000)
    p.add_argument("--n-test", type=int, default=200_000)
    p.add_argument("--bins", type=int, default=DEFAULT_BINS)
    p.add_argument("--check-bins", type=int, default=4,
                   help="binning-loss check with this many times the bins (0: skip)")
    p.add_argument("--nt", type=int, default=2)
    p.add_argument("--nr", type=int, default=2)
    p.add_argument("--bits-per-symbol", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", default=None, help="phy.datasets cache directory")
    p.add_argument("--save-dir", default=None,
                   help="write the fitted banks as maxmi-<b>bit-<mode>-snr<S>.json here")
    p.add_argument("--json", default=None, help="write the table (and quantizers) as JSON")
    a = p.parse_args(argv)
    res = mi_table(a.snr, a.n_train, a.n_test, a.bits, a.bins, a.nt, a.nr, a.bits_per_symbol,
                   a.seed, a.cache_dir, a.save_dir, a.check_bins)
    print(format_table(res))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(_jsonable(res), indent=1))
    return res


if __name__ == "__main__":
    main()
