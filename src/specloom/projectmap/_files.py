"""Reading a checkout's files once: a cache of digests and parsed summaries.

A scan of 500 components looks at some 1,500 files; reading and parsing all
of them each time is most of the cost. The cache remembers, per path, the
size and mtime the file had when it was last read, its sha256 and what was
parsed out of it (per kind of reading: a component design is judged under
its type). A file whose size and mtime are unchanged is neither read nor
parsed again.

One trap, as git has it: a file written in the same clock tick as the scan
that read it may change again with the same size and mtime. An entry is
trusted only when its mtime lies at least :data:`RACY_NS` before the scan
that recorded it; a "racy" entry is read once more by the next scan, which
then records it trusted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from specloom.protoconv import JsonValue

CACHE_VERSION = 1
"""Bumped when the cache's shape or a summary's meaning changes: older caches are ignored."""

RACY_NS = 1_000_000_000
"""How long before a scan a file's mtime must lie for its entry to be trusted (1 s covers
coarse file-system timestamps and the kernel's coarse clock)."""

Parser = Callable[[bytes], JsonValue]
"""Turns a file's content into a JSON-able summary (never raises on any content)."""


@dataclass(frozen=True)
class Seen:
    """One file as the scan saw it."""

    path: str
    """Relative to the repository root."""
    present: bool
    digest: str = ""
    """sha256 (hex) of the content; "" when absent."""


class FileReader:
    """The files of one scan, through the cache of the last one."""

    def __init__(self, root: Path, cache: Mapping[str, Any], started_ns: int) -> None:
        self._root = root
        self._old: Mapping[str, Any] = cache
        self._new: dict[str, dict[str, Any]] = {}
        self._content: dict[str, bytes] = {}
        self._started_ns = started_ns
        self.files_seen = 0
        self.files_read = 0
        self._changed = False
        self.problems: list[str] = []
        """Files that exist but could not be read."""

    def see(self, path: str) -> Seen:
        """Stat ``path``; read it only when it is new or changed."""
        entry = self._entry(path)
        if entry is None:
            return Seen(path, False)
        return Seen(path, True, str(entry["digest"]))

    def parsed(self, path: str, kind: str, parser: Parser) -> JsonValue | None:
        """``parser``'s summary of ``path`` (cached under ``kind``); ``None`` when absent."""
        entry = self._entry(path)
        if entry is None:
            return None
        summaries: dict[str, JsonValue] = entry.setdefault("parsed", {})
        if kind not in summaries:
            self._changed = True
            try:
                content = self._read(path, entry)
            except OSError as exc:
                self.problems.append(f"{path}: cannot be read: {exc.strerror or exc}")
                return None
            summaries[kind] = parser(content)
        return summaries[kind]

    def cache(self) -> dict[str, Any]:
        """The cache to keep for the next scan: the files this scan saw, nothing else."""
        return {"version": CACHE_VERSION, "files": self._new}

    @property
    def changed(self) -> bool:
        """Whether the cache to keep differs from the one read (else writing it is waste)."""
        return self._changed or self._new.keys() != self._old.keys()

    def _entry(self, path: str) -> dict[str, Any] | None:
        if path in self._new:
            return self._new[path]
        try:
            # lstat: a symlink is not followed (it could point anywhere on the machine).
            info = os.lstat(self._root / path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISREG(info.st_mode):
            if stat.S_ISLNK(info.st_mode):
                self.problems.append(f"{path}: a symbolic link; only regular files are read")
            return None
        self.files_seen += 1
        old = self._old.get(path)
        if (
            isinstance(old, dict)
            and old.get("size") == info.st_size
            and old.get("mtime_ns") == info.st_mtime_ns
            and isinstance(old.get("digest"), str)
            and isinstance(old.get("checked_ns"), int)
            and info.st_mtime_ns + RACY_NS <= old["checked_ns"]
            and isinstance(old.get("parsed", {}), dict)
        ):
            entry = dict(old)
            entry["parsed"] = dict(old.get("parsed", {}))
        else:
            try:
                content = self._load(path)
            except OSError as exc:
                self.problems.append(f"{path}: cannot be read: {exc.strerror or exc}")
                return None
            entry = {
                "size": info.st_size,
                "mtime_ns": info.st_mtime_ns,
                "digest": hashlib.sha256(content).hexdigest(),
                "checked_ns": self._started_ns,
                "parsed": {},
            }
        self._new[path] = entry
        return entry

    def _read(self, path: str, entry: dict[str, Any]) -> bytes:
        content = self._content.get(path)
        if content is None:
            # A trusted entry lacks this kind of summary: read it once for it.
            content = self._load(path)
            entry["digest"] = hashlib.sha256(content).hexdigest()
        return content

    def _load(self, path: str) -> bytes:
        content = (self._root / path).read_bytes()
        self._content[path] = content
        self.files_read += 1
        self._changed = True
        return content


def load_cache(path: Path | None) -> Mapping[str, Any]:
    """The files of the last scan's cache; empty when there is none or it is unreadable."""
    if path is None:
        return {}
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
        return {}
    files = data.get("files")
    return files if isinstance(files, dict) else {}


def save_cache(path: Path, cache: Mapping[str, Any]) -> None:
    """Write the cache atomically (a crash leaves the old one or the new one, never half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".scan-cache.", dir=path.parent)
    try:
        # dumps, not dump: only the one-shot encoder is the C one (several times faster).
        text = json.dumps(cache, separators=(",", ":"))
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
