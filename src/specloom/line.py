"""A workspace's line: the branch where its finished work accumulates, and its worktree.

The line (default ``specloom/<the checkout's current branch>``) is created at
the checkout's HEAD the first time ``specloom status`` or ``specloom next``
runs. Its worktree, ``.specloom/worktrees/line``, is kept *detached* at the
line's tip: landing a session moves the branch ref alone (no checkout
holds the branch, so none looks dirty afterwards), and the worktree is
brought to the new tip with ``git checkout --detach`` only while it is
clean. A person may edit or delete files there; those changes stay, and
the map shows them, until they are committed or undone; a worktree a person
put on a branch is left alone too. The person's own checkout is never
touched. These are the executor's rules after a landing
(:mod:`specloom.agent.linescan`), whose lock the CLI holds while it
refreshes and scans.

The CLI scans the line worktree (``specloom status``), and the executor
does after landing; both keep the scanner's cache under the repository's
common git directory, :func:`scan_cache_path`, so neither reads a file
the other already read.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from specloom.gitcli import run_git
from specloom.naming import LINE_WORKTREE
from specloom.workspaces import exclude_housekeeping

LINE_PREFIX = "specloom/"
"""The default line is this and the checkout's current branch."""
WORKTREE = Path(LINE_WORKTREE)
"""The line's worktree, relative to the workspace root (the executor's, after landing)."""
CACHE = Path("specloom") / "scan-cache.json"
"""The scanner's cache, relative to the repository's common git directory."""

__all__ = [
    "CACHE",
    "LINE_PREFIX",
    "WORKTREE",
    "Line",
    "LineError",
    "Refresh",
    "common_dir",
    "default_line",
    "ensure_line",
    "refresh_rule",
    "scan_cache_path",
]


class LineError(Exception):
    """The line cannot be made or found; the message says why and what to do."""


def _git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_git(cwd, *args, error=LineError if check else None)


def _commit_of(root: Path, ref: str) -> str:
    done = _git(root, "rev-parse", "-q", "--verify", f"{ref}^{{commit}}", check=False)
    return done.stdout.strip() if done.returncode == 0 else ""


def default_line(root: Path) -> str:
    """``specloom/<current branch>`` of the checkout at ``root``."""
    branch = _git(root, "branch", "--show-current").stdout.strip()
    if not branch:
        raise LineError(
            f"{root} is on a detached HEAD, so there is no branch to name the line after; "
            "check out a branch, or name the line with --line (or `line` in specloom.toml)"
        )
    return LINE_PREFIX + branch


def common_dir(root: Path) -> Path:
    """The repository's common git directory (shared by all its worktrees)."""
    common = Path(_git(root, "rev-parse", "--git-common-dir").stdout.strip())
    if not common.is_absolute():
        common = root / common
    return Path(os.path.realpath(common))


def scan_cache_path(root: Path) -> Path:
    """Where the scanner keeps its cache for the repository at ``root``."""
    return common_dir(root) / CACHE


@dataclass(frozen=True)
class Line:
    """The line as :func:`ensure_line` left it."""

    branch: str
    """The line branch, e.g. ``specloom/main``."""
    tip: str
    """The commit the branch is at."""
    worktree: Path
    """Its worktree (detached)."""
    at: str
    """The commit the worktree is at (the tip unless it could not be refreshed)."""
    created: bool = False
    """The branch was made now, at the checkout's HEAD."""
    dirty: bool = False
    """The worktree has changes of its own (scanned as they are, never overwritten)."""
    note: str = ""
    """What people should know about it ("", or why the worktree is behind the line)."""


@dataclass(frozen=True)
class Refresh:
    """What becomes of an existing line worktree: moved to the tip, or kept (and why)."""

    move: bool
    note: str = ""
    """For people, when it is kept behind the line or off it ("" when nothing to say)."""


def refresh_rule(*, branch: str, head: str, tip: str, dirty: bool) -> Refresh:
    """The one rule the CLI and the executor follow for an existing line worktree.

    On a branch it is somebody's checkout; with changes to tracked files it
    holds a person's edits (what the map then shows): both stay as they are.
    Otherwise a worktree behind the line is moved to its tip.
    """
    if branch:
        return Refresh(
            False,
            f"the line's worktree {WORKTREE} is on branch {branch}, not detached; scanned as it is",
        )
    if head == tip:
        return Refresh(False)
    if dirty:
        return Refresh(
            False,
            f"the line's worktree {WORKTREE} has changes of its own, so it was left at "
            f"{head[:12]} (the line is at {tip[:12]}); commit or undo them to catch up; "
            "scanned as it is",
        )
    return Refresh(True)


def _registered(root: Path, path: Path) -> bool:
    listed = _git(root, "worktree", "list", "--porcelain").stdout
    wanted = os.path.realpath(path)
    return any(
        os.path.realpath(line.removeprefix("worktree ")) == wanted
        for line in listed.splitlines()
        if line.startswith("worktree ")
    )


def _check_name(root: Path, branch: str) -> None:
    if _git(root, "check-ref-format", "--branch", branch, check=False).returncode != 0:
        raise LineError(f"{branch!r} is not a valid branch name for the line")


def ensure_line(root: Path, branch: str = "") -> Line:
    """Make the line and its worktree if they are missing; bring a clean worktree to the tip.

    ``root`` is the workspace's main checkout; ``branch`` the line ("":
    :func:`default_line`).
    """
    branch = branch or default_line(root)
    _check_name(root, branch)
    created = False
    tip = _commit_of(root, f"refs/heads/{branch}")
    if not tip:
        head = _commit_of(root, "HEAD")
        if not head:
            raise LineError(
                f"{root} has no commit yet; commit something first, the line starts from it"
            )
        _git(root, "branch", branch, head)
        tip, created = head, True
    exclude_housekeeping(root)
    path = root / WORKTREE
    if not _registered(root, path):
        if path.exists() and any(path.iterdir()):
            raise LineError(
                f"{path} exists but is not a git worktree; move it away and run this again"
            )
        _git(root, "worktree", "prune")
        _git(root, "worktree", "add", "--detach", "-q", str(path), tip)
        return Line(branch, tip, path, tip, created=created)
    at = _commit_of(path, "HEAD")
    # Untracked files do not count: a checkout keeps them (or refuses, below).
    dirty = bool(_git(path, "status", "--porcelain", "--untracked-files=no").stdout.strip())
    on = _git(path, "branch", "--show-current").stdout.strip()
    rule = refresh_rule(branch=on, head=at, tip=tip, dirty=dirty)
    if not rule.move:
        return Line(branch, tip, path, at, created=created, dirty=dirty, note=rule.note)
    moved = _git(path, "checkout", "-q", "--detach", tip, check=False)
    if moved.returncode != 0:
        # Untracked files where the line now has files: left for a person.
        return Line(
            branch,
            tip,
            path,
            _commit_of(path, "HEAD"),
            created=created,
            note=f"the line's worktree could not be moved to {tip[:12]}: {moved.stderr.strip()}",
        )
    return Line(branch, tip, path, tip, created=created)
