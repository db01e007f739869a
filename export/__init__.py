"""Brevitas -> QONNX export with an integer-coded input, and golden vectors."""
