"""Workspace identity: which clone of a repository, on which machine, a session belongs to.

A workspace is one checkout. Its identity is an id kept in the checkout
itself, ``<root>/.specloom/workspace.json`` (``{"id": "ws-<12 hex>", "name":
"<folder>"}``), made the first time the CLI or an agent looks at the
repository. Two clones of one repository are therefore two workspaces, even
on one machine: a session's commands go only to an agent serving *its*
clone, so its work never moves into a checkout that does not hold it. The
root commit and the ``origin`` URL travel with the id so people can tell
workspaces apart; the id alone decides.

The CLI (``session start``, ``workspace``, ``clean``) and the executor agent
both call :func:`identify`; this module is their one definition of it.
``.specloom/`` is listed in ``.git/info/exclude`` whenever it is created, so
it never shows as untracked and no commit can pick it up.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from specloom.gitcli import run_git
from specloom.v1 import common_pb2 as pb

HOUSEKEEPING = ".specloom"
"""Directory at a workspace's root that belongs to specloom (never committed)."""
IDENTITY_FILE = "workspace.json"
"""The identity file inside :data:`HOUSEKEEPING`."""
ID_PATTERN = re.compile(r"^ws-[0-9a-f]{12}$")
"""What a workspace id looks like."""
MAX_NAME = 128

_EXCLUDE_LINE = f"/{HOUSEKEEPING}/"

__all__ = [
    "HOUSEKEEPING",
    "IDENTITY_FILE",
    "ID_PATTERN",
    "NotARepository",
    "exclude_housekeeping",
    "identify",
    "is_workspace_id",
    "label",
    "repository_root",
    "strip_credentials",
]


class NotARepository(Exception):
    """The directory is not inside a git working tree (or its identity file is unusable)."""


def is_workspace_id(value: str) -> bool:
    """Whether ``value`` is a well-formed workspace id (``ws-`` and 12 hex digits)."""
    return bool(ID_PATTERN.match(value))


def label(workspace: pb.WorkspaceRef) -> str:
    """``api (ws-…)`` for people; the bare id when the name is unknown."""
    if workspace.name and workspace.name != workspace.id:
        return f"{workspace.name} ({workspace.id})"
    return workspace.id


def _git(root: Path, *args: str) -> tuple[int, str]:
    done = run_git(root, *args)
    return done.returncode, done.stdout.strip()


def repository_root(path: Path) -> Path:
    """The root of the working tree ``path`` is in.

    Inside a session's own worktree (``<root>/.specloom/worktrees/<id>``) it
    is the workspace that holds that worktree, not the worktree: both are
    the same workspace.
    """
    start = Path(os.path.realpath(path.expanduser()))
    if not start.is_dir():
        raise NotARepository(f"{path} is not a directory")
    code, top = _git(start, "rev-parse", "--show-toplevel")
    if code != 0 or not top:
        raise NotARepository(
            f"{start} is not inside a git repository; run this in your project's repository "
            "(or `git init` it first)"
        )
    root = Path(os.path.realpath(top))
    parts = root.parts
    if HOUSEKEEPING in parts:
        root = Path(*parts[: parts.index(HOUSEKEEPING)])
    return root


def strip_credentials(url: str) -> str:
    """``url`` without a user or password (``https://user:token@host/x`` → ``https://host/x``).

    scp-like addresses (``git@host:org/repo``) carry a login name, not a
    secret, and are kept as they are.
    """
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def exclude_housekeeping(root: Path) -> None:
    """List ``/.specloom/`` in the repository's ``info/exclude`` (idempotent)."""
    code, common = _git(root, "rev-parse", "--git-common-dir")
    if code != 0 or not common:
        return
    git_dir = Path(common) if os.path.isabs(common) else root / common
    exclude = git_dir / "info" / "exclude"
    existing = exclude.read_text(encoding="utf-8") if exclude.exists() else ""
    if _EXCLUDE_LINE in existing.splitlines():
        return
    exclude.parent.mkdir(parents=True, exist_ok=True)
    prefix = "" if not existing or existing.endswith("\n") else "\n"
    with exclude.open("a", encoding="utf-8") as handle:
        handle.write(f"{prefix}# specloom housekeeping\n{_EXCLUDE_LINE}\n")


def _read_identity(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise NotARepository(f"cannot read the workspace identity {path}: {exc}") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("id"), str)
        or not is_workspace_id(data["id"])
        or not isinstance(data.get("name", ""), str)
    ):
        raise NotARepository(
            f'{path} is not a workspace identity (expected {{"id": "ws-<12 hex>", '
            '"name": …}); move it away to give this checkout a new identity'
        )
    return {"id": data["id"], "name": data.get("name") or ""}


def _create_identity(path: Path, name: str) -> dict[str, str]:
    """Write a new identity unless another process just did; returns the one that won."""
    identity = {"id": f"ws-{secrets.token_hex(6)}", "name": name}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".workspace-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(identity, handle)
            handle.write("\n")
        # A hard link never replaces an existing file: when a CLI and an
        # agent (or two agents) meet an unidentified checkout at once,
        # exactly one identity is written and both read that one.
        os.link(temporary, path)
    except FileExistsError:
        return _read_identity(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    return identity


def identify(path: Path) -> pb.WorkspaceRef:
    """The identity of the checkout ``path`` is in, created the first time.

    Raises :class:`NotARepository` outside a git working tree.
    """
    root = repository_root(path)
    identity_file = root / HOUSEKEEPING / IDENTITY_FILE
    exclude_housekeeping(root)
    if identity_file.exists():
        identity = _read_identity(identity_file)
    else:
        identity = _create_identity(identity_file, root.name[:MAX_NAME])
    code, roots = _git(root, "rev-list", "--max-parents=0", "--reverse", "HEAD")
    root_commit = roots.splitlines()[0] if code == 0 and roots else ""
    code, remote = _git(root, "config", "--get", "remote.origin.url")
    return pb.WorkspaceRef(
        id=identity["id"],
        name=identity["name"] or root.name[:MAX_NAME],
        root_commit=root_commit,
        remote=strip_credentials(remote) if code == 0 else "",
    )
