"""Workspace identity on real repositories: one id per clone, kept in the clone, out of git."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from specloom.workspaces import (
    NotARepository,
    identify,
    is_workspace_id,
    label,
    repository_root,
    strip_credentials,
)


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test Person")
    git(path, "config", "user.email", "test@example.invalid")
    (path / "README.md").write_text("# api\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "initial")
    return path


def test_a_checkout_gets_an_identity_it_keeps(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "api")
    first = identify(repo)
    assert is_workspace_id(first.id)
    assert first.name == "api"
    assert first.root_commit == git(repo, "rev-list", "--max-parents=0", "HEAD")
    assert identify(repo / ".") == first
    stored = json.loads((repo / ".specloom" / "workspace.json").read_text())
    assert stored == {"id": first.id, "name": "api"}
    assert label(first) == f"api ({first.id})"
    # Out of git: the checkout stays clean, no commit can pick it up.
    assert git(repo, "status", "--porcelain") == ""


def test_two_clones_are_two_workspaces_and_a_worktree_is_its_checkouts(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "api")
    clone = tmp_path / "api-clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    mine, theirs = identify(repo), identify(clone)
    assert mine.id != theirs.id
    assert mine.root_commit == theirs.root_commit, "the same repository"
    assert theirs.remote == str(repo)

    # A session's worktree inside the checkout is that checkout's workspace.
    worktree = repo / ".specloom" / "worktrees" / "s-1"
    git(repo, "worktree", "add", "-q", "-b", "session-branch", str(worktree))
    assert repository_root(worktree) == repo.resolve()
    assert identify(worktree).id == mine.id


def test_meeting_an_unidentified_checkout_at_once_gives_one_identity(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "api")
    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(lambda _: identify(repo).id, range(16)))
    assert len(ids) == 1


def test_an_empty_repository_and_credentials_in_the_remote(tmp_path: Path) -> None:
    repo = tmp_path / "empty"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "remote", "add", "origin", "https://bot:ghp_secret@github.example/acme/api.git")
    ref = identify(repo)
    assert ref.root_commit == ""
    assert ref.remote == "https://github.example/acme/api.git"
    assert strip_credentials("git@github.example:acme/api.git") == "git@github.example:acme/api.git"
    assert strip_credentials("ssh://git:pw@host:2222/x") == "ssh://host:2222/x"


def test_outside_a_repository_or_with_a_broken_identity_it_says_so(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(NotARepository, match="not inside a git repository"):
        identify(plain)
    repo = make_repo(tmp_path / "api")
    (repo / ".specloom").mkdir()
    (repo / ".specloom" / "workspace.json").write_text('{"id": "../../etc"}')
    with pytest.raises(NotARepository, match="is not a workspace identity"):
        identify(repo)
