"""After a landing: bring the line's worktree to the line's tip and scan it.

The project map is the line's (see ``specloom status``): after a session
lands, the executor refreshes the line's own worktree
(:data:`specloom.naming.LINE_WORKTREE`, detached at the line's tip) and
scans it with the kernel scanner, and the result carries the scan
(``Result.project_scan``) for the gateway to record.

- The worktree is created (detached) when it does not exist. An existing one
  is moved to the line's tip only when it is detached and has no changes to
  tracked files: a person may edit there, and those edits are what the map
  then shows; one on a branch is somebody's checkout and is left alone. The
  user's own checkout is never touched.
- Several sessions land at once on one executor (and ``specloom status``
  scans the same worktree), so refreshing and scanning hold a file lock in
  the repository's git directory; a landing that waits for it then scans the
  line as the last landing left it, which includes its own work.
- Scanning never fails the commit: a failure is reported as a line of the
  step's output, and the result carries no scan (:func:`scan_line`).
  :func:`refresh_and_scan` is the same refresh and scan raising its failure,
  for callers that want it (``specloom status`` on the person's machine).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from specloom.agent.gitops import Emit, GitFailure, GitSettings, _Git, _open
from specloom.agent.workspace import Workspace
from specloom.line import CACHE, refresh_rule
from specloom.naming import LINE_WORKTREE
from specloom.profiles import get_profile
from specloom.v1 import projectmap_pb2 as pm

__all__ = ["LOCK_FILE", "SCAN_CACHE", "common_dir", "line_lock", "refresh_and_scan", "scan_line"]

LOCK_FILE = "specloom/line.lock"
"""The lock held while the line's worktree is refreshed and scanned, relative
to the repository's common git directory."""

SCAN_CACHE = str(CACHE)
"""The scanner's cache of unchanged files, relative to the common git directory
(shared with ``specloom status``, which scans the same worktree)."""


def common_dir(repo: _Git) -> Path:
    """The repository's common git directory (shared by all its worktrees)."""
    found = repo("rev-parse", "--git-common-dir").strip()
    return Path(os.path.realpath(repo.top / found))


@contextmanager
def line_lock(git_dir: Path) -> Iterator[None]:
    """Hold the line's lock (blocking) for the body; released on exit, even by a crash."""
    path = git_dir / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        # flock locks belong to the open file, so threads of one executor
        # exclude each other as separate processes do.
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def scan_line(
    workspace: Workspace, line: str, profile: str, settings: GitSettings, emit: Emit
) -> pm.ProjectScan | None:
    """The line's scan after refreshing its worktree, or None (said in ``emit``) on failure."""
    try:
        scan = refresh_and_scan(workspace, line, profile, settings, emit)
    except Exception as exc:  # any failure of the scan leaves the commit as it is
        emit(f"project map: the line {line} was not scanned: {_reason(exc)}")
        return None
    emit(
        f"project map: scanned {LINE_WORKTREE} at {scan.revision[:12]}: "
        f"{len(scan.components)} component(s), {scan.files_read} of {scan.files_seen} "
        "file(s) read"
    )
    return scan


def refresh_and_scan(
    workspace: Workspace,
    line: str,
    profile: str,
    settings: GitSettings,
    emit: Emit,
    *,
    run_tests: bool = False,
) -> pm.ProjectScan:
    """Refresh the line's worktree (see the module docstring) and scan it, under the lock.

    Raises on failure (``GitFailure``, the scanner's errors): :func:`scan_line`
    is the landing's forgiving form. ``profile`` is used when the line has no
    project file naming one.
    """
    main = _open(workspace.root, workspace, settings)
    git_dir = common_dir(main)
    with line_lock(git_dir):
        tip = main.resolve_commit(f"refs/heads/{line}")
        tree = _refresh(main, workspace.root / LINE_WORKTREE, tip, settings, emit)
        scan = _scan(tree, git_dir, profile, run_tests=run_tests)
        at = tree.head()
        if at == tip:
            # Detached at the line's tip: the scan is the line's.
            scan.branch = scan.branch or line
        scan.revision = scan.revision or at
    return scan


def _refresh(main: _Git, path: Path, tip: str, settings: GitSettings, emit: Emit) -> _Git:
    """The line's worktree at ``tip`` (created if missing), or as it is when it must stay."""
    if not path.exists():
        main("worktree", "prune")
        path.parent.mkdir(parents=True, exist_ok=True)
        main("worktree", "add", "--quiet", "--detach", str(path), tip)
        emit(f"project map: created {LINE_WORKTREE} at {tip[:12]}")
        return _Git(path, settings)
    tree = _Git(path, settings)
    top = tree("rev-parse", "--show-toplevel", check=False).strip()
    if not (path / ".git").is_file() or Path(os.path.realpath(top or "/")) != path.resolve():
        raise GitFailure(f"{LINE_WORKTREE} exists and is not a worktree of this repository")
    rule = refresh_rule(
        branch=tree.current_branch(),
        head=tree.head(),
        tip=tip,
        dirty=bool(tree("status", "--porcelain", "--untracked-files=no", check=False).strip()),
    )
    if not rule.move:
        if rule.note:
            emit(f"project map: {rule.note}")
        return tree
    try:
        tree("checkout", "--quiet", "--detach", tip)
    except GitFailure as exc:
        # Untracked files where the line now has files: left for a person.
        emit(f"project map: {LINE_WORKTREE} stays where it was ({exc}); scanned as it is")
        return tree
    emit(f"project map: {LINE_WORKTREE} moved to {tip[:12]}")
    return tree


def _scan(tree: _Git, git_dir: Path, profile: str, *, run_tests: bool) -> pm.ProjectScan:
    """The kernel's scan of the worktree, laid out as the line's project file says.

    The project file's profile comes first, as for ``specloom status``: the
    map is the project's, and one read with another layout would flip it;
    without one, the landing session's profile.
    """
    # Imported here, so an executor that never lands never loads the scanner.
    from specloom.projectmap import load_project, scan_checkout

    project = load_project(tree.top)
    name = (project.profile if project is not None else "") or profile
    return scan_checkout(
        tree.top,
        get_profile(name or None),
        cache_path=git_dir / SCAN_CACHE,
        run_tests=run_tests,
        contexts=[c.module for c in project.contexts] if project is not None else (),
    )


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    return text if isinstance(exc, GitFailure) and text else f"{type(exc).__name__}: {text}"
