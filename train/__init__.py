"""Brevitas quantization-aware models and their training (stage 1 of the flow)."""
