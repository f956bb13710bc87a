"""``specloom clean``'s rules on a real repository laid out as sessions leave it.

Each session works in ``.specloom/worktrees/<session_id>`` on its own branch
(``<prefix>-session-for-<subject>-<id8>``), named in its state. The sessions
themselves are data here (what the gateway would list); git is real.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from specloom.cleanup import Decision, decide, find_leftovers, remove
from specloom.ids import new_id
from specloom.line import WORKTREE, ensure_line
from specloom.protoconv import dict_to_struct
from specloom.v1 import common_pb2 as pb
from specloom.workspaces import identify
from tests.workspaces.test_identity import git, make_repo

COMPLETE = pb.SESSION_STATUS_COMPLETE


def session(status: int, branch: str, session_id: str | None = None) -> pb.Session:
    made = pb.Session(id=session_id or new_id(), status=pb.SessionStatus.ValueType(status))
    dict_to_struct({"branch": branch}, made.state)
    return made


def work(repo: Path, made: pb.Session, name: str, *, commit: bool = True) -> Path:
    """A session's worktree on its branch, with one file committed there."""
    branch = f"design-session-for-{name}-{made.id[:8]}"
    dict_to_struct({"branch": branch}, made.state)
    tree = repo / ".specloom" / "worktrees" / made.id
    git(repo, "worktree", "add", "-q", "-b", branch, str(tree), "main")
    (tree / f"{name}.md").write_text(f"# {name}\n")
    if commit:
        git(tree, "add", ".")
        git(tree, "commit", "-q", "-m", f"{name}")
    return tree


def branch_of(made: pb.Session) -> str:
    return str(made.state.fields["branch"].string_value)


def by_session(decisions: list[Decision]) -> dict[str, Decision]:
    return {s.id: d for d in decisions for s in d.leftover.sessions}


def branches(repo: Path) -> set[str]:
    return set(git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads").split())


def test_only_finished_merged_clean_work_goes_unless_forced(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "api").resolve()
    identify(repo)  # as an agent serving it does: .specloom/ is kept out of git
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "push", "-q", "origin", "main")

    merged, pushed, unmerged = (session(COMPLETE, "") for _ in range(3))
    failed = session(pb.SESSION_STATUS_FAILED, "")
    running = session(pb.SESSION_STATUS_ACTIVE, "")
    dirty = session(COMPLETE, "")
    parent, child = session(COMPLETE, ""), session(COMPLETE, "")
    work(repo, merged, "merged")
    git(repo, "merge", "-q", "--no-edit", branch_of(merged))
    work(repo, pushed, "pushed")
    git(repo, "push", "-q", "origin", branch_of(pushed))
    work(repo, unmerged, "unmerged")
    work(repo, failed, "failed")
    git(repo, "merge", "-q", "--no-edit", branch_of(failed))
    work(repo, running, "running")
    dirty_tree = work(repo, dirty, "dirty")
    git(repo, "merge", "-q", "--no-edit", branch_of(dirty))
    (dirty_tree / "half-done.md").write_text("not committed\n")
    # A parent that took its child's file (Commit.gather), then pushed.
    work(repo, child, "child")
    parent_tree = work(repo, parent, "parent")
    git(parent_tree, "checkout", branch_of(child), "--", "child.md")
    git(parent_tree, "commit", "-q", "-m", "gather")
    git(repo, "push", "-q", "origin", branch_of(parent))
    # Two branches at one commit found nowhere else must not vouch for each other.
    twin_a, twin_b = session(COMPLETE, ""), session(COMPLETE, "")
    work(repo, twin_a, "twin")
    git(repo, "branch", f"twin-session-for-b-{twin_b.id[:8]}", branch_of(twin_a))
    dict_to_struct({"branch": f"twin-session-for-b-{twin_b.id[:8]}"}, twin_b.state)
    # A worktree no session of this project names.
    stranger = repo / ".specloom" / "worktrees" / "someone-elses"
    git(repo, "worktree", "add", "-q", "--detach", str(stranger), "main")

    sessions = [merged, pushed, unmerged, failed, running, dirty, parent, child, twin_a, twin_b]
    decisions = decide(repo, find_leftovers(repo, sessions))
    verdicts = by_session(decisions)
    going = {sid for sid, d in verdicts.items() if d.remove}
    assert going == {merged.id, pushed.id, parent.id, child.id}
    assert "failed" in verdicts[failed.id].reason
    assert "still active" in verdicts[running.id].reason
    assert "uncommitted changes" in verdicts[dirty.id].reason
    assert "no other branch" in verdicts[unmerged.id].reason
    assert "no other branch" in verdicts[twin_a.id].reason
    assert "no other branch" in verdicts[twin_b.id].reason
    (strangers,) = [d for d in decisions if not d.leftover.sessions]
    assert not strangers.remove
    assert "no session of this project" in strangers.reason

    said: list[str] = []
    assert remove(repo, decisions, said.append) == []
    assert len(said) == 4
    assert all(line.startswith("removed worktree .specloom/worktrees/") for line in said)
    left = {p.name for p in (repo / ".specloom" / "worktrees").iterdir()}
    assert left == {unmerged.id, failed.id, running.id, dirty.id, twin_a.id, "someone-elses"}
    for gone in (merged, pushed, parent, child):
        assert branch_of(gone) not in branches(repo)
    assert git(repo, "show", "main:merged.md") == "# merged"  # merged work is still there

    # Forced: failed, unmerged and dirty work goes; a running session's never.
    forced = decide(repo, find_leftovers(repo, sessions), force=True)
    assert {sid for sid, d in by_session(forced).items() if d.remove} == {
        unmerged.id,
        failed.id,
        dirty.id,
        twin_a.id,
        twin_b.id,
    }
    assert remove(repo, forced, said.append) == []
    left = {p.name for p in (repo / ".specloom" / "worktrees").iterdir()}
    assert left == {running.id, "someone-elses"}
    assert branch_of(running) in branches(repo)
    assert git(repo, "status", "--porcelain") == ""


def test_the_checkouts_own_branch_stays(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "api").resolve()
    done = session(COMPLETE, "context-design-session-for-api")
    git(repo, "checkout", "-q", "-b", "context-design-session-for-api")
    (decision,) = decide(repo, find_leftovers(repo, [done]))
    assert not decision.remove
    assert "your checkout is on" in decision.reason
    subprocess.run(["git", "-C", str(repo), "checkout", "-q", "main"], check=True)
    (decision,) = decide(repo, find_leftovers(repo, [done]))
    assert decision.remove, decision.reason  # no commits of its own: nothing to lose


def test_the_line_and_its_worktree_are_never_leftovers(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "api").resolve()
    line = ensure_line(repo)
    done = session(COMPLETE, "")
    tree = work(repo, done, "landed")
    # The session's work landed on the line: its branch may go, the line stays.
    git(repo, "update-ref", f"refs/heads/{line.branch}", git(tree, "rev-parse", "HEAD"))
    decisions = decide(repo, find_leftovers(repo, [done]))
    assert [d.leftover.worktree for d in decisions] == [tree]
    assert decisions[0].remove, decisions[0].reason
    assert remove(repo, decisions, lambda _: None) == []
    assert line.branch in branches(repo)
    assert (repo / WORKTREE / "README.md").is_file()
