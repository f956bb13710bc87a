"""Landing a session's branch on the project's line (``Commit.land_on``).

The line is a branch where finished work accumulates (``specloom/main``).
Sessions land on it from their own worktrees while the line stays checked
out nowhere but its own detached worktree, so the merge is made without a
checkout: ``git merge-tree --write-tree`` computes the merged tree in the
object store, ``git commit-tree`` makes the merge commit (both parents), and
``git update-ref <line> <new> <old>`` moves the branch only if it is still
where the merge was computed from. Several sessions may land at once: the
one that loses that compare-and-swap computes its merge again on the new
tip, a bounded number of times.

What it promises:

- the line must exist: a missing line is an error naming it (it is created
  by ``specloom status``/``next``, at the point the project starts from);
- a conflict is an error naming the files (``data.conflicts``) and leaves
  everything as it was: the line unmoved, the session's commit on its branch;
- a branch already in the line's history lands as the line's tip, without a
  new commit, so a retried Finalize is safe; a line that is an ancestor of
  the branch moves to it (fast-forward);
- a line checked out somewhere (a person's checkout) is refused: moving the
  branch would change it under that checkout's files.

Built on :mod:`specloom.agent.gitops`'s guarded git runner.
"""

from __future__ import annotations

from specloom.agent.gitops import Emit, GitFailure, _Git, _identity
from specloom.protoconv import JsonObject

__all__ = ["MAX_ATTEMPTS", "land"]

MAX_ATTEMPTS = 20
"""Merges computed at most before giving up on a line that keeps moving."""

MAX_NAMED = 50
"""Conflicted files named in the error message (all are in the data)."""


def land(repo: _Git, line: str, message: str, committed: JsonObject, emit: Emit) -> JsonObject:
    """Merge ``repo``'s current branch into ``line``; see the module docstring.

    ``committed`` is what the commit before it reported; a failure carries
    it in its data too, since that commit stays whatever happens here.
    """
    branch = repo.current_branch()
    if not branch:
        raise GitFailure("landing needs a branch checked out; HEAD is detached", committed)
    try:
        repo.check_branch_name(line)
    except GitFailure as exc:
        raise GitFailure(f"cannot land on {line!r}: {exc}", committed) from None
    if line == branch:
        raise GitFailure(f"cannot land {branch} on itself", committed)
    tip = repo.head()
    holder = _checked_out_at(repo, line)
    if holder:
        raise GitFailure(
            f"cannot land on {line}: it is checked out in {holder}, and moving it would change "
            "the branch under that checkout's files; check out another branch there (the "
            "line's own worktree is kept on a detached HEAD)",
            {**committed, "land_on": line},
        )
    last_error = ""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        old = _tip(repo, line)
        if not old:
            raise GitFailure(
                f"cannot land on {line}: there is no branch {line!r} in this repository (the "
                f"line is created by 'specloom status' or 'specloom next'); the session's "
                f"commit {tip[:12]} stays on {branch}",
                {**committed, "land_on": line},
            )
        if _is_ancestor(repo, tip, old):
            emit(f"git: {branch} is already on {line} (at {old[:12]}); nothing to land")
            return {"landed": old, "land_on": line, "already_landed": True}
        if _is_ancestor(repo, old, tip):
            new, how = tip, "fast-forward"
        else:
            tree, conflicts = _merge_tree(repo, old, tip)
            if conflicts:
                raise GitFailure(
                    _conflict_message(branch, line, conflicts, tip),
                    {**committed, "land_on": line, "conflicts": conflicts},
                )
            subject = next(iter(message.splitlines()), "").strip()
            text = f"Merge {branch} into {line}" + (f"\n\n{subject}" if subject else "")
            new = repo(
                *_identity(repo), "commit-tree", tree, "-p", old, "-p", tip, "-m", text
            ).strip()
            how = "merge"
        moved = repo.run(
            "update-ref", "-m", f"specloom: land {branch}", f"refs/heads/{line}", new, old
        )
        if moved.returncode == 0:
            emit(f"git: landed {branch} on {line} as {new[:12]} ({how})")
            return {
                "landed": new,
                "land_on": line,
                "already_landed": False,
                "fast_forward": how == "fast-forward",
            }
        # Somebody moved the line (or held its lock) between reading it and
        # moving it: compute the merge again on what it is now.
        last_error = moved.stderr.decode("utf-8", errors="replace").strip()
        emit(f"git: {line} moved while landing {branch} (attempt {attempt}); trying again")
    raise GitFailure(
        f"could not land {branch} on {line}: the line kept moving ({MAX_ATTEMPTS} attempts; "
        f"last: {last_error or 'update-ref refused'}); the session's commit {tip[:12]} stays "
        f"on {branch}",
        {**committed, "land_on": line},
    )


def _tip(repo: _Git, branch: str) -> str:
    ref = f"refs/heads/{branch}"
    return repo("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False).strip()


def _is_ancestor(repo: _Git, ancestor: str, descendant: str) -> bool:
    return repo.run("merge-base", "--is-ancestor", ancestor, descendant).returncode == 0


def _merge_tree(repo: _Git, ours: str, theirs: str) -> tuple[str, list[str]]:
    """The merged tree of two commits, and the conflicted paths (empty when clean)."""
    done = repo.run(
        "merge-tree", "--write-tree", "--name-only", "--no-messages", "-z", ours, theirs
    )
    out = done.stdout.decode("utf-8", errors="surrogateescape")
    # Exit 0: clean; 1: conflicts (the tree holds markers); anything else: git failed.
    if done.returncode not in (0, 1):
        detail = done.stderr.decode("utf-8", errors="replace").strip()
        raise GitFailure(f"git merge-tree failed: {detail or done.returncode}")
    tree, *rest = out.split("\0")
    if done.returncode == 0:
        return tree.strip(), []
    names: list[str] = []
    for name in rest:
        if not name:
            break  # the conflicted-file list ends with an empty entry
        if name not in names:
            names.append(name)
    return tree.strip(), names


def _checked_out_at(repo: _Git, branch: str) -> str:
    """The worktree that has ``branch`` checked out ("" when none does)."""
    listed = repo("worktree", "list", "--porcelain", "-z", check=False)
    path = ""
    for entry in listed.split("\0"):
        if entry.startswith("worktree "):
            path = entry.removeprefix("worktree ")
        elif entry == f"branch refs/heads/{branch}":
            return path
    return ""


def _conflict_message(branch: str, line: str, conflicts: list[str], tip: str) -> str:
    count = len(conflicts)
    shown = ", ".join(conflicts[:MAX_NAMED])
    if count > MAX_NAMED:
        shown += f" and {count - MAX_NAMED} more"
    return (
        f"landing {branch} on {line} conflicts in {count} file{'s' if count != 1 else ''}: "
        f"{shown}; {line} was not changed and the session's commit {tip[:12]} stays on "
        f"{branch}: merge {line} into {branch}, resolve the conflicts, commit, then land again"
    )
