"""The chunk journal: ``<out>/<name>/journal.jsonl``, one JSON line per finished chunk.

* Appended as each chunk finishes: one ``write`` of a whole line on an ``O_APPEND``
  descriptor, then ``fsync``. A SIGKILL cannot tear a line that the kernel accepted; a
  line torn by a crash of the machine is the file's last, has no newline, and is cut off
  on the next open (the chunk is simply computed again).
* A line's ``key`` is the sha256 of everything that determines its counts (link, the
  curve's identity and file digests, seed, chunk size, SNR, chunk index; see
  :func:`chunk_key`). A restart reuses the chunks whose key it needs; chunks of another
  configuration stay in the file, unused. The same key twice is refused on append and
  reported on load (keep the first).
* One writer per folder: an exclusive ``flock`` on ``<dir>/.lock`` (released by the kernel
  when the process dies).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
from pathlib import Path
from typing import Any

VERSION = 1  # bump when the simulation changes what a chunk's counts mean


class JournalError(RuntimeError):
    pass


def chunk_key(identity: dict[str, Any]) -> str:
    """sha256 (hex, 32 characters) of a chunk's canonical identity."""
    blob = json.dumps({"v": VERSION, **identity}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


class FolderLock:
    """Exclusive, non-blocking flock on ``<dir>/.lock``."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / ".lock"
        self.fd: int | None = None

    def __enter__(self) -> FolderLock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(self.fd)
            self.fd = None
            if e.errno in (errno.EAGAIN, errno.EACCES):
                raise JournalError(f"{self.path.parent}: another sweep is writing this "
                                   "folder (lock held)") from None
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


class Journal:
    """Append-only chunk records, by key."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.records: dict[str, dict[str, Any]] = {}
        self.duplicates = 0
        self.torn_bytes = 0
        self._fd: int | None = None

    def load(self) -> dict[str, dict[str, Any]]:
        """Read the file (cutting off a torn last line); records by key, first kept."""
        self.records, self.duplicates, self.torn_bytes = {}, 0, 0
        if not self.path.exists():
            return self.records
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):  # torn tail: no newline after the last record
            self.torn_bytes = len(data) - end
            with open(self.path, "r+b") as f:
                f.truncate(end)
                f.flush()
                os.fsync(f.fileno())
        for n, line in enumerate(data[:end].splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                key = rec["key"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise JournalError(f"{self.path}:{n}: not a chunk record ({e}); move the "
                                   "file aside to start over") from None
            if key in self.records:
                self.duplicates += 1
                continue
            self.records[key] = rec
        return self.records

    def append(self, rec: dict[str, Any]) -> None:
        """Write one record as one line (O_APPEND, fsync)."""
        if rec["key"] in self.records:
            raise JournalError(f"{self.path}: chunk {rec['key']} is already journaled")
        line = (json.dumps(rec, sort_keys=True, separators=(",", ":")) + "\n").encode()
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        n = os.write(self._fd, line)
        if n != len(line):  # not expected for a regular file; make the tail detectable
            raise JournalError(f"{self.path}: short write ({n} of {len(line)} bytes)")
        os.fsync(self._fd)
        self.records[rec["key"]] = rec

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
