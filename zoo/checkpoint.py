"""Saving and loading trained checkpoints (``runs/<design>/checkpoint.pt``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.registry import build_network

#: Where ``make train`` writes a design's run (``runs/<design>``, the Makefile's RUN_DIR).
RUNS = Path("runs")


def run_of(design_name: str) -> Path:
    """The run folder of a design by the repository's convention (``runs/<design>``)."""
    return RUNS / design_name


def load_run(design: dict[str, Any], run_dir: Path) -> tuple[nn.Module, dict[str, Any]]:
    """(the trained quantized network of a design, in eval mode; its whole checkpoint:
    the task's extras too, e.g. EQ-Net's deployed ``decoder``), read once."""
    ckpt_path = Path(run_dir) / "checkpoint.pt"
    if not ckpt_path.is_file():
        raise FileNotFoundError(f"{ckpt_path} not found: run `make train DESIGN={design['name']}`")
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    if ckpt["design"] != design["name"]:
        raise ValueError(f"{ckpt_path} holds design {ckpt['design']!r}, not {design['name']!r}")
    model = build_network(design)
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt


def load_trained(design: dict[str, Any], run_dir: Path) -> nn.Module:
    """The trained quantized network of a design from its run folder, in eval mode."""
    return load_run(design, run_dir)[0]


def load_transmitter(ckpt: dict[str, Any]) -> nn.Module:
    """The transmitter a ``bae_autoencoder`` run trained with its receiver (``transmitter``
    state; its design as the mapping ``transmitter_model``, else by the name
    ``transmitter_design``), in eval mode."""
    from configs import load_design

    if "transmitter" not in ckpt:
        raise KeyError(f"checkpoint of {ckpt.get('design')!r} has no 'transmitter' (keys "
                       f"{sorted(ckpt)}): retrain it with train.task bae_autoencoder")
    tx = build_network(ckpt.get("transmitter_model") or load_design(ckpt["transmitter_design"]))
    tx.load_state_dict(ckpt["transmitter"])
    return tx.eval()
