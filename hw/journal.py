"""Resume bookkeeping of a FINN build folder that cannot mix two builds.

``build/<design>-<board>/journal.json`` holds the build's inputs key and, for every
step that has *finished*, the sha256 of everything the step left behind: its checkpoint
model (``intermediate_models/<step>.onnx``), the files of FINN's ``report/`` folder,
and every generated file in the ``code_gen_dir_*`` folders that the checkpoint names.
An entry is written only after FINN has saved the step's checkpoint (at the start of
the next step, or after the last one), and the journal is replaced atomically
(write, fsync, rename), so it is never ahead of the work.

On resume the journal is replayed: entries are accepted in order while every
recorded file still has its recorded hash; the build restarts at the first step that
is not proven, and everything a later step may have left (checkpoints, reports) is
deleted first. A different inputs key, a missing or unreadable journal, or a
``--no-resume`` wipes the folder. Whatever signal stopped a build and wherever, the
re-run either resumes to the artifacts of an uninterrupted build or rebuilds.

(The previous scheme wrote the inputs key *before* the steps ran and trusted any
checkpoint file that existed: a build of another model, killed mid-way in the same
folder, resumed onto the first build's later checkpoints and RTL.)
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from contract.export_files import sha256_file as file_sha256

JOURNAL = "journal.json"
LOCK = ".build.lock"
CHECKPOINTS = "intermediate_models"
REPORTS = "report"
CODEGEN_ATTRS = ("code_gen_dir_ipgen", "code_gen_dir_cppsim", "ipgen_path")
# Reports FINN rewrites at every exit (timings, tool metadata): not a step's output.
VOLATILE_REPORTS = ("time_per_step.json", "metadata_builder.json")


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old or the new file, never a part."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def generated_dirs(checkpoint: Path) -> list[Path]:
    """The code-generation folders a checkpoint model refers to (node attributes)."""
    from onnx import helper, load

    dirs: set[Path] = set()
    model = load(str(checkpoint), load_external_data=False)
    for node in model.graph.node:
        for a in node.attribute:
            if a.name in CODEGEN_ATTRS:
                v = helper.get_attribute_value(a)
                v = v.decode() if isinstance(v, bytes) else v
                if v:
                    dirs.add(Path(v))
    return sorted(dirs)


def _hash_tree(root: Path) -> dict[str, str]:
    return {str(p): file_sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


def step_record(build_dir: Path, step: str) -> dict[str, Any]:
    """Hashes of what ``step`` left in ``build_dir``: checkpoint, reports, generated files."""
    ckpt = build_dir / CHECKPOINTS / f"{step}.onnx"
    files = {str(ckpt): file_sha256(ckpt)}
    files.update({k: v for k, v in _hash_tree(build_dir / REPORTS).items()
                  if Path(k).name not in VOLATILE_REPORTS})
    for d in generated_dirs(ckpt):
        if not d.is_dir():
            raise FileNotFoundError(f"{step}: generated folder {d} named by {ckpt} is missing")
        files.update(_hash_tree(d))
    return {"step": step, "files": files}


def _record_holds(rec: dict[str, Any]) -> bool:
    for path, digest in rec["files"].items():
        p = Path(path)
        if not p.is_file() or file_sha256(p) != digest:
            return False
    return True


class BuildJournal:
    """The journal of one build folder (see the module docstring)."""

    def __init__(self, build_dir: Path, key: str, steps: list[str]) -> None:
        self.build_dir, self.key, self.steps = build_dir, key, steps
        self.path = build_dir / JOURNAL
        self.done: list[dict[str, Any]] = []

    def _save(self) -> None:
        atomic_write_text(self.path, json.dumps(
            {"key": self.key, "steps": self.steps, "done": self.done}, indent=1) + "\n")

    def wipe(self) -> None:
        """Delete everything in the build folder but the lock; start an empty journal."""
        for p in self.build_dir.iterdir():
            if p.name == LOCK:
                continue
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        self.done = []
        self._save()

    def open(self, resume: bool) -> str | None:
        """Replay the journal; returns the step to start at (None: the first, "done": all)."""
        old: dict[str, Any] | None = None
        if resume and self.path.is_file():
            try:
                old = json.loads(self.path.read_text())
            except (OSError, ValueError):
                old = None
        if not old or old.get("key") != self.key or old.get("steps") != self.steps:
            self.wipe()
            return None
        for i, rec in enumerate(old.get("done", [])):
            if i >= len(self.steps) or rec.get("step") != self.steps[i] or not _record_holds(rec):
                break
            self.done.append(rec)
        if not self.done:
            self.wipe()
            return None
        self._drop_unproven()
        self._save()
        return self.steps[len(self.done)] if len(self.done) < len(self.steps) else "done"

    def _drop_unproven(self) -> None:
        """Remove checkpoints and reports that no accepted entry vouches for."""
        proven = set(self.done[-1]["files"]) if self.done else set()
        for folder in (self.build_dir / CHECKPOINTS, self.build_dir / REPORTS):
            if not folder.is_dir():
                continue
            for p in sorted(folder.rglob("*"), reverse=True):
                if p.is_file() and str(p) not in proven and not any(
                        str(p) in r["files"] for r in self.done):
                    p.unlink()

    def finished(self, step: str) -> None:
        """Record ``step`` as finished (its checkpoint has been saved by FINN)."""
        if any(r["step"] == step for r in self.done):
            return
        expected = self.steps[len(self.done)]
        if step != expected:
            raise RuntimeError(f"journal: step {step} finished before {expected}")
        self.done.append(step_record(self.build_dir, step))
        self._save()

    @property
    def last_record(self) -> dict[str, Any] | None:
        return self.done[-1] if self.done else None
