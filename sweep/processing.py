"""A curve's processing between the detector's LLRs and the LDPC decoder.

* ``ml``: none (the detector's LLRs go to the decoder);
* ``float``: LLR -> soft bits s = tanh(L/2) -> the design's trained f_Q in PyTorch float
  (``encoder: brevitas``, the QAT network with its quantizers, or ``twin``, the float twin
  without them) -> latents -> the training decoder g -> soft bits -> L = 2 atanh(clip(s));
* ``integer``: the same with the built package in the loop instead of f_Q:
  ``host.driver.Accelerator(package, backend=...).execute(s)`` (floats in, the input
  quantized by the manifest's rule; dequantized latents out) -> g -> soft bits -> LLRs.

``clip`` bounds |s| by tanh(llr_max / 2), so |L| <= llr_max (the BP decoder's own clip
is 20).

Estimators (curves of ``sweep.config.ESTIMATION_MODES``) replace the detector and the
processing: :data:`Estimator` maps (y, H_est, noise_std) to LLRs, as EQ-Net's f_E does
(followed by its decoder g). The three arrays are real-valued and flattened exactly as
the design data sets present them (``zoo/datasets.py``, kind ``mimo_llr``; see
:func:`estimator_inputs`), so a network trained on those data sets reads them unchanged:

* ``y``: (N, 2 n_r) = [Re y_1 .. Re y_nr, Im y_1 .. Im y_nr] (blocks, not interleaved);
* ``H``: (N, 2 n_r n_t) = [Re H.ravel(), Im H.ravel()], H (n_r, n_t) row-major, i.e.
  Re h_11, Re h_12, ..., Re h_{nr nt}, then the imaginary parts;
* ``noise_std``: (N, 1) = sqrt(N0), N0 the complex noise variance per receive antenna.

They are float64 here (the data sets hold their float32 casts: a network casts them
itself). The LLRs are (N, n_t * bits_per_symbol), L = ln P(1)/P(0), stream 0's bits
first. ``estimate`` curves use a built-in estimator (:data:`BUILTIN_ESTIMATORS`:
``exact-ml`` rebuilds complex y, H, N0 from the three arrays and calls phy.llr). A trained
f_E plugs in as another mode: an opener ``(curve, link) -> Estimator`` registered in
:data:`ESTIMATION_OPENERS` under the curve's mode (e.g. ``estimate-float``: the design's
f_E and decoder g from the run's checkpoint; ``estimate-integer``: the package through
``host.driver.Accelerator`` with its named inputs y, H, noise_std, then g), plus the
mode's curve model in ``sweep.config``.

This is the one module of the ``sweep`` stage that reaches other stages, through their
documented entry points (``tests/test_import_rules.py``): ``export.reference`` for the
trained Brevitas f_Q and its float twin, ``host.driver``/``host.package`` for the package.
The decoder g comes from the checkpoint through the floor: for an ``eqnet_stage1`` f_Q
the deployed QuantNet of the checkpoint's ``decoder_design`` (its Brevitas float path:
an index input reads the nearest of its levels, so f_Q's levels and its package's
dequantized output give the same codes); for a reconstruction design its shape from the
design (``configs.load_design``: ``model``, ``train.decoder_hidden``) and its weights
from the checkpoint's ``decoder`` state, built as ``zoo.blocks.FloatMLP``.

Processing objects are cached per process (a Ray worker opens a package once).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from configs import load_design

Processing = Callable[[np.ndarray], np.ndarray]
#: (y (N, 2 n_r), H (N, 2 n_r n_t), noise_std (N, 1)) -> LLRs (N, n_t * bits_per_symbol).
Estimator = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
_CACHE: dict[str, Processing | None] = {}
_EST_CACHE: dict[str, Estimator] = {}


class CurveError(ValueError):
    """A curve that cannot be opened; ``key``: the curve's YAML key at fault."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(message)

    def __reduce__(self):
        return (type(self), (self.key, str(self)))


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_checkpoint(design: Mapping[str, Any], run_dir: str | Path) -> dict[str, Any]:
    """The checkpoint of a run folder (tensors only), checked to be the design's and to
    hold a training decoder. CurveError(key 'run') otherwise."""
    import torch

    path = Path(run_dir) / "checkpoint.pt"
    if not path.is_file():
        raise CurveError("run", f"{path} not found: run `make train DESIGN={design['name']}`")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if ckpt.get("design") != design["name"]:
        raise CurveError("run", f"{path} holds design {ckpt.get('design')!r}, "
                                f"not {design['name']!r}")
    if "decoder" not in ckpt:
        raise CurveError("run", f"{path} has no training decoder ('decoder'): the design's "
                                "task must be 'reconstruction' (f_Q trained with g)")
    return ckpt


def load_decoder(design: Mapping[str, Any], ckpt: Mapping[str, Any]) -> Any:
    """The decoder g of a run (eval mode): the deployed QuantNet of the design
    ``ckpt['decoder_design']`` (EQ-Net stage 1, ``train/tasks/eqnet.py``: indices are
    read as the nearest of its levels, so f_Q's levels or its package's dequantized
    output map to the same codes), else the float training decoder of a reconstruction
    design."""
    from zoo.blocks import FloatMLP

    if ckpt.get("decoder_design"):
        from zoo.registry import build_network

        try:
            g = build_network(load_design(ckpt["decoder_design"]))
        except Exception as e:  # FileNotFoundError, ConfigError, KeyError
            raise CurveError("run", f"the run's decoder design: {e}") from None
        g.load_state_dict(ckpt["decoder"])
        return g.eval()
    m, t = design["model"], design["train"]
    dec = FloatMLP(m["out_features"], list(t["decoder_hidden"]), m["in_features"], "tanh")
    dec.load_state_dict(ckpt["decoder"])
    return dec.eval()


class SoftBitLoop:
    """LLR -> tanh(L/2) -> ``encode`` (soft bits -> latents) -> decoder -> soft bits -> LLR."""

    def __init__(self, encode: Callable[[np.ndarray], np.ndarray], decoder: Any,
                 llr_max: float, features: int) -> None:
        self.encode, self.decoder, self.features = encode, decoder, features
        self.s_max = math.tanh(float(llr_max) / 2)

    def __call__(self, llr: np.ndarray) -> np.ndarray:
        import torch

        if llr.ndim != 2 or llr.shape[1] != self.features:
            raise ValueError(f"LLRs of shape {llr.shape}; the network takes (N, "
                             f"{self.features})")
        s = np.tanh(np.asarray(llr, np.float64) / 2).astype(np.float32)
        z = np.ascontiguousarray(self.encode(s), dtype=np.float32)
        with torch.no_grad():
            s_hat = self.decoder(torch.from_numpy(z)).numpy().astype(np.float64)
        return 2 * np.arctanh(np.clip(s_hat, -self.s_max, self.s_max))


def _torch_encoder(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    def encode(s: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(s)).detach().numpy()
    return encode


def soft_bit_features(design: Mapping[str, Any]) -> int:
    """Soft bits per vector the design's f_Q reads (single-MLP: in_features; paths
    layout: its one input's features)."""
    m = design["model"]
    if "in_features" in m:
        return int(m["in_features"])
    ins = list((m.get("inputs") or {}).values())
    if len(ins) != 1:
        raise CurveError("design", f"design {design['name']!r} has inputs "
                                   f"{list(m.get('inputs') or {})}; the soft-bit loop needs "
                                   "one")
    return int(ins[0]["features"])


def _open(curve: Mapping[str, Any]) -> Processing | None:
    mode = curve["mode"]
    if mode == "ml":
        return None
    try:
        design = load_design(curve["design"])
    except Exception as e:  # FileNotFoundError, ConfigError
        raise CurveError("design", str(e)) from None
    ckpt_path = Path(curve["run"]) / "checkpoint.pt"
    ckpt = read_checkpoint(design, curve["run"])
    if curve.get("checkpoint_sha256") and sha256_file(ckpt_path) != curve["checkpoint_sha256"]:
        raise CurveError("run", f"{ckpt_path} changed since the sweep started (sha256 "
                                f"{sha256_file(ckpt_path)[:16]}..., expected "
                                f"{curve['checkpoint_sha256'][:16]}...)")
    decoder = load_decoder(design, ckpt)
    k = soft_bit_features(design)
    if mode == "float":
        from export.reference import load_brevitas, load_float_twin

        load = load_brevitas if curve["encoder"] == "brevitas" else load_float_twin
        model = load(design["name"], curve["run"])
        return SoftBitLoop(_torch_encoder(model.eval()), decoder, curve["llr_max"], k)
    if mode == "integer":
        acc = open_accelerator(curve)
        return SoftBitLoop(lambda s: acc.execute(s), decoder, curve["llr_max"], k)
    raise CurveError("mode", f"unknown mode {mode!r}")


def open_accelerator(curve: Mapping[str, Any]) -> Any:
    """``Accelerator(package, backend=...)`` of an integer curve; CurveError naming the
    key ('package', 'backend', 'backend_options') where it cannot be opened."""
    from host.driver import BACKENDS, Accelerator
    from host.package import PackageIntegrityError

    pkg = Path(curve["package"])
    manifest = pkg / "manifest.json"
    if curve.get("manifest_sha256") and manifest.is_file() and (
            sha256_file(manifest) != curve["manifest_sha256"]):
        raise CurveError("package", f"{manifest} changed since the sweep started")
    opts = dict(curve.get("backend_options") or {})
    if curve["backend"] == "reference":
        opts.setdefault("run_dir", curve["run"])
    try:
        acc = Accelerator(pkg, backend=curve["backend"], batch_size=curve["batch_size"],
                          **opts)
    except (FileNotFoundError, PackageIntegrityError) as e:
        raise CurveError("package", f"{type(e).__name__}: {e}") from None
    except ValueError as e:
        if str(e).startswith("unknown backend"):
            hint = ("; the integer executor (host/backends/integer.py) is not in this "
                    "checkout: use 'reference'" if curve["backend"] == "integer" else "")
            raise CurveError("backend", f"unknown backend {curve['backend']!r}; allowed: "
                                        f"auto, {', '.join(BACKENDS)}{hint}") from None
        raise CurveError("backend", f"{type(e).__name__}: {e}") from None
    except TypeError as e:
        raise CurveError("backend_options", f"backend {curve['backend']!r}: {e}") from None
    if len(acc.inputs) != 1 or len(acc.outputs) != 1:
        raise CurveError("package", f"package {pkg} has inputs {acc.input_names} and "
                                    f"outputs {acc.output_names}; the soft-bit loop needs one "
                                    "of each")
    return acc


def package_digest(package: str | Path) -> tuple[str, str]:
    """(design name from manifest.json, sha256 of manifest.json), unchecked."""
    path = Path(package) / "manifest.json"
    if not path.is_file():
        raise CurveError("package", f"{path} not found: not a package (build one with "
                                    "`make hw`)")
    return json.loads(path.read_text()).get("design", ""), sha256_file(path)


def get_processing(curve: Mapping[str, Any]) -> Processing | None:
    """The curve's processing (None for ``ml``), opened once per process."""
    key = json.dumps(curve, sort_keys=True, default=str)
    if key not in _CACHE:
        _CACHE[key] = _open(curve)
    return _CACHE[key]


def probe(curve: Mapping[str, Any], features: int) -> None:
    """Open the curve's processing here and run it on a few LLR vectors (the driver checks
    every curve once before any chunk is submitted)."""
    proc = get_processing(curve)
    if proc is None:
        return
    llr = np.linspace(-12.0, 12.0, 4 * features).reshape(4, features)
    out = np.asarray(proc(llr))
    if out.shape != llr.shape or not np.all(np.isfinite(out)):
        raise CurveError("mode", f"processing gave shape {out.shape} (finite: "
                                 f"{bool(np.all(np.isfinite(out)))}) for LLRs {llr.shape}")


# --- estimators: (y, H_est, noise_std) -> LLRs, no detector ------------------------------


def estimator_inputs(y: np.ndarray, H: np.ndarray, noise_var: float | np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y, H, noise_std) real-stacked as zoo/datasets.py ``mimo_llr`` builds them (module
    doc), float64: y (B, n_r) and H (B, n_r, n_t) complex, noise_var N0 scalar or (B,)."""
    y = np.asarray(y)
    H = np.asarray(H)
    b = len(y)
    nv = np.broadcast_to(np.asarray(noise_var, dtype=np.float64), (b,))
    y_r = np.concatenate([y.real, y.imag], axis=1).astype(np.float64)
    h_r = np.concatenate([H.real.reshape(b, -1), H.imag.reshape(b, -1)],
                         axis=1).astype(np.float64)
    return y_r, h_r, np.sqrt(nv)[:, None]


def estimator_complex(y: np.ndarray, H: np.ndarray, noise_std: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The inverse of :func:`estimator_inputs`: complex y (B, n_r), H (B, n_r, n_t) and
    N0 (B,) = noise_std^2."""
    y = np.asarray(y, dtype=np.float64)
    H = np.asarray(H, dtype=np.float64)
    n_r = y.shape[1] // 2
    if y.ndim != 2 or y.shape[1] != 2 * n_r or H.ndim != 2 or H.shape[1] % (2 * n_r):
        raise ValueError(f"y {y.shape} / H {H.shape}: expected (B, 2 n_r) / (B, 2 n_r n_t)")
    n_t = H.shape[1] // (2 * n_r)
    half = n_r * n_t
    yc = y[:, :n_r] + 1j * y[:, n_r:]
    hc = (H[:, :half] + 1j * H[:, half:]).reshape(len(H), n_r, n_t)
    return yc, hc, np.asarray(noise_std, dtype=np.float64).reshape(len(y)) ** 2


class MlEstimator:
    """The reference estimator: exact (or max-log) ML LLRs (phy.llr.exact_llr) computed
    from the estimator's inputs alone. On the same (y, H_est, N0) it equals the ``ml``
    (``maxlog-ml``) detector up to the rounding of N0 = (sqrt N0)^2."""

    def __init__(self, bits_per_symbol: int, max_log: bool = False) -> None:
        self.bits_per_symbol, self.max_log = int(bits_per_symbol), bool(max_log)

    def __call__(self, y: np.ndarray, H: np.ndarray, noise_std: np.ndarray) -> np.ndarray:
        from phy.llr import exact_llr

        yc, hc, n0 = estimator_complex(y, H, noise_std)
        return exact_llr(yc, hc, n0, self.bits_per_symbol, max_log=self.max_log)


#: Built-in estimators of ``mode: estimate`` (curve key ``estimator``): name -> opener.
BUILTIN_ESTIMATORS: dict[str, Callable[[Mapping[str, Any]], Estimator]] = {
    "exact-ml": lambda link: MlEstimator(link["bits_per_symbol"]),
    "maxlog-ml": lambda link: MlEstimator(link["bits_per_symbol"], max_log=True),
}


def _open_builtin(curve: Mapping[str, Any], link: Mapping[str, Any]) -> Estimator:
    name = curve.get("estimator", "exact-ml")
    if name not in BUILTIN_ESTIMATORS:
        raise CurveError("estimator", f"unknown estimator {name!r}; allowed: "
                                      f"{', '.join(BUILTIN_ESTIMATORS)}")
    return BUILTIN_ESTIMATORS[name](link)


#: Estimation curve mode -> opener (curve dict, link dict) -> Estimator (module doc).
ESTIMATION_OPENERS: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any]], Estimator]] = {
    "estimate": _open_builtin,
}


def get_estimator(curve: Mapping[str, Any], link: Mapping[str, Any]) -> Estimator:
    """The estimator of an estimation curve, opened once per process and link shape."""
    shape = {k: link[k] for k in ("n_t", "n_r", "bits_per_symbol")}
    key = json.dumps([curve, shape], sort_keys=True, default=str)
    if key not in _EST_CACHE:
        opener = ESTIMATION_OPENERS.get(curve["mode"])
        if opener is None:
            raise CurveError("mode", f"mode {curve['mode']!r} has no estimator; estimation "
                                     f"modes: {', '.join(ESTIMATION_OPENERS)}")
        _EST_CACHE[key] = opener(curve, link)
    return _EST_CACHE[key]


def run_estimator(estimator: Estimator, y: np.ndarray, H: np.ndarray,
                  noise_var: float | np.ndarray, n_out: int) -> np.ndarray:
    """LLRs (B, n_out) float64 of ``estimator`` on complex y, H_est and N0, checked:
    ValueError on a wrong shape or a non-finite value."""
    out = np.asarray(estimator(*estimator_inputs(y, H, noise_var)), dtype=np.float64)
    if out.shape != (len(y), n_out):
        raise ValueError(f"estimator returned shape {out.shape}, expected {(len(y), n_out)}")
    if not np.all(np.isfinite(out)):
        raise ValueError("estimator returned non-finite LLRs")
    return out


def probe_estimator(curve: Mapping[str, Any], link: Mapping[str, Any]) -> None:
    """Open an estimation curve's estimator here and run it on a few vectors."""
    n_r, n_t, bps = link["n_r"], link["n_t"], link["bits_per_symbol"]
    rng = np.random.default_rng(0)
    y = rng.standard_normal((4, n_r)) + 1j * rng.standard_normal((4, n_r))
    H = rng.standard_normal((4, n_r, n_t)) + 1j * rng.standard_normal((4, n_r, n_t))
    try:
        run_estimator(get_estimator(curve, link), y, H, 0.1, n_t * bps)
    except ValueError as e:
        if isinstance(e, CurveError):
            raise
        raise CurveError("mode", str(e)) from None
