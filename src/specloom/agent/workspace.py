"""The executor's workspace: one git repository every command runs inside.

Every path a command names (``workdir``, ``collect_files``, files an agent
reads or writes, worktree paths) is relative to the workspace or to a
directory inside it. :func:`confine` is the one gate they all pass: it
refuses absolute paths and ``..`` escapes lexically (through
:func:`specloom.naming.safe_relative_path`), then resolves symlinks and
refuses anything whose real location is outside the root. Callers then use
the *resolved* path, so a symlink swapped in after the check still cannot
redirect the access outside (short of a concurrent race, which nothing
inside the workspace runs while a tool call is being served).

``.specloom/`` at the root is the executor's own housekeeping: the
workspace's identity (``workspace.json``, see :mod:`specloom.workspaces`),
session worktrees under ``.specloom/worktrees/<session_id>`` and agent
conversations under ``.specloom/conversations``. It is listed in
``.git/info/exclude`` so the main checkout never sees it as untracked
files, and a commit can never pick it up.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from specloom.naming import UnsafePath, safe_relative_path
from specloom.v1 import common_pb2 as pb
from specloom.workspaces import HOUSEKEEPING, exclude_housekeeping, identify

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

__all__ = [
    "HOUSEKEEPING",
    "OutsideWorkspace",
    "Workspace",
    "confine",
    "is_safe_id",
]


class OutsideWorkspace(UnsafePath):
    """A path that is absolute, escapes with ``..``, or resolves outside its root."""


def is_safe_id(value: str) -> bool:
    """Whether ``value`` can name a file or directory as is (session and conversation ids).

    Ids end up as path components; anything that is not a plain token (no
    separators, no leading dot or dash) is refused rather than sanitised, so
    two different ids can never map to the same file.
    """
    return bool(_SAFE_ID.match(value)) and ".." not in value


def confine(
    root: Path,
    relative: str,
    *,
    forbidden: frozenset[str] = frozenset(),
) -> Path:
    """The real path of ``relative`` inside ``root``, or :class:`OutsideWorkspace`.

    ``root`` must already be resolved. ``forbidden`` names path components
    that may not appear anywhere in the path (e.g. ``.git`` for an agent's
    file tools, so it cannot plant a hook the executor's own git commands
    would run). The target itself need not exist.
    """
    try:
        clean = safe_relative_path(relative)
    except UnsafePath as exc:
        raise OutsideWorkspace(str(exc)) from None
    parts = clean.split("/")
    blocked = forbidden.intersection(parts)
    if blocked:
        raise OutsideWorkspace(
            f"path {relative!r} touches {sorted(blocked)[0]!r}, which is off limits"
        )
    # resolve(strict=False) follows every symlink that exists, including a
    # dangling one at the end, so a link pointing outside is caught even
    # when its target does not exist yet (a write would create it there).
    real = Path(os.path.realpath(root.joinpath(*parts)))
    if real != root and not real.is_relative_to(root):
        raise OutsideWorkspace(f"path {relative!r} resolves outside the workspace")
    blocked = forbidden.intersection(real.relative_to(root).parts)
    if blocked:
        raise OutsideWorkspace(
            f"path {relative!r} resolves into {sorted(blocked)[0]!r}, which is off limits"
        )
    return real


class Workspace:
    """A git repository the executor runs commands in."""

    def __init__(self, root: Path) -> None:
        resolved = Path(os.path.realpath(root))
        if not resolved.is_dir():
            raise FileNotFoundError(f"workspace {root} is not a directory")
        self.root = resolved
        """The workspace root, symlinks resolved."""
        self.identity: pb.WorkspaceRef | None = None
        """Its workspace identity once :meth:`identify` ran (None: registered as none)."""

    def identify(self) -> pb.WorkspaceRef:
        """Read (or create) the workspace's identity; see :func:`specloom.workspaces.identify`."""
        self.identity = identify(self.root)
        return self.identity

    @property
    def housekeeping(self) -> Path:
        """``<root>/.specloom``."""
        return self.root / HOUSEKEEPING

    @property
    def conversations(self) -> Path:
        """Where the anthropic backend keeps conversation histories."""
        return self.housekeeping / "conversations"

    @property
    def worktrees(self) -> Path:
        """Where child sessions' worktrees live."""
        return self.housekeeping / "worktrees"

    def resolve(self, relative: str, *, forbidden: frozenset[str] = frozenset()) -> Path:
        """The real path of a workspace-relative path (see :func:`confine`)."""
        return confine(self.root, relative, forbidden=forbidden)

    def workdir(self, relative: str) -> Path:
        """The directory a command runs in: ``""`` is the root; it must exist."""
        path = self.root if relative in ("", ".") else self.resolve(relative)
        if not path.is_dir():
            raise NotADirectoryError(
                f"working directory {relative!r} does not exist in the workspace"
            )
        return path

    def prepare(self) -> None:
        """Create ``.specloom/`` and keep it out of git (idempotent)."""
        self.conversations.mkdir(parents=True, exist_ok=True)
        self.worktrees.mkdir(parents=True, exist_ok=True)
        if (self.root / ".git").exists():
            exclude_housekeeping(self.root)
