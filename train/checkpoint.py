"""Saving and loading trained checkpoints (``runs/<design>/checkpoint.pt``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from train.models import QuantMLP, build_model


def load_trained(design: dict[str, Any], run_dir: Path) -> QuantMLP:
    """The trained quantized network of a design from its run folder, in eval mode."""
    ckpt_path = run_dir / "checkpoint.pt"
    if not ckpt_path.is_file():
        raise FileNotFoundError(f"{ckpt_path} not found: run `make train DESIGN={design['name']}`")
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    if ckpt["design"] != design["name"]:
        raise ValueError(f"{ckpt_path} holds design {ckpt['design']!r}, not {design['name']!r}")
    model = build_model(design)
    model.load_state_dict(ckpt["model"])
    return model.eval()
