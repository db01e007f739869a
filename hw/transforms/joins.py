"""Streamlining across joins and forks (residual adds, branches, concats).

FINN's default ``Streamline()`` does not move scales past joins and forks; the FINN
transformations below do, and our own ones here cover what FINN 1.6.1 breaks on.
"""

from __future__ import annotations

import warnings

from finn.builder.build_dataflow_config import DataflowBuildConfig
from finn.builder.build_dataflow_steps import step_streamline
from finn.transformation.streamline import Streamline
from finn.transformation.streamline.reorder import (
    MoveAddPastJoinConcat,
    MoveLinearPastEltwiseAdd,
    MoveLinearPastFork,
    MoveMulPastJoinConcat,
)
from qonnx.core.modelwrapper import ModelWrapper

# FINN's default Streamline() list does not move scales across joins and forks; these
# FINN transformations do, so residual adds, branches and concats streamline to integers.
JOIN_FORK_MOVES = (MoveLinearPastEltwiseAdd, MoveLinearPastFork, MoveMulPastJoinConcat,
                   MoveAddPastJoinConcat)


def streamline_across_joins(model: ModelWrapper, cfg: DataflowBuildConfig,
                            rounds: int = 3) -> ModelWrapper:
    """FINN's step_streamline, repeated with join/fork moves until nothing changes."""
    model = step_streamline(model, cfg)
    for _ in range(rounds):
        before = model.model.SerializeToString()
        for move in JOIN_FORK_MOVES:
            try:
                model = model.transform(move())
            except Exception as e:  # noqa: BLE001 - FINN bugs on some joins, see below
                # Measured with finn-plus 1.6.1: MoveLinearPastEltwiseAdd builds a cycle on a
                # residual whose Add input forks from the other; MoveAffinePastJoinConcat
                # raises IndexError on scalar scales. The model is left as it was (transform
                # works on a copy), and the checks that follow name the node that stays float.
                warnings.warn(f"{move.__name__} skipped: {type(e).__name__}: {e}", stacklevel=2)
        model = model.transform(Streamline())
        if model.model.SerializeToString() == before:
            break
    return model


