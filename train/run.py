"""Common to every training task: seed, build, dispatch, save.

``fit_design(design, recipe)`` seeds torch with the recipe's seed, builds the network
(:func:`zoo.registry.build_network`) and runs the design's task
(:func:`train.tasks.get_task`); ``save_run`` writes ``checkpoint.pt`` (``design``,
``model`` = the state_dict, the task's extras such as ``decoder``, ``recipe``) and
``metrics.json``; ``train_design`` does both (what ``python -m train`` runs).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from train.tasks import Task, TaskResult, TaskRun, UnknownRecipeError, get_task
from zoo.registry import build_network


@dataclass
class Trained:
    """A trained network with its task, the task's result and the wall time (data included)."""

    net: nn.Module
    task: Task
    result: TaskResult
    seconds: float


def recipe_of(design: dict[str, Any], recipe: str) -> dict[str, Any]:
    """The recipe mapping; :class:`UnknownRecipeError` naming the recipes there are."""
    recipes = design["train"]["recipes"]
    if recipe not in recipes:
        raise UnknownRecipeError(f"design {design['name']!r}: no recipe {recipe!r} in "
                                 f"train.recipes; recipes: {', '.join(recipes)}")
    return recipes[recipe]


def fit_design(design: dict[str, Any], recipe: str) -> Trained:
    """Train the design's network with its task and recipe (nothing is written)."""
    r = recipe_of(design, recipe)
    task = get_task(design)  # refuses an unknown task before any work
    torch.manual_seed(r["seed"])
    torch.set_num_threads(max(1, torch.get_num_threads()))
    net = build_network(design)
    t0 = time.time()
    res = task.run(TaskRun(design, recipe, r, net))
    return Trained(net, task, res, time.time() - t0)


def save_run(design: dict[str, Any], recipe: str, trained: Trained, out: Path
             ) -> dict[str, Any]:
    """Write ``out/checkpoint.pt`` and ``out/metrics.json``; the metrics."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    res = trained.result
    torch.save({"design": design["name"], "model": trained.net.state_dict(), **res.extras,
                "recipe": recipe}, out / "checkpoint.pt")
    metrics = {"design": design["name"], "recipe": recipe, "task": trained.task.name,
               "history": res.history, **res.metrics,
               "data_seconds": round(res.data_seconds, 1),
               "train_seconds": round(trained.seconds, 1)}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def train_design(design: dict[str, Any], recipe: str, out: Path) -> dict[str, Any]:
    """Train the design's network with its task and recipe; save to ``out``; the metrics."""
    return save_run(design, recipe, fit_design(design, recipe), out)
