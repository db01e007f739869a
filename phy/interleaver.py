"""Random bit interleaver across channel uses (a fixed seeded permutation per block)."""

from __future__ import annotations

import numpy as np


class RandomInterleaver:
    """Permutes the last axis of length ``length`` with a permutation fixed by ``seed``.

    As in the papers, one coded block is spread over many channel uses (e.g. the
    648 bits of a codeword over 54 2x2 64-QAM vectors), so that each vector's LLRs
    belong to unrelated code bits.
    """

    def __init__(self, length: int, seed: int = 0) -> None:
        self.length = length
        self.perm = np.random.default_rng(seed).permutation(length)
        self.inverse = np.argsort(self.perm)

    def interleave(self, x: np.ndarray) -> np.ndarray:
        """out[..., i] = x[..., perm[i]]."""
        return np.asarray(x)[..., self.perm]

    def deinterleave(self, x: np.ndarray) -> np.ndarray:
        """Inverse of ``interleave``."""
        return np.asarray(x)[..., self.inverse]
