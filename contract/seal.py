"""The sealed contract of a package: a digest over its I/O contract and artifact hashes.

Board-safe (standard library only). ``hw`` seals every manifest it writes
(``make_contract``); ``host`` recomputes the digest before it trusts a scale, a shape or
the board (``host.package.open_package``). It lives in the floor because both stages
need the same rule and stages do not import each other.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["CONTRACT_FIELDS", "CONTRACT_SCHEME", "canonical_json", "contract_digest",
           "make_contract", "sha256_json"]

CONTRACT_FIELDS = ("design", "board", "part", "clock_mhz", "io")
CONTRACT_SCHEME = ("sha256 of canonical JSON (sort_keys, separators (',', ':'), ASCII) of "
                   "{design, board, part, clock_mhz, io, artifacts}")
def canonical_json(obj: Any) -> bytes:
    """One byte string per JSON value: sorted keys, no whitespace, ASCII, no NaN/inf."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj)).hexdigest()


def contract_digest(manifest: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of the contract fields and the artifacts table."""
    missing = [k for k in (*CONTRACT_FIELDS, "artifacts") if k not in manifest]
    if missing:
        raise KeyError(f"manifest lacks contract field(s) {missing}")
    return sha256_json({**{k: manifest[k] for k in CONTRACT_FIELDS},
                 "artifacts": manifest["artifacts"]})


def make_contract(manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest["contract"]``: the fields the host trusts, the artifact table's hash, digest.

    Computed on the JSON round trip of the manifest, so that what is sealed is what a
    reader of ``manifest.json`` sees (tuples become lists, and so on).
    """
    m = json.loads(json.dumps({k: manifest[k] for k in (*CONTRACT_FIELDS, "artifacts")
                               if k in manifest}))
    digest = contract_digest(m)
    return {"scheme": CONTRACT_SCHEME, **{k: m[k] for k in CONTRACT_FIELDS},
            "artifacts_sha256": sha256_json(m["artifacts"]), "digest": digest}
