"""End-to-end coded link: bits -> LDPC -> interleaver -> QAM -> channel -> LLRs ->
optional processing -> deinterleave -> BP decoding -> BLER / BER vs SNR.

The processing stage is any callable mapping an LLR array (N, n_t * bits_per_symbol)
to an array of the same shape (a quantizer + reconstruction, an estimator, the
integer hardware model...). Results are saved as JSON plus a PNG plot.

Example::

    python -m phy.link --detector ml --snr 10 12 14 16 --out results/phy/ml
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from phy.channels import imperfect_csi, rayleigh_mimo, snr_db_to_noise_var
from phy.constellation import map_bits
from phy.detectors import kbest_llr, lmmse_llr, ml_llr, zf_llr, zf_sic_llr
from phy.interleaver import RandomInterleaver
from phy.ldpc import BPDecoder, wifi_ldpc_648
from phy.wideband import cdl_a_codeword_channels, epa_frequency_response

Detector = Callable[[np.ndarray, np.ndarray, np.ndarray, int], np.ndarray]
Processing = Callable[[np.ndarray], np.ndarray]

DETECTORS: dict[str, Detector] = {
    "ml": ml_llr,
    "maxlog-ml": lambda y, H, n0, k: ml_llr(y, H, n0, k, max_log=True),
    "zf-sic": zf_sic_llr,
    "lmmse": lmmse_llr,
    "zf": zf_llr,
    "kbest": kbest_llr,
}
CHANNELS = ("rayleigh", "awgn", "epa", "cdl-a")


@dataclass
class LinkConfig:
    """One link setup. SNR is E_s/N0 per stream and receive antenna (``phy.channels``)."""

    snr_db: Sequence[float] = (10.0, 12.0, 14.0)
    n_t: int = 2
    n_r: int = 2
    bits_per_symbol: int = 6
    detector: str = "ml"
    # rayleigh: i.i.d. per channel use; epa: SISO, 1 draw/codeword; cdl-a: N_r x N_t
    # narrowband matrices of one Sionna CDL-A drop per codeword (phy.wideband.
    # cdl_a_codeword_channels: channel uses on cdl_subcarriers-spread subcarriers, the
    # cdl_symbols channel uses of one subcarrier share H: block fading per symbol group)
    channel: str = "rayleigh"
    epa_subcarriers: int = 108
    cdl_subcarriers: int = 612  # the codeword's band: 20 MHz at 30 kHz (51 PRB)
    cdl_symbols: int = 1  # channel uses (OFDM symbols) per subcarrier, sharing one H
    cdl_delay_spread_ns: float = 100.0
    csi_error_var: float = 0.0  # detector sees H + N, N ~ CN(0, csi_error_var)
    decoder_rule: str = "offset-minsum"
    iterations: int = 20
    max_codewords: int = 2000
    target_block_errors: int = 100
    batch_codewords: int = 100
    seed: int = 0
    label: str = ""
    extra: dict = field(default_factory=dict)  # free-form metadata, saved in the JSON


def _channel(cfg: LinkConfig, n_vec: int, n_cw: int, rng) -> np.ndarray:
    """Channel matrices (n_vec, n_r, n_t) for n_cw codewords' channel uses."""
    if cfg.channel == "rayleigh":
        return rayleigh_mimo(n_vec, cfg.n_r, cfg.n_t, rng)
    if cfg.channel == "awgn":
        return np.broadcast_to(np.eye(cfg.n_r, cfg.n_t, dtype=complex), (n_vec, cfg.n_r, cfg.n_t))
    if cfg.channel == "epa":
        if cfg.n_t != 1 or cfg.n_r != 1:
            raise ValueError("the EPA link is SISO (n_t = n_r = 1)")
        h = epa_frequency_response(n_cw, cfg.epa_subcarriers, rng)  # one draw per codeword
        per_cw = n_vec // n_cw
        sc = np.arange(per_cw) % cfg.epa_subcarriers  # symbols fill the subcarriers in turn
        return h[:, sc].reshape(n_vec, 1, 1)
    if cfg.channel == "cdl-a":  # Sionna seed drawn from rng: reproducible per batch
        return cdl_a_codeword_channels(n_cw, n_vec // n_cw, cfg.n_r, cfg.n_t, rng,
                                       cfg.cdl_subcarriers, cfg.cdl_symbols,
                                       cfg.cdl_delay_spread_ns * 1e-9)
    raise ValueError(f"channel must be one of {CHANNELS}")


def _run_point(cfg: LinkConfig, snr_db: float, detector: Detector,
               process: Processing | None, bar) -> dict:
    code = wifi_ldpc_648()
    decoder = BPDecoder(code, cfg.decoder_rule, cfg.iterations)
    interleaver = RandomInterleaver(code.n, seed=cfg.seed)
    rng = np.random.default_rng([cfg.seed, int(round(snr_db * 1000)) & 0xFFFFFFFF])
    bits_per_vec = cfg.n_t * cfg.bits_per_symbol
    vec_per_cw = -(-code.n // bits_per_vec)
    pad = vec_per_cw * bits_per_vec - code.n  # random filler bits, LLRs dropped
    n0 = float(snr_db_to_noise_var(snr_db))
    stats = {"codewords": 0, "block_errors": 0, "bit_errors": 0, "raw_bit_errors": 0,
             "iterations": 0}
    def more() -> bool:
        return (stats["codewords"] < cfg.max_codewords
                and stats["block_errors"] < cfg.target_block_errors)

    while more():
        n_cw = min(cfg.batch_codewords, cfg.max_codewords - stats["codewords"])
        info = rng.integers(0, 2, (n_cw, code.k), dtype=np.uint8)
        coded = interleaver.interleave(code.encode(info))
        tx_bits = np.concatenate([coded, rng.integers(0, 2, (n_cw, pad), dtype=np.uint8)], axis=1)
        tx_bits = tx_bits.reshape(n_cw * vec_per_cw, bits_per_vec)
        H = _channel(cfg, len(tx_bits), n_cw, rng)
        x = map_bits(tx_bits, cfg.bits_per_symbol)
        y = np.einsum("brt,bt->br", H, x)
        y = y + np.sqrt(n0 / 2) * (rng.standard_normal(y.shape) + 1j * rng.standard_normal(y.shape))
        H_rx = imperfect_csi(H, cfg.csi_error_var, rng) if cfg.csi_error_var > 0 else H
        llr = detector(y, H_rx, np.full(len(y), n0), cfg.bits_per_symbol)
        if process is not None:
            llr = np.asarray(process(llr), dtype=np.float64).reshape(llr.shape)
        llr_cw = llr.reshape(n_cw, vec_per_cw * bits_per_vec)[:, : code.n]
        stats["raw_bit_errors"] += int(np.sum((llr_cw > 0) != coded))
        res = decoder.decode(interleaver.deinterleave(llr_cw))
        info_hat = code.info_bits(res.bits)
        errors = (info_hat != info).sum(axis=1)
        stats["codewords"] += n_cw
        stats["block_errors"] += int(np.count_nonzero(errors))
        stats["bit_errors"] += int(errors.sum())
        stats["iterations"] += int(res.iterations.sum())
        bar.update(n_cw)
        bar.set_postfix(snr=snr_db, bler=stats["block_errors"] / stats["codewords"])
    n = stats["codewords"]
    return {"snr_db": snr_db,
            "ebn0_db": snr_db - 10 * np.log10(cfg.bits_per_symbol * code.rate),
            "bler": stats["block_errors"] / n, "ber": stats["bit_errors"] / (n * code.k),
            "uncoded_ber": stats["raw_bit_errors"] / (n * code.n),
            "mean_iterations": stats["iterations"] / n, **stats}


def simulate_link(cfg: LinkConfig, process: Processing | None = None,
                  detector: Detector | None = None, out_dir: str | Path | None = None) -> dict:
    """Run the BLER/BER sweep over ``cfg.snr_db``; saves ``<label>.json/.png`` in out_dir."""
    det = detector if detector is not None else DETECTORS[cfg.detector]
    qam = f"{2**cfg.bits_per_symbol}qam"
    label = cfg.label or f"{cfg.detector}-{cfg.channel}-{cfg.n_t}x{cfg.n_r}-{qam}"
    t0 = time.time()
    points = []
    total = cfg.max_codewords * len(cfg.snr_db)
    with tqdm(total=total, desc=label, unit="cw", leave=False) as bar:
        for snr in cfg.snr_db:
            points.append(_run_point(cfg, float(snr), det, process, bar))
    result = {"label": label, "config": asdict(cfg), "code": "802.11n LDPC (648,324)",
              "processing": getattr(process, "__name__", None) if process else None,
              "points": points, "seconds": time.time() - t0}
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{label}.json").write_text(json.dumps(result, indent=2, default=float))
        plot_bler([result], out / f"{label}.png")
    return result


def plot_bler(results: Sequence[dict], path: str | Path, title: str = "") -> None:
    """BLER (solid) vs SNR for several ``simulate_link`` results, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for r in results:
        snr = [p["snr_db"] for p in r["points"] if p["bler"] > 0]
        bler = [p["bler"] for p in r["points"] if p["bler"] > 0]
        ax.semilogy(snr, bler, "o-", label=r["label"])
    ax.set_xlabel("SNR = $E_s/N_0$ per stream [dB]")
    ax.set_ylabel("BLER")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax.set_title(title or "802.11n LDPC (648,324), BP 20 it.")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--detector", default="ml", choices=sorted(DETECTORS))
    p.add_argument("--channel", default="rayleigh", choices=CHANNELS)
    p.add_argument("--snr", type=float, nargs="+", default=[10.0, 12.0, 14.0])
    p.add_argument("--nt", type=int, default=2)
    p.add_argument("--nr", type=int, default=2)
    p.add_argument("--bits-per-symbol", type=int, default=6)
    p.add_argument("--codewords", type=int, default=2000)
    p.add_argument("--target-errors", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/phy")
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # the machine is shared; one core per simulation
    cfg = LinkConfig(snr_db=a.snr, n_t=a.nt, n_r=a.nr, bits_per_symbol=a.bits_per_symbol,
                     detector=a.detector, channel=a.channel, max_codewords=a.codewords,
                     target_block_errors=a.target_errors, seed=a.seed)
    res = simulate_link(cfg, out_dir=a.out)
    for pt in res["points"]:
        print(f"SNR {pt['snr_db']:5.1f} dB  BLER {pt['bler']:.4f}  BER {pt['ber']:.2e}  "
              f"({pt['codewords']} cw)")


if __name__ == "__main__":
    main()
