"""``classification``: every output's float output is a vector of class logits, trained
with cross-entropy against class indices ``target:<output>`` ((N,) or (N, 1), integer
values in ``0 .. features - 1``). Adam, one-cycle schedule peaking at the recipe's ``lr``.

On the host such an output's codes are argmax-ed (``post: argmax``); argmax of the codes
equals argmax of the values for a positive scale, up to ties, which the quantizer makes.
Metrics per output: ``val_ce/<o>`` and ``val_acc/<o>`` (argmax of the float output).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from train.tasks.base import VAL_SAMPLES, TaskResult, TaskRun, register
from train.tasks.regression import fit_codebooks, load_split, supervised_epochs, train_outputs


def class_targets(design: dict, name: str, y: torch.Tensor, classes: int) -> torch.Tensor:
    """(N,) int64 class indices from a ``target:<name>`` array; refuses anything else."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"design {design['name']!r}: target:{name} has shape "
                         f"{tuple(y.shape)}; classification needs (N,) class indices")
    if y.is_floating_point() and not torch.equal(y, torch.round(y)):
        raise ValueError(f"design {design['name']!r}: target:{name} holds non-integer "
                         "values; classification needs class indices")
    y = y.to(torch.int64)
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= classes):
        raise ValueError(f"design {design['name']!r}: target:{name} spans "
                         f"[{int(y.min())}, {int(y.max())}]; output {name!r} has {classes} "
                         f"classes (0..{classes - 1})")
    return y


@torch.no_grad()
def evaluate(net: nn.Module, xs: list[torch.Tensor], ys: list[torch.Tensor]
             ) -> dict[str, float]:
    """Validation cross-entropy and accuracy per output (``val_loss``: the CE sum)."""
    net.eval()
    names = net.iospec().output_names
    res: dict[str, float] = {}
    total = 0.0
    for o, logits, y in zip(names, train_outputs(net, xs), ys, strict=True):
        ce = F.cross_entropy(logits, y).item()
        total += ce
        res[f"val_ce/{o}"] = ce
        res[f"val_acc/{o}"] = (logits.argmax(1) == y).double().mean().item()
    return {"val_loss": total, **res}


@register("classification")
def classification(run: TaskRun) -> TaskResult:
    """Every output's logits against class indices ``target:<output>`` (cross-entropy)."""
    design, r, net = run.design, run.recipe, run.net
    t0 = time.time()
    xs, ys = load_split(run, r["samples"], r["seed"])
    xv, yv = load_split(run, VAL_SAMPLES, r["seed"] + 1)
    data_s = time.time() - t0
    spec = net.iospec()
    ys = [class_targets(design, o, y, spec.output(o).features)
          for o, y in zip(spec.output_names, ys, strict=True)]
    yv = [class_targets(design, o, y, spec.output(o).features)
          for o, y in zip(spec.output_names, yv, strict=True)]
    initial = evaluate(net, xv, yv)
    history = supervised_epochs(
        run, net, xs, ys,
        lambda outs, idx: sum(F.cross_entropy(z, t[idx]) for z, t in zip(outs, ys, strict=True)),
        lambda: evaluate(net, xv, yv))
    fit_codebooks(net, xs, r["seed"])
    return TaskResult(history, metrics={"initial": initial, "final": evaluate(net, xv, yv)},
                      data_seconds=data_s)
