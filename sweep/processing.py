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

This is the one module of the ``sweep`` stage that reaches other stages, through their
documented entry points (``tests/test_import_rules.py``): ``export.reference`` for the
trained Brevitas f_Q and its float twin, ``host.driver``/``host.package`` for the package.
The decoder g comes from the checkpoint through the floor: its shape from the design
(``configs.load_design``: ``model``, ``train.decoder_hidden``), its weights from the
checkpoint's ``decoder`` state (as ``train/tasks/reconstruction.py`` saves it), built
as ``zoo.blocks.FloatMLP``.

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
_CACHE: dict[str, Processing | None] = {}


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
    """The float training decoder g of a reconstruction design (eval mode)."""
    from zoo.blocks import FloatMLP

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
    k = design["model"]["in_features"]
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
