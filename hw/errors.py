"""Errors the flow raises for models it cannot map; each names the node and the reason."""

from __future__ import annotations


class UnsupportedModelError(ValueError):
    """A node of the model cannot be compiled by this flow."""

    def __init__(self, node_name: str, op_type: str, reason: str) -> None:
        self.node_name, self.op_type, self.reason = node_name, op_type, reason
        super().__init__(f"node {node_name!r} ({op_type}) is not supported: {reason}")
