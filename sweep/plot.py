"""The sweep's figure: BLER and BER vs SNR (or vs the sweep's ``axis``, e.g. sigma_CSI at
one SNR), 95% intervals as error bars, log y.

A point with no block error is drawn as a downward triangle at the upper end of its
interval (an upper bound), not joined to the curve; skipped points are not drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: x-axis label per axis key (points.json ``axis``; rows hold the value under that key).
AXIS_LABELS = {
    "snr_db": "SNR = $E_s/N_0$ per stream and antenna [dB]",
    "csi_error_var": r"$\sigma_{CSI}$: $\hat H = H + N$, $N \sim \mathcal{CN}(0, "
                     r"\sigma_{CSI})$ per entry",
}


def plot_sweep(result: dict[str, Any], path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = result.get("axis", "snr_db")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    markers = "osD^vP*X"
    styles = ("-", "--", ":", "-.")
    for i, curve in enumerate(result["curves"]):
        pts = [p for p in result["points"] if p["label"] == curve["label"]
               and p["status"] != "skipped_below_floor"]
        col = colors[i % len(colors)]
        for ax, what, ci in ((axes[0], "bler", "bler_ci95"), (axes[1], "ber", "ber_ci95_blocks")):
            hit = [p for p in pts if p[what]]
            x = [p[key] for p in hit]
            y = [p[what] for p in hit]
            err = [[p[what] - p[ci][0] for p in hit], [p[ci][1] - p[what] for p in hit]]
            ax.errorbar(x, y, yerr=err, color=col, marker=markers[i % len(markers)],
                        ms=max(3, 6 - i), mfc="none" if i % 2 else col, capsize=3,
                        lw=1.2, ls=styles[i % len(styles)],
                        label=f"{curve['label']} ({curve['mode']})")
            zero = [p for p in pts if not p[what]]
            if zero:
                ax.plot([p[key] for p in zero], [p[ci][1] for p in zero], "v",
                        color=col, mfc="none", ms=6)
    cfg = result["config"]
    link = cfg["link"]
    st = cfg["stopping"]
    axes[0].set_ylabel("BLER")
    axes[1].set_ylabel("BER (info bits)")
    for ax in axes:
        ax.set_yscale("log")
        ax.set_xlabel(AXIS_LABELS.get(key, key))
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    same = identical_curves(result)
    if same:
        axes[0].text(0.02, 0.02, "identical counts at every point:\n" + "\n".join(
            f"{a} = {b}" for a, b in same), transform=axes[0].transAxes, fontsize=7,
            va="bottom")
    qam = 2 ** link["bits_per_symbol"]
    channel = {"rayleigh": "i.i.d. Rayleigh", "awgn": "AWGN", "epa": "EPA",
               "cdl-a": "CDL-A"}[link["channel"]]
    if key != "snr_db":
        channel += f", SNR {cfg['snr_db'][0]:g} dB"
    elif link.get("csi_error_var"):
        channel += f", $\\sigma_{{CSI}}$ = {link['csi_error_var']:g}"
    fig.suptitle(
        f"{result['name']}: {link['n_t']}x{link['n_r']} {qam}-QAM {channel}, "
        f"{result['code']}, {link['decoder_rule']} {link['iterations']} it.\n"
        f"95% intervals (BER: over blocks); up to {st['target_block_errors']} block errors or "
        f"{st['max_blocks']} blocks per point; open triangles: upper bounds, no errors",
        fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def identical_curves(result: dict[str, Any]) -> list[tuple[str, str]]:
    """Pairs of curves (labels) whose every point has the same status and counts."""
    keys = ("status", "blocks", "block_errors", "bit_errors", "raw_bit_errors")
    rows: dict[str, list[tuple]] = {}
    for p in result["points"]:
        rows.setdefault(p["label"], []).append(tuple(p.get(k) for k in keys))
    labels = [c["label"] for c in result["curves"]]
    return [(a, b) for i, a in enumerate(labels) for b in labels[i + 1:]
            if rows.get(a) == rows.get(b)]
