"""Bringing branches together: merges that may conflict, and the squash commit.

A parent integrates its children's branches, and a dependent child starts
from its dependencies' branches, by merging them in order. A merge is
idempotent, so a retried step never merges twice:

- a branch already in the current branch's history is skipped;
- a conflict stops the operation with the merge *left in progress* and the
  conflicted files named (:class:`MergeConflict`, ``data.conflicts``), so an
  agent can resolve them in place;
- run again, the same operation finds its merge in progress, stages the
  files that no longer hold conflict markers (a deleted file is a
  resolution too), concludes the merge and goes on with the remaining
  branches. A file still holding markers is still a conflict.

The squash commit (``Commit.squash_onto``) replaces a branch's commits
since a base with one commit: the base's tree with the named paths as the
working tree has them. It is built with plumbing (``commit-tree``) and the
branch moves by compare-and-swap (``update-ref <new> <old>``), so nothing
else can be lost to it.

Built on :mod:`specloom.agent.gitops`'s guarded git runner.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from specloom.agent.gitops import (
    Emit,
    GitFailure,
    _confined,
    _gather,
    _Git,
    _identity,
    _known,
)
from specloom.protoconv import JsonObject
from specloom.v1 import common_pb2 as pb

_MARKER = re.compile(rb"^(<<<<<<<|>>>>>>>)( |$)", re.MULTILINE)
"""Conflict markers git writes (``<<<<<<< ours`` / ``>>>>>>> theirs``) at a line start."""

MAX_NAMED = 50
"""Conflicted files named in the error message (all are listed in the data)."""


class MergeConflict(GitFailure):
    """A merge stopped on conflicts and is left in progress for someone to resolve."""


def merge_branches(repo: _Git, branches: Sequence[str], message: str, emit: Emit) -> JsonObject:
    """Merge ``branches`` in order into ``repo``'s current branch (see the module docstring)."""
    if not branches:
        raise GitFailure("merge needs at least one branch")
    current = repo.current_branch()
    if not current:
        raise GitFailure("merge needs a branch checked out; HEAD is detached")
    wanted = [(name, repo.resolve_commit(name)) for name in dict.fromkeys(branches)]
    merged: list[str] = []
    already: list[str] = []
    progress = _merge_head(repo)
    if progress:
        name = next((n for n, sha in wanted if sha == progress), None)
        if name is None:
            raise GitFailure(
                f"a merge of {progress[:12]} is in progress on {current}, and it is none of "
                f"{', '.join(n for n, _ in wanted)}; conclude it or run "
                "'git merge --abort' first"
            )
        _conclude(repo, current, name, [n for n, _ in wanted], merged, already, emit)
        merged.append(name)
    for name, sha in wanted:
        if name in merged:
            continue
        if repo.ok("merge-base", "--is-ancestor", sha, "HEAD"):
            already.append(name)
            emit(f"git: {name} is already merged into {current}")
            continue
        text = (message or "Merge {branch}").replace("{branch}", name)
        try:
            repo(*_identity(repo), "merge", "--quiet", "--no-edit", "-m", text, sha)
        except GitFailure:
            if not _merge_head(repo):
                raise  # refused before starting (local changes in the way): nothing to resolve
            conflicts = _conflicted(repo)
            pending = [n for n, _ in wanted if n not in merged and n not in already]
            raise MergeConflict(
                _conflict_message(current, name, conflicts),
                _state(current, name, conflicts, merged, already, pending),
            ) from None
        merged.append(name)
        emit(f"git: merged {name} into {current}")
    return {
        "branch": current,
        "commit": repo.head(),
        "merged": list(merged),
        "already_merged": list(already),
    }


def _merge_head(repo: _Git) -> str:
    """The commit being merged, if a merge is in progress ("" if none)."""
    return repo("rev-parse", "--quiet", "--verify", "MERGE_HEAD", check=False).strip()


def _conflicted(repo: _Git) -> list[str]:
    """Paths (relative to the working tree's top) with unmerged entries in the index."""
    listed = repo("diff", "--name-only", "--diff-filter=U", "-z")
    return sorted({path for path in listed.split("\0") if path.strip("\n")})


def _still_marked(top: Path, path: str) -> bool:
    file = top / path
    # A conflict may be resolved by deleting the file; a directory in its
    # place is no resolution git can stage as the file, so it counts as open.
    if not file.exists():
        return False
    if not file.is_file():
        return True
    return bool(_MARKER.search(file.read_bytes()))


def _conclude(
    repo: _Git,
    current: str,
    name: str,
    order: list[str],
    merged: list[str],
    already: list[str],
    emit: Emit,
) -> None:
    """Finish the merge of ``name`` left in progress by an earlier run, once resolved."""
    unmerged = _conflicted(repo)
    open_files = [path for path in unmerged if _still_marked(repo.top, path)]
    if open_files:
        pending = [n for n in order if n != name]
        raise MergeConflict(
            f"the merge of {name} into {current} is still in progress: "
            f"{_listed(open_files)} still hold conflict markers; resolve them, then run the "
            "merge again",
            _state(current, name, open_files, merged, already, pending),
        )
    if unmerged:
        repo("add", "--all", "--", *unmerged)
    repo(*_identity(repo), "commit", "--quiet", "--no-verify", "--no-edit")
    emit(f"git: concluded the merge of {name} into {current} ({len(unmerged)} file(s) resolved)")


def _listed(paths: Sequence[str]) -> str:
    shown = ", ".join(paths[:MAX_NAMED])
    return shown + (f" and {len(paths) - MAX_NAMED} more" if len(paths) > MAX_NAMED else "")


def _conflict_message(current: str, name: str, conflicts: Sequence[str]) -> str:
    count = len(conflicts)
    noun = "file" if count == 1 else "files"
    return (
        f"merging {name} into {current} conflicts in {count} {noun}: {_listed(conflicts)}; "
        "the merge is left in progress: resolve the conflicts (remove every conflict "
        "marker), then run the merge again"
    )


def _state(
    current: str,
    name: str,
    conflicts: Sequence[str],
    merged: Sequence[str],
    already: Sequence[str],
    pending: Sequence[str],
) -> JsonObject:
    return {
        "branch": current,
        "merging": name,
        "conflicts": list(conflicts),
        "merged": list(merged),
        "already_merged": list(already),
        "pending": [n for n in pending if n != name],
    }


def squash_commit(repo: _Git, workdir: Path, op: pb.Commit, emit: Emit) -> JsonObject:
    """One commit on ``op.squash_onto`` holding ``op.paths``; the branch moves to it."""
    if not op.paths:
        raise GitFailure("commit needs at least one path")
    if _merge_head(repo):
        raise GitFailure(
            "a merge is in progress; conclude it (run the merge again once its conflicts are "
            "resolved) before the squash commit"
        )
    branch = repo.current_branch()
    if not branch:
        raise GitFailure("a squash commit needs a branch checked out; HEAD is detached")
    head = repo.head()
    if not head:
        raise GitFailure(f"nothing to squash: {branch} has no commits")
    base = repo.resolve_commit(op.squash_onto)
    if not repo.ok("merge-base", "--is-ancestor", base, head):
        raise GitFailure(
            f"{op.squash_onto!r} is not in the history of {branch}; a squash replaces only "
            "the branch's own commits since its base"
        )
    _gather(repo, op.gather, emit)
    paths = sorted({repo.relative(_confined(workdir, p)) for p in op.paths})
    missing = [p for p in paths if not (repo.top / p).exists() and not _known(repo, head, p)]
    if missing:
        # As for every commit: a step that was to produce these files never
        # passes empty (see gitops.commit).
        raise GitFailure(f"nothing at {', '.join(missing)} to commit: they do not exist")
    tree = _tree_of(repo, base, paths)
    if _parents(repo, head) == [base] and _tree(repo, head) == tree:
        # A retry after the squash landed: the same commit, not a second one.
        emit(f"git: {branch} is already squashed onto {base[:12]} as {head[:12]}")
        return _squashed(repo, branch, base, head, replaced=head)
    if tree == _tree(repo, base):
        if op.allow_empty:
            emit(f"git: nothing differs from {op.squash_onto}; no commit made")
            return {"commit": head, "branch": branch, "committed_files": []}
        raise GitFailure(
            f"nothing to commit: {', '.join(paths) or 'the paths'} are as on {op.squash_onto}"
        )
    message = op.message or "specloom commit"
    sha = repo(*_identity(repo), "commit-tree", tree, "-p", base, "-m", message).strip()
    # Compare-and-swap: if anything moved the branch since we read it, refuse.
    reason = f"specloom: squash onto {base[:12]}"
    repo("update-ref", "-m", reason, f"refs/heads/{branch}", sha, head)
    # The index follows the new HEAD; the working tree is left as it is, so
    # files outside the commit stay there as uncommitted changes.
    repo("reset", "--quiet")
    result = _squashed(repo, branch, base, sha, replaced=head)
    emit(f"git: squashed {branch} onto {base[:12]} as {sha[:12]}")
    return result


def _tree_of(repo: _Git, base: str, paths: Sequence[str]) -> str:
    """The tree of ``base`` with ``paths`` as the working tree has them.

    Built in the worktree's own index, which is reset to HEAD afterwards
    whatever happens (a session's worktree index holds nothing of its own).
    """
    try:
        repo("read-tree", base)
        if paths:
            repo("add", "--all", "--", *paths)
        return repo("write-tree").strip()
    finally:
        repo("reset", "--quiet", check=False)


def _tree(repo: _Git, commit: str) -> str:
    return repo("rev-parse", "--verify", "--quiet", f"{commit}^{{tree}}").strip()


def _parents(repo: _Git, commit: str) -> list[str]:
    return repo("rev-list", "--parents", "-n", "1", commit).split()[1:]


def _squashed(repo: _Git, branch: str, base: str, sha: str, *, replaced: str) -> JsonObject:
    files = [
        name.strip("\n")
        for name in repo("diff-tree", "--no-commit-id", "--name-only", "-r", "-z", base, sha).split(
            "\0"
        )
        if name.strip("\n")
    ]
    return {
        "commit": sha,
        "branch": branch,
        "committed_files": files,
        "squashed_onto": base,
        "replaced": replaced,
    }
