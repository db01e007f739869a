"""The model zoo: deployable Brevitas networks, their registry, data sets, checkpoints.

The floor beneath train/ and export/ (development side: torch, Brevitas, phy).
"""
