"""Open a package ``bitstreams/<design>-<board>/`` and check it against its manifest.

Board-side module: standard library and numpy (through :mod:`contract.iospec`). The
manifest's ``io`` is ``{"inputs": [...], "outputs": [...]}``: one entry per named stream,
in graph order (name, FINN shape, datatype, ``scale`` or ``codebook``, ``post``, folded
shape, stream width); a package with the single-stream ``io.input``/``io.output`` of older
builds is refused with a request to rebuild it (:class:`IOFormatIntegrityError`). Before
anything in the package is used, :func:`open_package` checks, in this order (each refusal
is a subclass of :class:`PackageIntegrityError` whose message names the file, the field
and both values):

1. the **contract digest** (:class:`ManifestIntegrityError`): ``manifest.json`` is not
   covered by the artifact hashes, so ``write_manifest`` (hw/package.py) seals the
   fields the host trusts, ``design``, ``board``, ``part``, ``clock_mhz`` and ``io`` (names,
   shapes, datatypes, scales, codebooks, folded shapes, stream widths), together with the
   ``artifacts`` hash table, into ``manifest["contract"]``: a copy of those fields and
   ``digest``, the sha256 of their canonical JSON (:func:`canonical_json`). It is
   recomputed here; an edit to any of them (or to the artifact table) is refused;
2. the **io format** (:class:`IOFormatIntegrityError`): every entry is a stream the host
   can carry (:meth:`host.codec.StreamSpec.from_manifest`), names unique;
3. the **expected board** (:class:`BoardIntegrityError`), when the caller names one;
4. every **artifact's sha256** (:class:`PackageIntegrityError`): a missing file or a
   different hash is refused, naming the file and both hashes;
5. **no unlisted files** (:class:`UnlistedFileIntegrityError`): every file in the folder
   other than ``manifest.json`` must be a hashed artifact;
6. the **I/O contract re-derived from the hashed ONNX models**
   (:class:`ModelIntegrityError`, :mod:`host.onnx_facts`): per named tensor, its name and
   position, shape, FINN datatype and scale (1.0 for a codebook index output) must equal
   the manifest's ``io``. The digest protects the manifest against edits, not against a
   manifest written with a fresh digest; the models are the hashed source the manifest
   was derived from;
7. the **I/O spec** (:class:`SpecIntegrityError`): where ``iospec.json`` is a hashed
   artifact, every tensor's name, datatype, scale or codebook, ``post`` and feature count
   must equal the manifest's ``io`` (codebooks cannot be re-derived from the models).

The digest is an integrity check, not a signature: whoever can rewrite the whole package
can rewrite the digest too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract.export_files import sha256_file as sha256_of
from contract.iospec import IOSpec
from contract.seal import (
    CONTRACT_FIELDS,
    CONTRACT_SCHEME,
    canonical_json,
    contract_digest,
    sha256_json,
)
from host import onnx_facts
from host.codec import StreamSpec

MANIFEST = "manifest.json"
DERIVED_FIELDS = ("shape", "datatype")        # per tensor, besides name and scale
SPEC_FIELDS = ("datatype", "scale", "codebook", "post")
QONNX_MODEL, FINN_MODEL, IOSPEC = "model_qonnx.onnx", "model_finn.onnx", "iospec.json"
SIDES = ("inputs", "outputs")


class PackageIntegrityError(RuntimeError):
    """The package differs from what its manifest states (base of every refusal here)."""


class ManifestIntegrityError(PackageIntegrityError):
    """``manifest.json``'s contract fields do not match its contract digest."""


class BoardIntegrityError(PackageIntegrityError):
    """The package was built for another board than the one expected."""


class UnlistedFileIntegrityError(PackageIntegrityError):
    """Files in the package folder that the manifest does not hash."""


class UnverifiedPackageError(PackageIntegrityError):
    """The package's own manifest records failed verification (mismatches)."""


class ModelIntegrityError(PackageIntegrityError):
    """The manifest's I/O contract disagrees with the hashed ONNX models."""


class IOFormatIntegrityError(PackageIntegrityError):
    """The manifest's ``io`` is not a list of named streams the host can carry (a package
    built before named I/O streams, or a malformed entry)."""


class SpecIntegrityError(PackageIntegrityError):
    """The manifest's ``io`` disagrees with the package's ``iospec.json``."""



def _fmt(v: Any) -> str:
    return "(absent)" if v is _ABSENT else json.dumps(v)


_ABSENT = object()


def _diff(path: str, a: Any, b: Any) -> list[tuple[str, Any, Any]]:
    """Leaves where two JSON values differ (as canonical JSON), with dotted paths."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(f"{path}.{k}", a.get(k, _ABSENT), b.get(k, _ABSENT))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out += _diff(f"{path}[{i}]", x, y)
        return out
    if a is _ABSENT or b is _ABSENT:
        return [] if a is b else [(path, a, b)]
    return [] if canonical_json(a) == canonical_json(b) else [(path, a, b)]


def _same(a: Any, b: Any) -> bool:
    """Equal as values (a scale 1 equals 1.0; NaN equals nothing)."""
    num = (int, float)
    if isinstance(a, num) and isinstance(b, num) and not isinstance(a, bool):
        return float(a) == float(b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a is not _ABSENT and a == b


def check_contract(root: Path, manifest: dict[str, Any]) -> str:
    """Recompute the contract digest; refuse a manifest whose sealed fields were changed.

    Returns the digest.
    """
    mpath = root / MANIFEST
    c = manifest.get("contract")
    if not isinstance(c, dict) or not isinstance(c.get("digest"), str):
        raise ManifestIntegrityError(
            f"{mpath}: no 'contract' digest, so its I/O contract (scales, shapes, board) "
            "is unprotected; the package predates contract hashing or the section was "
            "removed: rebuild it (make hw, then make sim / make bitstream as before)")
    missing = [k for k in (*CONTRACT_FIELDS, "artifacts") if k not in manifest]
    if missing:
        raise ManifestIntegrityError(f"{mpath}: contract field(s) {missing} missing")
    diffs = []
    for k in CONTRACT_FIELDS:
        diffs += _diff(k, manifest[k], c.get(k, _ABSENT))
    lines = [f"  {p}: manifest.json has {_fmt(a)}, the sealed contract has {_fmt(b)}"
             for p, a, b in diffs]
    art = sha256_json(manifest["artifacts"])
    if c.get("artifacts_sha256") != art:
        lines.append(f"  artifacts: the hash table differs from the sealed one "
                     f"(artifacts_sha256 sealed {c.get('artifacts_sha256')}, now {art})")
    actual = contract_digest(manifest)
    if lines or actual != c["digest"]:
        if not lines:
            lines.append("  (the contract's copies agree with the manifest: the contract "
                         "section itself or its digest was edited)")
        raise ManifestIntegrityError(
            f"{mpath} refused: its I/O contract does not match its digest "
            f"({CONTRACT_SCHEME}):\n" + "\n".join(lines)
            + f"\n  contract.digest in manifest.json: {c['digest']}"
            + f"\n  recomputed from manifest.json:    {actual}")
    return actual


def check_board(root: Path, manifest: dict[str, Any], expect_board: str | None) -> None:
    """Refuse a package built for another board than ``expect_board`` (None: no check)."""
    if expect_board is None or manifest.get("board") == expect_board:
        return
    raise BoardIntegrityError(
        f"package {root} refused: {MANIFEST} says it was built for board "
        f"{manifest.get('board')!r} (part {manifest.get('part')!r}, design "
        f"{manifest.get('design')!r}), expected board {expect_board!r}")


def check_artifacts(root: Path, artifacts: dict[str, str]) -> list[str]:
    """Hash every listed artifact; raise listing every missing or differing one.

    Returns the checked paths (relative to ``root``).
    """
    if not artifacts:
        raise PackageIntegrityError(f"{root / MANIFEST}: no 'artifacts' hashes to check against")
    problems = []
    for rel, expected in sorted(artifacts.items()):
        path = root / rel
        if not path.is_file():
            problems.append(f"  {rel}: missing (expected sha256 {expected})")
            continue
        actual = sha256_of(path)
        if actual != expected:
            problems.append(f"  {rel}: sha256 mismatch\n    expected {expected}\n"
                            f"    actual   {actual}")
    if problems:
        raise PackageIntegrityError(
            f"package {root} refused: {len(problems)} artifact(s) differ from "
            f"{MANIFEST}:\n" + "\n".join(problems))
    return sorted(artifacts)


def unlisted_files(root: Path, artifacts: dict[str, str]) -> list[str]:
    """Files under ``root`` (as write_manifest walks it) that are neither hashed nor the
    manifest itself."""
    return [rel for f in sorted(root.rglob("*"))
            if f.is_file() and (rel := f.relative_to(root).as_posix()) != MANIFEST
            and rel not in artifacts]


def check_unlisted(root: Path, artifacts: dict[str, str]) -> None:
    extra = unlisted_files(root, artifacts)
    if extra:
        shown = "\n".join(f"  {r}" for r in extra[:50])
        more = f"\n  ... and {len(extra) - 50} more" if len(extra) > 50 else ""
        raise UnlistedFileIntegrityError(
            f"package {root} refused: {len(extra)} file(s) not listed in {MANIFEST} "
            f"'artifacts' (not hashed, so not part of the verified package):\n{shown}{more}\n"
            "remove them, or re-package so that write_manifest hashes them")


def _tensor_path(side: str, i: int, key: str | None, entry: Any) -> str:
    """``io.inputs[0].scale ('soft_bits')``: where in the manifest, and the tensor's name."""
    name = entry.get("name") if isinstance(entry, dict) else None
    return f"io.{side}[{i}]" + (f".{key}" if key else "") + f" ({name!r})"


def check_io_format(root: Path, manifest: dict[str, Any]) -> IOSpec:
    """Refuse an ``io`` that is not ``{"inputs": [...], "outputs": [...]}`` of streams the
    host can carry (the single-stream format of older packages: rebuild them). Returns the
    contract tensors (an :class:`contract.iospec.IOSpec`, per-vector shapes)."""
    mpath, io = root / MANIFEST, manifest["io"]
    if isinstance(io, dict) and "inputs" not in io and ("input" in io or "output" in io):
        raise IOFormatIntegrityError(
            f"package {root} refused: {mpath.name} 'io' has the single-stream format "
            "('io.input'/'io.output') of packages built before named I/O streams; this host "
            "reads named streams ('io.inputs'/'io.outputs', iospec.json, golden.npz by "
            f"name): rebuild the package: make hw DESIGN={manifest.get('design')} "
            f"BOARD={manifest.get('board')} (then make sim / make bitstream as before)")
    if not (isinstance(io, dict) and all(isinstance(io.get(k), list) for k in SIDES)):
        raise IOFormatIntegrityError(
            f"{mpath}: 'io' must be {{'inputs': [...], 'outputs': [...]}} (one entry per named "
            f"stream); it has keys {sorted(io) if isinstance(io, dict) else type(io).__name__}")
    problems, tensors = [], {}
    for side in SIDES:
        tensors[side] = []
        for i, entry in enumerate(io[side]):
            try:
                if not isinstance(entry, dict):
                    raise TypeError(f"a {type(entry).__name__}, not an object")
                tensors[side].append(StreamSpec.from_manifest(entry).tensor)
            except KeyError as e:
                problems.append(f"  {_tensor_path(side, i, None, entry)}: key {e} "
                                "missing")
            except (ValueError, TypeError) as e:
                problems.append(f"  {_tensor_path(side, i, None, entry)}: {e}")
    if problems:
        raise IOFormatIntegrityError(f"package {root} refused: {MANIFEST} 'io' has entries "
                                     "the host cannot carry:\n" + "\n".join(problems))
    try:
        return IOSpec(tuple(tensors["inputs"]), tuple(tensors["outputs"]))
    except ValueError as e:  # no input / no output, or duplicate names
        raise IOFormatIntegrityError(f"package {root} refused: {MANIFEST} 'io': {e}") from None


def check_models(root: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Re-derive every ``io`` tensor's name, shape, datatype and scale from the hashed ONNX
    models; refuse any disagreement with the manifest. Returns the derived values
    (``{"inputs": [...], "outputs": [...]}``, :func:`host.onnx_facts.derive_io`)."""
    for rel in (QONNX_MODEL, FINN_MODEL):
        if rel not in manifest["artifacts"]:
            raise ModelIntegrityError(
                f"package {root} refused: {rel} is not a hashed artifact, so the I/O "
                f"contract in {MANIFEST} cannot be re-derived")
    try:
        derived = onnx_facts.derive_io(root / QONNX_MODEL, root / FINN_MODEL)
    except onnx_facts.OnnxFormatError as e:
        raise ModelIntegrityError(f"package {root} refused: cannot re-derive the I/O "
                                  f"contract: {e}") from None
    lines = []
    for side in SIDES:
        stated, got = manifest["io"][side], derived[side]
        names, dnames = [t.get("name") for t in stated], [t["name"] for t in got]
        if names != dnames:
            lines.append(f"  io.{side}: {MANIFEST} names {_fmt(names)}, {FINN_MODEL} has graph "
                         f"{side} {_fmt(dnames)} (in this order)")
            continue
        for i, (st, dv) in enumerate(zip(stated, got, strict=True)):
            for key in DERIVED_FIELDS:
                have = st.get(key, _ABSENT)
                if not _same(have, dv[key]):
                    lines.append(f"  {_tensor_path(side, i, key, st)}: {MANIFEST} says "
                                 f"{_fmt(have)}, {dv['source'][key]} says {_fmt(dv[key])}")
            src = dv["source"]["scale"]
            if st.get("codebook") is not None:
                if dv["scale"] != 1.0:
                    lines.append(f"  {_tensor_path(side, i, 'scale', st)}: {MANIFEST} has a "
                                 "codebook (index codes, host scale 1.0), "
                                 f"{src} says {_fmt(dv['scale'])}")
            elif not _same(st.get("scale", _ABSENT), dv["scale"]):
                lines.append(f"  {_tensor_path(side, i, 'scale', st)}: {MANIFEST} says "
                             f"{_fmt(st.get('scale', _ABSENT))}, {src} says "
                             f"{_fmt(dv['scale'])}")
    if lines:
        raise ModelIntegrityError(
            f"package {root} refused: {MANIFEST} disagrees with the hashed ONNX models:\n"
            + "\n".join(lines))
    return derived


def check_iospec(root: Path, manifest: dict[str, Any]) -> IOSpec | None:
    """Where ``iospec.json`` is a hashed artifact: every tensor's name, datatype, scale or
    codebook, ``post`` and feature count must equal the manifest's ``io``. Returns the
    spec (None where the package has none)."""
    if IOSPEC not in manifest["artifacts"]:
        return None
    try:
        spec = IOSpec.load(root / IOSPEC)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise SpecIntegrityError(f"package {root} refused: {IOSPEC} is not a valid I/O "
                                 f"spec ({type(e).__name__}: {e})") from None
    lines = []
    for side in SIDES:
        stated, tensors = manifest["io"][side], getattr(spec, side)
        names, snames = [t.get("name") for t in stated], [t.name for t in tensors]
        if names != snames:
            lines.append(f"  io.{side}: {MANIFEST} names {_fmt(names)}, {IOSPEC} names "
                         f"{_fmt(snames)} (in this order)")
            continue
        for i, (st, t) in enumerate(zip(stated, tensors, strict=True)):
            tj = t.to_json()
            for key in SPEC_FIELDS:
                have, want = st.get(key, _ABSENT), tj.get(key, _ABSENT)
                if not (have is _ABSENT and want is _ABSENT) and not _same(have, want):
                    lines.append(f"  {_tensor_path(side, i, key, st)}: {MANIFEST} says "
                                 f"{_fmt(have)}, {IOSPEC} says {_fmt(want)}")
            features = _features(st.get("shape"))
            if features != t.features:
                lines.append(f"  {_tensor_path(side, i, 'shape', st)}: {MANIFEST} says "
                             f"{_fmt(st.get('shape', _ABSENT))} ({features} features), "
                             f"{IOSPEC} says {list(t.shape)} ({t.features} features)")
    if lines:
        raise SpecIntegrityError(
            f"package {root} refused: {MANIFEST} disagrees with {IOSPEC}:\n"
            + "\n".join(lines))
    return spec


def _features(shape: Any) -> int | None:
    """Features per vector of a FINN shape ``[1, F, ...]`` (None if it is not one)."""
    if not isinstance(shape, list) or len(shape) < 2 or not all(
            isinstance(d, int) for d in shape):
        return None
    n = 1
    for d in shape[1:]:
        n *= d
    return n


@dataclass
class Package:
    """A checked package: its folder, manifest and the artifacts that were verified."""

    root: Path
    manifest: dict[str, Any]
    checked: list[str] = field(default_factory=list)
    digest: str = ""                                   # contract digest (checked)
    derived_io: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def io(self) -> dict[str, Any]:
        """The manifest's ``io``: ``{"inputs": [...], "outputs": [...]}``."""
        return self.manifest["io"]

    @property
    def inputs(self) -> dict[str, StreamSpec]:
        """The input streams by name, in graph order."""
        return {e["name"]: StreamSpec.from_manifest(e) for e in self.io["inputs"]}

    @property
    def outputs(self) -> dict[str, StreamSpec]:
        """The output streams by name, in graph order."""
        return {e["name"]: StreamSpec.from_manifest(e) for e in self.io["outputs"]}

    @property
    def input_names(self) -> list[str]:
        return [e["name"] for e in self.io["inputs"]]

    @property
    def output_names(self) -> list[str]:
        return [e["name"] for e in self.io["outputs"]]

    def iospec(self) -> IOSpec:
        """The contract tensors of the manifest's ``io`` (per-vector shapes)."""
        return IOSpec(tuple(s.tensor for s in self.inputs.values()),
                      tuple(s.tensor for s in self.outputs.values()))

    @property
    def board(self) -> str:
        return str(self.manifest.get("board"))

    @property
    def clock_mhz(self) -> float:
        return float(self.manifest["clock_mhz"])

    def path(self, rel: str) -> Path:
        """A package file, only if the manifest lists (and so hashed) it."""
        if rel not in self.manifest.get("artifacts", {}):
            raise PackageIntegrityError(f"{self.root}: {rel} is not a hashed artifact")
        return self.root / rel

    def bitfile(self) -> Path | None:
        """The hashed ``.bit`` of the package (``make bitstream`` with Vivado), if any."""
        bits = sorted(r for r in self.manifest.get("artifacts", {}) if r.endswith(".bit"))
        return self.root / bits[0] if bits else None

    def expect_board(self, board: str | None) -> None:
        """Refuse (:class:`BoardIntegrityError`) if built for another board than ``board``."""
        check_board(self.root, self.manifest, board)


def failed_checks(manifest: dict[str, Any]) -> list[str]:
    """What the manifest's own verification records as failed: stages with mismatching
    vectors, threshold layers whose exhaustive proof or RTL memory check failed."""
    table = manifest.get("verification", {})
    bad = [f"{s} ({r['mismatches']} of {r.get('vectors')} vectors)" for s, r in table.items()
           if s != "exhaustive" and isinstance(r, dict) and r.get("mismatches")]
    for layer, r in table.get("exhaustive", {}).items():
        mem = r.get("rtl_memory") or {}
        if r.get("mismatches") or mem.get("mismatches"):
            bad.append(f"exhaustive:{layer} ({r.get('mismatches')} of {r.get('points')} "
                       f"points, RTL memory {mem.get('mismatches')})")
    return bad


def check_verified(root: Path, manifest: dict[str, Any]) -> None:
    """Refuse a package whose manifest says its verification failed."""
    bad = failed_checks(manifest)
    if bad:
        raise UnverifiedPackageError(
            f"package {root} refused: its {MANIFEST} records failed verification: "
            + "; ".join(bad) + " (open_package(..., allow_failed=True) to inspect it)")


def open_package(root: str | Path, verify: bool = True,
                 expect_board: str | None = None, allow_failed: bool = False) -> Package:
    """Load ``manifest.json`` of a package and (by default) run every check above.

    ``verify=False`` only reads the manifest (development use; nothing is checked except
    the io format and ``expect_board``). ``expect_board``: refuse a package built for
    another board. ``allow_failed``: open a package whose manifest records failed verification (to
    debug it); refused otherwise.
    """
    root = Path(root).resolve()
    mpath = root / MANIFEST
    if not mpath.is_file():
        raise FileNotFoundError(f"{mpath} not found: not a package (build one with `make hw`)")
    try:
        manifest = json.loads(mpath.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ManifestIntegrityError(f"{mpath}: not valid JSON ({e})") from None
    if not isinstance(manifest, dict):
        raise ManifestIntegrityError(f"{mpath}: not a JSON object")
    for key in ("io", "clock_mhz", "artifacts"):
        if key not in manifest:
            raise PackageIntegrityError(f"{mpath}: key {key!r} missing")
    if not verify:
        check_io_format(root, manifest)
        check_board(root, manifest, expect_board)
        return Package(root, manifest)
    try:
        digest = check_contract(root, manifest)
    except ValueError as e:  # NaN/Infinity in a sealed field: canonical JSON refuses it
        raise ManifestIntegrityError(f"{mpath}: contract fields are not canonical JSON "
                                     f"({e})") from None
    check_io_format(root, manifest)
    check_board(root, manifest, expect_board)
    if not allow_failed:
        check_verified(root, manifest)
    checked = check_artifacts(root, manifest["artifacts"])
    check_unlisted(root, manifest["artifacts"])
    derived = check_models(root, manifest)
    check_iospec(root, manifest)
    return Package(root, manifest, checked, digest, derived)
