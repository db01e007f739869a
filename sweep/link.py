"""One chunk of one sweep point: ``chunk_blocks`` codewords through the coded link.

bits -> 802.11n LDPC (648,324) -> random interleaver -> Gray QAM -> channel -> detector
LLRs -> processing (a curve's; none for ``ml``) -> deinterleave -> BP decoding -> counts.
An estimation curve replaces "detector LLRs -> processing" by its estimator on
(y, H_est, noise_std) (``sweep.processing.run_estimator``).

This mirrors the body of :func:`phy.link._run_point` built from ``phy``'s public pieces;
the random numbers of a chunk come from one generator seeded by
:func:`chunk_seed` only (sweep seed, curve key, SNR, chunk index), drawn in the order
info bits, filler bits, channel (CDL-A: one draw, Sionna's seed), noise, CSI error.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import numpy as np

from phy.channels import imperfect_csi, rayleigh_mimo, snr_db_to_noise_var
from phy.constellation import map_bits
from phy.interleaver import RandomInterleaver
from phy.ldpc import BPDecoder, LDPCCode, wifi_ldpc_648
from phy.link import DETECTORS
from phy.wideband import cdl_a_codeword_channels, epa_frequency_response
from sweep.processing import Estimator, run_estimator

Processing = Callable[[np.ndarray], np.ndarray]
CODE_NAME = "IEEE 802.11n LDPC (648,324), rate 1/2"


@lru_cache(maxsize=1)
def code() -> LDPCCode:
    return wifi_ldpc_648()


@lru_cache(maxsize=8)
def _decoder(rule: str, iterations: int) -> BPDecoder:
    return BPDecoder(code(), rule, iterations)


@lru_cache(maxsize=8)
def _interleaver(seed: int) -> RandomInterleaver:
    return RandomInterleaver(code().n, seed=seed)


def snr_key(snr_db: float) -> int:
    """The SNR's part of a chunk seed: milli-dB, as a uint32."""
    return int(round(float(snr_db) * 1000)) & 0xFFFFFFFF


def curve_key(label: str, common_random_numbers: bool) -> int:
    """The curve's part of a chunk seed: 0 for every curve under common random numbers
    (all curves see the same bits, channels and noise), else crc32 of its label."""
    return 0 if common_random_numbers else zlib.crc32(label.encode()) & 0xFFFFFFFF


def chunk_seed(seed: int, curve: int, snr_db: float, chunk: int) -> np.random.SeedSequence:
    """SeedSequence(seed, spawn_key=(curve, SNR in milli-dB, chunk index))."""
    return np.random.SeedSequence(int(seed), spawn_key=(int(curve), snr_key(snr_db),
                                                        int(chunk)))


def _channel(link: Mapping[str, Any], n_vec: int, n_cw: int, rng) -> np.ndarray:
    """Channel matrices (n_vec, n_r, n_t), as phy.link draws them."""
    n_t, n_r = link["n_t"], link["n_r"]
    if link["channel"] == "rayleigh":
        return rayleigh_mimo(n_vec, n_r, n_t, rng)
    if link["channel"] == "awgn":
        return np.broadcast_to(np.eye(n_r, n_t, dtype=complex), (n_vec, n_r, n_t))
    if link["channel"] == "epa":  # SISO; one draw per codeword, symbols fill subcarriers
        h = epa_frequency_response(n_cw, link["epa_subcarriers"], rng)
        sc = np.arange(n_vec // n_cw) % link["epa_subcarriers"]
        return h[:, sc].reshape(n_vec, 1, 1)
    if link["channel"] == "cdl-a":  # one Sionna drop per codeword, its seed drawn from rng
        return cdl_a_codeword_channels(n_cw, n_vec // n_cw, n_r, n_t, rng,
                                       link.get("cdl_subcarriers", 612),
                                       link.get("cdl_symbols", 1),
                                       float(link.get("cdl_delay_spread_ns", 100)) * 1e-9)
    raise ValueError(f"unknown channel {link['channel']!r}")


def simulate_chunk(link: Mapping[str, Any], snr_db: float, blocks: int,
                   rng: np.random.Generator, detector: str | None,
                   process: Processing | None = None, interleaver_seed: int = 0,
                   estimator: Estimator | None = None) -> dict[str, int]:
    """Counts of ``blocks`` codewords at ``snr_db`` (E_s/N0 per stream and antenna).

    With ``estimator`` (an estimation curve) no detector runs (``detector`` and
    ``process`` must be None): the estimator maps (y, H_est, noise_std) to the LLRs.
    Either way the chunk draws the same random numbers, so under common random numbers
    an estimation curve sees the bits, channels and noise of the detector curves.

    Returns blocks, block_errors, bit_errors (information bits), bit_errors_sq (sum of
    squared bit errors per block), raw_bit_errors (hard decisions on the processed LLRs,
    before decoding) and iterations (BP iterations, summed)."""
    c = code()
    bps = link["bits_per_symbol"]
    bits_per_vec = link["n_t"] * bps
    vec_per_cw = -(-c.n // bits_per_vec)
    pad = vec_per_cw * bits_per_vec - c.n  # random filler bits, their LLRs dropped
    n0 = float(snr_db_to_noise_var(snr_db))
    il = _interleaver(interleaver_seed)
    info = rng.integers(0, 2, (blocks, c.k), dtype=np.uint8)
    coded = il.interleave(c.encode(info))
    tx = np.concatenate([coded, rng.integers(0, 2, (blocks, pad), dtype=np.uint8)], axis=1)
    tx = tx.reshape(blocks * vec_per_cw, bits_per_vec)
    H = _channel(link, len(tx), blocks, rng)
    y = np.einsum("brt,bt->br", H, map_bits(tx, bps))
    y = y + np.sqrt(n0 / 2) * (rng.standard_normal(y.shape) + 1j * rng.standard_normal(y.shape))
    csi = float(link.get("csi_error_var", 0.0))
    H_rx = imperfect_csi(H, csi, rng) if csi > 0 else H
    if estimator is not None:
        if detector is not None or process is not None:
            raise ValueError("an estimator replaces the detector and the processing")
        llr = run_estimator(estimator, y, H_rx, n0, bits_per_vec)
    else:
        llr = DETECTORS[detector](y, H_rx, np.full(len(y), n0), bps)
    if process is not None:
        out = np.asarray(process(llr), dtype=np.float64)
        if out.shape != llr.shape:
            raise ValueError(f"processing returned shape {out.shape}, expected {llr.shape}")
        if not np.all(np.isfinite(out)):
            raise ValueError("processing returned non-finite LLRs")
        llr = out
    llr_cw = llr.reshape(blocks, vec_per_cw * bits_per_vec)[:, : c.n]
    raw = int(np.sum((llr_cw > 0) != coded))
    res = _decoder(link["decoder_rule"], link["iterations"]).decode(il.deinterleave(llr_cw))
    errors = (c.info_bits(res.bits) != info).sum(axis=1).astype(np.int64)
    return {"blocks": int(blocks), "block_errors": int(np.count_nonzero(errors)),
            "bit_errors": int(errors.sum()), "bit_errors_sq": int((errors ** 2).sum()),
            "raw_bit_errors": raw, "iterations": int(res.iterations.sum())}
