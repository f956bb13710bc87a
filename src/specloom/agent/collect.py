"""Reading ``Command.collect_files`` back into ``Result.files``.

Judges decide on these files (a design document, a JUnit report), so the
executor returns what is on disk rather than its own opinion. Patterns are
relative to the command's workdir; ``*`` and ``**`` expand inside it. Every
match is confined to the workdir after resolving symlinks: a link that
points outside comes back as ``exists = false``, never with the outside
file's content. Sizes are capped per file and in total, so a stray
``**/*`` cannot turn one result into gigabytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from specloom.agent.workspace import OutsideWorkspace, confine
from specloom.naming import UnsafePath, safe_relative_path
from specloom.v1 import common_pb2 as pb

_GLOB_CHARS = frozenset("*?[")
_NEVER = ".git"
_HOUSEKEEPING = ".specloom"

__all__ = ["CollectLimits", "check_patterns", "collect_files"]


@dataclass(frozen=True)
class CollectLimits:
    """Caps on collected files."""

    max_file_bytes: int = 1024 * 1024
    """Content of one file beyond this is cut (``truncated = true``)."""
    max_total_bytes: int = 8 * 1024 * 1024
    """Content of all files together; files past it come back empty and truncated."""
    max_matches: int = 500
    """Files one pattern may expand to; the rest are left out."""


def check_patterns(patterns: Sequence[str]) -> None:
    """Refuse absolute patterns and ``..`` escapes before a command runs (:class:`UnsafePath`)."""
    for pattern in patterns:
        clean = safe_relative_path(pattern)
        if ".." in clean.split("/"):
            raise UnsafePath(f"collect pattern {pattern!r} leaves the working directory")


def _literal_prefix(parts: Sequence[str]) -> int:
    """How many leading path parts of a pattern contain no glob characters."""
    for index, part in enumerate(parts):
        if _GLOB_CHARS.intersection(part):
            return index
    return len(parts)


def _skipped(relative: tuple[str, ...], literal: int) -> bool:
    # .git is never collected. .specloom (worktrees, conversations, reports)
    # is collected only when the pattern names it literally, e.g. a child's
    # ".specloom/worktrees/<id>/docs/rules/*.md" or ".specloom/rules/*.md" —
    # a broad "**/*.md" must not sweep up other children's checkouts.
    if _NEVER in relative:
        return True
    return any(part == _HOUSEKEEPING for part in relative[literal:])


def _expand(root: Path, pattern: str, limit: int) -> list[str]:
    clean = safe_relative_path(pattern)
    if _NEVER in clean.split("/"):
        raise UnsafePath(f"collect pattern {pattern!r} names .git, which is never collected")
    if not _GLOB_CHARS.intersection(clean):
        return [clean]
    literal = _literal_prefix(clean.split("/"))
    matches: list[str] = []
    for match in sorted(root.glob(clean)):
        relative = match.relative_to(root)
        if _skipped(relative.parts, literal) or not match.is_file():
            continue
        matches.append(relative.as_posix())
        if len(matches) >= limit:
            break
    return matches


def collect_files(
    workdir: Path, patterns: Sequence[str], limits: CollectLimits | None = None
) -> list[pb.FileContent]:
    """The files ``patterns`` name inside ``workdir`` (resolved), in pattern order."""
    limits = limits or CollectLimits()
    root = workdir.resolve()
    files: list[pb.FileContent] = []
    seen: set[str] = set()
    budget = limits.max_total_bytes
    for pattern in patterns:
        try:
            names = _expand(root, pattern, limits.max_matches)
        except UnsafePath:
            files.append(pb.FileContent(path=pattern, exists=False))
            continue
        if not names:
            files.append(pb.FileContent(path=pattern, exists=False))
            continue
        for name in names:
            if name in seen:
                continue
            seen.add(name)
            entry, used = _read(root, name, min(limits.max_file_bytes, budget))
            budget -= used
            files.append(entry)
    return files


def _read(root: Path, name: str, cap: int) -> tuple[pb.FileContent, int]:
    try:
        path = confine(root, name)
    except OutsideWorkspace:
        return pb.FileContent(path=name, exists=False), 0
    if not path.is_file():
        return pb.FileContent(path=name, exists=False), 0
    try:
        with path.open("rb") as handle:
            content = handle.read(cap + 1) if cap > 0 else b""
            more = len(content) > cap or (cap <= 0 and handle.read(1) != b"")
    except OSError:
        return pb.FileContent(path=name, exists=False), 0
    content = content[:cap] if cap > 0 else b""
    return pb.FileContent(path=name, exists=True, content=content, truncated=more), len(content)
