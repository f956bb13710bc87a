"""Issue 12, finding 7: no child process of the executor sees a ``SPECLOOM_*`` variable.

The token is in the executor's own environment (``SPECLOOM_TOKEN`` or
``SPECLOOM_AGENT_TOKEN``). Every program it starts — a command, git for its
git operations, a pull-request command — is started here for real, with a
``git`` first on PATH that writes down the environment it was given before
it runs the real git.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from specloom.agent.executor import Executor, ExecutorOptions
from specloom.agent.gitops import GitSettings
from specloom.agent.workspace import Workspace
from specloom.v1 import common_pb2 as pb
from specloom.workflow import commands as c

from .conftest import git

SECRET = "slm_0123_the-executors-own-token"


def _recording_git(bin_dir: Path, log: Path) -> None:
    real = shutil.which("git")
    assert real is not None
    bin_dir.mkdir()
    wrapper = bin_dir / "git"
    wrapper.write_text(
        f'#!/bin/sh\n{{ echo "git $1"; env | grep "^SPECLOOM" ; }} >> "{log}"\nexec "{real}" "$@"\n'
    )
    wrapper.chmod(0o755)


async def test_no_command_git_or_pull_request_sees_the_token(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(repo, "remote", "add", "origin", str(origin))
    workspace = Workspace(repo)
    workspace.prepare()
    log = tmp_path / "git-environments.log"
    _recording_git(tmp_path / "bin", log)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SPECLOOM_TOKEN", SECRET)
    monkeypatch.setenv("SPECLOOM_AGENT_TOKEN", SECRET)
    printed = tmp_path / "pr-environment.txt"
    executor = Executor(
        workspace,
        options=ExecutorOptions(
            kill_grace=0.5,
            git=GitSettings(pull_request_command=("sh", "-c", f"env > {printed}", "{title}")),
        ),
    )

    shown = await executor.execute(c.shell("Env", ["env"]))
    assert shown.status == pb.RESULT_STATUS_OK, shown.error_message
    assert "PATH=" in shown.stdout
    assert "SPECLOOM" not in shown.stdout
    # A command's own variables named like ours are not passed on either.
    named = await executor.execute(c.shell("Env", ["env"], env={"SPECLOOM_TOKEN": "x", "OK": "1"}))
    assert "OK=1" in named.stdout
    assert "SPECLOOM" not in named.stdout

    (repo / "notes.md").write_text("notes\n")
    operations = [
        c.create_branch("feature"),
        c.commit(["notes.md"], "notes"),
        c.push("feature"),
        c.pull_request("Notes", "body", "feature", "main"),
    ]
    done = await executor.execute(c.git("Finalize", operations))
    assert done.status == pb.RESULT_STATUS_OK, done.error_message

    recorded = log.read_text()
    invocations = [line for line in recorded.splitlines() if line.startswith("git ")]
    assert len(invocations) >= 5, recorded  # the wrapper really ran git's calls
    assert "SPECLOOM" not in recorded
    assert printed.exists()
    assert "SPECLOOM" not in printed.read_text()
