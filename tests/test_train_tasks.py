"""Training tasks (train.tasks) on the synthetic designs that prove the floor: each trains
with a tiny recipe, its loss falls, its checkpoint round-trips through
zoo.checkpoint.load_trained with identical output codes, output_codes agrees with
forward, and codebook heads hold sorted levels with integer boundaries between them.
Unknown tasks and recipes are refused by name before any work."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import configs
from configs.schema import DEFAULT_TASK, TASK_NAMES, Design, _choices
from contract.iospec import IntType
from train.__main__ import main as train_main
from train.run import fit_design, save_run, train_design
from train.tasks import TASKS, UnknownRecipeError, UnknownTaskError
from zoo import datasets
from zoo.checkpoint import load_trained
from zoo.network import CodebookHead, QuantHead
from zoo.registry import entry, task_of

SYNTH = ["synth-two-io", "synth-codebook"]
TINY = {"samples": 2048, "epochs": 3, "batch_size": 64, "lr": 1.0e-2, "seed": 0}


def tiny(name: str, **changes: Any) -> dict[str, Any]:
    """A copy of a shipped design with the tiny recipe (and ``changes`` to ``train``)."""
    d = copy.deepcopy(configs.load_design(name))
    d["train"]["recipes"]["tiny"] = dict(TINY)
    d["train"].update(changes)
    return d


def input_codes(spec: Any, n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random integer codes over each input's whole range, extremes included."""
    rng = np.random.default_rng(seed)
    out = {}
    for t in spec.inputs:
        dt = t.dtype
        c = rng.integers(dt.min, dt.max + 1, (n, t.features))
        c[0], c[1] = dt.min, dt.max
        out[t.name] = torch.from_numpy(c).float()
    return out


@pytest.fixture(scope="module", params=SYNTH)
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> dict[str, Any]:
    design = tiny(request.param)
    run = fit_design(design, "tiny")
    out = tmp_path_factory.mktemp(request.param)
    metrics = save_run(design, "tiny", run, out)
    return {"design": design, "net": run.net.eval(), "metrics": metrics, "out": out}


# --- registry and schema agree ------------------------------------------------------------


def test_tasks_known_to_schema() -> None:
    assert set(TASKS) == set(TASK_NAMES)
    for name, task in TASKS.items():
        assert task.name == name and task.doc


@pytest.mark.parametrize("name", configs.designs())
def test_schema_default_task_is_registry_default(name: str) -> None:
    """configs.schema infers the task from the model layout when train.task is omitted
    (it cannot import the registry); for every shipped design that omits it, that must be
    the registry's default, and the task the design trains with. A design that names its
    task (EQ-Net's stages: the same network trains in several) trains with that one."""
    d = configs.load_design(name)
    model = Design.model_validate(d)
    assert model.task == task_of(d) in TASKS
    if "task" not in d.get("train", {}):
        assert DEFAULT_TASK[model.layout] == entry(d).task


# --- the synthetic designs train, save and load back --------------------------------------


def test_loss_decreases(trained: dict[str, Any]) -> None:
    m = trained["metrics"]
    assert m["task"] == "regression" and len(m["history"]) == TINY["epochs"]
    assert m["history"][-1]["val_loss"] < 0.5 * m["initial"]["val_loss"], m
    assert m["history"][-1]["train_loss"] < m["history"][0]["train_loss"], m
    outs = trained["net"].iospec().output_names
    assert set(m["final"]) >= {f"val_mse/{o}" for o in outs}
    for o, h in trained["net"].heads.items():
        assert (f"val_mse_codebook/{o}" in m["final"]) == isinstance(h, CodebookHead)


def test_checkpoint_round_trip(trained: dict[str, Any]) -> None:
    design, net = trained["design"], trained["net"]
    ckpt = torch.load(trained["out"] / "checkpoint.pt", weights_only=False)
    assert list(ckpt) == ["design", "model", "recipe"]
    assert ckpt["design"] == design["name"] and ckpt["recipe"] == "tiny"
    loaded = load_trained(design, trained["out"])
    assert loaded.iospec() == net.iospec()
    codes = input_codes(net.iospec(), 4000)
    a, b = net.output_codes(**codes), loaded.output_codes(**codes)
    assert list(a) == list(b) == net.iospec().output_names
    for o in a:
        assert torch.equal(a[o], b[o]), o


def test_output_codes_match_forward(trained: dict[str, Any]) -> None:
    net = trained["net"]
    spec = net.iospec()
    codes = input_codes(spec, 4000, seed=1)
    out = net.output_codes(**codes)
    with torch.no_grad():
        fwd = net(*[codes[t.name] * t.scale for t in spec.inputs])
    fwd = fwd if isinstance(fwd, tuple) else (fwd,)
    for t, y in zip(spec.outputs, fwd, strict=True):
        c, head = out[t.name], net.heads[t.name]
        dt = IntType.parse(t.datatype)
        assert c.shape == (4000, t.features)
        assert int(c.min()) >= dt.min and int(c.max()) <= dt.max
        if isinstance(head, CodebookHead):
            assert torch.equal(head.levels[c.long()], y), t.name
            assert torch.equal(torch.from_numpy(t.to_float(c.numpy())), y), t.name
        else:
            assert isinstance(head, QuantHead) and t.scale is not None
            assert torch.equal(c.float() * t.scale, y), t.name
        assert len(torch.unique(c)) > 1, f"{t.name}: constant codes"


def test_codebook_levels_and_boundaries(trained: dict[str, Any]) -> None:
    heads = {o: h for o, h in trained["net"].heads.items() if isinstance(h, CodebookHead)}
    if trained["design"]["name"] != "synth-codebook":
        assert not heads                                       # quant heads only
        return
    assert list(heads) == ["y"]
    h = heads["y"]
    lv, b = h.levels, h.boundaries
    assert len(lv) == 8 and len(b) == 7
    assert torch.all(lv[1:] > lv[:-1]), lv                     # sorted, distinct
    assert torch.equal(b, torch.round(b)), b                   # integer fine codes
    thr = (b + 0.5) * h.scale                                  # the index's thresholds
    assert torch.all(lv[:-1] <= thr) and torch.all(thr <= lv[1:]), (lv, thr)
    assert torch.all(lv.abs() <= 1.0)                          # tanh's range
    # The fitted levels differ from the linspace the head was built with.
    init = torch.linspace(-1, 1, 8) * (2 ** 7 - 1) * h.scale
    assert not torch.equal(lv, init)


# --- refusals ------------------------------------------------------------------------------


def test_unknown_task_refused(tmp_path: Path) -> None:
    design = tiny("synth-two-io", task="denoising")
    with pytest.raises(UnknownTaskError) as ei:
        train_design(design, "tiny", tmp_path / "run")
    msg = str(ei.value)
    assert "'denoising'" in msg and "train.task" in msg
    assert "known tasks: " + ", ".join(sorted(TASKS)) in msg
    assert not (tmp_path / "run").exists()                      # refused before any work


def test_cli_refuses_unknown_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m train``: the schema refuses it first, naming train.task and the tasks."""
    (tmp_path / "designs").mkdir()
    text = (configs.CONFIG_DIR / "designs" / "synth-two-io.yaml").read_text()
    assert "  task: regression" in text
    (tmp_path / "designs" / "synth-two-io.yaml").write_text(
        text.replace("  task: regression", "  task: denoising"))
    monkeypatch.setattr(configs, "CONFIG_DIR", tmp_path)
    assert train_main(["--design", "synth-two-io", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "train.task: got 'denoising'" in err
    assert _choices(TASK_NAMES) in err and "'reconstruction', 'regression'" in err
    assert not (tmp_path / "run").exists()


def test_unknown_recipe_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UnknownRecipeError, match="no recipe 'huge'.*recipes: short, full"):
        train_design(configs.load_design("synth-two-io"), "huge", tmp_path)
    assert train_main(["--design", "synth-two-io", "--recipe", "huge",
                       "--out", str(tmp_path / "run")]) == 2
    assert "no recipe 'huge'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# --- the other two tasks, on stand-in data -------------------------------------------------


def test_reconstruction_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """EQ-Net stage 1 mechanics on random soft bits (no channel simulation)."""

    def fake_llr(design: dict[str, Any], n: int, seed: int, cache: Any) -> dict[str, Any]:
        llr = np.random.default_rng(seed).normal(0, 4, (n, 12)).astype(np.float32)
        return {"llr": llr, "soft_bits": np.tanh(llr / 2)}

    monkeypatch.setitem(datasets.DATASETS, "mimo_llr", fake_llr)
    design = copy.deepcopy(configs.load_design("eqnet-fq-uniform-2x2-64qam"))
    design["model"]["hidden"] = [16]
    design["train"]["decoder_hidden"] = [16]
    design["train"]["recipes"]["tiny"] = {**TINY, "samples": 1024, "epochs": 2}
    metrics = train_design(design, "tiny", tmp_path)
    assert metrics["task"] == "reconstruction" and len(metrics["history"]) == 2
    assert set(metrics["history"][0]) == {"val_loss", "val_softbit_mse",
                                          "latent_entropy_bits", "epoch"}
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert list(ckpt) == ["design", "model", "decoder", "recipe"]
    net = load_trained(design, tmp_path)
    assert net.iospec().input_names == ["soft_bits"]
    assert net.iospec().output_names == ["latent"]


def test_classification_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cross-entropy on the class of the largest teacher output (a stand-in data set)."""

    def classes(design: dict[str, Any], n: int, seed: int, cache: Any) -> dict[str, Any]:
        d = datasets.DATASETS["synthetic_teacher"](design, n, seed, cache)
        for k in [k for k in d if k.startswith("target:")]:
            d[k] = d[k].argmax(1).astype(np.float32)
        return d

    monkeypatch.setitem(datasets.DATASETS, "teacher_classes", classes)
    design = tiny("synth-two-io", task="classification")
    design["data"]["kind"] = "teacher_classes"
    for p in design["model"]["paths"].values():
        p["head"] = {"kind": "quant", "activation": "none", "bits": 8, "scale_log2": -4}
    metrics = train_design(design, "tiny", tmp_path)
    assert metrics["task"] == "classification"
    first, last = metrics["initial"], metrics["final"]
    assert last["val_loss"] < first["val_loss"]
    assert last["val_acc/p"] > 0.6 and last["val_acc/q"] > 0.8, last  # chance: 0.25, 0.5
    net = load_trained(design, tmp_path)
    assert net.iospec().output_names == ["p", "q"]
