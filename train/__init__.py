"""Quantization-aware training of a design's network (stage 1 of the flow).

``python -m train --design NAME --recipe short|full --out runs/NAME``; the network, data
sets and checkpoints live in the model zoo (:mod:`zoo`); training tasks by name in
:mod:`train.tasks`; the common seed/build/save in :mod:`train.run`.
"""
