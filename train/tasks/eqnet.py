"""EQ-Net's stage 1 (``eqnet_stage1``) and the hand-over of a trained decoder (``from_run``).

``eqnet_stage1`` trains the deployed quantization encoder f_Q (this design: a paths-layout
network whose one input is a ``mimo_llr`` feature and whose one output has a ``kmeans``
head) jointly with the deployed decoder g (the design ``train.decoder_design``: one
codebook input of f_Q's latents, one output of f_Q's input width), as the paper's
Section IV-A has it:

* loss of eq. 7: ``sum_i w_i (g(Q(f(x)))_i - x_i)^2 / (|x_i| + eps)`` averaged over the
  batch, ``w_i`` proportional to the mean |LLR_i| of the training set (normalized to
  sum 1), eps = ``train.loss_eps``;
* Q in training: the latent plus Gaussian noise sigma_u (the head's ``noise_std``); g's
  codebook input reads it on its integer grid (QAT of g);
* then one k-means++ quantizer per latent dimension on the training latents (the head's
  levels and boundaries), g's lookup table set to those levels on its grid, and
  ``train.finetune_epochs`` epochs of g alone on the quantized latents, f_Q frozen (the
  authors' code fine-tunes the decoder the same way).

The checkpoint carries g as ``decoder`` (with ``decoder_design``); the g design's own run
takes it with ``from_run`` (``train.source: {design, key}``): stages talk through files.

``eqnet_stage2`` (eq. 9) trains the estimation encoder f_E with L1 to the frozen f_Q's
unquantized latents (read from f_Q's run, ``train.teacher_design``) and gives it f_Q's
k-means quantizer, so its indices feed the same g. ``eqnet_joint`` is the paper's
single-stage baseline of Fig. 3: f_E and a fresh g trained together on eq. 7. Both
record the validation eq. 7 after every epoch (rows ``phase: epoch``), the data of Fig. 3.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from train.tasks.base import VAL_SAMPLES, TaskResult, TaskRun, batches, one_cycle, register
from zoo import checkpoint
from zoo.datasets import design_data
from zoo.network import CodebookInput, KMeansHead, QuantNet
from zoo.registry import build_network


def eq7_loss(x: torch.Tensor, x_hat: torch.Tensor, w: torch.Tensor, eps: float
             ) -> torch.Tensor:
    """EQ-Net eq. 7: (N, K) targets and estimates, (K,) bit weights summing to 1 -> the
    batch mean of ``sum_i w_i (x_hat_i - x_i)^2 / (|x_i| + eps)``."""
    return ((w * (x_hat - x) ** 2 / (x.abs() + eps)).sum(-1)).mean()


def _chain(f: nn.Module, g: nn.Module, target: int, where: str
           ) -> tuple[str, KMeansHead, str, CodebookInput]:
    """(f's output, its k-means head, g's input, g's codebook input) of an encoder f whose
    indices feed the decoder g, which estimates ``target`` soft bits; refuses a pair whose
    widths or levels do not chain, naming the design keys."""
    if not isinstance(f, QuantNet) or not isinstance(g, QuantNet) or len(f.heads) != 1 or \
            len(g.input_decl) != 1 or len(g.heads) != 1:
        raise ValueError(f"{where}: needs a paths-layout encoder with one output and a "
                         "paths-layout decoder with one input and one output")
    (f_out,), (g_in,), (g_out,) = list(f.heads), list(g.input_decl), list(g.heads)
    head, lut = f.heads[f_out], g.input_quant[g_in]
    if not isinstance(head, KMeansHead):
        raise ValueError(f"{where}: model.paths.{f_out}.head must be kind 'kmeans'")
    if not isinstance(lut, CodebookInput):
        raise ValueError(f"{where}: the decoder's input {g_in!r} must be kind 'codebook'")
    if (lut.features, lut.n_levels) != (f.out_features[f_out], head.n_levels):
        raise ValueError(f"{where}: decoder input {g_in!r} has {lut.features} features x "
                         f"{lut.n_levels} levels; the encoder's {f_out!r} has "
                         f"{f.out_features[f_out]} x {head.n_levels}")
    if g.out_features[g_out] != target:
        raise ValueError(f"{where}: decoder output {g_out!r} has {g.out_features[g_out]} "
                         f"features; the soft bits have {target}")
    return f_out, head, g_in, lut


def _single_input(f: QuantNet, where: str) -> str:
    if len(f.input_decl) != 1:
        raise ValueError(f"{where}: f_Q reads one feature; this model has inputs "
                         f"{list(f.input_decl)}")
    return next(iter(f.input_decl))


@torch.no_grad()
def _evaluate(net: QuantNet, g: QuantNet, xs: list[torch.Tensor], x: torch.Tensor,
              w: torch.Tensor, eps: float, prefix: str) -> dict[str, float]:
    """eq. 7 and soft-bit MSE of g(net(*xs)) against the soft bits x (N, K)."""
    net.eval()
    g.eval()
    x_hat = g(net(*xs))
    return {f"{prefix}loss": eq7_loss(x, x_hat, w, eps).item(),
            f"{prefix}softbit_mse": torch.mean((x_hat - x) ** 2).item(),
            # the MSE of a decoder that always says 0 (no information): the reference
            f"{prefix}softbit_power": torch.mean(x ** 2).item()}


def _epochs(params: list[nn.Parameter], r: dict[str, Any], epochs: int, x: torch.Tensor,
            step: Any, desc: str, on_epoch: Any = None) -> None:
    """``epochs`` passes of one-cycle Adam over ``x`` calling ``step(batch) -> loss``, and
    ``on_epoch(epoch)`` (1-based) after each pass."""
    rec = {**r, "epochs": epochs}
    opt, sched, steps = one_cycle(params, rec, len(x))
    bar = tqdm(total=steps, desc=desc, unit="step")
    for epoch in range(epochs):
        for idx in batches(len(x), r["batch_size"]):
            loss = step(x[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4g}")
        if on_epoch is not None:
            on_epoch(epoch + 1)
    bar.close()


def _bit_weights(data: dict[str, np.ndarray]) -> tuple[torch.Tensor, list[float]]:
    """eq. 7's w_i: the training set's mean |LLR_i|, normalised to sum 1."""
    w = np.abs(data["llr"]).mean(0)
    w = w / w.sum()
    return torch.from_numpy(w.astype(np.float32)), [float(v) for v in w]


def _encoder_decoder(run: TaskRun, target: str | None, label: str) -> TaskResult:
    """Train the design's encoder (inputs: data features by name) with a fresh deployed
    decoder g (``train.decoder_design``) on eq. 7 against the soft-bit feature ``target``
    (None: the encoder's one input, an autoencoder); sigma_u noise on the latent; then
    k-means++ per latent on the unquantized training latents, g's table set to those
    levels on its grid, and ``train.finetune_epochs`` of g alone on the quantized latents
    (the encoder frozen). History rows: init, one per epoch, joint, kmeans, finetune."""
    from configs import load_design

    design, r, net = run.design, run.recipe, run.net
    t, where = design["train"], f"design {design['name']!r}"
    g = build_network(load_design(t["decoder_design"]))
    if target is None:
        target = _single_input(net, where)
    t0 = time.time()
    data = design_data(design, r["samples"], seed=r["seed"])
    val = design_data(design, VAL_SAMPLES, seed=r["seed"] + 1)
    data_s = time.time() - t0
    out, head, _, lut = _chain(net, g, data[target].shape[1], where)
    names = list(net.input_decl)
    xs = {n: torch.from_numpy(data[n]) for n in names}
    xs_val = [torch.from_numpy(val[n]) for n in names]
    x, x_val = torch.from_numpy(data[target]), torch.from_numpy(val[target])
    w_t, w_list = _bit_weights(data)
    eps = float(t["loss_eps"])

    def row(phase: str, **extra: Any) -> dict[str, Any]:
        return {"phase": phase, **extra, **_evaluate(net, g, xs_val, x_val, w_t, eps, "val_")}

    def batch(idx: torch.Tensor) -> list[torch.Tensor]:
        return [xs[n][idx] for n in names]

    history = [row("init")]

    def joint(idx: torch.Tensor) -> torch.Tensor:
        net.train()
        g.train()
        return eq7_loss(x[idx], g(net(*batch(idx))), w_t, eps)

    every = torch.arange(len(x))
    _epochs(list(net.parameters()) + list(g.parameters()), r, r["epochs"], every, joint,
            f"{run.desc} {label}", lambda e: history.append(row("epoch", epoch=e)))
    history.append(row("joint"))
    with torch.no_grad():  # the unquantized training latents: the k-means data
        net.eval()
        z = head._act(net._pre(xs)[out])
    head.fit(z, seed=r["seed"])
    lut.set_levels(head.levels)
    history.append(row("kmeans"))
    if t.get("finetune_epochs"):
        for p in net.parameters():
            p.requires_grad_(False)

        def decoder_only(idx: torch.Tensor) -> torch.Tensor:
            g.train()
            with torch.no_grad():
                net.eval()
                zq = net(*batch(idx))
            return eq7_loss(x[idx], g(zq), w_t, eps)

        _epochs(list(g.parameters()), r, t["finetune_epochs"], every, decoder_only,
                f"{run.desc} g fine-tune")
        for p in net.parameters():
            p.requires_grad_(True)
        history.append(row("finetune"))
    for h in history:
        if h["phase"] != "epoch":
            tqdm.write(", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                 for k, v in h.items()))
    return TaskResult(history, metrics={"bit_weights": w_list},
                      extras={"decoder": g.state_dict(), "decoder_design": t["decoder_design"]},
                      data_seconds=data_s)


@register("eqnet_stage1")
def eqnet_stage1(run: TaskRun) -> TaskResult:
    """f_Q + deployed g on eq. 7 with sigma_u noise; per-latent k-means; g fine-tuned."""
    return _encoder_decoder(run, None, "f_Q + g")


@register("from_run")
def from_run(run: TaskRun) -> TaskResult:
    """No training: this design's network takes the state ``train.source.key`` of the run
    of design ``train.source.design`` (``runs/<design>/checkpoint.pt``), e.g. EQ-Net's g
    trained in f_Q's stage 1."""
    src = run.design["train"]["source"]
    path = checkpoint.run_of(src["design"]) / "checkpoint.pt"
    if not path.is_file():
        raise FileNotFoundError(f"design {run.design['name']!r}: train.source reads {path}, "
                                f"which does not exist: run `make train "
                                f"DESIGN={src['design']}` first")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    key = src["key"]
    if key not in ckpt:
        raise KeyError(f"{path} has no {key!r}; keys: {sorted(ckpt)}")
    owner = ckpt.get(f"{key}_design")
    if owner is not None and owner != run.design["name"]:
        raise ValueError(f"{path}: {key!r} was trained as design {owner!r}, not "
                         f"{run.design['name']!r}")
    try:
        run.net.load_state_dict(ckpt[key])
    except RuntimeError as e:  # another topology: say which entry, not torch's key dump
        first = str(e).splitlines()[0]
        raise ValueError(f"{path}: {key!r} does not fit design {run.design['name']!r}'s "
                         f"network ({first}); retrain {src['design']!r} with "
                         f"train.decoder_design: {run.design['name']}") from None
    return TaskResult([], metrics={"source": str(path), "source_key": key,
                                   "source_recipe": ckpt.get("recipe")})


def _teacher(design: dict[str, Any]) -> tuple[QuantNet, QuantNet, dict[str, Any]]:
    """(f_Q, g, f_Q's design) from the run of ``train.teacher_design`` (its checkpoint
    carries g as ``decoder``), both frozen in eval mode."""
    from configs import load_design

    fq_design = load_design(design["train"]["teacher_design"])
    run_dir = checkpoint.run_of(fq_design["name"])
    f_q, ckpt = checkpoint.load_run(fq_design, run_dir)
    path = run_dir / "checkpoint.pt"
    if "decoder_design" not in ckpt:
        raise ValueError(f"{path} has no deployed decoder (decoder_design): train "
                         f"{fq_design['name']!r} with train.task: eqnet_stage1")
    g = build_network(load_design(ckpt["decoder_design"]))
    g.load_state_dict(ckpt["decoder"])
    for m in (f_q, g):
        m.eval()
        for p in m.parameters():
            p.requires_grad_(False)
    return f_q, g, fq_design


@register("eqnet_stage2")
def eqnet_stage2(run: TaskRun) -> TaskResult:
    """f_E trained with L1 (eq. 9) to the frozen f_Q's unquantized latents of the same
    samples; then f_Q's k-means quantizer is copied into f_E's head, so f_E's indices
    feed the same g (the joint mode). Reports the end-to-end eq. 7 through the frozen g
    beside f_Q's own (the quantization mode on the same samples)."""
    design, r, net = run.design, run.recipe, run.net
    f_q, g, fq_design = _teacher(design)
    where = f"design {design['name']!r}"
    fq_in = _single_input(f_q, f"teacher {fq_design['name']!r}")
    fq_out, fq_head, _, _ = _chain(f_q, g, f_q.input_decl[fq_in]["features"],
                                   f"teacher {fq_design['name']!r}")
    if not isinstance(net, QuantNet) or len(net.heads) != 1:
        raise ValueError(f"{where}: eqnet_stage2 needs a paths-layout f_E with one output")
    (out,) = list(net.heads)
    head = net.heads[out]
    if not isinstance(head, KMeansHead) or (net.out_features[out], head.n_levels) != (
            f_q.out_features[fq_out], fq_head.n_levels):
        raise ValueError(f"{where}: model.paths.{out} must be a kmeans head of "
                         f"{f_q.out_features[fq_out]} features x {fq_head.n_levels} levels, "
                         f"as f_Q {fq_design['name']!r}'s {fq_out!r}")
    t0 = time.time()
    data = design_data(design, r["samples"], seed=r["seed"])
    val = design_data(design, VAL_SAMPLES, seed=r["seed"] + 1)
    data_s = time.time() - t0
    names = list(net.input_decl)

    def tensors(d: dict[str, np.ndarray]) -> tuple[dict[str, torch.Tensor], torch.Tensor,
                                                    torch.Tensor]:
        xs = {n: torch.from_numpy(d[n]) for n in names}
        x_fq = torch.from_numpy(d[fq_in])
        with torch.no_grad():
            z = fq_head._act(f_q._pre({fq_in: x_fq})[fq_out])
        return xs, x_fq, z

    xs, _, z = tensors(data)
    xs_val, x_val, z_val = tensors(val)
    w_t, _ = _bit_weights(data)
    eps = float(fq_design["train"]["loss_eps"])
    # f_Q's k-means quantizer first: training reads the activation before it (eq. 9), and
    # every epoch's end-to-end row is then the joint mode's f_E -> indices -> g.
    head.load_state_dict(fq_head.state_dict())
    teacher = _evaluate(f_q, g, [x_val], x_val, w_t, eps, "teacher_e2e_")

    @torch.no_grad()
    def evaluate(phase: str, **extra: Any) -> dict[str, Any]:
        net.eval()
        a = head._act(net._pre(xs_val)[out])
        return {"phase": phase, **extra, "val_l1": torch.mean(torch.abs(a - z_val)).item(),
                **_evaluate(net, g, [xs_val[n] for n in names], x_val, w_t, eps, "val_e2e_"),
                "teacher_e2e_loss": teacher["teacher_e2e_loss"]}

    history = [evaluate("init")]

    def l1(idx: torch.Tensor) -> torch.Tensor:
        net.train()
        a = head._act(net._pre({n: xs[n][idx] for n in names})[out])
        return torch.mean(torch.abs(a - z[idx]))

    _epochs(list(net.parameters()), r, r["epochs"], torch.arange(len(z)), l1,
            f"{run.desc} f_E -> f_Q latents",
            lambda e: history.append(evaluate("epoch", epoch=e)))
    history.append(evaluate("trained"))
    for h in history:
        tqdm.write(", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                             for k, v in h.items()))
    return TaskResult(history, metrics={"teacher": fq_design["name"]}, data_seconds=data_s)


@register("eqnet_joint")
def eqnet_joint(run: TaskRun) -> TaskResult:
    """The paper's single-stage baseline (Fig. 3): f_E and a fresh deployed g trained
    jointly from (y, H, sigma) straight to the soft bits on eq. 7 (then k-means and g's
    fine-tuning, as stage 1), for the comparison of its per-epoch validation eq. 7 with
    eqnet_stage2's end-to-end rows."""
    return _encoder_decoder(run, "soft_bits", "f_E + g (joint baseline)")
