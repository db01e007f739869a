"""Table 2 of García Martí et al., "Scalable Machine Learning Algorithms to Design Massive
MIMO Systems": estimated GPU memory to train a MIMO autoencoder, from the paper's eqs. 1-2,
plus a measured peak of one real training step for the configurations that fit.

Eq. 1 (encoder, Table 1 layers 1-5) and eq. 2 (decoder, layers 8-14), with
``S = (2^k)^N_T`` the one-hot size, ``p`` bytes per value and ``N`` channel uses::

    M_Le = 2p(S H_T + H_T^2 + H_T 2N N_T + 2H_T + 2N N_T) + 4pB(2H_T + 4N N_T)
    M_Ld = 2p(H_R(N_R+1) + 3H_R(H_R+1) + 16H_R + H_R S + S) + 4pB(4H_R + S + 16)

Reading of eq. 1's garbled in/out term. The extracted text reads ``4pB(2H_T 24NN_T)``.
We read it as ``4pB(2H_T + 4N N_T)``: the stray ``2`` is a mangled ``+``. The in/out tensors
of the encoder layers in Table 1 are the outputs of Dense(H_T), Dense(H_T), Dense(2N N_T)
and Normalization(2N N_T). Their sum is exactly ``2H_T + 4N N_T``. This fits the two
visible pieces "2H_T" and "4NN_T". Like eq. 2, it leaves out the (one-hot) network input:
the paper's asymptote ``M_Le ~ 8 S H_T`` has no ``B S`` term. A product reading
(``2H_T * 2 * 4N N_T``) is dimensionally a weight count, not an activation count, so we
reject it. The other plausible reading, ``2H_T + 2*4N N_T`` (adding the ComplexMult and
Noise outputs), adds 4pB * 4N N_T bytes. That is 2 MiB at N_T=16 and 8 MiB at N_T=64: the
third digit of the small N_T=64 cells moves (BAE 4-QAM 0.376 -> 0.384 GiB), nothing else.

Units. "GB" is read as GiB (2^30 bytes). This reproduces both checkpoints in the text.
The 4x4, 64-QAM AE (introduction: "~800 GB") gives 800.49 GiB; in 1e9-byte units it would
be 859.5 GB. The B=1 mixed-precision model (Section 5: "144 GB") gives 144.24 GiB.

AE with embedding + mixed precision (Section 4). The integer message label feeds an
embedding of size ``E_emb`` before the first dense layer. Eq. 1's input term ``S H_T``
becomes ``S E_emb + E_emb H_T`` (embedding table, then a Dense(E_emb -> H_T) kernel).
Mixed precision sets ``p = 2`` in both equations. The decoder is otherwise unchanged
(sparse CE stores no one-hot label; eq. 2 never counted one). The paper does not give
``E_emb``. We take ``E_emb = H_T = 256``. With it, Section 5's "144 GB" for "all the
techniques described above" (embedding + FP16 + B=1) comes out at 144.235 GiB; any
``E_emb`` outside about 230-275 misses 144 by more than 1%. (Without the embedding the
same model gives 144.234 GiB.) With that choice the
embedding by itself saves nothing. So the paper's "maximum memory reduction of ~10%" for
embeddings is not reproduced. That figure needs a small ``E_emb`` at B=1 (``E_emb=16``:
10.4%), but then the "144 GB" drops to 129 GiB. The two claims cannot both hold under
eq. 1; the checkpoint wins.

BAE (Section 5.2): ``S`` is replaced by ``k N_T`` in both equations (``inputs``/``outputs``).

Measured peaks (:func:`measure_peak_bytes`) are for a PyTorch model that follows Table 1,
trained with Adam. On CPU they come from ``torch.profiler`` with ``profile_memory=True``:
the running sum of the allocator's alloc/free events. ``tracemalloc`` only sees Python's
own allocator. It reports ~0 bytes for a 4 MiB torch tensor (checked in the tests). With
CUDA, ``torch.cuda.max_memory_allocated`` is used. The formula leaves out Adam's two
moment buffers (another 2p bytes per parameter) and framework overheads, so the measured
peaks sit above the estimate. Eq. 2 also counts three H_R x H_R kernels where Table 1 has
two, which pulls the other way. The paper's Fig. 2 shows the same (A100, +0.7 GB).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

GIB = 2**30
"""Bytes per "GB" in Table 2 (see the module docstring)."""

N_TS: tuple[int, ...] = (2, 4, 16, 64)
KS: tuple[int, ...] = (2, 4, 6, 8, 10)
SCHEMES: tuple[str, ...] = ("AE", "AE-emb-fp16", "BAE")
PAPER = {"batch": 2048, "h_t": 256, "h_r": 2048, "p": 4, "p_fp16": 2, "e_emb": 256}
CHANNEL_OFF_DIAG = 0.3


# --------------------------------------------------------------------------- formula


def encoder_bytes(
    n_t: int,
    k: int,
    *,
    h_t: int = 256,
    batch: int = 2048,
    p: int = 4,
    n: int = 1,
    inputs: int | None = None,
    emb: int | None = None,
) -> int:
    """Eq. 1: encoder memory in bytes (exact Python int).

    ``inputs`` overrides the one-hot size ``(2^k)^N_T`` (BAE: ``k*N_T``). ``emb`` swaps the
    input term ``S*H_T`` for ``S*emb + emb*H_T`` (embedding layer)."""
    s = (2**k) ** n_t if inputs is None else inputs
    first = s * h_t if emb is None else s * emb + emb * h_t
    weights = first + h_t**2 + h_t * 2 * n * n_t + 2 * h_t + 2 * n * n_t
    in_out = 2 * h_t + 4 * n * n_t
    return 2 * p * weights + 4 * p * batch * in_out


def decoder_bytes(
    n_r: int,
    k: int,
    n_t: int,
    *,
    h_r: int = 2048,
    batch: int = 2048,
    p: int = 4,
    outputs: int | None = None,
) -> int:
    """Eq. 2: decoder memory in bytes (exact Python int); ``outputs`` overrides ``(2^k)^N_T``."""
    s = (2**k) ** n_t if outputs is None else outputs
    weights = h_r * (n_r + 1) + 3 * h_r * (h_r + 1) + 16 * h_r + h_r * s + s
    in_out = 4 * h_r + s + 16
    return 2 * p * weights + 4 * p * batch * in_out


def scheme_bytes(
    scheme: str,
    n_t: int,
    k: int,
    *,
    batch: int = 2048,
    h_t: int = 256,
    h_r: int = 2048,
    e_emb: int = 256,
) -> int:
    """Encoder + decoder bytes of one Table 2 cell (``N_R = N_T``, ``N = 1``)."""
    if scheme == "AE":
        return encoder_bytes(n_t, k, h_t=h_t, batch=batch) + decoder_bytes(
            n_t, k, n_t, h_r=h_r, batch=batch
        )
    if scheme == "AE-emb-fp16":
        return encoder_bytes(n_t, k, h_t=h_t, batch=batch, p=2, emb=e_emb) + decoder_bytes(
            n_t, k, n_t, h_r=h_r, batch=batch, p=2
        )
    if scheme == "BAE":
        bits = k * n_t
        return encoder_bytes(n_t, k, h_t=h_t, batch=batch, inputs=bits) + decoder_bytes(
            n_t, k, n_t, h_r=h_r, batch=batch, outputs=bits
        )
    raise ValueError(f"unknown scheme {scheme!r}; expected one of {SCHEMES}")


def table2(**kw: int) -> list[dict[str, Any]]:
    """Every Table 2 cell as ``{"scheme", "n_t", "constellation", "k", "bytes", "gb"}``.

    ``gb`` is in GiB. ``bytes`` is a decimal string: the exact integer, which can run to
    hundreds of digits. ``kw`` goes to :func:`scheme_bytes` (batch, h_t, h_r, e_emb)."""
    cells = []
    for scheme in SCHEMES:
        for k in KS:
            for n_t in N_TS:
                b = scheme_bytes(scheme, n_t, k, **kw)
                cells.append(
                    {
                        "scheme": scheme,
                        "n_t": n_t,
                        "constellation": 2**k,
                        "k": k,
                        "bytes": str(b),
                        "gb": b / GIB,
                    }
                )
    return cells


def checkpoints() -> dict[str, dict[str, float]]:
    """The two memory figures quoted in the paper's text, against this reading."""
    ae = scheme_bytes("AE", 4, 6)
    b1_emb = scheme_bytes("AE-emb-fp16", 4, 6, batch=1)
    b1_fp16 = encoder_bytes(4, 6, batch=1, p=2) + decoder_bytes(4, 6, 4, batch=1, p=2)
    return {
        "intro_4x4_64qam_AE": {"paper_gb": 800.0, "gib": ae / GIB, "gb_1e9": ae / 1e9},
        "sec5_4x4_64qam_emb_fp16_B1": {
            "paper_gb": 144.0,
            "gib": b1_emb / GIB,
            "gb_1e9": b1_emb / 1e9,
            "gib_without_embedding": b1_fp16 / GIB,
        },
    }


def fmt_gb(gb: float) -> str:
    """Three significant digits; scientific notation from 10^4 up or below 10^-2."""
    return f"{gb:#.3g}".rstrip(".") if 1e-2 <= gb < 1e4 else f"{gb:.2e}"


def format_table(cells: Sequence[dict[str, Any]]) -> str:
    """Plain-text Table 2 in the paper's layout: rows 2^k, groups AE | emb+fp16 | BAE."""
    by = {(c["scheme"], c["k"], c["n_t"]): c["gb"] for c in cells}
    w = 9
    group_w = len(N_TS) * (w + 1) - 1
    titles = {"AE": "AE", "AE-emb-fp16": "AE emb + mixed precision", "BAE": "BAE"}
    head0 = f"{'':>6} |" + "|".join(f"{titles[s]:^{group_w}}" for s in SCHEMES)
    head1 = f"{'2^k':>6} |" + "|".join(
        " ".join(f"{'N_T=' + str(n):>{w}}" for n in N_TS) for _ in SCHEMES
    )
    lines = ["Estimated memory (GiB), B=2048, H_T=256, H_R=2048", head0, head1]
    lines.append("-" * len(head1))
    for k in KS:
        row = "|".join(" ".join(f"{fmt_gb(by[(s, k, n)]):>{w}}" for n in N_TS) for s in SCHEMES)
        lines.append(f"{2**k:>6} |" + row)
    return "\n".join(lines)


# --------------------------------------------------------------------------- measurement


class DoesNotFit(ValueError):
    """The formula estimate of a configuration exceeds the measurement budget."""


def build_model(scheme: str, n_t: int, k: int, h_t: int, h_r: int) -> Any:
    """A torch module after Table 1 (``N_R = N_T``, ``N = 1``) that maps a batch of inputs
    to the training loss.

    AE: one-hot ``S_M`` input, Dense ReLU H_T x2, Dense linear 2N_T, batch power
    normalization. BAE (Tanh-BAE): ``k N_T`` bits in, and the last encoder Dense is tanh
    with no normalization. Both then pass through a fixed real coupling channel (unit
    diagonal, 0.3 off-diagonal) applied to the real and imaginary parts, plus Gaussian
    noise. The decoder is Dense ReLU + BatchNorm x3 of H_R, then Dense to S_M (softmax +
    cross-entropy) for AE or to ``k N_T`` (sigmoid + BCE) for BAE."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    from phy.coupled_mimo import coupling_matrix

    bitwise = scheme == "BAE"
    if scheme not in ("AE", "BAE"):
        raise ValueError(f"measurement supports 'AE' and 'BAE', not {scheme!r}")
    width = k * n_t if bitwise else (2**k) ** n_t

    class MimoAE(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = nn.Sequential(
                nn.Linear(width, h_t),
                nn.ReLU(),
                nn.Linear(h_t, h_t),
                nn.ReLU(),
                nn.Linear(h_t, 2 * n_t),
            )
            layers: list[nn.Module] = []
            d_in = 2 * n_t
            for _ in range(3):
                layers += [nn.Linear(d_in, h_r), nn.ReLU(), nn.BatchNorm1d(h_r)]
                d_in = h_r
            layers.append(nn.Linear(h_r, width))
            self.decoder = nn.Sequential(*layers)
            ch = torch.from_numpy(coupling_matrix(n_t, CHANNEL_OFF_DIAG)).float()
            self.register_buffer("channel", ch)
            self.noise_std = 0.1

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            z = self.encoder(x)
            if bitwise:
                z = torch.tanh(z)
            else:  # average power 1 per complex symbol over the batch
                z = z * torch.rsqrt(2.0 * z.pow(2).mean())
            re, im = z[:, :n_t], z[:, n_t:]
            y = torch.cat([re @ self.channel.T, im @ self.channel.T], dim=1)
            y = y + self.noise_std * torch.randn_like(y)
            logits = self.decoder(y)
            if bitwise:
                return F.binary_cross_entropy_with_logits(logits, x)
            return F.cross_entropy(logits, x)  # one-hot x: categorical cross-entropy

    return MimoAE()


def _inputs(scheme: str, n_t: int, k: int, batch: int, device: Any) -> Any:
    """A random batch: bit vectors (BAE) or one-hot messages (AE)."""
    import torch

    if scheme == "BAE":
        return torch.randint(0, 2, (batch, k * n_t), device=device).float()
    s = (2**k) ** n_t
    labels = torch.randint(0, s, (batch,), device=device)
    return torch.nn.functional.one_hot(labels, s).float()


def _train_step(scheme: str, n_t: int, k: int, batch: int, h_t: int, h_r: int, dev: Any) -> None:
    """Build the model and a batch on ``dev``, then one forward, backward and Adam step."""
    import torch

    model = build_model(scheme, n_t, k, h_t, h_r).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = _inputs(scheme, n_t, k, batch, dev)
    opt.zero_grad(set_to_none=True)
    loss = model(x)
    loss.backward()
    opt.step()


def profiled_peak_bytes(fn: Callable[[], object]) -> int:
    """Peak live CPU tensor bytes while ``fn`` runs: the running sum of the allocator's
    ``[memory]`` events recorded by ``torch.profiler`` with ``profile_memory=True``."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    live = peak = 0
    for e in events:
        if str(e.device_type()).endswith("CPU"):
            live += e.nbytes()
            peak = max(peak, live)
    return peak


def measure_peak_bytes(
    scheme: str,
    n_t: int,
    k: int,
    batch: int,
    h_t: int,
    h_r: int,
    *,
    budget_bytes: float = 1 * GIB,
) -> int:
    """Peak memory (bytes) of ONE training step (model + batch creation, forward, backward,
    Adam step) of :func:`build_model`. On CUDA this is ``torch.cuda.max_memory_allocated``,
    otherwise the torch CPU allocator peak from :func:`profiled_peak_bytes`.

    Raises :class:`DoesNotFit` when the eq. 1-2 estimate (p=4) exceeds ``budget_bytes``."""
    import torch

    est = scheme_bytes(scheme, n_t, k, batch=batch, h_t=h_t, h_r=h_r)
    if est > budget_bytes:
        raise DoesNotFit(f"{scheme} N_T={n_t} k={k} B={batch}: estimate {est / GIB:.3g} GiB")
    torch.manual_seed(0)
    if torch.cuda.is_available():
        dev = torch.device("cuda")
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        _train_step(scheme, n_t, k, batch, h_t, h_r, dev)
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated() - base)
    cpu = torch.device("cpu")
    return profiled_peak_bytes(lambda: _train_step(scheme, n_t, k, batch, h_t, h_r, cpu))


MEASURE_CONFIGS: tuple[tuple[str, int, int], ...] = (
    ("AE", 2, 2),
    ("AE", 2, 4),
    ("AE", 2, 6),
    ("AE", 4, 2),
    ("AE", 4, 4),
    ("BAE", 2, 2),
    ("BAE", 4, 2),
    ("BAE", 16, 2),
    ("BAE", 64, 2),
    ("BAE", 64, 10),
)
"""(scheme, N_T, k) measured by :func:`main`: Fig. 2's kind of configs. AE 4x4 16-QAM
(S_M = 65536) is there to show a "does not fit"."""


def measure_all(batch: int, budget_bytes: float) -> list[dict[str, Any]]:
    """Measure every config in :data:`MEASURE_CONFIGS` at ``batch`` (paper H_T, H_R)."""
    import torch

    h_t, h_r = PAPER["h_t"], PAPER["h_r"]
    backend = "cuda.max_memory_allocated" if torch.cuda.is_available() else "cpu.profiler"
    rows = []
    for scheme, n_t, k in MEASURE_CONFIGS:
        est = scheme_bytes(scheme, n_t, k, batch=batch, h_t=h_t, h_r=h_r)
        row: dict[str, Any] = {
            "scheme": scheme,
            "n_t": n_t,
            "constellation": 2**k,
            "k": k,
            "batch": batch,
            "h_t": h_t,
            "h_r": h_r,
            "estimated_bytes": est,
            "estimated_gb": est / GIB,
        }
        t0 = time.perf_counter()
        try:
            peak = measure_peak_bytes(scheme, n_t, k, batch, h_t, h_r, budget_bytes=budget_bytes)
        except DoesNotFit:
            row.update(measured_bytes=None, status="does not fit")
        else:
            row.update(
                measured_bytes=peak,
                measured_gb=peak / GIB,
                ratio_measured_to_estimate=peak / est,
                status="measured",
                backend=backend,
            )
        row["seconds"] = round(time.perf_counter() - t0, 2)
        rows.append(row)
    return rows


def plot(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Estimated vs measured memory (log y), AE and BAE panels, like the paper's Fig. 2."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, scheme in zip(axes, ("AE", "BAE"), strict=True):
        sel = [r for r in rows if r["scheme"] == scheme]
        if not sel:
            ax.set_visible(False)
            continue
        xs = range(len(sel))
        labels = [f"{r['n_t']}x{r['n_t']}\n{r['constellation']}-QAM" for r in sel]
        est = [r["estimated_gb"] for r in sel]
        meas = [r["measured_gb"] if r["measured_bytes"] else math.nan for r in sel]
        ax.plot(xs, est, "o--", label="estimated (eqs. 1-2)")
        ax.plot(xs, meas, "s-", label="measured peak, one step")
        for x, r in zip(xs, sel, strict=True):
            if not r["measured_bytes"]:
                ax.annotate(
                    "does not fit\n(not measured)",
                    (x, r["estimated_gb"]),
                    textcoords="offset points",
                    xytext=(-10, 0),
                    ha="right",
                    va="center",
                    fontsize=8,
                )
        ax.set_yscale("log")
        top = max(est + [m for m in meas if not math.isnan(m)])
        ax.set_ylim(0.05, top * 3)
        ax.set_xlim(-0.5, len(sel) - 0.5)
        ax.set_xticks(list(xs), labels, fontsize=8)
        ax.set_ylabel("memory (GiB)")
        ax.set_title(f"{scheme} (B={sel[0]['batch']}, H_T={sel[0]['h_t']}, H_R={sel[0]['h_r']})")
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle("Training memory: estimate vs one measured training step (Adam)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """Print Table 2, write ``table2.json`` and ``table2_memory.png`` under ``--out``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("results/bae"))
    ap.add_argument("--batch", type=int, default=256, help="batch of the measured steps")
    ap.add_argument(
        "--budget-gb",
        type=float,
        default=1.0,
        help="skip measurements whose estimate exceeds this (GiB)",
    )
    ap.add_argument("--no-measure", action="store_true", help="formula table only")
    args = ap.parse_args(argv)

    cells = table2()
    print(format_table(cells))
    cps = checkpoints()
    for name, cp in cps.items():
        print(
            f"checkpoint {name}: paper {cp['paper_gb']:g} GB, ours {cp['gib']:.2f} GiB "
            f"({cp['gb_1e9']:.1f} GB of 1e9 B)"
        )
    rows = [] if args.no_measure else measure_all(args.batch, args.budget_gb * GIB)
    for r in rows:
        got = f"{r['measured_gb']:.3f} GiB" if r["measured_bytes"] else r["status"]
        print(
            f"measured {r['scheme']:>3} {r['n_t']}x{r['n_t']} {r['constellation']:>4}-QAM "
            f"B={r['batch']}: estimate {r['estimated_gb']:.3f} GiB, peak {got} "
            f"({r['seconds']} s)"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    doc = {
        "paper": "García Martí et al., Scalable ML Algorithms to Design Massive MIMO Systems",
        "units": "GiB (2**30 bytes)",
        "parameters": PAPER | {"n": 1, "n_r": "N_T", "bn_params": 4},
        "eq1_in_out_reading": "4pB(2H_T + 4N N_T)",
        "checkpoints": cps,
        "table2": cells,
        "measured": rows,
    }
    (args.out / "table2.json").write_text(json.dumps(doc, indent=1) + "\n")
    if rows:
        plot(rows, args.out / "table2_memory.png")
    print(f"wrote {args.out / 'table2.json'}" + ("" if not rows else " and table2_memory.png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
