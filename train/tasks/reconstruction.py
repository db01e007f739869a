"""``reconstruction``: EQ-Net stage 1. The deployed encoder f (a one-input, one-output
network such as f_Q) is trained jointly with a training-only float decoder g to
reconstruct its own input (soft bits); the decoder is saved in the checkpoint as
``decoder`` but not deployed.

Design keys read: ``data.feature`` (the input feature), ``model.in_features`` /
``model.out_features``, ``train.decoder_hidden``, ``train.loss`` (``mse`` or
``weighted_mse``) and ``train.loss_eps``.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from train.tasks.base import VAL_SAMPLES, TaskResult, TaskRun, batches, one_cycle, register
from zoo.blocks import FloatMLP
from zoo.datasets import design_data


def reconstruction_loss(x: torch.Tensor, x_hat: torch.Tensor, kind: str,
                        eps: float) -> torch.Tensor:
    """EQ-Net stage-1 loss on soft bits (weighted MSE emphasises uncertain bits)."""
    err = (x - x_hat) ** 2
    if kind == "mse":
        return err.mean()
    if kind == "weighted_mse":
        # Weight 1/(|x| + eps), normalised so the loss stays on the MSE's scale.
        w = 1.0 / (x.abs() + eps)
        return (w * err).sum() / w.sum()
    raise ValueError(f"unknown loss {kind!r}")


@register("reconstruction")
def reconstruction(run: TaskRun) -> TaskResult:
    """f (deployed) + float decoder g: (weighted) MSE of g(f(x)) to x, one-cycle Adam."""
    design, r, model = run.design, run.recipe, run.net
    m, t = design["model"], design["train"]
    # RNG order (kept for bit-identical checkpoints): seed, network (caller), decoder,
    # data, then one randperm per epoch.
    decoder = FloatMLP(m["out_features"], t["decoder_hidden"], m["in_features"], "tanh")
    t0 = time.time()
    feature = design["data"]["feature"]
    x_all = torch.from_numpy(design_data(design, r["samples"], seed=r["seed"])[feature])
    x_val = torch.from_numpy(design_data(design, VAL_SAMPLES, seed=r["seed"] + 1)[feature])
    data_s = time.time() - t0
    params = list(model.parameters()) + list(decoder.parameters())
    opt, sched, steps = one_cycle(params, r, len(x_all))
    kind, eps = t["loss"], float(t["loss_eps"])
    history = []
    bar = tqdm(total=steps, desc=run.desc, unit="step")
    for epoch in range(r["epochs"]):
        model.train()
        decoder.train()
        for idx in batches(len(x_all), r["batch_size"]):
            xb = x_all[idx]
            loss = reconstruction_loss(xb, decoder(model(xb)), kind, eps)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}")
        val = evaluate(model, decoder, x_val, kind, eps)
        val["epoch"] = epoch + 1
        history.append(val)
        bar.write(f"epoch {epoch + 1}: " + ", ".join(f"{k}={v:.4g}" for k, v in val.items()))
    bar.close()
    return TaskResult(history, extras={"decoder": decoder.state_dict()},
                      data_seconds=data_s)


@torch.no_grad()
def evaluate(model: nn.Module, decoder: nn.Module, x: torch.Tensor, kind: str,
             eps: float) -> dict[str, float]:
    """Validation loss, soft-bit MSE and the latent codes' empirical entropy (bits/latent)."""
    model.eval()
    decoder.eval()
    z = model(x)
    x_hat = decoder(z)
    scale = model.iospec().outputs[0].scale
    codes = torch.round(z / scale).to(torch.int64).numpy()
    ent = []
    for c in codes.T:
        p = np.bincount(c - c.min()) / len(c)
        p = p[p > 0]
        ent.append(float(-(p * np.log2(p)).sum()))
    return {"val_loss": reconstruction_loss(x, x_hat, kind, eps).item(),
            "val_softbit_mse": torch.mean((x - x_hat) ** 2).item(),
            "latent_entropy_bits": float(np.mean(ent))}
