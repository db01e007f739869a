"""QONNX -> FINN -> RTL flow through FINN's own builder, offline, verified at every stage."""
