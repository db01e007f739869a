"""Estimation curves, the CDL-A channel and the CSI-error axis of the sweeps (EQ-Net
figures 8-10).

* the estimator inputs are laid out exactly as the design data sets (zoo/datasets.py);
* the built-in ``exact-ml`` estimator gives the ``ml`` curve's counts at the same seeds
  (positive control), sign-flipped, wrong-noise and wrong-layout estimators do not
  (negative controls);
* CDL-A channels depend on the chunk's generator only (same seed, same counts, in this
  process or a fresh one) and have unit average energy;
* a ``csi_error_var`` axis is journaled, resumed and plotted like the SNR grid.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from configs import REPO_ROOT, ConfigError
from sweep.config import ESTIMATION_MODES, ESTIMATOR_NAMES, load_sweep, resolve
from sweep.link import chunk_seed, simulate_chunk
from sweep.processing import (
    BUILTIN_ESTIMATORS,
    ESTIMATION_OPENERS,
    MlEstimator,
    estimator_complex,
    estimator_inputs,
)
from tests.test_sweep import write_sweep

LINK = {"n_t": 2, "n_r": 2, "bits_per_symbol": 6, "channel": "rayleigh", "epa_subcarriers": 108,
        "cdl_subcarriers": 612, "cdl_symbols": 1, "cdl_delay_spread_ns": 100,
        "csi_error_var": 0.0, "decoder_rule": "offset-minsum", "iterations": 20}
CDL = {**LINK, "channel": "cdl-a"}


def rng_of(snr: float, chunk: int, seed: int = 7) -> np.random.Generator:
    return np.random.default_rng(chunk_seed(seed, 0, snr, chunk))


def write(folder: Path, name: str, **over: Any) -> Path:
    """A sweep YAML (tests/test_sweep.py's writer) of ML and the exact-ML estimator at the
    paper's 14.35 dB; ``over`` replaces top-level keys."""
    return write_sweep(folder, name, **{
        "seed": 3, "snr_db": [14.35],
        "stopping": {"target_block_errors": 8, "max_blocks": 60, "chunk_blocks": 10,
                     "floor_bler": 1e-3},
        "curves": [{"label": "ML", "mode": "ml"},
                   {"label": "exact ML estimator", "mode": "estimate",
                    "estimator": "exact-ml"}], **over})


# --- the estimator interface -------------------------------------------------------------


def test_estimator_inputs_match_the_design_data_set_layout() -> None:
    """zoo.datasets' mimo_llr arrays (y 4, H 8, noise_std 1 for 2x2) are the float32 casts
    of estimator_inputs on the same complex data; exact-ml on them gives the data set's
    LLRs, and the layout round-trips exactly."""
    from phy.datasets import mimo_llr_dataset
    from zoo.datasets import DATASETS

    design = {"data": {"snr_db": [8.0, 16.0], "n_t": 2, "n_r": 2, "bits_per_symbol": 6}}
    zoo = DATASETS["mimo_llr"](design, 64, 5, None)
    ds = mimo_llr_dataset(64, snr_db=(8.0, 16.0), n_t=2, n_r=2, bits_per_symbol=6, seed=5)
    y, h, s = estimator_inputs(ds["y"], ds["H"], ds["noise_var"])
    assert (y.shape, h.shape, s.shape) == ((64, 4), (64, 8), (64, 1))
    assert y.dtype == h.dtype == s.dtype == np.float64
    for mine, theirs in ((y, zoo["y"]), (h, zoo["H"]), (s, zoo["noise_std"])):
        np.testing.assert_array_equal(mine.astype(np.float32), theirs)
    # explicit layout: [Re y1, Re y2, Im y1, Im y2]; [Re h11, Re h12, Re h21, Re h22, Im ...]
    np.testing.assert_array_equal(y[0], [ds["y"][0, 0].real, ds["y"][0, 1].real,
                                         ds["y"][0, 0].imag, ds["y"][0, 1].imag])
    np.testing.assert_array_equal(h[0, :4], ds["H"][0].real.ravel())
    np.testing.assert_array_equal(h[0, 4:], ds["H"][0].imag.ravel())
    yc, hc, n0 = estimator_complex(y, h, s)
    np.testing.assert_array_equal(yc, ds["y"])
    np.testing.assert_array_equal(hc, ds["H"])
    np.testing.assert_allclose(n0, ds["noise_var"], rtol=1e-15)
    llr = MlEstimator(6)(zoo["y"], zoo["H"], zoo["noise_std"])  # the float32 inputs
    np.testing.assert_allclose(llr, zoo["llr"], rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(MlEstimator(6)(y, h, s), ds["llr"], rtol=1e-5, atol=1e-4)


def test_estimator_names_agree() -> None:
    from sweep.config import CODE_N
    from sweep.link import code

    assert set(ESTIMATOR_NAMES) == set(BUILTIN_ESTIMATORS)
    assert set(ESTIMATION_MODES) == set(ESTIMATION_OPENERS)
    assert CODE_N == code().n


def _interleaved(y: np.ndarray, h: np.ndarray, s: np.ndarray) -> np.ndarray:
    """A wrong-layout estimator: reads y and H as interleaved (Re, Im) pairs (numpy's
    complex .view(float64), the EQ-Net authors' layout), not as the data sets' blocks."""
    def blocks(a: np.ndarray) -> np.ndarray:
        c = a[:, 0::2] + 1j * a[:, 1::2]
        return np.concatenate([c.real, c.imag], axis=1)
    return MlEstimator(6)(blocks(y), blocks(h), s)


@pytest.mark.parametrize("link", [{**LINK, "csi_error_var": 0.01}, CDL],
                         ids=["rayleigh-csi", "cdl-a"])
def test_exact_ml_estimator_equals_the_ml_detector(link: dict[str, Any]) -> None:
    """Positive control: the estimator path (no detector) gives the ml curve's counts at
    the same seeds. Negative controls: flipped signs, a wrong noise level, a wrong layout."""
    est = MlEstimator(6)
    wrong = {"sign-flipped": lambda y, h, s: -est(y, h, s),
             "noise x3": lambda y, h, s: est(y, h, 3 * s),
             "interleaved layout": _interleaved}
    differs = dict.fromkeys(wrong, 0)
    errors = 0
    for snr, chunk in ((13.0, 0), (14.35, 1), (15.5, 2)):
        ml = simulate_chunk(link, snr, 20, rng_of(snr, chunk), "ml")
        got = simulate_chunk(link, snr, 20, rng_of(snr, chunk), None, estimator=est)
        assert got == ml, (snr, got, ml)
        errors += ml["block_errors"]
        for name, f in wrong.items():
            bad = simulate_chunk(link, snr, 20, rng_of(snr, chunk), None, estimator=f)
            differs[name] += bad != ml
            if name == "sign-flipped":
                assert bad["block_errors"] == 20
            if name == "interleaved layout":
                assert bad["raw_bit_errors"] > 2 * ml["raw_bit_errors"]
    assert errors > 0  # the positive control compared points with block errors
    assert all(differs.values()), differs
    with pytest.raises(ValueError, match="replaces the detector"):
        simulate_chunk(link, 13.0, 2, rng_of(13.0, 0), "ml", estimator=est)
    with pytest.raises(ValueError, match="shape"):
        simulate_chunk(link, 13.0, 2, rng_of(13.0, 0), None,
                       estimator=lambda y, h, s: est(y, h, s)[:, :6])


# --- CDL-A --------------------------------------------------------------------------------


def test_cdl_a_channels_are_seeded_by_the_chunk_generator() -> None:
    import torch

    from phy.wideband import cdl_a_codeword_channels

    def draw(seed: int, **kw: Any) -> tuple[np.ndarray, np.random.Generator]:
        rng = np.random.default_rng(seed)
        return cdl_a_codeword_channels(6, 54, 2, 2, rng, **kw), rng

    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a, ra = draw(1)
    assert torch.equal(state, torch.random.get_rng_state())  # torch's global RNG untouched
    b, _ = draw(1)
    c, _ = draw(2)
    assert a.shape == (6 * 54, 2, 2) and a.dtype == np.complex128
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    ref = np.random.default_rng(1)
    ref.integers(0, 2**63, dtype=np.int64)  # the generator advanced by exactly one draw
    assert ra.integers(0, 2**32) == ref.integers(0, 2**32)
    # block fading per symbol group: 3 consecutive channel uses share one H
    g, _ = draw(1, symbols=3)
    g = g.reshape(6, 18, 3, 2, 2)
    np.testing.assert_array_equal(g[:, :, 0], g[:, :, 2])
    assert not np.allclose(g[:, 0, 0], g[:, 1, 0])
    with pytest.raises(ValueError, match="need 54 subcarriers"):
        draw(1, subcarriers=53)
    # unit average energy over drops (E|h_ij|^2 = 1, as rayleigh_mimo)
    h = cdl_a_codeword_channels(1500, 8, 2, 2, np.random.default_rng(9))
    assert np.mean(np.abs(h) ** 2) == pytest.approx(1.0, abs=0.06)


def test_cdl_a_chunk_is_the_same_in_a_fresh_process() -> None:
    """Same chunk seed -> identical counts: twice here (with another chunk in between) and
    in a fresh interpreter (no state carried by Sionna or torch)."""
    first = simulate_chunk(CDL, 14.0, 12, rng_of(14.0, 4), "ml")
    simulate_chunk(CDL, 15.0, 5, rng_of(15.0, 0), "zf-sic")
    assert simulate_chunk(CDL, 14.0, 12, rng_of(14.0, 4), "ml") == first
    code = ("import json, numpy as np\nfrom sweep.link import chunk_seed, simulate_chunk\n"
            f"link = {CDL!r}\n"
            "rng = np.random.default_rng(chunk_seed(7, 0, 14.0, 4))\n"
            "print(json.dumps(simulate_chunk(link, 14.0, 12, rng, 'ml')))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=300, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == first


# --- configuration ------------------------------------------------------------------------


def test_config_refuses_bad_axis_and_cdl(tmp_path: Path) -> None:
    path = write(tmp_path, "bad", snr_db=[14.0, 15.0],
                 axis={"key": "csi_error_var", "values": [0.0, 0.01]})
    with pytest.raises(ConfigError, match=r"snr_db: .*a list of one SNR when axis"):
        load_sweep(path)
    path = write(tmp_path, "bad", axis={"key": "csi_error_var", "values": [0.01, 0.0]},
                 link={"n_t": 2, "n_r": 2, "bits_per_symbol": 6, "channel": "rayleigh",
                       "csi_error_var": 0.1})
    with pytest.raises(ConfigError) as e:
        load_sweep(path)
    assert {p.key for p in e.value.problems} == {"axis.values"}
    path = write(tmp_path, "bad", axis={"key": "csi_error_var", "values": [0.0, 0.01]},
                 link={"n_t": 2, "n_r": 2, "bits_per_symbol": 6, "channel": "rayleigh",
                       "csi_error_var": 0.1})
    with pytest.raises(ConfigError, match=r"link.csi_error_var: also given by axis.key"):
        load_sweep(path)
    path = write(tmp_path, "bad", link={"n_t": 2, "n_r": 2, "bits_per_symbol": 6,
                                        "channel": "cdl-a", "cdl_subcarriers": 20})
    with pytest.raises(ConfigError, match=r"link.cdl_subcarriers: 20 subcarriers; a codeword's "
                                          r"54 channel uses in groups of 1 need 54"):
        load_sweep(path)
    path = write(tmp_path, "bad", curves=[{"label": "E", "mode": "estimate",
                                           "estimator": "nn"}])
    with pytest.raises(ConfigError, match=r"curves\[0\]\.estimator"):
        load_sweep(path)


def test_apply_skips_along_a_csi_axis() -> None:
    from sweep.runner import Point, apply_skips

    def pts() -> list[Point]:
        out = [Point(0, si, {}, 14.35, 1, ["k"]) for si in range(4)]
        out[1].stop = out[2].stop = "below_floor"
        return out

    snr = pts()
    apply_skips(snr, True)
    assert [p.skipped for p in snr] == [False, False, True, True]
    csi = pts()
    apply_skips(csi, True, falls=False)  # BLER grows with the CSI error: skip below
    assert [p.skipped for p in csi] == [True, True, False, False]


# --- sweeps on Ray ------------------------------------------------------------------------


def _lines(path: Path) -> list[bytes]:
    return [x for x in path.read_bytes().split(b"\n") if x.strip()]


def test_csi_axis_sweep_is_journaled_resumed_and_plotted(tmp_path: Path) -> None:
    """Fig. 10's axis: BLER at 14.35 dB vs sigma_CSI. The estimation curve equals the ML
    curve at every point; an interrupted journal (chunks missing in the middle, a torn
    tail) is resumed to the same points; the points' chunks are those of SNR sweeps with
    link.csi_error_var set (the same keys); the figure's x axis is sigma_CSI."""
    from sweep.plot import identical_curves
    from sweep.runner import build_points, run_sweep

    values = [0.0, 0.004, 0.02]
    path = write(tmp_path, "csi", axis={"key": "csi_error_var", "values": values})
    full = run_sweep(path, out=tmp_path / "a", workers=1, progress=False)
    assert full["axis"] == "csi_error_var"
    rows = {(p["label"], p["csi_error_var"]): p for p in full["points"]}
    assert len(rows) == 6 and all(p["snr_db"] == 14.35 for p in full["points"])
    assert ("ML", "exact ML estimator") in identical_curves(full)  # the positive control
    bler = [rows[("ML", v)]["bler"] for v in values]
    assert bler[-1] > bler[0], bler
    journal = tmp_path / "a" / "csi" / "journal.jsonl"
    recs = [json.loads(x) for x in _lines(journal)]
    assert {r["x"] for r in recs} == set(values)
    assert (tmp_path / "a" / "csi" / "csi.png").stat().st_size > 10_000
    # interrupted: every third chunk lost, a torn last line; the same points after resuming
    kept = [x for i, x in enumerate(_lines(journal)) if i % 3]
    journal.write_bytes(b"\n".join(kept) + b'\n{"key":"00ff","cou')
    again = run_sweep(path, out=tmp_path / "a", workers=1, progress=False)
    assert again["run"]["chunks_reused"] == len(kept)
    assert again["run"]["chunks_computed"] == len(recs) - len(kept)
    assert again["run"]["journal_torn_bytes"] > 0
    assert again["points"] == full["points"]
    keys = [json.loads(x)["key"] for x in _lines(journal)]
    assert len(keys) == len(set(keys)) == len(recs)
    # a longer axis reuses every chunk journaled for the values it shares
    path = write(tmp_path, "csi", axis={"key": "csi_error_var", "values": [*values, 0.05]})
    more = run_sweep(path, out=tmp_path / "a", workers=1, progress=False)
    assert more["run"]["chunks_reused"] == len(recs)
    assert [p for p in more["points"] if p["csi_error_var"] in values] == full["points"]
    # an axis point's chunks are those of an SNR sweep with link.csi_error_var = value
    sweep = load_sweep(path)
    axis_pts = build_points(sweep, resolve(sweep, path))
    plain = write(tmp_path, "plain", link={"n_t": 2, "n_r": 2, "bits_per_symbol": 6,
                                           "channel": "rayleigh", "csi_error_var": 0.02})
    sw = load_sweep(plain)
    assert build_points(sw, resolve(sw, plain))[0].keys == next(
        p.keys for p in axis_pts if p.ci == 0 and p.x == 0.02)


def test_cdl_a_sweep_workers_reproduce_the_chunks(tmp_path: Path) -> None:
    """A CDL-A sweep on two Ray workers: the estimation curve equals the ML curve, and
    every journaled chunk equals its recomputation here from its seed alone."""
    from sweep.plot import identical_curves
    from sweep.runner import run_sweep

    path = write(tmp_path, "cdl", snr_db=[16.0],
                 link={"n_t": 2, "n_r": 2, "bits_per_symbol": 6, "channel": "cdl-a"},
                 stopping={"target_block_errors": 1000, "max_blocks": 40, "chunk_blocks": 10})
    res = run_sweep(path, out=tmp_path, workers=2, progress=False)
    assert ("ML", "exact ML estimator") in identical_curves(res)
    assert all(p["blocks"] == 40 for p in res["points"])
    link = load_sweep(path).link.model_dump()
    recs = [json.loads(x) for x in _lines(tmp_path / "cdl" / "journal.jsonl")]
    assert len({r["pid"] for r in recs}) >= 2 and len(recs) == 8
    for r in recs[:4]:
        rng = np.random.default_rng(chunk_seed(3, 0, 16.0, r["chunk"]))
        assert simulate_chunk(link, 16.0, 10, rng, "ml", interleaver_seed=3) == r["counts"]
