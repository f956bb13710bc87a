"""File operations an agent may perform, confined to its working directory.

Shared by the anthropic backend's tools and the scripted backend's edits.
Every path goes through :func:`specloom.agent.workspace.confine` with
``.git`` and ``.specloom`` off limits: an agent that could write
``.git/hooks/*`` or ``.git/config`` would get code run by the executor's own
git commands, and ``.specloom`` holds other sessions' worktrees and
conversations.
"""

from __future__ import annotations

import os
from pathlib import Path

from specloom.agent.workspace import OutsideWorkspace, confine

AGENT_FORBIDDEN = frozenset({".git", ".specloom"})
"""Path components an agent may never read or write."""

MAX_READ_BYTES = 256 * 1024
MAX_WRITE_BYTES = 8 * 1024 * 1024
MAX_LIST_ENTRIES = 2000

__all__ = [
    "AGENT_FORBIDDEN",
    "ToolError",
    "delete_file",
    "edit_file",
    "list_files",
    "read_file",
    "resolve",
    "write_file",
]


class ToolError(Exception):
    """A refused or failed file operation; the message is shown to the agent."""


def resolve(root: Path, path: str) -> Path:
    """The real path of ``path`` inside ``root``, or :class:`ToolError`."""
    try:
        return confine(root, path, forbidden=AGENT_FORBIDDEN)
    except OutsideWorkspace as exc:
        raise ToolError(f"refused: {exc}") from None


def read_file(root: Path, path: str, cap: int = MAX_READ_BYTES) -> str:
    """A file's text (cut at ``cap`` bytes, with a note saying so)."""
    target = resolve(root, path)
    if not target.is_file():
        raise ToolError(f"no such file: {path}")
    with target.open("rb") as handle:
        data = handle.read(cap + 1)
    text = data[:cap].decode("utf-8", errors="replace")
    if len(data) > cap:
        text += f"\n[truncated at {cap} bytes]"
    return text


def write_file(root: Path, path: str, content: str) -> int:
    """Create or overwrite a file (parents created); returns bytes written."""
    data = content.encode("utf-8")
    if len(data) > MAX_WRITE_BYTES:
        raise ToolError(f"refused: content of {len(data)} bytes is over {MAX_WRITE_BYTES}")
    target = resolve(root, path)
    if target.is_dir():
        raise ToolError(f"{path} is a directory")
    # Parents are created on the resolved path, which confine() proved is
    # inside the root, so no intermediate symlink can carry the write out.
    target.parent.mkdir(parents=True, exist_ok=True)
    # O_NOFOLLOW: if a symlink appeared at the final component since the
    # check, the open fails instead of writing through it.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return len(data)


def edit_file(root: Path, path: str, old: str, new: str) -> None:
    """Replace the one exact occurrence of ``old`` with ``new``."""
    if not old:
        raise ToolError("old_string must not be empty")
    target = resolve(root, path)
    if not target.is_file():
        raise ToolError(f"no such file: {path}")
    text = target.read_text(encoding="utf-8")
    count = text.count(old)
    if count != 1:
        where = "not found" if count == 0 else f"found {count} times; give more context"
        raise ToolError(f"old_string {where} in {path}")
    write_file(root, path, text.replace(old, new, 1))


def delete_file(root: Path, path: str) -> bool:
    """Remove a file; False when there was none."""
    target = resolve(root, path)
    if target.is_dir():
        raise ToolError(f"{path} is a directory")
    try:
        target.unlink()
    except FileNotFoundError:
        return False
    return True


def list_files(root: Path, path: str = ".", limit: int = MAX_LIST_ENTRIES) -> list[str]:
    """Files under ``path`` (recursive, sorted), relative to ``root``."""
    base = root if path in ("", ".") else resolve(root, path)
    if not base.is_dir():
        raise ToolError(f"no such directory: {path}")
    found: list[str] = []
    for directory, subdirs, names in os.walk(base):
        # Never descend into forbidden or symlinked directories (os.walk does
        # not follow links by default; the filter keeps .git and .specloom out).
        subdirs[:] = sorted(d for d in subdirs if d not in AGENT_FORBIDDEN)
        for name in sorted(names):
            found.append((Path(directory) / name).relative_to(root).as_posix())
            if len(found) >= limit:
                return found
    return found
