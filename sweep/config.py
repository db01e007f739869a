"""Sweep configurations: ``configs/sweeps/<name>.yaml``, validated (pydantic v2).

Unknown keys are refused and every problem is reported at once, in a
:class:`configs.ConfigError` that names the file and the key path (``curves[1].backend``),
the value and what is allowed (the formatter of ``configs.schema``). A file holds::

    name: eqnet-fq-uniform-2x2-64qam          # = the file's stem; results/sweeps/<name>/
    description: "..."                # optional
    seed: 0                           # sweep seed (chunk seeds, interleaver)
    common_random_numbers: true       # all curves see the same bits/channels/noise
    link:
      n_t: 2
      n_r: 2
      bits_per_symbol: 6
      channel: rayleigh               # rayleigh | awgn | epa (SISO) | cdl-a
      epa_subcarriers: 108            # epa only (optional)
      cdl_subcarriers: 612            # cdl-a only (optional): the codeword's band
      cdl_symbols: 1                  # cdl-a only (optional): channel uses sharing one H
      cdl_delay_spread_ns: 100        # cdl-a only (optional)
      csi_error_var: 0.0              # optional: the detector sees H + N, N ~ CN(0, this)
      decoder_rule: offset-minsum     # sum-product | minsum | offset-minsum
      iterations: 20                  # BP iterations (early stop on a zero syndrome)
    snr_db: [10, 11, 12]              # strictly increasing, E_s/N0 per stream and antenna
    # axis: {key: csi_error_var, values: [0, 0.01, 0.02]}   # optional: instead of the SNR
    #                                 # grid, sweep this link key at the one SNR of snr_db
    stopping:
      target_block_errors: 100
      max_blocks: 20000               # a multiple of chunk_blocks
      chunk_blocks: 100               # codewords per chunk (one Ray task)
      floor_bler: 1.0e-5
      skip_below_floor: true
    curves:
      - {label: ML, mode: ml, detector: ml}        # ml, maxlog-ml, zf-sic, lmmse, zf, kbest
      - {label: "f_Q + g (float)", mode: float, design: eqnet-fq-uniform-2x2-64qam,
         run: runs/eqnet-fq-uniform-2x2-64qam, encoder: brevitas, detector: ml, llr_max: 20}
      - {label: "f_Q + g (integer)", mode: integer,
         package: bitstreams/eqnet-fq-uniform-2x2-64qam-pynq-z2, backend: integer,
         backend_options: {}, batch_size: 8192, detector: ml, llr_max: 20}
      - {label: "exact ML (estimator)", mode: estimate, estimator: exact-ml}

Curve kinds. ``ml``, ``float`` and ``integer`` curves run a detector (LLRs) and then
their processing (LLR -> LLR). *Estimation* curves (:data:`ESTIMATION_MODES`) run no
detector: an estimator maps (y, H_est, noise_std), real-stacked as the design data sets
hold them (``sweep.processing.estimator_inputs``), straight to LLRs, as EQ-Net's f_E
does. ``estimate`` is the built-in reference (``exact-ml``, ``maxlog-ml``: phy.llr from
those same inputs). A trained f_E (float, from a design run) or a package's integers plug
in as further modes (``estimate-float``, ``estimate-integer``): a curve model in
:data:`Curve` and :data:`ESTIMATION_MODES` here, an opener in
``sweep.processing.ESTIMATION_OPENERS``.

The axis. By default the points of a curve are its SNRs. With ``axis`` they are the
values of one link key at the single SNR of ``snr_db`` (Fig. 10 of EQ-Net: BLER vs
sigma_CSI = ``csi_error_var`` at 14.35 dB); each point's link is the sweep's link with
that key set, so its chunks are exactly those of a sweep with ``link.<key>`` = the value
at that SNR (the same journal keys), and its chunk seeds are the SNR's: the points of
the axis see the same bits, channels and noise (common random numbers along the axis).

The stopping rule is defined in :mod:`sweep.stats`. Relative paths (``run``,
``package``) are relative to the repository root. :func:`load_sweep` validates the file;
:func:`resolve` then opens what the curves name (design, run folder, package, backend) and
reports those problems the same way.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from configs import REPO_ROOT
from configs.schema import ConfigError, Problem, read_yaml, tag_by, validate_data

KIND = "sweep"
SWEEP_DIR = REPO_ROOT / "configs" / "sweeps"
#: phy.link.DETECTORS (tests/test_sweep.py checks the two agree).
DETECTOR_NAMES = ("ml", "maxlog-ml", "zf-sic", "lmmse", "zf", "kbest")
#: sweep.processing.BUILTIN_ESTIMATORS (tests/test_sweep_estimation.py checks they agree).
ESTIMATOR_NAMES = ("exact-ml", "maxlog-ml")
#: Curve modes that run an estimator (y, H_est, noise_std) -> LLRs instead of a detector.
ESTIMATION_MODES = ("estimate",)
MODES = ("ml", "float", "integer", *ESTIMATION_MODES)
#: Code length of sweep.link.code() (IEEE 802.11n (648,324)); channel uses per codeword.
CODE_N = 648
#: Link keys of the CDL-A channel, part of a link's identity only when channel is cdl-a
#: (so that the chunk keys of the other channels are those of before these keys existed).
CDL_KEYS = ("cdl_subcarriers", "cdl_symbols", "cdl_delay_spread_ns")
NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


def _f(allowed: str, description: str, extra: dict[str, Any] | None = None,
       **kw: Any) -> Any:
    """A Field whose ``allowed`` text the error formatter of configs.schema quotes."""
    return Field(description=f"{description} Allowed: {allowed}.",
                 json_schema_extra={"allowed": allowed, **(extra or {})}, **kw)


def _number(gt: float | None = None, ge: float | None = None,
            lt: float | None = None) -> Any:
    """A finite int or float, kept as given."""

    def check(v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise PydanticCustomError("number_type", "not a number")
        if not math.isfinite(v):
            raise PydanticCustomError("finite_number", "not a finite number")
        if gt is not None and not v > gt:
            raise PydanticCustomError("greater_than", "must be > {gt}", {"gt": gt})
        if ge is not None and not v >= ge:
            raise PydanticCustomError("greater_than_equal", "must be >= {ge}", {"ge": ge})
        if lt is not None and not v < lt:
            raise PydanticCustomError("less_than", "must be < {lt}", {"lt": lt})
        return v

    return Annotated[int | float, PlainValidator(check), WithJsonSchema({"type": "number"})]


def _cross(key: str, message: str, allowed: str) -> PydanticCustomError:
    return PydanticCustomError("config_cross", message, {"key": key, "allowed": allowed})


PositiveInt = Annotated[int, Field(strict=True, gt=0)]
Name = Annotated[str, Field(strict=True, pattern=NAME_RE)]
Detector = Literal["ml", "maxlog-ml", "zf-sic", "lmmse", "zf", "kbest"]
DETECTOR_ALLOWED = ", ".join(repr(d) for d in DETECTOR_NAMES)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Link(_Strict):
    """The coded link (``sweep.link``; IEEE 802.11n LDPC (648,324), rate 1/2)."""

    n_t: PositiveInt = _f("integer >= 1", "Transmit antennas (spatial streams).")
    n_r: PositiveInt = _f("integer >= 1", "Receive antennas.")
    bits_per_symbol: PositiveInt = _f("1 or an even integer 2..10", "Bits per Gray QAM "
                                      "symbol.")
    channel: Literal["rayleigh", "awgn", "epa", "cdl-a"] = _f(
        "'rayleigh', 'awgn', 'epa' or 'cdl-a'",
        "i.i.d. Rayleigh per channel use, AWGN (H = I), 3GPP EPA (SISO, one draw per "
        "codeword, symbols across subcarriers), or 5G-NR CDL-A (n_r x n_t narrowband "
        "matrices of one Sionna drop per codeword, unit average energy; "
        "phy.wideband.cdl_a_codeword_channels).")
    epa_subcarriers: PositiveInt = _f("integer >= 1 (may be omitted; default 108)",
                                      "EPA subcarriers.", default=108)
    cdl_subcarriers: PositiveInt = _f(
        "integer >= 1 (may be omitted; default 612, a 20 MHz carrier at 30 kHz)",
        "CDL-A: subcarriers of the band over which a codeword's channel uses are spread "
        "evenly.", default=612)
    cdl_symbols: PositiveInt = _f(
        "integer >= 1 (may be omitted; default 1)",
        "CDL-A: consecutive channel uses (OFDM symbols) on one subcarrier; they share one "
        "H (block fading per symbol group).", default=1)
    cdl_delay_spread_ns: _number(gt=0) = _f(
        "number > 0 (may be omitted; default 100)", "CDL-A: delay spread in ns.",
        default=100)
    csi_error_var: _number(ge=0) = _f("number >= 0 (may be omitted; default 0)",
                                      "Detector sees H + N, N ~ CN(0, csi_error_var).",
                                      default=0.0)
    decoder_rule: Literal["sum-product", "minsum", "offset-minsum"] = _f(
        "'sum-product', 'minsum' or 'offset-minsum' (may be omitted; default "
        "'offset-minsum')", "BP check-node rule (phy.ldpc.BPDecoder).",
        default="offset-minsum")
    iterations: Annotated[int, Field(strict=True, ge=1, le=1000)] = _f(
        "integer 1..1000 (may be omitted; default 20)", "BP iterations (early stop).",
        default=20)

    @field_validator("bits_per_symbol")
    @classmethod
    def _qam(cls, v: int) -> int:
        if v > 10 or (v != 1 and v % 2):
            raise PydanticCustomError("bits_per_symbol", "not 1 and not even 2..10")
        return v

    @model_validator(mode="after")
    def _epa(self) -> Link:
        if self.channel == "epa" and (self.n_t, self.n_r) != (1, 1):
            raise _cross("n_t", f"the EPA link is SISO; got n_t={self.n_t}, n_r={self.n_r}",
                         "n_t: 1 and n_r: 1 with channel: epa")
        if self.channel == "cdl-a":
            uses = -(-CODE_N // (self.n_t * self.bits_per_symbol))
            groups = -(-uses // self.cdl_symbols)
            if groups > self.cdl_subcarriers:
                raise _cross("cdl_subcarriers", f"{self.cdl_subcarriers} subcarriers; a "
                             f"codeword's {uses} channel uses in groups of "
                             f"{self.cdl_symbols} need {groups}",
                             f"integer >= {groups}, or more cdl_symbols")
        return self


def _label() -> Any:
    return _f("a non-empty string, unique among the curves", "Legend label of the curve.")


Label = Annotated[str, Field(strict=True, min_length=1, max_length=100)]
LlrMax = _number(gt=0)


class MlCurve(_Strict):
    """``mode: ml``: the classical detector's LLRs straight into the decoder."""

    label: Label = _label()
    mode: Literal["ml"] = _f("'ml'", "Curve mode.")
    detector: Detector = _f(f"{DETECTOR_ALLOWED} (may be omitted; default 'ml')",
                            "Detector (phy.link.DETECTORS): exact ML, max-log ML, ZF-SIC, "
                            "LMMSE, ZF or K-best LLRs.", default="ml")


def _run() -> Any:
    return _f("a run folder path (may be omitted; default runs/<design>)",
              "Trained run folder holding checkpoint.pt (f_Q and the training decoder).",
              default=None)


def _soft_detector() -> Any:
    return _f(f"{DETECTOR_ALLOWED} (may be omitted; default 'ml')",
              "Detector whose LLRs feed the network.", default="ml")


def _llr_max() -> Any:
    return _f("number > 0 (may be omitted; default 20)",
              "Soft bits are clipped to |s| <= tanh(llr_max/2) before L = 2 atanh(s).",
              default=20)


class FloatCurve(_Strict):
    """``mode: float``: the design's f_Q and training decoder g in PyTorch float."""

    label: Label = _label()
    mode: Literal["float"] = _f("'float'", "Curve mode.")
    design: Name = _f("a design name (configs/designs/<name>.yaml)", "The design of f_Q.")
    run: Annotated[str, Field(strict=True, min_length=1)] | None = _run()
    encoder: Literal["brevitas", "twin"] = _f(
        "'brevitas' or 'twin' (may be omitted; default 'brevitas')",
        "'brevitas': the trained QAT network (quantizers on, float arithmetic); 'twin': its "
        "float twin (quantizers removed).", default="brevitas")
    detector: Detector = _soft_detector()
    llr_max: LlrMax = _llr_max()


BackendOptionValue = Union[str, int, float, bool]  # noqa: UP007


class IntegerCurve(_Strict):
    """``mode: integer``: the built package in the loop, through host.driver.Accelerator."""

    label: Label = _label()
    mode: Literal["integer"] = _f("'integer'", "Curve mode.")
    package: Annotated[str, Field(strict=True, min_length=1)] = _f(
        "a package folder (bitstreams/<design>-<board>)", "The built package.")
    design: Name | None = _f(
        "a design name (may be omitted; default the package manifest's design)",
        "The package's design (for the training decoder's shape).", default=None)
    run: Annotated[str, Field(strict=True, min_length=1)] | None = _run()
    backend: Annotated[str, Field(strict=True, min_length=1)] = _f(
        "a host.driver backend: 'integer' (default), 'reference', 'rtlsim', 'pynq' or "
        "'auto'", "Accelerator(pkg, backend=...).", default="integer")
    backend_options: dict[str, BackendOptionValue] = _f(
        "a mapping of backend keyword options (may be omitted)",
        "Extra keyword arguments of the backend (reference: kind, device, run_dir).",
        default_factory=dict)
    batch_size: PositiveInt = _f("integer >= 1 (may be omitted; default 8192)",
                                 "Accelerator batch size (vectors per backend call).",
                                 default=8192)
    detector: Detector = _soft_detector()
    llr_max: LlrMax = _llr_max()


class EstimateCurve(_Strict):
    """``mode: estimate``: no detector; a built-in estimator (y, H_est, noise_std) -> LLRs
    (sweep.processing.BUILTIN_ESTIMATORS), the reference of the trained f_E curves."""

    label: Label = _label()
    mode: Literal["estimate"] = _f("'estimate'", "Curve mode.")
    estimator: Literal["exact-ml", "maxlog-ml"] = _f(
        "'exact-ml' or 'maxlog-ml' (may be omitted; default 'exact-ml')",
        "Exact (or max-log) ML LLRs computed by phy.llr from the estimator's inputs "
        "(complex y, H and N0 = noise_std^2 rebuilt from the real-stacked arrays).",
        default="exact-ml")


CURVE_TAGS = "'ml', 'float', 'integer' or 'estimate'"


_mode_tag = tag_by("mode", "ml")


Curve = Annotated[
    Union[Annotated[MlCurve, Tag("ml")], Annotated[FloatCurve, Tag("float")],  # noqa: UP007
          Annotated[IntegerCurve, Tag("integer")], Annotated[EstimateCurve, Tag("estimate")]],
    Discriminator(_mode_tag)]


class Stopping(_Strict):
    """When a point is done (sweep.stats: the exact rule)."""

    target_block_errors: PositiveInt = _f("integer >= 1 (may be omitted; default 100)",
                                          "Stop when the chunk prefix holds this many "
                                          "block errors.", default=100)
    max_blocks: PositiveInt = _f("integer >= 1, a multiple of chunk_blocks",
                                 "Stop when the chunk prefix holds this many codewords.")
    chunk_blocks: PositiveInt = _f("integer >= 1 (may be omitted; default 100)",
                                   "Codewords per chunk (one Ray task).", default=100)
    floor_bler: _number(gt=0, lt=1) = _f(
        "number in (0, 1) (may be omitted; default 1.0e-5)",
        "Stop when the 95% Clopper-Pearson upper bound of the BLER is below it.",
        default=1e-5)
    skip_below_floor: bool = _f(
        "true or false (may be omitted; default true)",
        "Do not simulate a curve's SNRs above a point that stopped below the floor.",
        default=True)

    @model_validator(mode="after")
    def _multiple(self) -> Stopping:
        if self.max_blocks % self.chunk_blocks:
            raise _cross("max_blocks", f"{self.max_blocks} is not a multiple of chunk_blocks "
                         f"({self.chunk_blocks})", "a multiple of chunk_blocks")
        return self


class Axis(_Strict):
    """The points' axis when it is not the SNR: one link key's values at one SNR."""

    key: Literal["csi_error_var"] = _f(
        "'csi_error_var'", "The link key swept (csi_error_var: EQ-Net's sigma_CSI, the "
        "variance of each entry of N in H_est = H + N, N ~ CN(0, sigma_CSI)).")
    values: list[_number(ge=0)] = _f("a non-empty, strictly increasing list of numbers >= 0",
                                     "The key's values, one point each.", min_length=1)

    @field_validator("values")
    @classmethod
    def _increasing(cls, v: list[float]) -> list[float]:
        if any(b <= a for a, b in zip(v, v[1:], strict=False)):
            raise PydanticCustomError("axis_order", "not strictly increasing")
        return v


class Sweep(_Strict):
    """A Monte-Carlo BLER/BER sweep: a link, an SNR grid (or one SNR and an ``axis``),
    curves and a stopping rule."""

    name: Name = _f("the file's name (letters, digits, '.', '_', '-')",
                    "Sweep name: results go to <out>/<name>/.")
    description: str = _f("a string (may be omitted)", "What the sweep shows.", default="")
    seed: Annotated[int, Field(strict=True, ge=0)] = _f(
        "integer >= 0 (may be omitted; default 0)", "Sweep seed.", default=0)
    common_random_numbers: bool = _f(
        "true or false (may be omitted; default true)",
        "true: every curve sees the same bits, channels and noise at a given SNR and chunk "
        "(paired comparison); false: the curve's label enters its chunk seeds.",
        default=True)
    link: Link = _f("a mapping (n_t, n_r, bits_per_symbol, channel, ...)", "The link.")
    snr_db: list[_number()] = _f("a non-empty, strictly increasing list of numbers (one "
                                 "number with axis)",
                                 "SNR grid in dB (E_s/N0 per stream and antenna).",
                                 min_length=1)
    axis: Axis | None = _f(
        "a mapping {key: csi_error_var, values: [...]} (may be omitted: the SNR grid)",
        "Sweep a link key at the one SNR of snr_db instead of the SNR grid.", default=None)
    stopping: Stopping = _f("a mapping (target_block_errors, max_blocks, ...)",
                            "Stopping rule per point.")
    curves: list[Curve] = _f(
        "a non-empty list of curves, each with a label and a mode", "Curves to simulate.",
        extra={"tag_key": "mode", "tags": CURVE_TAGS}, min_length=1)

    @field_validator("snr_db")
    @classmethod
    def _increasing(cls, v: list[float]) -> list[float]:
        if any(b <= a for a, b in zip(v, v[1:], strict=False)):
            raise PydanticCustomError("snr_order", "not strictly increasing")
        if len({round(x * 1000) for x in v}) != len(v):
            raise PydanticCustomError("snr_order", "two SNRs within 0.001 dB")
        return v

    @model_validator(mode="after")
    def _axis(self) -> Sweep:
        if self.axis is None:
            return self
        if len(self.snr_db) != 1:
            raise _cross("snr_db", f"{len(self.snr_db)} SNRs with axis {self.axis.key!r}",
                         "a list of one SNR when axis is given")
        if self.axis.key in self.link.model_fields_set:
            raise _cross(f"link.{self.axis.key}", "also given by axis.key",
                         f"omit link.{self.axis.key}: the axis sets it per point")
        return self

    def axis_points(self) -> list[tuple[float, float, dict[str, Any]]]:
        """(x, SNR in dB, link dict) of each point of a curve, in axis order."""
        link = self.link.model_dump()
        if self.axis is None:
            return [(float(s), float(s), link) for s in self.snr_db]
        return [(float(v), float(self.snr_db[0]), {**link, self.axis.key: float(v)})
                for v in self.axis.values]

    @property
    def axis_key(self) -> str:
        return "snr_db" if self.axis is None else self.axis.key


def load_sweep(path: str | Path) -> Sweep:
    """Validate ``path`` (ConfigError naming the file and the keys); the name must be the
    file's stem."""
    path = Path(path)
    data = read_yaml(path, KIND)
    sweep: Sweep = validate_data(data, Sweep, path, KIND, name=path.stem)  # type: ignore
    seen: dict[str, int] = {}
    problems = []
    for i, c in enumerate(sweep.curves):
        if c.label in seen:
            problems.append(Problem(f"curves[{i}].label", f"{c.label!r} is also the label of "
                                    f"curves[{seen[c.label]}]; allowed: a label unique "
                                    "among the curves"))
        seen.setdefault(c.label, i)
    if problems:
        raise ConfigError(path, problems, KIND)
    return sweep


def _key(i: int, key: str) -> str:
    return f"curves[{i}].{key}"


def resolve(sweep: Sweep, path: str | Path, probe: bool = True) -> list[dict[str, Any]]:
    """Each curve as a plain dict the workers open (absolute paths, the files' sha256),
    after checking here what it names: the design fits the link and is a soft-bit
    reconstruction design, the run folder holds its checkpoint and training decoder, the
    package opens with the backend (``probe``: the processing runs on a few vectors).
    ConfigError naming the file and ``curves[i].<key>`` otherwise."""
    from configs import load_design
    from sweep import processing as P

    problems: list[Problem] = []
    out: list[dict[str, Any]] = []
    k = sweep.link.n_t * sweep.link.bits_per_symbol
    for i, c in enumerate(sweep.curves):
        d: dict[str, Any] = c.model_dump()
        out.append(d)
        if c.mode == "ml":
            continue
        if c.mode == "estimate":
            if probe:
                try:
                    P.probe_estimator(d, sweep.link.model_dump())
                except P.CurveError as e:
                    problems.append(Problem(_key(i, e.key), str(e)))
            continue
        try:
            if c.mode == "integer":
                design_of_pkg, d["manifest_sha256"] = P.package_digest(_abs(c.package))
                d["package"] = str(_abs(c.package))
                if d["design"] is None:
                    d["design"] = design_of_pkg
                elif design_of_pkg and d["design"] != design_of_pkg:
                    raise P.CurveError("design", f"{d['design']!r}, but package {c.package} "
                                                 f"was built for {design_of_pkg!r}")
            try:
                design = load_design(d["design"])
            except Exception as e:
                raise P.CurveError("design", str(e)) from None
            m, t = design.get("model", {}), design.get("train", {})
            mlp = "in_features" in m and "decoder_hidden" in t
            stage1 = t.get("task") == "eqnet_stage1" and list(m.get("inputs") or {}) == [
                "soft_bits"]
            if not (mlp or stage1):
                raise P.CurveError("design", f"design {d['design']!r} is neither a single-MLP "
                                             "reconstruction design (f_Q + training decoder) "
                                             "nor an eqnet_stage1 f_Q on soft_bits (with its "
                                             "deployed g)")
            if mlp and design["data"].get("feature") != "soft_bits":
                raise P.CurveError("design", f"design {d['design']!r} takes "
                                             f"{design['data'].get('feature')!r}, not soft_bits")
            if P.soft_bit_features(design) != k:
                raise P.CurveError("design", f"design {d['design']!r} takes "
                                             f"{P.soft_bit_features(design)} soft bits per "
                                             f"vector; the link carries n_t * "
                                             f"bits_per_symbol = {k}")
            d["run"] = str(_abs(d["run"] or Path("runs") / d["design"]))
            P.read_checkpoint(design, d["run"])
            d["checkpoint_sha256"] = P.sha256_file(Path(d["run"]) / "checkpoint.pt")
            if probe:
                P.probe(d, k)
        except P.CurveError as e:
            problems.append(Problem(_key(i, e.key), str(e)))
    if problems:
        raise ConfigError(path, problems, KIND)
    return out


def _abs(p: str | Path) -> Path:
    p = Path(p)
    return (p if p.is_absolute() else REPO_ROOT / p).resolve()


def curve_identity(curve: dict[str, Any]) -> dict[str, Any]:
    """What determines a curve's chunk results (paths and batch sizes do not)."""
    skip = {"run", "package", "batch_size"}
    return {k: v for k, v in sorted(curve.items()) if k not in skip}


def link_identity(link: dict[str, Any]) -> dict[str, Any]:
    """What of a link dict determines chunk results: all of it, but the CDL-A keys only
    for channel cdl-a (the chunk keys of the other channels stay those of before)."""
    if link.get("channel") == "cdl-a":
        return dict(link)
    return {k: v for k, v in link.items() if k not in CDL_KEYS}


def is_estimation(curve: dict[str, Any]) -> bool:
    """True for curves that run an estimator instead of a detector and a processing."""
    return curve["mode"] in ESTIMATION_MODES


__all__ = ["Axis", "Curve", "EstimateCurve", "FloatCurve", "IntegerCurve", "Link", "MlCurve",
           "Stopping", "Sweep", "curve_identity", "is_estimation", "link_identity",
           "load_sweep", "resolve"]
