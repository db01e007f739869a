"""Typed schema of design and board configurations (pydantic v2).

In the spirit of FINN's ``DataflowBuildConfig``: every key is a typed field with a
description. The schema only *validates*: ``configs.load_design``/``load_board`` still
return the YAML's own dict, so a valid file gives exactly the dict it gave before (no
defaults are injected; the build hashes these dicts).

Rules that hold everywhere:

* unknown keys are refused (``extra="forbid"``), with a "did you mean" suggestion;
* scalars are strict: ``"48"`` is not an integer, ``6.0`` is not an integer, ``true`` is
  not a number (PyYAML reads ``1e-3`` without a decimal point as a *string*; the error
  says so);
* every problem in a file is reported at once, in a :class:`ConfigError` that names the
  file, the key path (``model.weight_bits``), the value and what is allowed.

Ranges come from what the flow supports (see each field's description): ``zoo/blocks.py``
and ``zoo/network.py`` (Brevitas quantizers, 16-bit biases only, signed fixed-point in/out
quantizers, codebook heads), ``zoo/datasets.py`` / ``phy`` (data kinds and features),
``train/tasks`` (training tasks) and ``hw`` (FINN, Yosys).

A design's shape (see :class:`Design`):

* ``data`` is a union on ``kind``: ``mimo_llr`` (:class:`MimoLlrData`) or
  ``synthetic_teacher`` (:class:`SyntheticTeacherData`);
* ``model`` has one of two layouts, told apart by its keys, not by the family: the
  *paths* layout (:class:`PathsModel`, ``zoo.network.QuantNet``: named ``inputs``, one
  dense ``paths`` entry and head per named output) when it has ``inputs`` or ``paths``,
  else the single-MLP layout (:class:`ModelConfig`, ``zoo.blocks.QuantMLP``);
* ``train.task`` (optional) names the training task; omitted, it is the registry's
  default, which this schema takes as ``reconstruction`` for the single-MLP layout and
  ``regression`` for the paths layout (checked against ``zoo.registry`` by
  tests/test_train_tasks.py). ``decoder_hidden``/``loss``/``loss_eps`` belong to, and are
  required by, the reconstruction task only.

Union tags never appear in key paths: an error says ``model.paths.p.head.bits``.
"""

from __future__ import annotations

import difflib
import math
import re
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    Tag,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

__all__ = [
    "Board",
    "ConfigError",
    "Design",
    "Problem",
    "read_yaml",
    "validate_board_file",
    "validate_design_file",
    "validate_file",
]


# ---------------------------------------------------------------------------------------
# Errors


@dataclass(frozen=True)
class Problem:
    """One problem in a configuration file: the key path ('' = the whole file) and what."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}" if self.key else self.message


class ConfigError(ValueError):
    """A design or board YAML file that is not valid; lists every problem found.

    ``path`` is the YAML file, ``problems`` the list of :class:`Problem` (key path and
    message naming the bad value and what is allowed).
    """

    def __init__(self, path: str | Path, problems: Sequence[Problem | str],
                 kind: str = "") -> None:
        self.path = Path(path)
        self.kind = kind
        self.problems = [p if isinstance(p, Problem) else Problem("", str(p)) for p in problems]
        super().__init__(self._format())

    def _format(self) -> str:
        n = len(self.problems)
        what = f"{self.kind} configuration" if self.kind else "configuration"
        if n == 1:
            return f"{self.path}: invalid {what}: {self.problems[0]}"
        lines = [f"{self.path}: invalid {what} ({n} problems):"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)

    def __reduce__(self):  # picklable despite the custom __init__
        return (type(self), (self.path, self.problems, self.kind))


# ---------------------------------------------------------------------------------------
# Field helpers


def _f(allowed: str, description: str, extra: dict[str, Any] | None = None,
       **kw: Any) -> Any:
    """A pydantic Field whose ``allowed`` text is quoted by error messages (``extra``: more
    keys for ``json_schema_extra``, e.g. a union's ``tag_key``)."""
    return Field(description=f"{description} Allowed: {allowed}.",
                 json_schema_extra={"allowed": allowed, **(extra or {})}, **kw)


def _number(gt: float | None = None, ge: float | None = None, le: float | None = None
            ) -> Any:
    """A finite int or float (kept as given: 100 stays 100, so dumps equal the YAML)."""

    def check(v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise PydanticCustomError("number_type", "not a number")
        if not math.isfinite(v):
            raise PydanticCustomError("finite_number", "not a finite number")
        if gt is not None and not v > gt:
            raise PydanticCustomError("greater_than", "must be > {gt}", {"gt": gt})
        if ge is not None and not v >= ge:
            raise PydanticCustomError("greater_than_equal", "must be >= {ge}", {"ge": ge})
        if le is not None and not v <= le:
            raise PydanticCustomError("less_than_equal", "must be <= {le}", {"le": le})
        return v

    schema: dict[str, Any] = {"type": "number"}
    if gt is not None:
        schema["exclusiveMinimum"] = gt
    if ge is not None:
        schema["minimum"] = ge
    return Annotated[int | float, PlainValidator(check), WithJsonSchema(schema)]


PositiveNumber = _number(gt=0)


def _number_or(word: str, gt: float) -> Any:
    """A number > ``gt`` or the string ``word`` (one validator, so that an error names the
    key once, not once per union branch)."""
    check = _number(gt=gt).__metadata__[0].func

    def check_or(v: Any) -> Any:
        return v if v == word else check(v)

    schema = {"anyOf": [{"type": "number", "exclusiveMinimum": gt}, {"const": word}]}
    return Annotated[int | float | str, PlainValidator(check_or), WithJsonSchema(schema)]
Number = _number()
PositiveInt = Annotated[int, Field(strict=True, gt=0)]
NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class _Strict(BaseModel):
    """Base: unknown keys refused, scalars strict (no str -> int, no float -> int)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _cross(key: str, message: str, allowed: str) -> PydanticCustomError:
    """An error that involves several keys, attributed to ``key`` (relative to the model)."""
    return PydanticCustomError("config_cross", message, {"key": key, "allowed": allowed})


# ---------------------------------------------------------------------------------------
# Design

def _choices(names: Iterable[str]) -> str:
    """'a', 'b' or 'c'."""
    q = [repr(n) for n in names]
    return q[0] if len(q) == 1 else f"{', '.join(q[:-1])} or {q[-1]}"


#: Training tasks (train.tasks.TASKS; tests/test_train_tasks.py checks the two agree).
TASK_NAMES = ("reconstruction", "regression", "classification", "eqnet_stage1",
              "eqnet_stage2", "eqnet_joint", "from_run", "bae_autoencoder")
#: Default task by model layout when train.task is omitted (the registry's default,
#: zoo.registry.task_of; tests/test_train_tasks.py checks it for every shipped design).
DEFAULT_TASK = {"mlp": "reconstruction", "paths": "regression"}
#: Tensor names of the I/O contract (ONNX tensor names, stream names, Python keywords).
IDENT_RE = r"^[A-Za-z_][A-Za-z0-9_]*$"
IDENT_ALLOWED = "an identifier (letters, digits and '_', not starting with a digit)"


def _lo_le_hi(v: list[float] | None) -> list[float] | None:
    """A validator of an SNR range [lo, hi]: refuses lo > hi."""
    if v is not None and v[0] > v[1]:
        raise PydanticCustomError("snr_order", "lo > hi")
    return v


class MimoLlrData(_Strict):
    """``kind: mimo_llr``: the link-level simulation that produces LLR features."""

    kind: Literal["mimo_llr"] = _f(
        "'mimo_llr'",
        "Data set (zoo.datasets): exact ML LLRs of an n_t x n_r i.i.d. Rayleigh MIMO link "
        "with Gray QAM (phy.datasets.mimo_llr_dataset).")
    n_t: PositiveInt = _f("integer >= 1", "Transmit antennas (spatial streams).")
    n_r: PositiveInt = _f("integer >= 1", "Receive antennas.")
    bits_per_symbol: PositiveInt = _f(
        "1 (BPSK) or an even integer >= 2 (QAM: 2 = QPSK, 4 = 16-QAM, 6 = 64-QAM, ...)",
        "Bits per constellation symbol (phy.constellation).")
    snr_db: list[Number] = _f(
        "a pair [lo, hi] of numbers with lo <= hi (or give snr_points instead)",
        "SNR range in dB (E_s/N0); each sample's SNR is uniform in [lo, hi].",
        min_length=2, max_length=2, default=None)
    snr_points: list[Number] = _f(
        "a list of 1 to 64 numbers (or give snr_db instead)",
        "Discrete SNRs in dB (E_s/N0), the samples cycling through them (EQ-Net trains on "
        "six log-spaced SNRs).", min_length=1, max_length=64, default=None)
    feature: Literal["soft_bits", "llr"] = _f(
        "'soft_bits' or 'llr' (the single-MLP layout's input; may be omitted for the "
        "paths layout, whose inputs name the features)",
        "Network input: 'soft_bits' = tanh(L/2), 'llr' = L itself (L = ln P(b=1)/P(b=0)).",
        default=None)

    @model_validator(mode="after")
    def _one_snr_key(self) -> MimoLlrData:
        given = [k for k in ("snr_db", "snr_points") if k in self.model_fields_set]
        if len(given) != 1:
            raise _cross("snr_db", "both snr_db and snr_points given" if given else
                         "missing required key", "snr_db: [lo, hi] or snr_points: [...], "
                         "exactly one of them")
        return self

    def features(self) -> dict[str, int]:
        """Features per named float feature of this data set (zoo.datasets._mimo_llr)."""
        bits = self.n_t * self.bits_per_symbol
        return {"llr": bits, "soft_bits": bits, "bits": bits, "y": 2 * self.n_r,
                "H": 2 * self.n_r * self.n_t, "noise_std": 1}

    @field_validator("bits_per_symbol")
    @classmethod
    def _qam(cls, v: int) -> int:
        if v != 1 and v % 2:
            raise PydanticCustomError("bits_per_symbol", "not 1 and not even")
        return v

    _ordered = field_validator("snr_db")(_lo_le_hi)


class SyntheticTeacherData(_Strict):
    """``kind: synthetic_teacher``: random inputs on each input's code range and targets
    from a fixed random teacher per output path (needs the paths model layout)."""

    kind: Literal["synthetic_teacher"] = _f(
        "'synthetic_teacher'",
        "Data set (zoo.datasets): Gaussian inputs clipped to each model.inputs range, "
        "targets target:<output> = activation(teacher(input of the path)).")
    teacher_seed: Annotated[int, Field(strict=True, ge=0)] = _f(
        "integer >= 0 (may be omitted; default 0)",
        "Seed of the teacher's weights (the recipe's seed draws the inputs).", default=None)


class BaeLinkData(_Strict):
    """``kind: bae_link``: the Tanh bit-wise autoencoder's link (phy.coupled_mimo): random
    bits, the transmitter's symbols through y = H x + n with a fixed real H."""

    kind: Literal["bae_link"] = _f(
        "'bae_link'",
        "Data set (zoo.datasets): k * n_t random bits; y = H x + n with x the trained "
        "transmitter's symbols (runs/<design>), H unit-diagonal with `coupling` elsewhere.")
    n_t: PositiveInt = _f("integer >= 1", "Antennas (n_t = n_r).")
    bits_per_antenna: PositiveInt = _f("integer >= 1", "k: bits per antenna and channel use.")
    coupling: _number(ge=0, le=1) = _f(
        "a number in [0, 1] (0: AWGN, H = I)", "Off-diagonal coefficient of the real H.")
    snr_db: list[Number] = _f(
        "a pair [lo, hi] of numbers with lo <= hi (lo = hi: a single SNR)",
        "Training SNR range in dB, 10 log10(2 / sigma^2) (phy.coupled_mimo): uniform per "
        "vector.", min_length=2, max_length=2)

    def features(self) -> dict[str, int]:
        """Features per named float feature (zoo.datasets._bae_link)."""
        return {"bits": self.bits_per_antenna * self.n_t, "x": 2 * self.n_t,
                "y": 2 * self.n_t}

    _ordered = field_validator("snr_db")(_lo_le_hi)


DATA_KINDS = {"mimo_llr": MimoLlrData, "synthetic_teacher": SyntheticTeacherData,
              "bae_link": BaeLinkData}


def tag_by(key: str, default: str) -> Callable[[Any], str | None]:
    """A pydantic discriminator reading ``key`` (None: missing; a non-mapping goes to
    ``default``, which reports 'a mapping'; a validated model: its own value, for dumps)."""

    def tag(v: Any) -> str | None:
        if isinstance(v, BaseModel):
            return getattr(v, key, None)
        if not isinstance(v, dict):
            return default
        value = v.get(key)
        if value is None:
            return None
        return value if isinstance(value, str) else "\0not-a-string"

    return tag


_data_tag = tag_by("kind", "mimo_llr")


DataConfig = Annotated[
    Union[tuple(Annotated[c, Tag(k)] for k, c in DATA_KINDS.items())],  # noqa: UP007
    Discriminator(_data_tag)]


class InputQuant(_Strict):
    """Input quantizer: signed fixed-point codes with the constant scale 2**scale_log2."""

    bits: Annotated[int, Field(strict=True, ge=2, le=16)] = _f(
        "integer 2..16",
        "Input code width (the first MVU's input width). 1 bit is refused: a signed 1-bit "
        "code holds only {-1, 0} (narrow: {0}).")
    signed: Literal[True] = _f(
        "true (may be omitted)",
        "Signed codes; zoo.blocks builds signed (INT) fixed-scale quantizers only.",
        default=True)
    narrow: bool = _f("true or false (may be omitted; default false)",
                      "Narrow range: -(2**(bits-1)-1) .. 2**(bits-1)-1.", default=False)
    scale_log2: Annotated[int, Field(strict=True, ge=-32, le=32)] = _f(
        "integer -32..32", "Scale exponent: code k represents k * 2**scale_log2.")


class OutQuant(InputQuant):
    """Output quantizer (after the output activation): signed fixed-point codes."""

    bits: Annotated[int, Field(strict=True, ge=2, le=8)] = _f(
        "integer 2..8",
        "Output code width. It becomes a FINN MultiThreshold with 2**bits - 1 thresholds per "
        "channel (the same ceiling as act_bits); 1 bit is degenerate for signed codes.")


# Fields shared by both model layouts (fresh FieldInfo per class).
WeightBits = Annotated[int, Field(strict=True, ge=2, le=8)]
ActBits = Annotated[int, Field(strict=True, ge=1, le=8)]
BiasBits = Annotated[int, Field(strict=True, ge=16, le=16)]
Ident = Annotated[str, Field(strict=True, pattern=IDENT_RE)]


def _weight_bits() -> Any:
    return _f("integer 2..8",
              "Weight width of every QuantLinear (per-tensor power-of-two scale). The MVU's "
              "realistic range is 1..8, but Brevitas' weight quantizer is narrow-range, so 1 "
              "bit gives all-zero weights: 2..8.")


def _act_bits() -> Any:
    return _f("integer 1..8",
              "Unsigned hidden ReLU activation width; FINN thresholds: 2**bits - 1 per "
              "channel.")


def _bias_bits(**kw: Any) -> Any:
    return _f("16" + (" (may be omitted; default 16)" if kw else ""),
              "Bias width on the accumulator scale; zoo.blocks supports Int16Bias only.", **kw)


class ModelConfig(_Strict):
    """The single-MLP layout: one input, one output (zoo.blocks.QuantMLP; EQ-Net's f_Q)."""

    in_features: PositiveInt = _f(
        "integer >= 1, equal to data.n_t * data.bits_per_symbol",
        "Network inputs: one per transmitted bit of a channel use.")
    input_quant: InputQuant = _f("a mapping with bits, signed, narrow, scale_log2",
                                 "Input quantizer.")
    hidden: list[PositiveInt] = _f(
        "a non-empty list of integers >= 1",
        "Widths of the hidden layers (QuantLinear + QuantReLU each).", min_length=1)
    weight_bits: WeightBits = _weight_bits()
    act_bits: ActBits = _act_bits()
    bias_bits: BiasBits = _bias_bits()
    out_features: PositiveInt = _f("integer >= 1", "Network outputs (latent codes).")
    out_activation: Literal["tanh", "sigmoid", "none"] = _f(
        "'tanh', 'sigmoid' or 'none' (may be omitted; default 'none')",
        "Activation before the output quantizer (zoo.blocks.OUTPUT_ACTIVATIONS).",
        default="none")
    out_quant: OutQuant = _f("a mapping with bits, signed, narrow, scale_log2",
                             "Output quantizer.")
    input_name: Ident = _f(
        f"{IDENT_ALLOWED} (may be omitted; the builder names it, e.g. by data.feature)",
        "Name of the input tensor in the I/O contract.", default=None)
    output_name: Ident = _f(
        f"{IDENT_ALLOWED} (may be omitted; the builder names it, e.g. 'latent')",
        "Name of the output tensor in the I/O contract.", default=None)

    @model_validator(mode="after")
    def _names(self) -> ModelConfig:
        if self.input_name is not None and self.input_name == self.output_name:
            raise _cross("output_name", f"{self.output_name!r} is also the input_name",
                         "a name different from input_name")
        return self


class InputDecl(_Strict):
    """One named input of the paths layout: signed fixed-point codes, scale 2**scale_log2
    (``kind: quant``), or indices into one table of levels per feature (``kind:
    codebook``, zoo.network.CodebookInput: the levels are integers of ``bits`` bits on
    the grid 2**scale_log2)."""

    kind: Literal["quant", "codebook"] = _f(
        "'quant' or 'codebook' (may be omitted; default 'quant')",
        "'quant': INT<bits> codes, value = code * 2**scale_log2; 'codebook': UINT indices "
        "into `levels` levels per feature (e.g. EQ-Net g reading f_Q's k-means indices).",
        default="quant")
    features: PositiveInt = _f("integer >= 1", "Features per vector of this input.")
    bits: Annotated[int, Field(strict=True, ge=2, le=16)] = _f(
        "integer 2..16", "Input code width (signed INT codes); for a codebook input the "
        "width of its integer levels.")
    scale_log2: Annotated[int, Field(strict=True, ge=-32, le=32)] = _f(
        "integer -32..32", "Scale exponent: code k represents k * 2**scale_log2 (a codebook "
        "input: its levels' grid).")
    levels: Annotated[int, Field(strict=True, ge=2, le=256)] = _f(
        "integer 2..256 (codebook inputs only, required there)",
        "Levels per feature of a codebook input.", default=None)

    @model_validator(mode="after")
    def _levels(self) -> InputDecl:
        given = "levels" in self.model_fields_set
        if self.kind == "quant" and given:
            raise _cross("levels", "given for a 'quant' input", "omit it, or kind: codebook")
        if self.kind == "codebook":
            if not given:
                raise _cross("levels", "missing required key (kind is 'codebook')",
                             "integer 2..256")
            if self.levels > 2 ** self.bits - 1:
                raise _cross("levels", f"{self.levels} distinct levels do not fit "
                             f"{self.bits}-bit narrow integers",
                             f"integer 2..{2 ** self.bits - 1}, or more bits")
        return self


class HeadConfig(_Strict):
    """An output head (zoo.network): activation -> fixed quantizer (``quant``), -> fine
    fixed quantizer -> k-means codebook index (``codebook``), or -> per-feature k-means
    decision boundaries -> index (``kmeans``, EQ-Net's latent quantizer)."""

    kind: Literal["quant", "codebook", "kmeans"] = _f(
        "'quant', 'codebook' or 'kmeans'",
        "'quant': codes INT<bits>, value = code * 2**scale_log2; 'codebook': UINT indices "
        "into `levels` values learned by k-means on the fine quantizer's output; 'kmeans': "
        "UINT indices of `levels` k-means levels per feature, fitted on the activation "
        "(exact integer thresholds in hardware).")
    activation: Literal["tanh", "sigmoid", "none"] = _f(
        "'tanh', 'sigmoid' or 'none'", "Activation before the (fine) quantizer.")
    bits: Annotated[int, Field(strict=True, ge=2, le=8)] = _f(
        "integer 2..8 (quant and codebook heads; omit it for kmeans)",
        "(Fine) quantizer width: a FINN MultiThreshold with 2**bits - 1 thresholds.",
        default=None)
    scale_log2: Annotated[int, Field(strict=True, ge=-32, le=32)] = _f(
        "integer -32..32 (quant and codebook heads; omit it for kmeans)",
        "(Fine) quantizer scale exponent.", default=None)
    narrow: bool = _f("true or false (may be omitted; default false)",
                      "Narrow range: -(2**(bits-1)-1) .. 2**(bits-1)-1.", default=False)
    levels: Annotated[int, Field(strict=True, ge=2, le=256)] = _f(
        "integer 2..256, at most the fine quantizer's codes (codebook and kmeans heads "
        "only, required there)", "Codebook size (k of k-means).", default=None)
    noise_std: Annotated[float, Field(strict=True, ge=0)] = _f(
        "a number >= 0 (kmeans heads only; may be omitted, default 0)",
        "Gaussian noise added to the activation in training before the k-means fit (EQ-Net's "
        "sigma_u = 0.001, the training-time stand-in for the quantizer).", default=None)

    @model_validator(mode="after")
    def _levels(self) -> HeadConfig:
        given = self.model_fields_set
        if self.kind == "kmeans":
            for k in ("bits", "scale_log2", "narrow"):
                if k in given:
                    raise _cross(k, "given for a 'kmeans' head (its levels are floats; the "
                                 "index width follows from levels)", "omit it")
        else:
            for k in ("bits", "scale_log2"):
                if k not in given:
                    raise _cross(k, f"missing required key (kind is {self.kind!r})",
                                 _allowed(HeadConfig.model_fields[k]) or "")
            if "noise_std" in given:
                raise _cross("noise_std", f"given for a {self.kind!r} head",
                             "omit it, or kind: kmeans")
        if self.kind == "quant" and "levels" in given:
            raise _cross("levels", "given for a 'quant' head",
                         "omit it, or kind: codebook or kmeans")
        if self.kind in ("codebook", "kmeans") and "levels" not in given:
            raise _cross("levels", f"missing required key (kind is {self.kind!r})",
                         "integer 2..256")
        if self.kind == "codebook":
            codes = 2 ** self.bits - (1 if self.narrow else 0)
            if self.levels > codes:
                raise _cross("levels", f"{self.levels} levels > the {codes} codes of the "
                             f"{self.bits}-bit fine quantizer", f"integer 2..{codes}")
        return self


class PathConfig(_Strict):
    """One output's dense path: input -> [QuantLinear -> QuantReLU]* -> QuantLinear -> head."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True,
                              serialize_by_alias=True)

    from_: Annotated[str, Field(strict=True, min_length=1)] | list[
        Annotated[str, Field(strict=True, min_length=1)]] = _f(
        "the name of one of model.inputs, or a list of 2 or more of them with the same bits "
        "and scale_log2 (concatenated through one shared quantizer)",
        "The input(s) this path reads.", alias="from")
    hidden: list[PositiveInt] = _f(
        "a list of integers >= 1 (may be empty: one QuantLinear)",
        "Widths of the hidden layers (QuantLinear + QuantReLU each).")
    input_layers: dict[str, PositiveInt] = _f(
        "a mapping input name -> width (integer >= 1) naming every input of `from` (may be "
        "omitted)",
        "One Dense layer per input before the concatenation, joined by one ReLU quantizer: "
        "inputs on different grids (EQ-Net f_E's y, H and sigma).", default=None)
    branches: Annotated[int, Field(strict=True, ge=1, le=256)] = _f(
        "an integer 1..256 (default 1)",
        "Parallel copies of the stack reading the same input, their outputs concatenated "
        "before the head (EQ-Net g: 12 branches of out_features 1).", default=1)
    residual_blocks: Annotated[int, Field(strict=True, ge=0, le=16)] = _f(
        "an integer 0..16 (default 0); needs at least one hidden layer",
        "Residual blocks after the hidden layers: x -> q(x + Linear(ReLU-q(Linear(x)))) at "
        "the last hidden width, both adds on one shared quantizer.", default=0)
    out_features: PositiveInt = _f("integer >= 1", "Features of this output (per branch).")
    head: HeadConfig = _f("a mapping with kind, activation, bits, scale_log2 (narrow, levels)",
                          "The output head.")


class PathsModel(_Strict):
    """The paths layout: named inputs, one dense path and head per named output
    (zoo.network.QuantNet). Selected by the presence of ``inputs`` or ``paths``."""

    inputs: dict[str, InputDecl] = _f(
        f"a non-empty mapping name -> {{features, bits, scale_log2}} (or {{kind: codebook, "
        f"features, levels, bits, scale_log2}}); names: {IDENT_ALLOWED}",
        "Named inputs in graph order (the contract's input streams).", min_length=1)
    paths: dict[str, PathConfig] = _f(
        f"a non-empty mapping output name -> {{from, hidden, out_features, head}}; names: "
        f"{IDENT_ALLOWED}, unique across inputs and outputs",
        "One dense path per named output, in graph order (the contract's output streams).",
        min_length=1)
    weight_bits: WeightBits = _weight_bits()
    act_bits: ActBits = _act_bits()
    bias_bits: BiasBits = _bias_bits(default=None)
    batch_norm: bool = _f("true or false (may be omitted; default false)",
                          "BatchNorm1d after every hidden QuantLinear.", default=False)

    @model_validator(mode="after")
    def _names(self) -> PathsModel:
        for section, names in (("inputs", self.inputs), ("paths", self.paths)):
            for n in names:
                if not re.match(IDENT_RE, n):
                    raise _cross(f"{section}.{n}", f"tensor name {n!r} is not an identifier",
                                 IDENT_ALLOWED)
        for o in self.paths:
            if o in self.inputs:
                raise _cross(f"paths.{o}", f"output name {o!r} is also an input name",
                             "names unique across inputs and outputs")
        for o, p in self.paths.items():
            srcs = [p.from_] if isinstance(p.from_, str) else p.from_
            for src in srcs:
                if src not in self.inputs:
                    raise _cross(f"paths.{o}.from", f"{src!r} is not an input",
                                 _choices(self.inputs))
            if p.input_layers is not None and set(p.input_layers) != set(srcs):
                raise _cross(f"paths.{o}.input_layers", f"names {sorted(p.input_layers)}, "
                             f"from names {srcs}", "one width for every input of from")
            if not isinstance(p.from_, str):
                grids = {(self.inputs[i].bits, self.inputs[i].scale_log2) for i in srcs}
                one_grid = len(grids) == 1 and not any(
                    self.inputs[i].kind == "codebook" for i in srcs)
                if len(srcs) < 2 or len(set(srcs)) != len(srcs) or not (
                        one_grid or p.input_layers):
                    raise _cross(f"paths.{o}.from", f"{srcs} cannot be concatenated",
                                 "2 or more distinct inputs with the same bits and "
                                 "scale_log2 (one shared quantizer), or input_layers")
            if p.residual_blocks and not p.hidden:
                raise _cross(f"paths.{o}.residual_blocks", "residual blocks need a hidden "
                             "layer", "hidden with at least one width")
        return self


def _model_tag(v: Any) -> str:
    """Discriminator of ``model``: the paths layout iff ``inputs`` or ``paths`` is present."""
    if isinstance(v, BaseModel):
        return "paths" if isinstance(v, PathsModel) else "mlp"
    return "paths" if isinstance(v, dict) and ("inputs" in v or "paths" in v) else "mlp"


ModelLayout = Annotated[
    Union[Annotated[ModelConfig, Tag("mlp")], Annotated[PathsModel, Tag("paths")]],  # noqa: UP007
    Discriminator(_model_tag)]


class Recipe(_Strict):
    """One training recipe (``python -m train --recipe NAME``)."""

    samples: PositiveInt = _f("integer >= batch_size", "Training vectors generated.")
    epochs: PositiveInt = _f("integer >= 1", "Passes over the training vectors.")
    batch_size: PositiveInt = _f("integer >= 1, <= samples", "Mini-batch size.")
    lr: PositiveNumber = _f("a number > 0 (write 1.0e-3, not 1e-3)",
                            "Peak learning rate (Adam, one-cycle schedule).")
    seed: Annotated[int, Field(strict=True, ge=0)] = _f(
        "integer >= 0", "Seed of torch and of the data (seed + 1: validation data).")

    @model_validator(mode="after")
    def _one_step(self) -> Recipe:
        if self.samples < self.batch_size:
            raise _cross("samples", f"{self.samples} samples < batch_size {self.batch_size}: "
                         "an epoch would have no step", "samples >= batch_size")
        return self




class SourceConfig(_Strict):
    """Where a ``from_run`` design's trained state comes from."""

    design: Annotated[str, Field(strict=True, pattern=NAME_RE)] = _f(
        "a design name", "The design whose run holds the state (runs/<design>).")
    key: Annotated[str, Field(strict=True, min_length=1)] = _f(
        "a checkpoint key, e.g. 'decoder'", "The entry of that run's checkpoint.pt.")


#: Keys read only by some tasks: task -> (required keys, optional keys).
TASK_KEYS = {"reconstruction": (("decoder_hidden", "loss", "loss_eps"), ()),
             "eqnet_stage1": (("decoder_design", "loss_eps"), ("finetune_epochs",)),
             "eqnet_stage2": (("teacher_design",), ()),
             "eqnet_joint": (("decoder_design", "loss_eps"), ("finetune_epochs",)),
             "from_run": (("source",), ()),
             "bae_autoencoder": (("transmitter_design",), ())}


class TrainConfig(_Strict):
    """Quantization-aware training (train/__main__.py, train/tasks)."""

    task: Literal[TASK_NAMES] = _f(  # type: ignore[valid-type]
        _choices(TASK_NAMES) + " (may be omitted: the registry's "
        "default for family/network, which is 'reconstruction' for the single-MLP layout "
        "and 'regression' for the paths layout)",
        "Training task (train.tasks.TASKS).", default=None)
    decoder_hidden: list[PositiveInt] = _f(
        "a list of integers >= 1 (reconstruction task only, required there)",
        "Hidden widths of the training-only float decoder.", default=None)
    loss: Literal["mse", "weighted_mse"] = _f(
        "'mse' or 'weighted_mse' (reconstruction task only, required there)",
        "Reconstruction loss on the network inputs.", default=None)
    loss_eps: PositiveNumber = _f(
        "a number > 0, write 1.0e-6, not 1e-6 (reconstruction task only, required there)",
        "eps of weighted_mse's weight 1/(|x| + eps); read even when loss is 'mse'.",
        default=None)
    decoder_design: Annotated[str, Field(strict=True, pattern=NAME_RE)] = _f(
        "a design name (eqnet_stage1 and eqnet_joint only, required there)",
        "The deployed decoder g trained jointly with this encoder (train.tasks.eqnet).",
        default=None)
    finetune_epochs: Annotated[int, Field(strict=True, ge=0)] = _f(
        "an integer >= 0 (eqnet_stage1 and eqnet_joint only; default 0)",
        "Epochs of g alone on the k-means-quantized latents after the fit, the encoder "
        "frozen.",
        default=None)
    teacher_design: Annotated[str, Field(strict=True, pattern=NAME_RE)] = _f(
        "a design name (eqnet_stage2 only, required there)",
        "The f_Q whose run (runs/<design>: f_Q and its deployed g) this f_E learns from.",
        default=None)
    transmitter_design: Annotated[str, Field(strict=True, pattern=NAME_RE)] = _f(
        "a design name (bae_autoencoder only, required there)",
        "The deployed transmitter trained end to end with this receiver (train.tasks.bae).",
        default=None)
    source: SourceConfig = _f(
        "a mapping {design, key} (from_run only, required there)",
        "The checkpoint entry this design's network takes (runs/<design>/checkpoint.pt).",
        default=None)
    recipes: dict[str, Recipe] = _f("a non-empty mapping name -> recipe",
                                    "Training recipes by name.", min_length=1)


class ExportConfig(_Strict):
    """QONNX export and golden vectors (export/__main__.py)."""

    golden_vectors: PositiveInt = _f(
        "integer >= 1", "Channel-simulation golden vectors (ties and extremes on top).")


class HwConfig(_Strict):
    """FINN flow settings (hw/flow.py, hw/build.py)."""

    target_fps: _number_or("max", gt=0) = _f(
        "a number > 0, or max (may be omitted if folding_config is given)",
        "Target throughput (vectors/s) for FINN's SetFolding; max: the fastest "
        "configuration (folding and impl) that fits the board (hw/speed.py).", default=None)
    folding_config: Annotated[str, Field(strict=True, min_length=1)] | None = _f(
        "null or a non-empty path string",
        "A FINN folding JSON (relative to the repository root); overrides target_fps.",
        default=None)
    impl: Literal["folded", "unrolled", "auto"] | dict[
            str, Literal["folded", "unrolled"]] = _f(
        "folded, unrolled, auto, or a mapping {layer name or default: folded|unrolled}",
        "Dense layers as FINN's folded MVAU/Thresholding RTL, or as the unrolled latency "
        "backend (hw/unrolled_rtl.py, II = 1, no DSPs); auto: chosen by the search "
        "(hw/speed.py).", default="folded")
    unroll_cutoff: PositiveNumber = _f(
        "a number > 0", "da4ml adder levels per pipeline stage of unrolled layers.",
        default=2.0)
    utilization_ceiling: _number(gt=0, le=1) = _f(
        "a number in (0, 1]", "Fraction of the part's LUT/FF/DSP/BRAM a configuration "
        "chosen by the search may use, and that every build's resource check "
        "(hw.steps.step_check_resources) allows.", default=0.8)
    resource_check: Literal["refuse", "warn"] = _f(
        "refuse or warn (may be omitted; default refuse)",
        "A folded design over utilization_ceiling of any resource (hw.resources model): "
        "refuse stops the build before RTL generation, naming what does not fit; warn "
        "(experts) builds it anyway and records the overrun. make hw RESOURCE_CHECK=warn "
        "sets it for one build.", default="refuse")

    @model_validator(mode="after")
    def _folding(self) -> HwConfig:
        if "target_fps" not in self.model_fields_set and not self.folding_config:
            raise _cross("target_fps", "missing (and folding_config is not set)",
                         "a number > 0, or a folding_config path")
        return self


class Design(_Strict):
    """A design: network, training data, training recipes, export and hardware settings.

    Two model layouts, told apart by the keys of ``model`` (not by the family): the
    *paths* layout (``zoo.network.QuantNet``) when it has ``inputs`` or ``paths``, else
    the single-MLP layout (``zoo.blocks.QuantMLP``). ``data`` is a union on ``kind``.
    """

    name: Annotated[str, Field(strict=True, pattern=NAME_RE)] = _f(
        "the file's name without .yaml (letters, digits, '.', '_', '-')",
        "Design name; runs/<name>, build/<name>-<board>, bitstreams/<name>-<board>.")
    family: Annotated[str, Field(strict=True, min_length=1)] = _f(
        "a non-empty string (may be omitted)",
        "Network family; with network, the zoo.registry entry (builder, default data set "
        "and task).", default=None)
    network: Annotated[str, Field(strict=True, min_length=1)] = _f(
        "a non-empty string (may be omitted)", "Network within the family (zoo.registry).",
        default=None)
    description: Annotated[str, Field(strict=True)] = _f(
        "a string (may be omitted)", "One-line description.", default=None)
    data: DataConfig = _f("a mapping", f"Training data (kind: {_choices(DATA_KINDS)}).",
                          extra={"tag_key": "kind", "tags": _choices(DATA_KINDS)})
    model: ModelLayout = _f(
        "a mapping (the paths layout when it has inputs or paths, else the single-MLP "
        "layout)", "The deployed quantized network.")
    train: TrainConfig = _f("a mapping", "Training.")
    export: ExportConfig = _f("a mapping", "Export and golden vectors.")
    hw: HwConfig = _f("a mapping", "FINN flow settings.")

    @property
    def layout(self) -> str:
        return "paths" if isinstance(self.model, PathsModel) else "mlp"

    @property
    def task(self) -> str:
        """The training task: train.task, else the default of the model layout."""
        return self.train.task or DEFAULT_TASK[self.layout]

    @model_validator(mode="after")
    def _sections_agree(self) -> Design:
        kind, layout = self.data.kind, self.layout
        if kind == "synthetic_teacher" and layout != "paths":
            raise _cross("data.kind", "'synthetic_teacher' draws inputs and targets from "
                         "model.inputs and model.paths; this model has the single-MLP layout",
                         "'mimo_llr' for the single-MLP layout (or give model.inputs and "
                         "model.paths)")
        if isinstance(self.data, BaeLinkData) and not isinstance(self.model, PathsModel):
            raise _cross("data.kind", "'bae_link' feeds named inputs (bits or y); this "
                         "model has the single-MLP layout", "a paths-layout model")
        if self.task == "bae_autoencoder" and kind != "bae_link":
            raise _cross("train.task", f"'bae_autoencoder' trains on data kind 'bae_link', "
                         f"not {kind!r}", "data.kind: bae_link")
        if isinstance(self.data, (MimoLlrData, BaeLinkData)) and \
                isinstance(self.model, PathsModel):
            have = self.data.features()
            for n, d in self.model.inputs.items():
                if d.kind == "codebook":
                    continue  # indices from another network (EQ-Net g reads f_Q's)
                if n not in have:
                    raise _cross(f"model.inputs.{n}", f"data kind {kind!r} has no feature "
                                 f"{n!r}", f"an input named after one of {_choices(have)}")
                if d.features != have[n]:
                    raise _cross(f"model.inputs.{n}.features", f"{d.features} != the "
                                 f"{have[n]} features of {n!r} for this data section",
                                 str(have[n]))
        if isinstance(self.data, MimoLlrData) and isinstance(self.model, ModelConfig):
            if self.data.feature is None:
                raise _cross("data.feature", "missing required key (the single-MLP layout "
                             "reads one feature)", "'soft_bits' or 'llr'")
            want = self.data.n_t * self.data.bits_per_symbol
            if self.model.in_features != want:
                raise _cross(
                    "model.in_features",
                    f"{self.model.in_features} != data.n_t * data.bits_per_symbol "
                    f"= {self.data.n_t} * {self.data.bits_per_symbol}",
                    f"{want} (one input per transmitted bit)")
        task, given = self.task, self.train.task is not None
        how = f"train.task is {task!r}" if given else (
            f"the default task of the {layout} layout is {task!r}")
        if task == "reconstruction" and layout != "mlp":
            raise _cross("train.task", "'reconstruction' trains a one-input, one-output "
                         "network with a float decoder; this model has the paths layout",
                         "'regression', 'classification' or 'eqnet_stage1'")
        if task in ("eqnet_stage1", "eqnet_stage2", "eqnet_joint") and (layout != "paths" or
                                                         kind != "mimo_llr"):
            raise _cross("train.task", f"{task!r} trains a paths-layout network on "
                         "mimo_llr data", "a paths-layout model with data.kind 'mimo_llr'")
        if task in ("regression", "classification") and kind == "mimo_llr":
            raise _cross("train.task", f"{task!r} trains against target:<output> "
                         "features; data kind 'mimo_llr' has none",
                         "'reconstruction', 'eqnet_stage1' or 'eqnet_stage2'")
        required, optional = TASK_KEYS.get(task, ((), ()))
        for k in required:
            if k not in self.train.model_fields_set:
                raise _cross(f"train.{k}", f"missing required key ({how})",
                             _allowed(TrainConfig.model_fields[k]) or "")
        for other, (req, opt) in TASK_KEYS.items():
            for k in req + opt:
                if other != task and k not in required + optional and \
                        k in self.train.model_fields_set:
                    raise _cross(f"train.{k}", f"only read by the {other} task ({how})",
                                 f"omit it, or train.task: {other}")
        return self


# ---------------------------------------------------------------------------------------
# Board


# Yosys synth_xilinx -family for part-number prefixes (hw/rtlsim/yosys.py derives the
# family from the part; the board's key must agree with it).
_PART_FAMILY = [
    (re.compile(r"^xc7"), "xc7"),                              # 7-series, Zynq-7000
    (re.compile(r"^(xczu|xck26|xck24|xcau)"), "xcup"),         # Zynq/Kria/Artix US+
    (re.compile(r"^xc(ku|vu)\d+p"), "xcup"),                   # Kintex/Virtex UltraScale+
    (re.compile(r"^xc(ku|vu)\d+"), "xcu"),                     # Kintex/Virtex UltraScale
]


class Board(_Strict):
    """A board: FPGA part, FINN board name, shell and clock."""

    name: Annotated[str, Field(strict=True, pattern=NAME_RE)] = _f(
        "the file's name without .yaml (letters, digits, '.', '_', '-')", "Board name.")
    finn_board: Annotated[str, Field(strict=True, min_length=1)] = _f(
        "a non-empty string", "FINN's board name (DataflowBuildConfig.board), e.g. Pynq-Z2.")
    part: Annotated[str, Field(strict=True, min_length=1, pattern=r"^\S+$")] = _f(
        "a non-empty string without spaces", "FPGA part (DataflowBuildConfig.fpga_part).")
    family: Literal["xc7", "xcup", "xcu"] = _f(
        "'xc7', 'xcup' or 'xcu', matching the part",
        "Yosys synth_xilinx -family: xc7 (7-series/Zynq-7000), xcup (UltraScale+), "
        "xcu (UltraScale).")
    shell: Literal["vivado_zynq"] = _f(
        "'vivado_zynq'",
        "FINN shell flow. Only vivado_zynq: hw/vivado.py uses ShellFlowType.VIVADO_ZYNQ; "
        "FINN's vitis_alveo needs Vitis/XRT, not part of this offline flow.")
    clock_mhz: PositiveNumber = _f("a number > 0", "Target clock in MHz (synth_clk_period_ns "
                                   "= 1000 / clock_mhz).")

    @model_validator(mode="after")
    def _family_of_part(self) -> Board:
        for pattern, fam in _PART_FAMILY:
            if pattern.match(self.part.lower()):
                if fam != self.family:
                    raise _cross("family", f"{self.family!r} does not match part "
                                 f"{self.part!r}", repr(fam))
                break
        return self


# ---------------------------------------------------------------------------------------
# Reading and validating files


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML keeps the last one silently)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode,
                       deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            continue  # the base constructor reports unhashable keys
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"found duplicate key {key!r} (first at line {seen[key].start_mark.line + 1})",
                key_node.start_mark)
        seen[key] = key_node
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                 _construct_mapping)


def read_yaml(path: str | Path, kind: str = "") -> dict[str, Any]:
    """The mapping in a YAML file (as yaml.safe_load reads it); ConfigError otherwise."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(path, [f"cannot read: {e.strerror or e}"], kind) from e
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = " ".join(str(x) for x in (getattr(e, "context", None),
                                          getattr(e, "problem", None)) if x) or str(e)
        label = "YAML error" if isinstance(e, yaml.constructor.ConstructorError) else (
            "YAML syntax error")
        raise ConfigError(path, [f"{label} at {where}{what}"], kind) from None
    if not isinstance(data, dict):
        what = "nothing (empty file)" if data is None else _typename(data)
        raise ConfigError(path, [f"the file must hold a mapping of keys (name: ..., ...), "
                                 f"not {what}"], kind)
    return data


def _typename(v: Any) -> str:
    if v is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
            list: "a list", dict: "a mapping"}.get(type(v), type(v).__name__)


def _unwrap(tp: Any) -> Any:
    """Strip Annotated and Optional down to a model, list or dict type where there is one."""
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if origin is Union or origin is types.UnionType:
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) == 1:
                tp = args[0]
                continue
        return tp


def _tags(tp: Any) -> dict[str, Any]:
    """A tagged union's members by tag (``Annotated[Model, Tag(t)]`` arms), else {}."""
    if typing.get_origin(tp) not in (Union, types.UnionType):
        return {}
    out = {}
    for arm in typing.get_args(tp):
        if typing.get_origin(arm) is Annotated:
            model, *meta = typing.get_args(arm)
            for m in meta:
                if isinstance(m, Tag):
                    out[m.tag] = model
    return out


def _fields(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """A model's fields by the key the YAML uses (the alias where there is one)."""
    return {(f.alias or n): f for n, f in model.model_fields.items()}


def _locate(root: type[BaseModel], loc: Sequence[Any]
            ) -> tuple[FieldInfo | None, type[BaseModel], Any, tuple[Any, ...]]:
    """Walk ``loc`` through the schema: (deepest field, enclosing model, unknown key|None,
    ``loc`` without the tags of tagged unions, which are no keys of the YAML)."""
    tp: Any = root
    field: FieldInfo | None = None
    model = root
    clean: list[Any] = []
    for i, key in enumerate(loc):
        tp = _unwrap(tp)
        tags = _tags(tp)
        if tags and key in tags:
            tp = tags[key]
            continue
        clean.append(key)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            model = tp
            f = _fields(tp).get(key) if isinstance(key, str) else None
            if f is None:
                return field, model, key, tuple(clean) + tuple(loc[i + 1:])
            field, tp = f, f.annotation
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        elif typing.get_origin(tp) in (list, tuple):
            tp = typing.get_args(tp)[0]
        else:
            clean.extend(loc[i + 1:])
            break
    return field, model, None, tuple(clean)


def _key_path(loc: Iterable[Any]) -> str:
    out = ""
    for k in loc:
        if isinstance(k, int):
            out += f"[{k}]"
        else:
            out += ("." if out else "") + str(k)
    return out


def _allowed(field: FieldInfo | None) -> str | None:
    extra = field.json_schema_extra if field is not None else None
    return extra.get("allowed") if isinstance(extra, dict) else None  # type: ignore[return-value]


def _show(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 80 else s[:77] + "..."


def _suggest(word: Any, choices: Iterable[str]) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.7)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _problem(root: type[BaseModel], err: dict[str, Any]) -> Problem:
    loc, etype, ctx = tuple(err["loc"]), err["type"], err.get("ctx") or {}
    value = err.get("input")
    field, model, unknown, loc = _locate(root, loc)
    if etype == "config_cross":
        loc = loc + tuple(ctx["key"].split("."))
        return Problem(_key_path(loc), f"{err['msg']}; allowed: {ctx['allowed']}")
    if etype in ("union_tag_invalid", "union_tag_not_found"):
        # A union on a key of the mapping (data.kind): report that key.
        extra = field.json_schema_extra if field is not None else None
        extra = extra if isinstance(extra, dict) else {}
        tag_key, tags = extra.get("tag_key", "kind"), extra.get("tags", ctx.get(
            "expected_tags", ""))
        key = _key_path(loc + (tag_key,))
        if etype == "union_tag_not_found" or not isinstance(value, dict):
            return Problem(key, f"missing required key; allowed: {tags}")
        got = value.get(tag_key)
        choices = re.findall(r"'([^']*)'", str(tags))
        return Problem(key, f"got {_show(got)}{_suggest(got, choices)}; allowed: {tags}")
    key = _key_path(loc)
    if etype == "extra_forbidden":
        known = list(_fields(model))
        return Problem(key, f"unknown key{_suggest(unknown, known)}; allowed keys here: "
                            f"{', '.join(known)}")
    allowed = _allowed(field)
    tail = f"; allowed: {allowed}" if allowed else ""
    if etype == "missing":
        return Problem(key, f"missing required key{tail}")
    msg = f"got {_show(value)}"
    if etype == "literal_error" and field is not None:
        choices = [c for c in typing.get_args(_unwrap(field.annotation)) if isinstance(c, str)]
        msg += _suggest(value, choices)
    elif etype.endswith("_type"):
        msg += f" ({_typename(value)})"
        if isinstance(value, str) and _is_number(value):
            if "e" in value.lower() and "." not in value.lower().partition("e")[0]:
                msg += ("; PyYAML reads exponent notation without a decimal point (1e-3) "
                        f"as a string: write {_float_hint(value)}")
            else:
                msg += f"; write the number without quotes: {value.strip()}"
    elif etype != "literal_error":
        msg += f" ({err['msg'][0].lower()}{err['msg'][1:]})"
    return Problem(key, msg + tail)


def _is_number(s: str) -> bool:
    try:
        return math.isfinite(float(s))
    except ValueError:
        return False


def _float_hint(s: str) -> str:
    mant, _, exp = s.strip().lower().partition("e")
    return f"{mant}.0e{exp}"


def validate_data(data: dict[str, Any], schema: type[BaseModel], path: str | Path,
                  kind: str, name: str | None = None) -> BaseModel:
    """Validate a parsed mapping; ConfigError listing every problem."""
    problems: list[Problem] = []
    model = None
    try:
        model = schema.model_validate(data)
    except ValidationError as e:
        problems = [_problem(schema, err) for err in e.errors(include_url=False)]
    if name is not None and isinstance(data.get("name"), str) and data["name"] != name:
        problems.insert(0, Problem("name", f"got {data['name']!r}; allowed: {name!r} "
                                           f"(the file's name)"))
    if problems:
        raise ConfigError(path, problems, kind)
    assert model is not None
    return model


def validate_file(path: str | Path, kind: str, name: str | None = None) -> dict[str, Any]:
    """Validate a design (``kind='design'``) or board YAML; returns the YAML's own dict.

    ``name``: the name the file must declare (``load_design``/``load_board`` pass the
    file's stem). The returned dict is ``yaml.safe_load``'s, unchanged.
    """
    schema = {"design": Design, "board": Board}[kind]
    data = read_yaml(path, kind)
    validate_data(data, schema, path, kind, name)
    return data


def validate_design_file(path: str | Path, name: str | None = None) -> dict[str, Any]:
    """Validate a design YAML at any path; returns its dict. Raises ConfigError."""
    return validate_file(path, "design", name)


def validate_board_file(path: str | Path, name: str | None = None) -> dict[str, Any]:
    """Validate a board YAML at any path; returns its dict. Raises ConfigError."""
    return validate_file(path, "board", name)
