"""The line and its detached worktree, on real repositories."""

from __future__ import annotations

from pathlib import Path

import pytest

from specloom.line import WORKTREE, LineError, default_line, ensure_line, scan_cache_path
from tests.workspaces.test_identity import git, make_repo


def _land(repo: Path, line: str, path: str, content: str) -> str:
    """What landing does: a commit on the line made without checking it out."""
    scratch = repo.parent / f"scratch-{path.replace('/', '-')}"
    git(repo, "worktree", "add", "-q", "--detach", str(scratch), line)
    (scratch / path).parent.mkdir(parents=True, exist_ok=True)
    (scratch / path).write_text(content)
    git(scratch, "add", path)
    git(scratch, "commit", "-q", "-m", f"land {path}")
    new = git(scratch, "rev-parse", "HEAD")
    git(repo, "update-ref", f"refs/heads/{line}", new)
    git(repo, "worktree", "remove", "--force", str(scratch))
    return new


def test_the_line_is_made_at_head_with_a_detached_worktree(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "api")
    head = git(repo, "rev-parse", "HEAD")
    assert default_line(repo) == "specloom/main"
    line = ensure_line(repo)
    assert line.created
    assert line.branch == "specloom/main"
    assert line.tip == line.at == head
    assert line.worktree == repo / WORKTREE
    assert git(line.worktree, "rev-parse", "HEAD") == head
    assert git(line.worktree, "branch", "--show-current") == ""  # detached
    assert (line.worktree / "README.md").read_text() == "# api\n"
    # The person's checkout: same branch, nothing new to commit.
    assert git(repo, "branch", "--show-current") == "main"
    assert git(repo, "status", "--porcelain") == ""
    # The cache lives in the common git directory, from either checkout.
    assert scan_cache_path(repo) == scan_cache_path(line.worktree)
    assert scan_cache_path(repo) == (repo / ".git" / "specloom" / "scan-cache.json").resolve()

    again = ensure_line(repo)
    assert not again.created
    assert again.at == head


def test_a_clean_worktree_follows_the_line_and_a_dirty_one_stays(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "api")
    line = ensure_line(repo)
    landed = _land(repo, line.branch, "src/a.py", "A = 1\n")
    moved = ensure_line(repo)
    assert moved.tip == moved.at == landed
    assert (moved.worktree / "src/a.py").read_text() == "A = 1\n"
    assert not moved.dirty

    # A person deletes a file in the line's worktree: it stays deleted.
    (moved.worktree / "src/a.py").unlink()
    later = _land(repo, line.branch, "src/b.py", "B = 2\n")
    kept = ensure_line(repo)
    assert kept.dirty
    assert kept.at == landed
    assert kept.tip == later
    assert "changes of its own" in kept.note
    assert not (kept.worktree / "src/a.py").exists()
    # Undone, it catches up.
    git(kept.worktree, "checkout", "--", "src/a.py")
    assert ensure_line(repo).at == later


def test_a_named_line_and_the_refusals(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "api")
    line = ensure_line(repo, "release/line")
    assert line.branch == "release/line"
    assert git(repo, "rev-parse", "release/line") == git(repo, "rev-parse", "HEAD")
    with pytest.raises(LineError, match="not a valid branch name"):
        ensure_line(repo, "bad..name")
    git(repo, "checkout", "-q", "--detach")
    with pytest.raises(LineError, match="detached HEAD"):
        default_line(repo)
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q", "-b", "main")
    with pytest.raises(LineError, match="no commit yet"):
        ensure_line(empty)
