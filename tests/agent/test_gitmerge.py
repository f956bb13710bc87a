"""Merges and squash commits on real repositories: order, idempotency, conflicts, resolution."""

from __future__ import annotations

import subprocess
from pathlib import Path

from specloom.agent.gitops import GitOutcome, GitSettings, run_git_command
from specloom.agent.workspace import Workspace
from specloom.v1 import common_pb2 as pb
from specloom.workflow import commands as c

from .conftest import git


def run(
    workspace: Workspace, *operations: pb.GitOperation, workdir: Path | None = None
) -> tuple[GitOutcome, list[str]]:
    lines: list[str] = []
    outcome = run_git_command(
        c.git("Step", operations).git,
        workspace=workspace,
        workdir=workdir or workspace.root,
        settings=GitSettings(),
        emit=lines.append,
    )
    return outcome, lines


def branch_with(root: Path, name: str, files: dict[str, str], base: str = "main") -> str:
    """A branch off ``base`` with one commit writing ``files``; returns its sha."""
    git(root, "checkout", "-q", "-b", name, base)
    for path, content in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    git(root, "add", "--all")
    git(root, "commit", "-q", "-m", f"work on {name}")
    sha = git(root, "rev-parse", "HEAD").strip()
    git(root, "checkout", "-q", "main")
    return sha


def merge_head(root: Path) -> str:
    done = git(root, "rev-parse", "-q", "--verify", "MERGE_HEAD") if _has_merge(root) else ""
    return done.strip()


def _has_merge(root: Path) -> bool:
    path = git(root, "rev-parse", "--git-path", "MERGE_HEAD").strip()
    return (root / path).exists()


# -- Merge ----------------------------------------------------------------------------------


def test_branches_merge_in_order_and_again_is_a_no_op(workspace: Workspace) -> None:
    root = workspace.root
    a = branch_with(root, "dep-a", {"lib/a.py": "A = 1\n"})
    b = branch_with(root, "dep-b", {"lib/b.py": "B = 2\n"})
    git(root, "checkout", "-q", "-b", "session", "main")
    outcome, lines = run(workspace, c.merge(["dep-a", "dep-b"], "Integrate {branch}"))
    assert outcome.status == pb.RESULT_STATUS_OK, outcome.error_message
    assert outcome.data["merged"] == ["dep-a", "dep-b"]
    assert outcome.data["already_merged"] == []
    assert outcome.data["branch"] == "session"
    head = git(root, "rev-parse", "HEAD").strip()
    assert outcome.data["commit"] == head
    # dep-a fast-forwarded; dep-b was merged with the message asked for.
    assert git(root, "log", "-1", "--format=%s").strip() == "Integrate dep-b"
    assert git(root, "rev-list", "--parents", "-n", "1", "HEAD").split()[1:] == [a, b]
    assert (root / "lib" / "a.py").exists()
    assert (root / "lib" / "b.py").exists()
    again, _ = run(workspace, c.merge(["dep-a", "dep-b"]))
    assert again.status == pb.RESULT_STATUS_OK
    assert again.data["merged"] == []
    assert again.data["already_merged"] == ["dep-a", "dep-b"]
    assert git(root, "rev-parse", "HEAD").strip() == head
    assert any("merged dep-b" in line for line in lines)


def test_a_conflict_is_named_left_in_progress_and_concluded_once_resolved(
    workspace: Workspace,
) -> None:
    root = workspace.root
    branch_with(root, "dep-a", {"src/app.py": "print('a')\n", "lib/a.py": "A = 1\n"})
    b = branch_with(root, "dep-b", {"src/app.py": "print('b')\n", "lib/b.py": "B = 2\n"})
    branch_with(root, "dep-c", {"lib/c.py": "C = 3\n"})
    git(root, "checkout", "-q", "-b", "session", "main")
    merge = c.merge(["dep-a", "dep-b", "dep-c"])
    outcome, _ = run(workspace, merge)
    assert outcome.status == pb.RESULT_STATUS_ERROR
    assert outcome.error_message == (
        "merging dep-b into session conflicts in 1 file: src/app.py; the merge is left in "
        "progress: resolve the conflicts (remove every conflict marker), then run the merge "
        "again"
    )
    assert outcome.data["conflicts"] == ["src/app.py"]
    assert outcome.data["merging"] == "dep-b"
    assert outcome.data["merged"] == ["dep-a"]
    assert outcome.data["pending"] == ["dep-c"]
    assert merge_head(root) == b
    assert "<<<<<<<" in (root / "src" / "app.py").read_text()
    assert (root / "lib" / "b.py").exists()  # the clean part of the merge is there

    # Run again unresolved: still the same conflict, nothing else touched.
    still, _ = run(workspace, merge)
    assert still.status == pb.RESULT_STATUS_ERROR
    assert "still hold conflict markers" in still.error_message
    assert still.data["conflicts"] == ["src/app.py"]
    assert not (root / "lib" / "c.py").exists()

    # Resolved (markers gone, not staged: an agent just edits the file).
    (root / "src" / "app.py").write_text("print('a and b')\n")
    done, lines = run(workspace, merge)
    assert done.status == pb.RESULT_STATUS_OK, done.error_message
    assert done.data["merged"] == ["dep-b", "dep-c"]
    assert done.data["already_merged"] == ["dep-a"]
    assert not _has_merge(root)
    assert git(root, "status", "--porcelain").strip() == ""
    assert git(root, "show", "HEAD~1:src/app.py") == "print('a and b')\n"
    assert (root / "lib" / "c.py").exists()
    assert any("concluded the merge of dep-b" in line for line in lines)


def test_deleting_a_conflicted_file_resolves_it(workspace: Workspace) -> None:
    root = workspace.root
    branch_with(root, "dep-a", {"src/app.py": "print('a')\n"})
    branch_with(root, "dep-b", {"src/app.py": "print('b')\n"})
    git(root, "checkout", "-q", "-b", "session", "main")
    first, _ = run(workspace, c.merge(["dep-a", "dep-b"]))
    assert first.data["conflicts"] == ["src/app.py"]
    (root / "src" / "app.py").unlink()
    done, _ = run(workspace, c.merge(["dep-a", "dep-b"]))
    assert done.status == pb.RESULT_STATUS_OK, done.error_message
    assert "src/app.py" not in git(root, "ls-tree", "-r", "--name-only", "HEAD").split()


def test_a_foreign_merge_in_progress_is_not_concluded(workspace: Workspace) -> None:
    root = workspace.root
    branch_with(root, "mine", {"src/app.py": "print('mine')\n"})
    branch_with(root, "theirs", {"src/app.py": "print('theirs')\n"})
    branch_with(root, "dep", {"lib/d.py": "D = 1\n"})
    git(root, "checkout", "-q", "-b", "session", "mine")
    _merge_with_conflict(root, "theirs")
    outcome, _ = run(workspace, c.merge(["dep"]))
    assert outcome.status == pb.RESULT_STATUS_ERROR
    assert "is in progress on session, and it is none of dep" in outcome.error_message
    assert _has_merge(root)


def _merge_with_conflict(root: Path, branch: str) -> None:
    done = subprocess.run(
        ["git", "-C", str(root), "merge", "-q", branch], capture_output=True, check=False
    )
    assert done.returncode != 0


def test_local_changes_in_the_way_are_an_error_not_a_conflict(workspace: Workspace) -> None:
    root = workspace.root
    branch_with(root, "dep-a", {"src/app.py": "print('a')\n"})
    git(root, "checkout", "-q", "-b", "session", "main")
    (root / "src" / "app.py").write_text("uncommitted\n")
    outcome, _ = run(workspace, c.merge(["dep-a"]))
    assert outcome.status == pb.RESULT_STATUS_ERROR
    assert "conflicts" not in outcome.data
    assert outcome.error_message.startswith("git merge failed")
    assert not _has_merge(root)
    assert (root / "src" / "app.py").read_text() == "uncommitted\n"


def test_merge_refuses_bad_input(workspace: Workspace) -> None:
    git(workspace.root, "checkout", "-q", "-b", "session", "main")
    for branches, message in (
        ([], "merge needs at least one branch"),
        (["no-such-branch"], "unknown revision 'no-such-branch'"),
        (["--output=/tmp/x"], "not a revision"),
    ):
        outcome, _ = run(workspace, c.merge(branches))
        assert outcome.status == pb.RESULT_STATUS_ERROR
        assert message in outcome.error_message
    git(workspace.root, "checkout", "-q", "--detach", "HEAD")
    detached, _ = run(workspace, c.merge(["main"]))
    assert "HEAD is detached" in detached.error_message


# -- AddWorktree with dependencies ---------------------------------------------------------


def test_a_worktree_starts_from_its_base_plus_its_dependencies(workspace: Workspace) -> None:
    root = workspace.root
    branch_with(root, "parent", {"docs/context.md": "context\n"})
    branch_with(root, "dep-a", {"ledger/a.py": "A = 1\n"}, base="parent")
    branch_with(root, "dep-b", {"ledger/b.py": "B = 2\n"}, base="parent")
    path = ".specloom/worktrees/child-c"
    op = c.add_worktree(path, "child-c", "parent", merge=["dep-a", "dep-b"])
    outcome, _ = run(workspace, op)
    assert outcome.status == pb.RESULT_STATUS_OK, outcome.error_message
    tree = root / path
    for name in ("docs/context.md", "ledger/a.py", "ledger/b.py"):
        assert (tree / name).exists(), name
    assert outcome.data["merged"] == ["dep-a", "dep-b"]
    assert git(tree, "branch", "--show-current").strip() == "child-c"
    assert git(root, "branch", "--show-current").strip() == "main"  # the checkout untouched
    again, _ = run(workspace, op)
    assert again.status == pb.RESULT_STATUS_OK
    assert again.data["already_merged"] == ["dep-a", "dep-b"]


def test_a_worktree_whose_dependencies_conflict_says_where(workspace: Workspace) -> None:
    root = workspace.root
    branch_with(root, "dep-a", {"ledger/shared.py": "X = 'a'\n"})
    branch_with(root, "dep-b", {"ledger/shared.py": "X = 'b'\n"})
    path = ".specloom/worktrees/child-c"
    op = c.add_worktree(path, "child-c", "main", merge=["dep-a", "dep-b"])
    outcome, _ = run(workspace, op)
    assert outcome.status == pb.RESULT_STATUS_ERROR
    assert outcome.data["conflicts"] == ["ledger/shared.py"]  # relative to the worktree
    tree = root / path
    assert _has_merge(tree)
    (tree / "ledger" / "shared.py").write_text("X = 'a+b'\n")
    done, _ = run(workspace, op)
    assert done.status == pb.RESULT_STATUS_OK, done.error_message
    assert done.data["merged"] == ["dep-b"]
    assert git(tree, "show", "HEAD:ledger/shared.py") == "X = 'a+b'\n"


# -- squash ---------------------------------------------------------------------------------


def _integrated(root: Path) -> tuple[str, Path]:
    """A session worktree on ``session`` (from main) with two children merged in."""
    base = git(root, "rev-parse", "main").strip()
    branch_with(root, "child-a", {"ledger/a.py": "A = 1\n", "notes/a.txt": "scratch\n"})
    branch_with(root, "child-b", {"ledger/b.py": "B = 2\n"})
    path = ".specloom/worktrees/session"
    outcome, _ = run(workspace_of(root), c.add_worktree(path, "session", "main"))
    assert outcome.status == pb.RESULT_STATUS_OK
    tree = root / path
    merged, _ = run(workspace_of(root), c.merge(["child-a", "child-b"]), workdir=tree)
    assert merged.status == pb.RESULT_STATUS_OK, merged.error_message
    return base, tree


def workspace_of(root: Path) -> Workspace:
    return Workspace(root)


def test_squash_replaces_the_branch_commits_with_one(workspace: Workspace) -> None:
    root = workspace.root
    base, tree = _integrated(root)
    before = git(tree, "rev-parse", "HEAD").strip()
    paths = ["ledger/a.py", "ledger/b.py"]
    op = c.commit(paths, "Ledger: every component", squash_onto="main")
    outcome, _ = run(workspace, op, workdir=tree)
    assert outcome.status == pb.RESULT_STATUS_OK, outcome.error_message
    sha = git(tree, "rev-parse", "HEAD").strip()
    assert outcome.data == {
        "commit": sha,
        "branch": "session",
        "committed_files": paths,
        "squashed_onto": base,
        "replaced": before,
    }
    assert git(tree, "rev-list", "--parents", "-n", "1", "HEAD").split()[1:] == [base]
    assert git(tree, "log", "-1", "--format=%s").strip() == "Ledger: every component"
    in_commit = git(tree, "diff-tree", "--no-commit-id", "--name-only", "-r", base, sha).split()
    assert in_commit == paths
    # What was merged but not named stays in the working tree, uncommitted.
    assert (tree / "notes" / "a.txt").read_text() == "scratch\n"
    assert git(tree, "status", "--porcelain").split() == ["??", "notes/"]
    # A retry after the squash landed reports the same commit.
    again, lines = run(workspace, op, workdir=tree)
    assert again.status == pb.RESULT_STATUS_OK, again.error_message
    assert again.data["commit"] == sha
    assert git(tree, "rev-parse", "HEAD").strip() == sha
    assert any("already squashed" in line for line in lines)


def test_squash_refusals(workspace: Workspace) -> None:
    root = workspace.root
    _, tree = _integrated(root)
    elsewhere = branch_with(root, "unrelated", {"x.txt": "x\n"})
    not_base, _ = run(
        workspace, c.commit(["ledger/a.py"], "m", squash_onto=elsewhere), workdir=tree
    )
    assert not_base.status == pb.RESULT_STATUS_ERROR
    assert "is not in the history of session" in not_base.error_message
    nothing, _ = run(workspace, c.commit(["README.md"], "m", squash_onto="main"), workdir=tree)
    assert nothing.status == pb.RESULT_STATUS_ERROR
    assert "nothing to commit" in nothing.error_message
    missing, _ = run(workspace, c.commit(["nope.py"], "m", squash_onto="main"), workdir=tree)
    assert "nothing at nope.py" in missing.error_message
    # The branch is untouched by every refusal.
    assert "ledger/b.py" in git(tree, "ls-tree", "-r", "--name-only", "HEAD").split()
    branch_with(root, "clash-1", {"src/app.py": "1\n"})
    branch_with(root, "clash-2", {"src/app.py": "2\n"})
    run(workspace, c.merge(["clash-1", "clash-2"]), workdir=tree)
    merging, _ = run(workspace, c.commit(["ledger/a.py"], "m", squash_onto="main"), workdir=tree)
    assert "a merge is in progress" in merging.error_message
