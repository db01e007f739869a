"""The Tanh bit-wise MIMO autoencoder (``bae_autoencoder``), García Martí et al., Sec. 5-6.

This design is the deployed receiver; ``train.transmitter_design`` names the deployed
transmitter trained with it, end to end through the channel of ``phy.coupled_mimo``:

* bits b (B, k n_t), 0/1, fresh every step (the paper's "4,096,000 random channel
  realizations": ``samples`` per epoch);
* transmitter: b -> dense ReLU -> Dense(2 n_t) -> tanh -> its fixed quantizer: x (B, 2 n_t)
  = [Re | Im], each real dimension in [-1, 1] (no normalization layer: the paper's point);
* channel: y = H x + n, H real (unit diagonal, ``data.coupling`` elsewhere) acting on the
  real and imaginary parts alike, n ~ CN(0, sigma^2), SNR = 10 log10(2 / sigma^2) uniform
  per vector in ``data.snr_db`` (lo = hi: the paper's single training SNR);
* receiver: y (its INT input quantizer) -> [Dense -> BatchNorm -> ReLU] x 3 -> Dense(k n_t)
  -> sigmoid; loss: binary cross-entropy on the pre-sigmoid logits (the paper's BCE).

Adam with a one-cycle schedule peaking at the recipe's ``lr``. Validation after every
epoch: BCE and the BER of the deployed receiver's hard decisions (quantized soft bit >=
1/2) on ``VAL_SAMPLES`` fixed vectors. The checkpoint carries the transmitter as
``transmitter`` (with ``transmitter_design``); the transmitter design's own run takes it
with ``from_run`` (``train.source: {design: <this receiver>, key: transmitter}``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from phy.coupled_mimo import coupling_matrix, noise_var, through_real_h
from train.tasks.base import VAL_SAMPLES, TaskResult, TaskRun, one_cycle, register
from zoo.network import QuantNet
from zoo.registry import build_network


def _pair(tx: nn.Module, rx: nn.Module, where: str) -> tuple[str, str, str]:
    """(tx's output, rx's input, rx's output) of a transmitter/receiver pair that chains:
    tx reads ``bits`` (k n_t) and emits 2 n_t symbols, rx reads ``y`` (2 n_t) and emits k
    n_t soft bits after a sigmoid; refuses anything else, naming the design keys."""
    if not isinstance(tx, QuantNet) or not isinstance(rx, QuantNet) or \
            len(tx.heads) != 1 or len(rx.heads) != 1 or list(tx.input_decl) != ["bits"] or \
            list(rx.input_decl) != ["y"]:
        raise ValueError(f"{where}: needs a paths-layout transmitter with the one input "
                         "'bits' and one output, and a paths-layout receiver with the one "
                         "input 'y' and one output")
    (tx_out,), (rx_out,) = list(tx.heads), list(rx.heads)
    n_bits = tx.input_decl["bits"]["features"]
    if tx.out_features[tx_out] != rx.input_decl["y"]["features"]:
        raise ValueError(f"{where}: the transmitter emits {tx.out_features[tx_out]} symbols "
                         f"(model.paths.{tx_out}.out_features); the receiver's y has "
                         f"{rx.input_decl['y']['features']}")
    if rx.out_features[rx_out] != n_bits:
        raise ValueError(f"{where}: the receiver emits {rx.out_features[rx_out]} soft bits; "
                         f"the transmitter reads {n_bits}")
    if not isinstance(rx.heads[rx_out].act, nn.Sigmoid):
        raise ValueError(f"{where}: model.paths.{rx_out}.head.activation must be 'sigmoid' "
                         "(bit probabilities, trained with BCE)")
    return tx_out, "y", rx_out


class Link(nn.Module):
    """bits (B, k n_t) -> transmitter -> y = H x + n -> receiver logits (B, k n_t)."""

    def __init__(self, tx: QuantNet, rx: QuantNet, design: dict[str, Any]) -> None:
        super().__init__()
        d = design["data"]
        self.tx, self.rx, self.n_t = tx, rx, d["n_t"]
        self.snr = tuple(float(s) for s in d["snr_db"])
        self.register_buffer("h", torch.from_numpy(
            coupling_matrix(d["n_t"], d["coupling"])).float())
        (self.rx_out,) = list(rx.heads)

    def channel(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """(B, 2 n_t) [Re | Im] -> y = H x + n, the same H on both parts."""
        snr = torch.empty(len(x), 1).uniform_(*self.snr, generator=gen) if \
            self.snr[1] > self.snr[0] else torch.full((len(x), 1), self.snr[0])
        std = torch.from_numpy(np.sqrt(noise_var(snr.numpy()) / 2)).float()
        y = through_real_h(x, self.h)
        return y + std * torch.randn(y.shape, generator=gen)

    def forward(self, bits: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        y = self.channel(self.tx(bits), gen)
        return self.rx._pre({"y": y})[self.rx_out]


#: Smallest BatchNorm scale gamma kept by :func:`positive_batch_norm`.
MIN_BN_SCALE = 1e-3


@torch.no_grad()
def positive_batch_norm(net: nn.Module) -> None:
    """Clamp every BatchNorm's gamma to >= ``MIN_BN_SCALE`` (projected gradient step).

    In hardware a BatchNorm folds into the next ReLU's thresholds, which a MultiThreshold
    can only count upwards: a negative gamma makes the code fall as the accumulator grows,
    and ``hw.transforms.thresholds`` refuses that channel. Keeping gamma positive during
    training costs nothing in expressiveness here (the Dense before it can flip its sign).
    """
    for m in net.modules():
        if isinstance(m, nn.BatchNorm1d) and m.weight is not None:
            m.weight.clamp_(min=MIN_BN_SCALE)


def _bits(n: int, k: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2, (n, k), generator=gen).float()


@torch.no_grad()
def evaluate(link: Link, bits: torch.Tensor, seed: int) -> dict[str, float]:
    """BCE of the logits and BER of the deployed hard decisions (soft-bit value >= 1/2)."""
    link.eval()
    gen = torch.Generator().manual_seed(seed)
    y = link.channel(link.tx(bits), gen)
    logits = link.rx._pre({"y": y})[link.rx_out]
    p = link.rx.heads[link.rx_out].value(logits)
    return {"val_loss": F.binary_cross_entropy_with_logits(logits, bits).item(),
            "val_ber": ((p >= 0.5).float() != bits).float().mean().item()}


def transmitter_design(design: dict[str, Any]) -> dict[str, Any]:
    """The design named by ``train.transmitter_design`` (configs/designs), or the design
    mapping itself where a program passes one (paper.bae's variants of a receiver)."""
    from configs import load_design

    tx = design["train"]["transmitter_design"]
    return tx if isinstance(tx, dict) else load_design(tx)


@register("bae_autoencoder")
def bae_autoencoder(run: TaskRun) -> TaskResult:
    """Transmitter + channel + this receiver end to end with BCE (the paper's Tanh-BAE)."""
    design, r, rx = run.design, run.recipe, run.net
    tx_design = transmitter_design(design)
    tx = build_network(tx_design)
    _pair(tx, rx, f"design {design['name']!r} (train.transmitter_design "
                  f"{tx_design['name']!r})")
    link = Link(tx, rx, design)
    k = tx.input_decl["bits"]["features"]
    gen = torch.Generator().manual_seed(r["seed"])
    val_bits = _bits(VAL_SAMPLES, k, torch.Generator().manual_seed(r["seed"] + 1))
    initial = evaluate(link, val_bits, r["seed"] + 1)
    opt, sched, steps = one_cycle(list(link.parameters()), r, r["samples"])
    history, t0 = [], time.time()
    bar = tqdm(total=steps, desc=run.desc, unit="step")
    for epoch in range(r["epochs"]):
        link.train()
        total = 0.0
        for _ in range(r["samples"] // r["batch_size"]):
            bits = _bits(r["batch_size"], k, gen)
            loss = F.binary_cross_entropy_with_logits(link(bits, gen), bits)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            positive_batch_norm(rx)
            total += loss.item()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4g}")
        row = {"train_loss": total / max(r["samples"] // r["batch_size"], 1),
               **evaluate(link, val_bits, r["seed"] + 1), "epoch": epoch + 1}
        history.append(row)
        bar.write(f"epoch {epoch + 1}: " + ", ".join(f"{k_}={v:.4g}" for k_, v in row.items()))
    bar.close()
    tx.eval()
    rx.eval()
    return TaskResult(history, metrics={"initial": initial, "final": history[-1] if history
                                        else initial, "train_seconds": time.time() - t0,
                                        "constellation": constellation(tx).tolist()},
                      extras={"transmitter": tx.state_dict(),
                              "transmitter_design": tx_design["name"],
                              "transmitter_model": tx_design})


@torch.no_grad()
def constellation(tx: QuantNet) -> np.ndarray:
    """(2^(k n_t), 2 n_t) the deployed transmitter's symbols for every bit vector (message
    m's bits: its binary digits, MSB first); only for k n_t <= 16."""
    k = tx.input_decl["bits"]["features"]
    if k > 16:
        return np.zeros((0, 0))
    m = np.arange(2 ** k)
    bits = ((m[:, None] >> np.arange(k - 1, -1, -1)[None]) & 1).astype(np.float32)
    return tx.eval()(torch.from_numpy(bits)).numpy()
