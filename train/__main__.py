"""Train a design's network with Brevitas QAT: ``python -m train --design NAME``."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from configs import load_design
from train.data import design_features
from train.models import FloatMLP, QuantMLP, build_model


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


def train_design(design: dict[str, Any], recipe: str, out: Path) -> dict[str, Any]:
    """Train f (the deployed quantized network) with its training-only decoder; save to ``out``."""
    r = design["train"]["recipes"][recipe]
    torch.manual_seed(r["seed"])
    torch.set_num_threads(max(1, torch.get_num_threads()))
    m = design["model"]
    model: QuantMLP = build_model(design)
    decoder = FloatMLP(m["out_features"], design["train"]["decoder_hidden"], m["in_features"],
                       "tanh")
    t0 = time.time()
    x_all = torch.from_numpy(design_features(design, r["samples"], seed=r["seed"]))
    x_val = torch.from_numpy(design_features(design, 20000, seed=r["seed"] + 1))
    data_s = time.time() - t0
    params = list(model.parameters()) + list(decoder.parameters())
    opt = torch.optim.Adam(params, lr=r["lr"])
    steps = r["epochs"] * (len(x_all) // r["batch_size"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=r["lr"], total_steps=steps)
    kind, eps = design["train"]["loss"], float(design["train"]["loss_eps"])
    history = []
    bar = tqdm(total=steps, desc=f"train {design['name']} ({recipe})", unit="step")
    for epoch in range(r["epochs"]):
        model.train()
        decoder.train()
        perm = torch.randperm(len(x_all))
        for i in range(len(x_all) // r["batch_size"]):
            xb = x_all[perm[i * r["batch_size"]:(i + 1) * r["batch_size"]]]
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
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"design": design["name"], "model": model.state_dict(),
                "decoder": decoder.state_dict(), "recipe": recipe}, out / "checkpoint.pt")
    metrics = {"design": design["name"], "recipe": recipe, "history": history,
               "data_seconds": round(data_s, 1), "train_seconds": round(time.time() - t0, 1)}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


@torch.no_grad()
def evaluate(model: QuantMLP, decoder: torch.nn.Module, x: torch.Tensor, kind: str,
             eps: float) -> dict[str, float]:
    """Validation loss, soft-bit MSE and the latent codes' empirical entropy (bits/latent)."""
    model.eval()
    decoder.eval()
    z = model(x)
    x_hat = decoder(z)
    codes = torch.round(z / model.output_scale).to(torch.int64).numpy()
    ent = []
    for c in codes.T:
        p = np.bincount(c - c.min()) / len(c)
        p = p[p > 0]
        ent.append(float(-(p * np.log2(p)).sum()))
    return {"val_loss": reconstruction_loss(x, x_hat, kind, eps).item(),
            "val_softbit_mse": torch.mean((x - x_hat) ** 2).item(),
            "latent_entropy_bits": float(np.mean(ent))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--design", required=True)
    ap.add_argument("--recipe", default="short")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    metrics = train_design(load_design(a.design), a.recipe, a.out)
    print(json.dumps(metrics["history"][-1]))


if __name__ == "__main__":
    main()
