"""Train a design's network with Brevitas QAT: ``python -m train --design NAME``.

The design's training task (``train.task`` in its YAML, else its registry entry's
default: :func:`zoo.registry.task_of`) is looked up in :data:`train.tasks.TASKS`; seeding,
building and saving are common (:mod:`train.run`). Outputs in ``--out``:

* ``checkpoint.pt``: ``design``, ``model`` (the network's state_dict), the task's extras
  (``decoder`` for reconstruction) and ``recipe``; read by :func:`zoo.checkpoint.load_trained`;
* ``metrics.json``: ``design``, ``recipe``, ``task``, ``history`` (one entry per epoch),
  the task's own metrics (``initial``, ``final``), ``data_seconds`` and ``train_seconds``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from configs import ConfigError, load_design
from train.run import train_design
from train.tasks import UnknownRecipeError, UnknownTaskError

__all__ = ["main", "train_design"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--design", required=True)
    ap.add_argument("--recipe", default="short")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    try:
        metrics = train_design(load_design(a.design), a.recipe, a.out)
    except (ConfigError, UnknownTaskError, UnknownRecipeError) as e:
        print(f"train: error: {e}", file=sys.stderr)
        return 2
    # The last validation row; a task that trains nothing (from_run) has none: its source.
    hist = metrics.get("history") or [{k: metrics.get(k) for k in ("source", "source_key")}]
    print(json.dumps(metrics.get("final") or hist[-1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
