"""Confidence intervals and the stopping rule of one sweep point (pure functions).

The stopping rule, exactly. A point (curve, SNR) is simulated in chunks 0, 1, 2, ... of
``chunk_blocks`` codewords each. Let (n_k, e_k) be the blocks and block errors of the
*prefix* of chunks 0..k-1 (chunk order, never completion order). The point stops at the
smallest k >= 1 for which one of these holds, checked in this order:

1. ``target_errors``: e_k >= ``target_block_errors``;
2. ``below_floor``: the upper end of the two-sided 95% Clopper-Pearson interval of the
   BLER e_k / n_k is < ``floor_bler`` (BLER < floor is established at 97.5% one-sided
   confidence; with 0 errors that needs n_k > ln(40) / floor = 3.69 / floor blocks);
3. ``max_blocks``: n_k >= ``max_blocks`` (a multiple of ``chunk_blocks``).

Its counts are exactly those of that prefix; chunks finished beyond it are journaled
but not counted. With ``skip_below_floor`` a curve's points above an SNR whose point
stopped ``below_floor`` are not simulated (status ``skipped_below_floor``): BLER is
taken as non-increasing in SNR (on a ``csi_error_var`` axis: the points below a CSI
error variance whose point stopped ``below_floor``, BLER taken as non-decreasing in it).
Every decision depends only on chunk results, which depend only on (seed, curve, the
point's link, SNR, chunk index), so the numbers do not depend on the number of workers,
on completion order or on interruptions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from scipy.stats import beta

CONFIDENCE = 0.95
STOP_REASONS = ("target_errors", "below_floor", "max_blocks")
#: Summed per chunk (``sweep.link.simulate_chunk``) and per point.
COUNT_KEYS = ("blocks", "block_errors", "bit_errors", "bit_errors_sq", "raw_bit_errors",
              "iterations")


def clopper_pearson(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided interval of a binomial proportion k / n."""
    if n <= 0:
        return 0.0, 1.0
    a = 1.0 - confidence
    lo = 0.0 if k <= 0 else float(beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k >= n else float(beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


def stop_reason(blocks: int, block_errors: int, rule: Mapping[str, Any]) -> str | None:
    """Why a point whose chunk prefix holds ``blocks``/``block_errors`` stops (None: go on).

    ``rule``: ``target_block_errors``, ``floor_bler``, ``max_blocks`` (see module doc)."""
    if blocks <= 0:
        return None
    if block_errors >= rule["target_block_errors"]:
        return "target_errors"
    if clopper_pearson(block_errors, blocks)[1] < rule["floor_bler"]:
        return "below_floor"
    if blocks >= rule["max_blocks"]:
        return "max_blocks"
    return None


def add_counts(total: dict[str, int], counts: Mapping[str, int]) -> dict[str, int]:
    """total += counts, key by key (COUNT_KEYS); returns total."""
    for k in COUNT_KEYS:
        total[k] = total.get(k, 0) + int(counts[k])
    return total


def summarize(counts: Mapping[str, int], info_bits: int, code_bits: int) -> dict[str, Any]:
    """BLER and BER with 95% intervals from a point's summed counts.

    * ``bler_ci95``: Clopper-Pearson over blocks;
    * ``ber_ci95``: Clopper-Pearson over information bits, as if bits were independent.
      They are not (a failed block errs in many bits at once), so this interval is too
      narrow; ``ber_ci95_blocks`` is the normal-approximation interval of the mean bit
      errors per block (blocks are independent), divided by ``info_bits``.
    """
    n, e = int(counts["blocks"]), int(counts["block_errors"])
    bits, be = n * info_bits, int(counts["bit_errors"])
    out: dict[str, Any] = {
        "blocks": n, "block_errors": e,
        "bler": e / n if n else None, "bler_ci95": list(clopper_pearson(e, n)),
        "bits": bits, "bit_errors": be,
        "ber": be / bits if bits else None, "ber_ci95": list(clopper_pearson(be, bits)),
    }
    if n > 1 and be > 0:
        mean = be / n
        var = max(0.0, (int(counts["bit_errors_sq"]) - n * mean * mean) / (n - 1))
        half = 1.959963984540054 * math.sqrt(var / n)
        out["ber_ci95_blocks"] = [max(0.0, (mean - half) / info_bits),
                                  min(1.0, (mean + half) / info_bits)]
    else:  # no bit errors: the block interval bounds the BER (<= one block's worth each)
        out["ber_ci95_blocks"] = [0.0, clopper_pearson(e, n)[1]]
    out["uncoded_ber"] = int(counts["raw_bit_errors"]) / (n * code_bits) if n else None
    out["mean_iterations"] = int(counts["iterations"]) / n if n else None
    return out
