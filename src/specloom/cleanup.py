"""Finding and removing finished sessions' worktrees and branches (``specloom clean``).

Sessions leave work in the repository they ran in: a worktree under
``.specloom/worktrees/<session_id>`` and a branch (``<prefix>-session-for-
<subject>-…``, the one the session's state names). Once a session is
finished they are only clutter — unless their commits exist nowhere else.
So a worktree or branch is removed only when

- every session it belongs to (by worktree directory and by the branch its
  state names) is finished: complete or cancelled — a failed session's work
  stays on its branch, to be looked at or resumed, unless forced;
- its work is held by a ref that stays — unless forced: its tip is
  reachable from it (merged into its parent or ``main``, pushed, tagged),
  or every file the branch changed is, as on its tip, on a session's or
  the main branch (a parent that took its children's files with
  ``Commit.gather``). A fixpoint makes sure two branches never vouch for
  each other's work while both go;
- its worktree has no uncommitted changes — unless forced.

Sessions still running or paused are never touched, forced or not, and
neither is anything no session of the project names (it may be another
project's, or a person's). Everything runs through git's own commands, with
the scrubbed environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from specloom.childenv import child_environment
from specloom.gitcli import run_git
from specloom.naming import LINE_WORKTREE
from specloom.protoconv import struct_to_dict
from specloom.v1 import common_pb2 as pb
from specloom.workspaces import HOUSEKEEPING

WORKTREES = Path(HOUSEKEEPING) / "worktrees"
"""Where session worktrees live, relative to the workspace root."""
LINE = Path(LINE_WORKTREE).name
"""The line's own worktree among them: the project's, never a session's leftover."""
FINISHED = frozenset({pb.SESSION_STATUS_COMPLETE, pb.SESSION_STATUS_CANCELLED})
"""Sessions whose leftovers may go (failed ones only when forced)."""
RUNNING = frozenset({pb.SESSION_STATUS_ACTIVE, pb.SESSION_STATUS_PAUSED})

__all__ = ["Decision", "Leftover", "decide", "find_leftovers", "remove"]


class GitError(Exception):
    """A git command failed; the message says which and why."""


def _git(root: Path, *args: str, check: bool = True) -> str:
    return run_git(root, *args, error=GitError if check else None).stdout


@dataclass
class Leftover:
    """A session worktree, a session branch, or both (a worktree on its branch)."""

    branch: str
    """Local branch name; "" for a worktree with a detached HEAD."""
    tip: str
    """The commit the branch (or the worktree's HEAD) is at; "" if unknown."""
    worktree: Path | None = None
    """The worktree's directory, if there is one."""
    registered: bool = True
    """False for a directory under ``.specloom/worktrees`` git no longer knows."""
    sessions: list[pb.Session] = field(default_factory=list)
    """Sessions it belongs to."""

    def describe(self, root: Path) -> str:
        """``worktree .specloom/worktrees/<id> and branch <name>`` for people."""
        parts = []
        if self.worktree is not None:
            parts.append(f"worktree {self.worktree.relative_to(root).as_posix()}")
        if self.branch:
            parts.append(f"branch {self.branch}")
        return " and ".join(parts)


@dataclass(frozen=True)
class Decision:
    """Whether a leftover goes, and why (or why not)."""

    leftover: Leftover
    remove: bool
    reason: str


def _worktrees(root: Path) -> list[tuple[Path, str, str]]:
    """(path, HEAD sha, branch or "") of every linked worktree (the main one excluded)."""
    found: list[tuple[Path, str, str]] = []
    blocks = _git(root, "worktree", "list", "--porcelain").strip().split("\n\n")
    for block in blocks[1:]:
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, _, value = line.partition(" ")
            fields[key] = value
        path = Path(os.path.realpath(fields.get("worktree", "")))
        branch = fields.get("branch", "").removeprefix("refs/heads/")
        found.append((path, fields.get("HEAD", ""), branch))
    return found


def _branches(root: Path) -> dict[str, str]:
    """Local branch name → tip sha."""
    listed = _git(root, "for-each-ref", "refs/heads", "--format=%(refname:short) %(objectname)")
    return dict(line.rsplit(" ", 1) for line in listed.splitlines() if line.strip())


def _branch_of(session: pb.Session) -> str:
    value = struct_to_dict(session.state).get("branch")
    return value if isinstance(value, str) else ""


def find_leftovers(root: Path, sessions: Iterable[pb.Session]) -> list[Leftover]:
    """Every session worktree and every branch a session names, with their sessions.

    ``root`` is the workspace's (main) working tree, symlinks resolved;
    ``sessions`` are the project's sessions (any status).
    """
    by_id = {session.id: session for session in sessions}
    by_branch: dict[str, list[pb.Session]] = {}
    for session in by_id.values():
        branch = _branch_of(session)
        if branch:
            by_branch.setdefault(branch, []).append(session)
    branches = _branches(root)
    home = root / WORKTREES
    leftovers: dict[str, Leftover] = {}
    claimed: set[Path] = set()
    for path, head, branch in _worktrees(root):
        if path.parent != home or path.name == LINE:
            continue  # a person's own worktree, or the line's: no session's
        claimed.add(path)
        leftover = Leftover(branch=branch, tip=head, worktree=path)
        if path.name in by_id:
            leftover.sessions.append(by_id[path.name])
        leftovers[branch or str(path)] = leftover
    if home.is_dir():
        for path in sorted(Path(os.path.realpath(p)) for p in home.iterdir() if p.is_dir()):
            if path not in claimed and path.name != LINE:
                orphan = Leftover(branch="", tip="", worktree=path, registered=False)
                if path.name in by_id:
                    orphan.sessions.append(by_id[path.name])
                leftovers[str(path)] = orphan
    for branch, owners in by_branch.items():
        if branch not in branches:
            continue  # already gone
        leftover = leftovers.setdefault(branch, Leftover(branch=branch, tip=branches[branch]))
        for session in owners:
            if all(s.id != session.id for s in leftover.sessions):
                leftover.sessions.append(session)
    return sorted(leftovers.values(), key=lambda item: (item.branch, str(item.worktree)))


def _containing(root: Path, tip: str) -> set[str]:
    """Every ref whose history holds ``tip``."""
    if not tip:
        return set()
    listed = _git(root, "for-each-ref", "--contains", tip, "--format=%(refname)", check=False)
    return {line.strip() for line in listed.splitlines() if line.strip()}


def _holds_files(root: Path, tip: str, ref: str) -> bool:
    """Whether ``ref`` has every file the branch at ``tip`` changed, as it is on ``tip``."""
    base = _git(root, "merge-base", tip, ref, check=False).strip()
    if not base:
        return False
    changed = _git(root, "diff", "--name-only", "-z", base, tip, check=False).split("\0")
    paths = [path for path in changed if path]
    if not paths:
        return True  # nothing of its own: its tip's content is all on the base
    same = subprocess.run(
        ["git", "-C", str(root), "diff", "--quiet", ref, tip, "--", *paths],
        capture_output=True,
        check=False,
        env=child_environment({"GIT_TERMINAL_PROMPT": "0", "GIT_LITERAL_PATHSPECS": "1"}),
        stdin=subprocess.DEVNULL,
    )
    return same.returncode == 0


def _dirty(path: Path) -> bool:
    return bool(_git(path, "status", "--porcelain", check=False).strip())


def _verdict(leftover: Leftover, current: str, force: bool) -> str | None:
    """Why it must stay, or None when it may go (reachability aside)."""
    if not leftover.sessions:
        return "no session of this project names it"
    running = [s for s in leftover.sessions if s.status in RUNNING]
    if running:
        return f"session {running[0].id} is still {_status(running[0])}"
    failed = [s for s in leftover.sessions if s.status == pb.SESSION_STATUS_FAILED]
    if failed and not force:
        return f"session {failed[0].id} failed: its work stays on its branch (--force removes it)"
    if leftover.branch and leftover.branch == current:
        return "it is the branch your checkout is on"
    if leftover.worktree is not None and not leftover.registered and not force:
        return "git no longer knows it as a worktree (--force removes the directory)"
    worktree = leftover.worktree
    if worktree is not None and leftover.registered and not force and _dirty(worktree):
        return "its worktree has uncommitted changes (--force removes them)"
    return None


def decide(root: Path, leftovers: Sequence[Leftover], *, force: bool = False) -> list[Decision]:
    """What to remove: see the module doc for the rules."""
    current = _git(root, "symbolic-ref", "--quiet", "--short", "HEAD", check=False).strip()
    stays: dict[int, str] = {}
    for index, leftover in enumerate(leftovers):
        reason = _verdict(leftover, current, force)
        if reason is not None:
            stays[index] = reason
    holders = _holder_refs(root, leftovers, current)
    containing = {
        index: _containing(root, leftover.tip)
        | {ref for ref in holders if _holds_files(root, leftover.tip, ref)}
        for index, leftover in enumerate(leftovers)
        if index not in stays and leftover.tip
    }
    # Work is safe when a ref that stays holds it. Removing branches can take
    # that away from another candidate, so iterate until nothing changes.
    while not force:
        going = {f"refs/heads/{leftovers[i].branch}" for i in containing if leftovers[i].branch}
        unsafe = [
            index
            for index, refs in containing.items()
            if leftovers[index].tip and not (refs - going)
        ]
        if not unsafe:
            break
        for index in unsafe:
            stays[index] = "its work is on no other branch, tag or remote (--force removes it)"
            del containing[index]
    return [
        Decision(leftover, index not in stays, stays.get(index, _gone_reason(leftover)))
        for index, leftover in enumerate(leftovers)
    ]


def _holder_refs(root: Path, leftovers: Sequence[Leftover], current: str) -> list[str]:
    """Refs that may hold a branch's files without its commits: session branches,
    the checkout's branch and ``main``/``master``, locally and on remotes."""
    names = {leftover.branch for leftover in leftovers if leftover.branch}
    names |= {name for name in (current, "main", "master") if name}
    listed = _git(root, "for-each-ref", "--format=%(refname)", "refs/heads", "refs/remotes")
    refs = [line.strip() for line in listed.splitlines() if line.strip()]
    return [ref for ref in refs if ref.split("/", 3)[-1] in names or ref.split("/", 2)[-1] in names]


def _status(session: pb.Session) -> str:
    return pb.SessionStatus.Name(session.status).removeprefix("SESSION_STATUS_").lower()


def _gone_reason(leftover: Leftover) -> str:
    statuses = sorted({_status(s) for s in leftover.sessions})
    return f"session {'/'.join(statuses)}"


def remove(root: Path, decisions: Sequence[Decision], emit: Callable[[str], None]) -> list[str]:
    """Remove what ``decisions`` say; returns the failures (each a line for people)."""
    failures: list[str] = []
    for decision in decisions:
        if not decision.remove:
            continue
        leftover = decision.leftover
        try:
            if leftover.worktree is not None:
                if leftover.registered:
                    _git(root, "worktree", "remove", "--force", str(leftover.worktree))
                else:
                    shutil.rmtree(leftover.worktree)
            if leftover.branch:
                _git(root, "branch", "-D", "--", leftover.branch)
        except (GitError, OSError) as exc:
            failures.append(f"{leftover.describe(root)}: {exc}")
            continue
        emit(f"removed {leftover.describe(root)} ({decision.reason})")
    _git(root, "worktree", "prune", check=False)
    return failures
