"""The training-task registry: a task trains a design's network on its data set.

``TASKS`` maps a task name (the YAML's ``train.task``, else the default of the design's
registry entry: :func:`zoo.registry.task_of`) to a :class:`Task`. A task receives the
network that :func:`zoo.registry.build_network` built (after ``torch.manual_seed``) and
returns its metrics and any checkpoint extras (a training-only decoder, ...); seeding,
building, the checkpoint and ``metrics.json`` are common (``train/__main__.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from zoo.registry import task_of

#: Validation vectors of every task (data seed: the recipe's seed + 1).
VAL_SAMPLES = 20000


@dataclass
class TaskRun:
    """What a task gets: the design, its recipe (name and mapping) and the built network."""

    design: dict[str, Any]
    recipe_name: str
    recipe: dict[str, Any]
    net: nn.Module

    @property
    def desc(self) -> str:
        return f"train {self.design['name']} ({self.recipe_name})"


@dataclass
class TaskResult:
    """What a task returns: per-epoch validation metrics, extra metrics (``initial``,
    ``final``, ...), checkpoint extras (saved beside ``model``) and the data time."""

    history: list[dict[str, float]]
    metrics: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    data_seconds: float = 0.0


@dataclass(frozen=True)
class Task:
    """A registered training task."""

    name: str
    run: Callable[[TaskRun], TaskResult]
    doc: str = ""


TASKS: dict[str, Task] = {}


def register(name: str) -> Callable[[Callable[[TaskRun], TaskResult]],
                                     Callable[[TaskRun], TaskResult]]:
    """Decorator: register ``fn(run) -> TaskResult`` as the training task ``name``."""

    def deco(fn: Callable[[TaskRun], TaskResult]) -> Callable[[TaskRun], TaskResult]:
        if name in TASKS:
            raise ValueError(f"training task {name!r} is registered twice")
        TASKS[name] = Task(name, fn, (fn.__doc__ or "").strip())
        return fn

    return deco


class UnknownTaskError(ValueError):
    """A design names (or its registry entry defaults to) a task that is not registered."""


class UnknownRecipeError(ValueError):
    """``--recipe`` names no recipe of the design's ``train.recipes``."""


def get_task(design: dict[str, Any]) -> Task:
    """The training task of a design; :class:`UnknownTaskError` naming ``train.task``."""
    name = task_of(design)
    if name not in TASKS:
        given = design.get("train", {}).get("task")
        where = ("train.task" if given else
                 f"the default task of {design.get('family')}/{design.get('network')} "
                 "(zoo.registry; set train.task to override)")
        raise UnknownTaskError(
            f"design {design.get('name')!r}: training task {name!r} ({where}) is not "
            f"known; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]


def batches(n: int, batch_size: int) -> Iterator[torch.Tensor]:
    """One epoch of mini-batch indices: a fresh ``torch.randperm`` (global torch RNG),
    full batches only (a remainder smaller than ``batch_size`` is dropped)."""
    perm = torch.randperm(n)
    for i in range(n // batch_size):
        yield perm[i * batch_size:(i + 1) * batch_size]


def one_cycle(params: list[torch.nn.Parameter], recipe: dict[str, Any], n: int
              ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler, int]:
    """Adam with a one-cycle schedule peaking at the recipe's ``lr``; (opt, sched, steps)."""
    opt = torch.optim.Adam(params, lr=recipe["lr"])
    steps = recipe["epochs"] * (n // recipe["batch_size"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe["lr"], total_steps=steps)
    return opt, sched, steps
