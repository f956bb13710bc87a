"""Landing on the project's line (``Commit.land_on``) in real repositories.

Each session works in its own worktree on its own branch, as sessions do;
the line (``specloom/main``) is checked out nowhere. Landing fast-forwards
or merges without a checkout, retries when another landing moved the line
first, names conflicts and leaves everything as it was, and lands again as a
no-op.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from specloom.agent import gitland
from specloom.agent.gitops import GitOutcome, GitSettings, _Git, run_git_command
from specloom.agent.workspace import Workspace
from specloom.v1 import common_pb2 as pb
from specloom.workflow import commands as c

from .conftest import git

LINE = "specloom/main"


def run(
    workspace: Workspace, *operations: pb.GitOperation, workdir: Path | None = None
) -> tuple[GitOutcome, list[str]]:
    lines: list[str] = []
    outcome = run_git_command(
        c.git("Finalize", operations).git,
        workspace=workspace,
        workdir=workdir or workspace.root,
        settings=GitSettings(),
        emit=lines.append,
    )
    return outcome, lines


def tip(root: Path, ref: str) -> str:
    return git(root, "rev-parse", ref).strip()


def parents(root: Path, commit: str) -> list[str]:
    return git(root, "rev-list", "--parents", "-n", "1", commit).split()[1:]


def session(workspace: Workspace, name: str, files: dict[str, str], base: str = LINE) -> Path:
    """A session's worktree on branch ``name`` from ``base``, with ``files`` written."""
    path = f".specloom/worktrees/{name}"
    made, _ = run(workspace, c.add_worktree(path, name, base))
    assert made.status == pb.RESULT_STATUS_OK, made.error_message
    tree = workspace.root / path
    for relative, content in files.items():
        target = tree / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    return tree


def finalize(
    workspace: Workspace, tree: Path, paths: list[str], line: str = LINE
) -> tuple[GitOutcome, list[str]]:
    """The Finalize a session with ``land_on`` sends."""
    branch = git(tree, "branch", "--show-current").strip()
    op = c.commit(paths, f"Work of {branch}", allow_empty=True, expect_branch=branch, land_on=line)
    return run(workspace, op, workdir=tree)


@pytest.fixture
def line(workspace: Workspace) -> str:
    """The line, at main's commit; returns its tip."""
    git(workspace.root, "branch", LINE, "main")
    return tip(workspace.root, LINE)


def untouched(root: Path, head: str) -> None:
    """The person's checkout is where it was, on main, with no changes."""
    assert git(root, "branch", "--show-current").strip() == "main"
    assert tip(root, "HEAD") == head
    assert git(root, "status", "--porcelain", "--untracked-files=no") == ""


def test_a_session_ahead_of_the_line_fast_forwards_it(workspace: Workspace, line: str) -> None:
    root = workspace.root
    head = tip(root, "HEAD")
    tree = session(workspace, "session-a", {"ledger/a.py": "A = 1\n"})
    outcome, lines = finalize(workspace, tree, ["ledger/a.py"])
    assert outcome.status == pb.RESULT_STATUS_OK, outcome.error_message
    committed = tip(tree, "HEAD")
    assert outcome.data["commit"] == committed
    assert outcome.data["landed"] == committed
    assert outcome.data["land_on"] == LINE
    assert outcome.data["fast_forward"] is True
    assert outcome.data["already_landed"] is False
    assert tip(root, LINE) == committed
    assert parents(root, committed) == [line]
    assert any(f"landed session-a on {LINE}" in text for text in lines)
    untouched(root, head)


def test_a_session_behind_the_line_lands_as_a_merge_commit(workspace: Workspace, line: str) -> None:
    root = workspace.root
    head = tip(root, "HEAD")
    first = session(workspace, "session-a", {"ledger/a.py": "A = 1\n"})
    second = session(workspace, "session-b", {"ledger/b.py": "B = 2\n"})
    landed_a, _ = finalize(workspace, first, ["ledger/a.py"])
    assert landed_a.status == pb.RESULT_STATUS_OK, landed_a.error_message
    outcome, _ = finalize(workspace, second, ["ledger/b.py"])
    assert outcome.status == pb.RESULT_STATUS_OK, outcome.error_message
    merge = tip(root, LINE)
    assert outcome.data["landed"] == merge
    assert outcome.data["fast_forward"] is False
    b_commit = tip(second, "HEAD")
    assert outcome.data["commit"] == b_commit
    assert parents(root, merge) == [tip(first, "HEAD"), b_commit]
    assert git(root, "show", f"{merge}:ledger/a.py") == "A = 1\n"
    assert git(root, "show", f"{merge}:ledger/b.py") == "B = 2\n"
    subject, _, body = git(root, "log", "-1", "--format=%B", merge).partition("\n")
    assert subject == f"Merge session-b into {LINE}"
    assert "Work of session-b" in body
    # The session's branch is as its commit left it: landing moved only the line.
    assert tip(root, "session-b") == b_commit
    untouched(root, head)


def test_running_the_landing_again_lands_nothing_new(workspace: Workspace, line: str) -> None:
    root = workspace.root
    first = session(workspace, "session-a", {"ledger/a.py": "A = 1\n"})
    second = session(workspace, "session-b", {"ledger/b.py": "B = 2\n"})
    finalize(workspace, first, ["ledger/a.py"])
    done, _ = finalize(workspace, second, ["ledger/b.py"])
    assert done.status == pb.RESULT_STATUS_OK, done.error_message
    merge = tip(root, LINE)
    count = git(root, "rev-list", "--count", LINE)
    for tree, paths in ((second, ["ledger/b.py"]), (first, ["ledger/a.py"])):
        again, lines = finalize(workspace, tree, paths)
        assert again.status == pb.RESULT_STATUS_OK, again.error_message
        assert again.data["landed"] == merge  # the line's tip, which holds the branch
        assert again.data["already_landed"] is True
        assert any("already on" in text for text in lines)
    assert tip(root, LINE) == merge
    assert git(root, "rev-list", "--count", LINE) == count


def test_a_conflict_is_named_and_changes_nothing(workspace: Workspace, line: str) -> None:
    root = workspace.root
    head = tip(root, "HEAD")
    first = session(workspace, "session-a", {"ledger/shared.py": "X = 'a'\n", "a.txt": "a\n"})
    second = session(workspace, "session-b", {"ledger/shared.py": "X = 'b'\n", "a.txt": "b\n"})
    finalize(workspace, first, ["ledger/shared.py", "a.txt"])
    landed = tip(root, LINE)
    outcome, _ = finalize(workspace, second, ["ledger/shared.py", "a.txt"])
    assert outcome.status == pb.RESULT_STATUS_ERROR
    assert outcome.data["conflicts"] == ["a.txt", "ledger/shared.py"]
    message = outcome.error_message
    assert message.startswith(f"landing session-b on {LINE} conflicts in 2 files: a.txt, ")
    assert f"{LINE} was not changed" in message
    # The session's own commit stays, and is reported.
    b_commit = tip(second, "HEAD")
    assert outcome.data["commit"] == b_commit
    assert outcome.data["branch"] == "session-b"
    assert git(root, "show", f"{b_commit}:ledger/shared.py") == "X = 'b'\n"
    assert tip(root, LINE) == landed
    # Nothing half-done anywhere: no merge in progress, clean worktree, clean checkout.
    assert git(second, "status", "--porcelain", "--untracked-files=no") == ""
    untouched(root, head)


def test_a_missing_line_is_an_error_naming_it(workspace: Workspace) -> None:
    tree = session(workspace, "session-a", {"ledger/a.py": "A = 1\n"}, base="main")
    outcome, _ = finalize(workspace, tree, ["ledger/a.py"], line="specloom/nowhere")
    assert outcome.status == pb.RESULT_STATUS_ERROR
    assert "there is no branch 'specloom/nowhere'" in outcome.error_message
    committed = tip(tree, "HEAD")
    assert f"commit {committed[:12]} stays on session-a" in outcome.error_message
    assert outcome.data["commit"] == committed
    assert git(workspace.root, "branch", "--list", "specloom/nowhere") == ""


def test_a_line_checked_out_somewhere_or_badly_named_is_refused(
    workspace: Workspace, line: str
) -> None:
    root = workspace.root
    tree = session(workspace, "session-a", {"ledger/a.py": "A = 1\n"})
    git(root, "checkout", "-q", LINE)  # a person works on the line itself
    outcome, _ = finalize(workspace, tree, ["ledger/a.py"])
    assert outcome.status == pb.RESULT_STATUS_ERROR
    assert f"cannot land on {LINE}: it is checked out in {root}" in outcome.error_message
    assert tip(root, LINE) == line
    git(root, "checkout", "-q", "main")
    bad, _ = finalize(workspace, tree, ["ledger/a.py"], line="a..b")
    assert bad.status == pb.RESULT_STATUS_ERROR
    assert bad.error_message.startswith("cannot land on 'a..b': invalid branch name")


def test_a_landing_that_loses_the_race_merges_again_on_the_new_tip(
    workspace: Workspace, line: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Session b lands between a reading the line and moving it; a then merges on b's tip."""
    root = workspace.root
    first = session(workspace, "session-a", {"ledger/a.py": "A = 1\n"})
    second = session(workspace, "session-b", {"ledger/b.py": "B = 2\n"})
    read = gitland._tip
    calls: list[str] = []

    def racing_tip(repo: _Git, branch: str) -> str:
        seen = read(repo, branch)
        if not calls:
            calls.append(seen)
            other, _ = finalize(workspace, second, ["ledger/b.py"])  # lands right now
            assert other.status == pb.RESULT_STATUS_OK, other.error_message
        return seen

    monkeypatch.setattr(gitland, "_tip", racing_tip)
    outcome, lines = finalize(workspace, first, ["ledger/a.py"])
    assert outcome.status == pb.RESULT_STATUS_OK, outcome.error_message
    assert any(f"{LINE} moved while landing session-a (attempt 1)" in t for t in lines)
    merge = tip(root, LINE)
    assert outcome.data["landed"] == merge
    # b fast-forwarded the line; a's merge sits on top of b's commit.
    assert parents(root, merge) == [tip(second, "HEAD"), tip(first, "HEAD")]
    for name in ("a", "b"):
        assert git(root, "merge-base", "--is-ancestor", f"session-{name}", LINE) == ""


def test_landings_at_the_same_time_all_end_on_the_line(workspace: Workspace, line: str) -> None:
    names = [f"session-{n}" for n in range(4)]
    trees = {name: session(workspace, name, {f"ledger/{name}.py": "X = 1\n"}) for name in names}
    start = threading.Barrier(len(names))
    outcomes: dict[str, GitOutcome] = {}

    def land(name: str) -> None:
        start.wait()
        outcomes[name], _ = finalize(workspace, trees[name], [f"ledger/{name}.py"])

    threads = [threading.Thread(target=land, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    root = workspace.root
    for name in names:
        outcome = outcomes[name]
        assert outcome.status == pb.RESULT_STATUS_OK, outcome.error_message
        assert git(root, "merge-base", "--is-ancestor", name, LINE) == ""
        assert git(root, "show", f"{LINE}:ledger/{name}.py") == "X = 1\n"
        # Each scanned the line's worktree after its own landing (one at a
        # time, under the line's lock): the tip it saw holds its own work.
        scan = outcome.project_scan
        assert scan is not None
        assert git(root, "merge-base", "--is-ancestor", name, scan.revision) == ""
    line_tree = root / ".specloom" / "worktrees" / "line"
    assert git(line_tree, "rev-parse", "HEAD").strip() == tip(root, LINE)
