"""The I/O spec of a deployable network: named integer streams and the float<->code rules.

Board-safe: standard library and numpy (1.x or 2.x) only. ``export`` writes it
(``iospec.json`` beside the QONNX model), ``hw`` carries it into the package manifest,
and ``host`` reads it on and off the board. It is the only place where floats become
codes and codes become floats.

A spec has named input tensors and named output tensors, in graph order. Each tensor
(one per vector, shape ``shape``) carries integer codes of a FINN datatype and one of:

* ``scale``: ``value = code * scale`` (inputs: ``code = clip(round_half_even(x / scale),
  min, max)``, saturating; +-inf saturate too; NaN is refused);
* ``codebook``: ``value = codebook[code - min]`` (a non-uniform quantizer: the code is
  an index, the table travels in the spec). One table (L levels) for every feature, or
  one per feature (F tables of L levels, e.g. EQ-Net's per-dimension k-means latent
  quantizer): ``value[f] = codebook[f][code[f] - min]``. An input with a codebook takes
  floats by the nearest-level rule (``code = #{j : x >= (level_j + level_j+1) / 2}`` per
  feature: a value half-way between two levels takes the higher one, as the
  MultiThreshold of a boundary quantizer does).

``post`` names the host-side work after the accelerator: ``scale``, ``codebook``,
``argmax`` (the code is already a class index) or ``none``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

POSTS = ("scale", "codebook", "argmax", "none")
#: The version a spec is written with: 1, or 2 where a tensor has one codebook per
#: feature (what a version-1 reader cannot read; it refuses the version by name).
SPEC_VERSION = 1
PER_FEATURE_CODEBOOK_VERSION = 2
READ_VERSIONS = (1, 2)

Codebook = tuple[float, ...] | tuple[tuple[float, ...], ...]


def _codebook(cb: Any) -> Codebook | None:
    """A JSON/sequence codebook -> a flat tuple, or a tuple of per-feature tuples."""
    if cb is None:
        return None
    rows = list(cb)
    if rows and all(isinstance(r, (list, tuple, np.ndarray)) for r in rows):
        return tuple(tuple(float(v) for v in r) for r in rows)
    return tuple(float(v) for v in rows)


@dataclass(frozen=True)
class IntType:
    """A FINN integer datatype (``INTn``, ``UINTn``, ``BINARY``, ``BIPOLAR``)."""

    name: str
    bits: int
    signed: bool

    @classmethod
    def parse(cls, name: str) -> IntType:
        if name == "BINARY":
            return cls(name, 1, False)
        m = re.fullmatch(r"(U?)INT(\d+)", name)
        if not m or not 1 <= int(m.group(2)) <= 64:
            raise ValueError(f"datatype {name!r} is not an integer code type (INTn, UINTn, "
                             "BINARY)")
        return cls(name, int(m.group(2)), m.group(1) == "")

    @property
    def min(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1


def _where(bad: np.ndarray) -> str:
    idx = tuple(int(i) for i in np.argwhere(bad)[0])
    return f"vector {idx[0]}, feature {idx[1]}" if len(idx) == 2 else f"index {idx}"


@dataclass(frozen=True)
class TensorSpec:
    """One named tensor of the contract (per vector); see the module docstring."""

    name: str
    shape: tuple[int, ...]
    datatype: str
    scale: float | None = None
    codebook: Codebook | None = None
    post: str = "scale"
    doc: str = ""

    def __post_init__(self) -> None:
        dt = IntType.parse(self.datatype)
        if (self.scale is None) == (self.codebook is None):
            raise ValueError(f"{self.name}: give exactly one of scale and codebook")
        if self.scale is not None and not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"{self.name}: scale {self.scale!r} must be finite and > 0")
        if self.codebook is not None:
            object.__setattr__(self, "codebook", _codebook(self.codebook))
            table = self.table()
            if self.per_feature and table.shape[0] != self.features:
                raise ValueError(f"{self.name}: {table.shape[0]} per-feature codebooks for "
                                 f"{self.features} features")
            if not np.isfinite(table).all():
                raise ValueError(f"{self.name}: codebook levels must be finite")
            if table.shape[1] > dt.max - dt.min + 1:
                raise ValueError(f"{self.name}: codebook of {table.shape[1]} levels does "
                                 f"not fit {self.datatype}")
        if self.post not in POSTS:
            raise ValueError(f"{self.name}: post {self.post!r}; allowed: {', '.join(POSTS)}")

    @property
    def dtype(self) -> IntType:
        return IntType.parse(self.datatype)

    @property
    def features(self) -> int:
        return int(np.prod(self.shape))

    @property
    def code_min(self) -> int:
        """The lowest valid code (the datatype's)."""
        return self.dtype.min

    @property
    def code_max(self) -> int:
        """The highest valid code: the datatype's, or the codebook's last index."""
        if self.codebook is None:
            return self.dtype.max
        return self.dtype.min + self.table().shape[1] - 1

    @property
    def per_feature(self) -> bool:
        """True where the codebook is one table per feature."""
        return bool(self.codebook) and isinstance(self.codebook[0], tuple)

    def table(self) -> np.ndarray:
        """The codebook as float64 (F, L) (one table per feature) or (1, L) (shared)."""
        if self.codebook is None:
            raise ValueError(f"{self.name}: a scale tensor has no codebook")
        if self.per_feature and len({len(r) for r in self.codebook}) != 1:
            raise ValueError(f"{self.name}: per-feature codebooks of different lengths "
                             f"{sorted({len(r) for r in self.codebook})}")
        t = np.asarray(self.codebook, dtype=np.float64)
        if t.ndim == 1:
            t = t[None, :]
        if t.ndim != 2 or t.shape[1] < 1:
            raise ValueError(f"{self.name}: codebook must be L levels or F rows of L levels")
        return t

    def _nearest_level(self, a: np.ndarray) -> np.ndarray:
        """(N, F) float64 -> (N, F) int64 codes of the nearest level (ties: the higher)."""
        t = self.table()
        if np.any(np.diff(t, axis=1) <= 0):
            raise ValueError(f"{self.name}: codebook levels are not strictly increasing, "
                             "so floats have no nearest-level code")
        mids = (t[:, 1:] + t[:, :-1]) / 2  # (F or 1, L-1)
        idx = (a[:, :, None] >= mids[None, :, :]).sum(-1)
        return idx.astype(np.int64) + self.dtype.min

    def to_codes(self, x: np.ndarray) -> np.ndarray:
        """(N, *shape) floats (or one (features,) vector) -> (N, features) int64 codes:
        the scale rule, or the nearest level of a codebook."""
        a = np.asarray(x)
        if a.dtype.kind not in "biuf":
            raise ValueError(f"{self.name}: input of dtype {a.dtype}: expected real numbers")
        a = a.astype(np.float64)
        a = a[None, :] if a.ndim == 1 else a.reshape(len(a), -1)  # one vector, or N
        nan = np.isnan(a)
        if nan.any():
            raise ValueError(f"{self.name}: input contains NaN at {_where(nan)} "
                             f"({int(nan.sum())} NaN value(s) in all): NaN has no code")
        if self.scale is None:
            return self._nearest_level(a)
        with np.errstate(over="ignore"):
            q = np.rint(a / self.scale)  # rint: round half to even
        dt = self.dtype
        return np.clip(q, dt.min, dt.max).astype(np.int64)  # clipped in float: exact cast

    def to_float(self, codes: np.ndarray) -> np.ndarray:
        """(N, features) codes -> float32 values: ``code * scale`` or ``codebook[code]``."""
        c = np.asarray(codes, dtype=np.int64)
        if self.codebook is not None:
            table = self.table()
            idx = c - self.dtype.min
            if idx.size and (idx.min() < 0 or idx.max() >= table.shape[1]):
                raise ValueError(f"{self.name}: code outside the codebook's "
                                 f"{table.shape[1]} levels")
            if table.shape[0] == 1:
                return table[0][idx].astype(np.float32)
            f = table.shape[0]
            return table[np.arange(f), idx.reshape(-1, f)].reshape(idx.shape).astype(
                np.float32)
        return (c.astype(np.float64) * self.scale).astype(np.float32)

    def check_codes(self, codes: np.ndarray) -> np.ndarray:
        """(N, features) int64 codes; refuses non-integers and values outside the datatype
        (and, for a codebook, outside its levels)."""
        a = np.asarray(codes)
        if a.ndim == 1:
            a = a[None, :]
        if a.ndim != 2 or a.shape[1] != self.features:
            raise ValueError(f"{self.name}: codes of shape {a.shape}: expected "
                             f"(N, {self.features})")
        if a.dtype.kind not in "iubf":
            raise ValueError(f"{self.name}: codes of dtype {a.dtype} are not integers")
        dt = self.dtype
        if a.dtype.kind == "f":
            nonfinite = ~np.isfinite(a)
            if nonfinite.any():
                v = a[tuple(np.argwhere(nonfinite)[0])]
                raise ValueError(f"{self.name}: codes contain {v} at {_where(nonfinite)}: "
                                 "codes must be finite integers (use execute() for floats)")
            frac = a != np.rint(a)
            if frac.any():
                v = a[tuple(np.argwhere(frac)[0])]
                raise ValueError(f"{self.name}: codes must be integers (use execute() for "
                                 f"floats): {v} at {_where(frac)}")
        if a.size:
            out = (a < dt.min) | (a > dt.max)
            if out.any():
                v = a[tuple(np.argwhere(out)[0])]
                raise ValueError(f"{self.name}: codes span [{a.min()}, {a.max()}], outside "
                                 f"{dt.name} [{dt.min}, {dt.max}]: first {v} at "
                                 f"{_where(out)} ({int(out.sum())} value(s) out of range)")
            beyond = a > self.code_max
            if beyond.any():
                v = a[tuple(np.argwhere(beyond)[0])]
                raise ValueError(f"{self.name}: code {v} at {_where(beyond)} is past the "
                                 f"codebook's {self.code_max - self.code_min + 1} levels "
                                 f"(codes {self.code_min}..{self.code_max}; "
                                 f"{int(beyond.sum())} value(s))")
        return a.astype(np.int64)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "shape": list(self.shape),
                             "datatype": self.datatype, "post": self.post}
        if self.scale is not None:
            d["scale"] = self.scale
            d["float_to_code"] = "clip(round_half_even(x / scale), min, max)"
            d["code_to_float"] = "code * scale"
        else:
            if self.per_feature:
                d["codebook"] = [list(r) for r in self.codebook or ()]
                d["code_to_float"] = "codebook[feature][code - min]"
            else:
                d["codebook"] = list(self.codebook or ())
                d["code_to_float"] = "codebook[code - min]"
        if self.doc:
            d["doc"] = self.doc
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TensorSpec:
        cb = d.get("codebook")
        return cls(name=str(d["name"]), shape=tuple(int(s) for s in d["shape"]),
                   datatype=str(d["datatype"]),
                   scale=None if d.get("scale") is None else float(d["scale"]),
                   codebook=_codebook(cb),
                   post=str(d.get("post", "scale")), doc=str(d.get("doc", "")))


@dataclass(frozen=True)
class IOSpec:
    """Named inputs and outputs of a deployable network, in graph order."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        names = [t.name for t in self.inputs + self.outputs]
        if not self.inputs or not self.outputs:
            raise ValueError("an I/O spec needs at least one input and one output")
        if len(set(names)) != len(names):
            raise ValueError(f"tensor names must be unique: {names}")

    def input(self, name: str) -> TensorSpec:
        return _by_name(self.inputs, name, "input")

    def output(self, name: str) -> TensorSpec:
        return _by_name(self.outputs, name, "output")

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    @property
    def version(self) -> int:
        """The lowest spec version that holds this spec (2 iff a per-feature codebook)."""
        per_feature = any(t.per_feature for t in self.inputs + self.outputs)
        return PER_FEATURE_CODEBOOK_VERSION if per_feature else SPEC_VERSION

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "inputs": [t.to_json() for t in self.inputs],
                "outputs": [t.to_json() for t in self.outputs], **self.meta}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> IOSpec:
        if d.get("version") not in READ_VERSIONS:
            raise ValueError(f"I/O spec version {d.get('version')!r}; this code reads "
                             f"{', '.join(map(str, READ_VERSIONS))}")
        meta = {k: v for k, v in d.items() if k not in ("version", "inputs", "outputs")}
        return cls(tuple(TensorSpec.from_json(t) for t in d["inputs"]),
                   tuple(TensorSpec.from_json(t) for t in d["outputs"]), meta)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> IOSpec:
        return cls.from_json(json.loads(Path(path).read_text()))


def _by_name(tensors: tuple[TensorSpec, ...], name: str, kind: str) -> TensorSpec:
    for t in tensors:
        if t.name == name:
            return t
    raise KeyError(f"no {kind} named {name!r}; {kind}s: {[t.name for t in tensors]}")


def mismatching_vectors(check: str, got: Mapping[str, np.ndarray] | np.ndarray,
                        expected: Mapping[str, np.ndarray] | np.ndarray) -> np.ndarray:
    """(N,) bool: a vector mismatches if any code of any named tensor differs (``==`` on
    integers, the one meaning of bit-exact). Arrays stand for a single tensor."""
    g = got if isinstance(got, Mapping) else {"": got}
    e = expected if isinstance(expected, Mapping) else {"": expected}
    if set(g) != set(e):
        raise AssertionError(f"{check}: tensors {sorted(g)} != expected {sorted(e)}")
    n = len(next(iter(e.values())))
    bad = np.zeros(n, bool)
    for k in e:
        if g[k].shape != e[k].shape:
            raise AssertionError(f"{check}: {k or 'output'} shape {g[k].shape} != "
                                 f"expected {e[k].shape}")
        bad |= np.any(np.reshape(g[k], (n, -1)) != np.reshape(e[k], (n, -1)), axis=1)
    return bad


# --- golden vectors: named integer tensors ------------------------------------------------

IN_PREFIX, OUT_PREFIX = "in:", "out:"


@dataclass
class Golden:
    """Golden vectors: named input and output codes (N, features), set labels, tie counts."""

    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    sets: np.ndarray
    ties: np.ndarray

    def __len__(self) -> int:
        return len(self.sets)

    def single(self) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, outputs) arrays of a one-input, one-output network."""
        if len(self.inputs) != 1 or len(self.outputs) != 1:
            raise ValueError(f"golden vectors of {list(self.inputs)} -> {list(self.outputs)}: "
                             "not a one-input, one-output network")
        return next(iter(self.inputs.values())), next(iter(self.outputs.values()))

    def to_npz(self) -> dict[str, np.ndarray]:
        d = {f"{IN_PREFIX}{k}": v for k, v in self.inputs.items()}
        d.update({f"{OUT_PREFIX}{k}": v for k, v in self.outputs.items()})
        d.update({"set": self.sets, "ties": self.ties})
        return d

    @classmethod
    def load(cls, path: Path) -> Golden:
        with np.load(path) as z:
            ins = {k[len(IN_PREFIX):]: z[k].astype(np.int64) for k in z.files
                   if k.startswith(IN_PREFIX)}
            outs = {k[len(OUT_PREFIX):]: z[k].astype(np.int64) for k in z.files
                    if k.startswith(OUT_PREFIX)}
            if not ins and "inputs" in z.files:  # packages written before named tensors
                ins, outs = {"in0": z["inputs"].astype(np.int64)}, {
                    "out0": z["outputs"].astype(np.int64)}
            sets = z["set"] if "set" in z.files else np.full(len(next(iter(ins.values()))),
                                                               "all")
            ties = z["ties"] if "ties" in z.files else np.zeros(len(sets), np.int64)
        return cls(ins, outs, sets, ties)
