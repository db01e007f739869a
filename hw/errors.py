"""Errors the flow raises for models it cannot map or boards they do not fit; each names
what is wrong and where."""

from __future__ import annotations

from typing import Any

try:  # FINN's builder logs a user error as "FINN ERROR: <message>", without the traceback
    from finn.util.exception import FINNUserError as _UserError
except ImportError:  # pragma: no cover (finn-plus is part of the hw environment)
    _UserError = Exception


class UnsupportedModelError(ValueError):
    """A node of the model cannot be compiled by this flow."""

    def __init__(self, node_name: str, op_type: str, reason: str) -> None:
        self.node_name, self.op_type, self.reason = node_name, op_type, reason
        super().__init__(f"node {node_name!r} ({op_type}) is not supported: {reason}")


class ResourceBudgetError(_UserError, RuntimeError):
    """The folded design needs more of the board than its utilization ceiling allows
    (hw.steps.step_check_resources, before any RTL is generated).

    ``design``, ``board``, ``part``: what was checked; ``over``: one entry per resource
    over the ceiling (``resource``, ``used``, ``available``, ``percent``, ``ceiling``,
    ``top_layers``); ``report``: the whole check (``report/resource_check.json``). The
    message says all of it and what to do. A FINN user error, so that FINN's builder logs
    the message rather than an "internal compiler error" with a traceback."""

    def __init__(self, message: str, design: str, board: str, part: str,
                 over: list[dict[str, Any]], report: dict[str, Any] | None = None) -> None:
        self.design, self.board, self.part = design, board, part
        self.over, self.report = over, report or {}
        super().__init__(message)

    def __reduce__(self):  # picklable despite the custom __init__
        return (type(self), (str(self), self.design, self.board, self.part, self.over,
                             self.report))
