"""Names that reach git and the file system, made safe.

Context and component names come from people and from AI-written documents.
They may contain quotes, ``$()``, backticks, semicolons, newlines or ``../``.
Nothing here shells out; these functions only produce names that are valid
git refs and paths that stay inside a workspace.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import PurePosixPath

_BRANCH_UNSAFE = re.compile(r"[^a-z0-9_-]")


def slug(name: str) -> str:
    """Lower-case ``name`` with anything outside ``a-z0-9-_`` turned into ``-``."""
    return _BRANCH_UNSAFE.sub("-", name.lower())


MAX_BRANCH = 200
"""Longest branch name made. Git keeps a branch as a file (and a ``.lock`` file
beside it), and file names stop at 255 bytes: a longer one fails every git
operation on the branch."""


def branch_name(prefix: str, name: str) -> str:
    """``<prefix>-session-for-<name>``, sanitised (a valid git branch name).

    Past :data:`MAX_BRANCH` characters the name is cut and ends with a hash
    of the whole, so two long names that share a beginning stay two branches.
    """
    branch = f"{slug(prefix)}-session-for-{slug(name)}"
    if len(branch) <= MAX_BRANCH:
        return branch
    digest = hashlib.sha256(branch.encode()).hexdigest()[:12]
    return f"{branch[: MAX_BRANCH - len(digest) - 1]}-{digest}"


WORKTREES = ".specloom/worktrees"
"""Where sessions' worktrees live, relative to the workspace root (executor
housekeeping, excluded from git)."""

LINE_WORKTREE = f"{WORKTREES}/line"
"""The line's own worktree, relative to the workspace root: kept detached at
the tip of the project's line (the branch sessions land on), so moving the
branch never makes a checkout look dirty; the project map is scanned there."""

_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def branch_name_problem(name: str) -> str | None:
    """Why git would refuse ``name`` as a branch name, or None when it is one.

    The rules of ``git check-ref-format --branch``, checked without git (the
    server has none): no control characters, spaces or any of ``~^:?*[\\``;
    no ``..``, ``@{``, ``//``; no component that starts with ``.`` or ends
    with ``.lock``; not starting with ``-`` or ``/``, not ending with ``/`` or
    ``.``; not ``@`` or ``HEAD``; and at most :data:`MAX_BRANCH` characters.
    """
    if not name:
        return "it is empty"
    if len(name) > MAX_BRANCH:
        return f"it is longer than {MAX_BRANCH} characters"
    bad = _REF_FORBIDDEN.search(name)
    if bad:
        return f"it contains {bad.group()!r}"
    for pattern in ("..", "@{", "//"):
        if pattern in name:
            return f"it contains {pattern!r}"
    if name.startswith(("-", "/")) or name.endswith(("/", ".")):
        return "it starts with '-' or '/', or ends with '/' or '.'"
    if name in ("@", "HEAD"):
        return f"{name!r} is reserved"
    for part in name.split("/"):
        if part.startswith(".") or part.endswith(".lock"):
            return f"its component {part!r} starts with '.' or ends with '.lock'"
    return None


SESSION_SUFFIX = 8
"""Characters of the session id that end a session's branch name."""


def worktree_path(session_id: str) -> str:
    """``.specloom/worktrees/<session_id>``: the session's own checkout."""
    return f"{WORKTREES}/{session_id}"


def session_branch(prefix: str, subject: str, session_id: str) -> str:
    """``<prefix>-session-for-<subject>-<id8>``: the one branch name of a session.

    The suffix makes every session's branch its own, so a second run over the
    same context or component never meets the first one's branch (still
    checked out in its worktree). It is the *last* characters of the id:
    session ids are UUIDv7, whose first characters are a timestamp that every
    session started within the same minute shares.
    """
    suffix = slug(session_id.replace("-", ""))[-SESSION_SUFFIX:]
    return branch_name(prefix, f"{subject}-{suffix}" if suffix else subject)


class UnsafePath(ValueError):
    """A relative path that would leave its root."""


def safe_relative_path(path: str) -> str:
    """Normalise a relative path, refusing absolute paths and ``..`` escapes.

    Returns the path in POSIX form without ``.`` segments. This is a lexical
    check; executors also resolve symlinks before touching a file.
    """
    if not path or "\x00" in path:
        raise UnsafePath(f"invalid path {path!r}")
    pure = PurePosixPath(path.replace("\\", "/"))
    if pure.is_absolute():
        raise UnsafePath(
            f"absolute path {path!r} is not allowed; paths are relative to the workspace"
        )
    parts: list[str] = []
    for part in pure.parts:
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise UnsafePath(f"path {path!r} leaves the workspace")
            parts.pop()
            continue
        parts.append(part)
    if not parts:
        raise UnsafePath(f"path {path!r} names the workspace itself")
    return "/".join(parts)
