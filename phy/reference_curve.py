"""Reference curve: ML vs ZF-SIC vs LMMSE BLER, 2x2 64-QAM i.i.d. Rayleigh, 802.11n LDPC.

    python -m phy.reference_curve --out results/phy    (or: make phy-curve)

Writes one JSON per detector and ``reference_2x2_64qam.png`` / ``.json`` with all curves.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from phy.link import LinkConfig, plot_bler, simulate_link

DETECTORS = ("ml", "zf-sic", "lmmse")


def snr_at_bler(points: list[dict], target: float) -> tuple[float, bool] | None:
    """(SNR where BLER crosses ``target``, exact) by log-linear interpolation.

    A point with zero block errors is taken at 1/codewords, which makes the
    crossing an upper bound (``exact`` False).
    """
    for a, b in zip(points, points[1:], strict=False):
        b_bler = b["bler"] if b["bler"] > 0 else 1.0 / b["codewords"]
        if a["bler"] >= target > b_bler:
            la, lb = np.log10(a["bler"]), np.log10(b_bler)
            t = (la - np.log10(target)) / (la - lb)
            return float(a["snr_db"] + t * (b["snr_db"] - a["snr_db"])), b["bler"] > 0
    return None


def summarize(results: list[dict], out: Path) -> dict:
    """Write reference_2x2_64qam.json / .png from the per-detector results."""
    summary = {r["label"]: {"snr_at_bler_1e-2": snr_at_bler(r["points"], 1e-2),
                            "snr_at_bler_1e-1": snr_at_bler(r["points"], 1e-1),
                            "points": [(q["snr_db"], q["bler"], q["codewords"])
                                       for q in r["points"]]}
               for r in results}
    (out / "reference_2x2_64qam.json").write_text(json.dumps(summary, indent=2))
    plot_bler(results, out / "reference_2x2_64qam.png",
              title="2x2 64-QAM i.i.d. Rayleigh, 802.11n LDPC (648,324), OMS 20 it.")
    return summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="results/phy")
    p.add_argument("--codewords", type=int, default=3000)
    p.add_argument("--target-errors", type=int, default=200)
    p.add_argument("--snr", type=float, nargs="+",
                   default=[11, 12, 12.5, 13, 13.5, 14, 14.5, 15, 16, 17, 18, 19, 20, 21, 22])
    p.add_argument("--replot", action="store_true", help="re-plot the saved JSON only")
    a = p.parse_args()
    import torch

    torch.set_num_threads(1)  # shared machine: one core
    out = Path(a.out)
    results = []
    for det in DETECTORS:
        if a.replot:
            results.append(json.loads((out / f"{det}-rayleigh-2x2-64qam.json").read_text()))
            continue
        cfg = LinkConfig(snr_db=a.snr, detector=det, max_codewords=a.codewords,
                         target_block_errors=a.target_errors, seed=1)
        res = simulate_link(cfg, out_dir=out)
        results.append(res)
        print(det, " ".join(f"{q['snr_db']:g}dB:{q['bler']:.4f}" for q in res["points"]))
    summary = summarize(results, out)
    print(json.dumps({k: v["snr_at_bler_1e-2"] for k, v in summary.items()}))


if __name__ == "__main__":
    main()
