"""Fixtures for the executor agent tests: real git repositories in tmp dirs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from specloom.agent.executor import Executor, ExecutorOptions
from specloom.agent.workspace import Workspace


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` (test helper; argv, no shell)."""
    done = subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    )
    return done.stdout


def init_repo(path: Path) -> Path:
    """A repository with one commit on ``main`` and an identity configured."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test Person")
    git(path, "config", "user.email", "test@example.invalid")
    (path / "README.md").write_text("# project\n")
    (path / "src").mkdir()
    (path / "src" / "app.py").write_text("print('app')\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "initial")
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A fresh git repository (the workspace root)."""
    return init_repo(tmp_path / "work")


@pytest.fixture
def workspace(repo: Path) -> Workspace:
    """The workspace over ``repo``, housekeeping prepared."""
    ws = Workspace(repo)
    ws.prepare()
    return ws


@pytest.fixture
def executor(workspace: Workspace) -> Executor:
    """An executor without agent backends and short kill grace."""
    return Executor(workspace, options=ExecutorOptions(kill_grace=0.5))
