"""``regression``: supervised training of every output against its target.

For every output ``o`` of ``net.iospec()``, the MSE between the network's float output
and the data set's ``target:<o>`` (summed over outputs). Inputs are fed positionally in
``iospec().input_names`` order. A :class:`zoo.network.CodebookHead` has no gradient
through its index, so during training its output is the fine quantizer's value
(straight-through); after training each codebook is fitted by k-means on the fine
quantizer's outputs over the training set (``head.fit``). Adam, one-cycle schedule
peaking at the recipe's ``lr``.

Metrics per output: ``val_mse/<o>`` (float output; the fine quantizer for a codebook
head) and, for codebook heads after the fit, ``val_mse_codebook/<o>`` (the deployed
value ``levels[code]``, what ``forward`` gives).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from train.tasks.base import VAL_SAMPLES, TaskResult, TaskRun, batches, one_cycle, register
from zoo.datasets import design_data
from zoo.network import CodebookHead


def codebook_heads(net: nn.Module) -> dict[str, CodebookHead]:
    """The network's codebook heads by output name (a QuantNet's ``heads``), else {}."""
    heads = getattr(net, "heads", None)
    if not isinstance(heads, nn.ModuleDict):
        return {}
    return {o: h for o, h in heads.items() if isinstance(h, CodebookHead)}


def train_outputs(net: nn.Module, xs: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Differentiable float outputs in output order: ``net(*xs)``, except that a codebook
    head gives its fine quantizer's value (its index has no gradient)."""
    if codebook_heads(net):
        pre = net._pre(dict(zip(net.iospec().input_names, xs, strict=True)))
        return tuple(h.quantized(pre[o]).value for o, h in net.heads.items())
    out = net(*xs)
    return out if isinstance(out, tuple) else (out,)


def deployed_outputs(net: nn.Module, xs: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """``net(*xs)`` as a tuple in output order (codebook heads: ``levels[code]``)."""
    out = net(*xs)
    return out if isinstance(out, tuple) else (out,)


def named_tensors(data: dict[str, Any], names: list[str], what: str,
                  design: dict[str, Any]) -> list[torch.Tensor]:
    """``data[name]`` as float tensors, in order; a clear error for a missing feature."""
    missing = [n for n in names if n not in data]
    if missing:
        raise KeyError(f"design {design['name']!r}: data kind {design['data']['kind']!r} "
                       f"gives no {what} {missing}; it gives {sorted(data)}")
    return [torch.as_tensor(data[n]) for n in names]


def load_split(run: TaskRun, n: int, seed: int, target_prefix: str = "target:"
               ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(inputs in input order, targets in output order) of ``n`` vectors."""
    spec = run.net.iospec()
    data = design_data(run.design, n, seed)
    xs = named_tensors(data, spec.input_names, "input", run.design)
    ys = named_tensors(data, [f"{target_prefix}{o}" for o in spec.output_names], "target",
                       run.design)
    return xs, ys


@torch.no_grad()
def evaluate(net: nn.Module, xs: list[torch.Tensor], ys: list[torch.Tensor],
             deployed: bool = False) -> dict[str, float]:
    """Validation MSE per output (and their sum, ``val_loss``)."""
    net.eval()
    names = net.iospec().output_names
    outs = train_outputs(net, xs)
    mses = [torch.mean((y - t) ** 2).item() for y, t in zip(outs, ys, strict=True)]
    res = {"val_loss": float(sum(mses))}
    res.update({f"val_mse/{o}": v for o, v in zip(names, mses, strict=True)})
    if deployed:
        cb = codebook_heads(net)
        for o, y, t in zip(names, deployed_outputs(net, xs), ys, strict=True):
            if o in cb:
                res[f"val_mse_codebook/{o}"] = torch.mean((y - t) ** 2).item()
    return res


def supervised_epochs(run: TaskRun, net: nn.Module, xs: list[torch.Tensor],
                      ys: list[torch.Tensor],
                      loss_of: Callable[[list[torch.Tensor], torch.Tensor], torch.Tensor],
                      validate: Callable[[], dict[str, float]]) -> list[dict[str, float]]:
    """The supervised training loop shared by regression and classification: Adam with a
    one-cycle schedule, seeded mini-batches of ``xs`` (inputs in I/O-spec order),
    ``loss_of(outputs, batch_indices)``, a validation row per epoch; tqdm progress."""
    r = run.recipe
    opt, sched, steps = one_cycle(list(net.parameters()), r, len(xs[0]))
    history = []
    bar = tqdm(total=steps, desc=run.desc, unit="step")
    for epoch in range(r["epochs"]):
        net.train()
        total, count = 0.0, 0
        for idx in batches(len(xs[0]), r["batch_size"]):
            loss = loss_of(train_outputs(net, [x[idx] for x in xs]), idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total, count = total + loss.item(), count + 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4g}")
        val = {"train_loss": total / max(count, 1), **validate(), "epoch": epoch + 1}
        history.append(val)
        bar.write(f"epoch {epoch + 1}: " + ", ".join(f"{k}={v:.4g}" for k, v in val.items()))
    bar.close()
    return history


@torch.no_grad()
def fit_codebooks(net: nn.Module, xs: list[torch.Tensor], seed: int) -> None:
    """Fit every codebook head's levels by k-means on its fine-quantized training outputs."""
    cb = codebook_heads(net)
    if not cb:
        return
    net.eval()
    pre = net._pre(dict(zip(net.iospec().input_names, xs, strict=True)))
    for o, head in cb.items():
        head.fit(head.quantized(pre[o]).value, seed=seed)


@register("regression")
def regression(run: TaskRun) -> TaskResult:
    """Every output against ``target:<output>`` (MSE); codebook heads fitted afterwards."""
    design, r, net = run.design, run.recipe, run.net
    t0 = time.time()
    xs, ys = load_split(run, r["samples"], r["seed"])
    xv, yv = load_split(run, VAL_SAMPLES, r["seed"] + 1)
    data_s = time.time() - t0
    spec = net.iospec()
    for o, y in zip(spec.output_names, ys, strict=True):
        want = (len(y), spec.output(o).features)
        if tuple(y.shape) != want:
            raise ValueError(f"design {design['name']!r}: target:{o} has shape "
                             f"{tuple(y.shape)}; output {o!r} needs {want}")
    initial = evaluate(net, xv, yv)
    history = supervised_epochs(
        run, net, xs, ys,
        lambda outs, idx: sum(torch.mean((y - t[idx]) ** 2)
                              for y, t in zip(outs, ys, strict=True)),
        lambda: evaluate(net, xv, yv))
    fit_codebooks(net, xs, r["seed"])
    final = evaluate(net, xv, yv, deployed=True)
    return TaskResult(history, metrics={"initial": initial, "final": final},
                      data_seconds=data_s)
