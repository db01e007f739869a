"""Gray-labelled QAM / BPSK constellations, identical to Sionna's ordering and labelling.

Point ``m`` carries the label ``binary(m)`` (MSB first), exactly as in
``sionna.phy.mapping.Constellation("qam", k)``: the in-phase PAM coordinate is
Gray-mapped from the even label bits (b0, b2, ...), the quadrature one from the
odd bits (b1, b3, ...). Implemented in numpy so that data generation does not
need to import Sionna/torch; ``tests/test_phy_llr.py`` checks equality with Sionna.
"""

from __future__ import annotations

from functools import cache

import numpy as np


def _pam_gray(bits: np.ndarray) -> int:
    """Unnormalized Gray PAM level for a bit vector (3GPP TS 38.211 §5.1 recursion)."""
    b0 = int(bits[0])
    if len(bits) > 1:
        return (1 - 2 * b0) * (2 ** (len(bits) - 1) - _pam_gray(bits[1:]))
    return 1 - 2 * b0


def bit_labels(bits_per_symbol: int) -> np.ndarray:
    """Labels of points 0..M-1: uint8 (M, bits_per_symbol), MSB first."""
    m = np.arange(2**bits_per_symbol)[:, None]
    shifts = np.arange(bits_per_symbol - 1, -1, -1)
    return ((m >> shifts) & 1).astype(np.uint8)


@cache
def _qam_cached(bits_per_symbol: int) -> tuple[np.ndarray, np.ndarray]:
    if bits_per_symbol < 1 or (bits_per_symbol > 1 and bits_per_symbol % 2):
        raise ValueError("bits_per_symbol must be 1 (BPSK) or a positive even number (QAM)")
    labels = bit_labels(bits_per_symbol)
    if bits_per_symbol == 1:
        points = np.array([1.0, -1.0], dtype=np.complex128)  # Sionna "pam" with 1 bit
    else:
        points = np.array(
            [_pam_gray(b[0::2]) + 1j * _pam_gray(b[1::2]) for b in labels], dtype=np.complex128
        )
        points /= np.sqrt(np.mean(np.abs(points) ** 2))
    points.setflags(write=False)
    labels.setflags(write=False)
    return points, labels


def qam_constellation(bits_per_symbol: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit-energy Gray constellation: (points complex128 (M,), labels uint8 (M, k)).

    ``bits_per_symbol=1`` gives BPSK (bit 0 -> +1, bit 1 -> -1); 2, 4, 6, 8 give
    QPSK, 16-, 64-, 256-QAM. The returned arrays are read-only (cached).
    """
    return _qam_cached(bits_per_symbol)


@cache
def pam_factors(bits_per_symbol: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Split the constellation into per-dimension PAM levels.

    Returns (levels (P,), i_index (M,), q_index (M,) or None for BPSK) with
    ``points[m] == levels[i_index[m]] + 1j * levels[q_index[m]]``.
    """
    points, _ = qam_constellation(bits_per_symbol)
    levels = np.unique(points.real)
    i_index = np.searchsorted(levels, points.real)
    q_index = None if bits_per_symbol == 1 else np.searchsorted(levels, points.imag)
    return levels, i_index, q_index


def map_bits(bits: np.ndarray, bits_per_symbol: int) -> np.ndarray:
    """Map bits (..., n*k) (uint8/0-1) to symbols (..., n) using the Gray labelling."""
    points, _ = qam_constellation(bits_per_symbol)
    b = np.asarray(bits).reshape(*np.shape(bits)[:-1], -1, bits_per_symbol).astype(np.int64)
    weights = 1 << np.arange(bits_per_symbol - 1, -1, -1)
    return points[b @ weights]
