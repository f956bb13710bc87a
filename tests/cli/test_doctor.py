"""``specloom doctor`` on a fresh machine and a ready one, and the agent's own pre-flight.

A "fresh machine" is an environment with an empty HOME, no git identity, a
PATH without the claude CLI or a Python, no token and a folder that is not a
repository. A "ready" one has all of it: the real claude CLI (from
node_modules) and the anthropic SDK pointed at the local stand-in API, the
key the stand-in accepts, a running ``specloom up``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from specloom.agent.doctor import Status
from specloom.cli._doctor import skew_check
from tests.agent.anthropic_standin import StandinAPI, serve_standin
from tests.agent.test_claude_code import claude_cli
from tests.cli.conftest import SPECLOOM, Stack

needs_cli = pytest.mark.skipif(claude_cli() is None, reason="the claude CLI is not installed")


@pytest.fixture
def api() -> Iterator[StandinAPI]:
    with serve_standin() as server:
        server.valid_keys = {"sk-good"}
        yield server


def fresh_env(home: Path) -> dict[str, str]:
    """No identity, no token, no tools beyond the base system."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "HOME": str(home),
        "PATH": "/usr/bin:/bin",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
        "LANG": "C.UTF-8",
    }


def ready_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    for args in (
        ["init", "-q", "-b", "main"],
        ["config", "user.name", "Ready Person"],
        ["config", "user.email", "ready@example.invalid"],
    ):
        subprocess.run(["git", "-C", str(path), *args], check=True)
    (path / "README.md").write_text("# ready\n")
    subprocess.run(["git", "-C", str(path), "add", "."], check=True)
    subprocess.run(["git", "-C", str(path), "commit", "-q", "-m", "initial"], check=True)
    return path


def doctor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SPECLOOM, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def test_a_fresh_machine_lists_what_is_missing_with_fixes(tmp_path: Path) -> None:
    env = fresh_env(tmp_path / "home")
    folder = tmp_path / "project"
    folder.mkdir()
    done = doctor(
        env,
        "--gateway",
        "127.0.0.1:9",
        "doctor",
        "--workspace",
        str(folder),
        "--backend",
        "claude-code",
        "--backend",
        "anthropic",
    )
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    failing = {line.split(":")[0] for line in lines if line.startswith("[fail]")}
    assert failing == {
        "[fail] workspace",
        "[fail] git identity",
        "[fail] test runner (python)",
        "[fail] claude CLI",
        "[fail] Anthropic API key",
        "[fail] server",
    }, done.stdout
    assert all("— fix: " in line for line in lines if line.startswith("[fail]"))
    assert "git config --global user.name" in done.stdout
    assert "npm install -g @anthropic-ai/claude-code" in done.stdout
    assert "export ANTHROPIC_API_KEY" in done.stdout
    assert "run `git init` there" in done.stdout
    assert "6 thing(s) to fix" in done.stdout


@needs_cli
def test_a_ready_machine_exits_zero(stack: Stack, api: StandinAPI, tmp_path: Path) -> None:
    cli = claude_cli()
    assert cli is not None
    repo = ready_repo(tmp_path / "project")
    env = {
        **fresh_env(tmp_path / "home"),
        # The venv's python (with pytest) and the claude CLI on PATH.
        "PATH": f"{Path(sys.executable).parent}:{Path(cli).parent}:/usr/bin:/bin",
        "ANTHROPIC_BASE_URL": api.base_url,
        "ANTHROPIC_API_KEY": "sk-good",
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    subprocess.run(["git", "config", "--global", "user.name", "Ready Person"], env=env, check=True)
    subprocess.run(
        ["git", "config", "--global", "user.email", "ready@example.invalid"], env=env, check=True
    )
    base = ["--gateway", stack.address, "--data-dir", str(stack.data_dir)]
    args = [*base, "doctor", "--workspace", str(repo), "--backend", "claude-code"]
    done = doctor(env, *args, "--backend", "anthropic")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[fail]" not in done.stdout
    assert "[ok] claude login: logged in (api_key)" in done.stdout
    assert "[ok] Anthropic API key: the API accepted the key" in done.stdout
    assert "[ok] server:" in done.stdout
    assert "[ok] clock:" in done.stdout
    assert done.stdout.rstrip().endswith("ready")
    assert "/v1/models?limit=1" in api.paths  # the free call, not a model call
    assert not any(path.startswith("/v1/messages") for path in api.paths)

    # A key the API refuses is named as such.
    env["ANTHROPIC_API_KEY"] = "sk-revoked"
    refused = doctor(env, *args)
    assert refused.returncode == 1
    assert "[fail] Anthropic API key: the API refused the key (401: invalid x-api-key)" in (
        refused.stdout
    )


@needs_cli
def test_the_agent_refuses_to_start_with_the_doctors_messages(
    stack: Stack, api: StandinAPI, tmp_path: Path
) -> None:
    cli = claude_cli()
    assert cli is not None
    repo = ready_repo(tmp_path / "project")
    env = {**fresh_env(tmp_path / "home"), "ANTHROPIC_BASE_URL": api.base_url}
    base = ["--gateway", stack.address, "--data-dir", str(stack.data_dir)]
    not_logged_in = doctor(
        env, *base, "agent", "--workspace", str(repo), "--backend", "claude-code", "--claude", cli
    )
    assert not_logged_in.returncode == 1
    assert "the agent cannot start" in not_logged_in.stderr
    assert "[fail] claude login: the claude CLI is not logged in — fix: run `claude` once" in (
        not_logged_in.stderr
    )
    bad_key = doctor(
        {**env, "ANTHROPIC_API_KEY": "sk-revoked"},
        *base,
        "agent",
        "--workspace",
        str(repo),
        "--backend",
        "anthropic",
    )
    assert bad_key.returncode == 1
    assert "the API refused the key" in bad_key.stderr


def test_clock_skew_is_measured_against_the_round_trip() -> None:
    in_step = skew_check(sent=100.0, received=100.2, server=100.1)
    assert in_step.status is Status.OK
    assert "+0.0 s" in in_step.detail
    behind = skew_check(sent=100.0, received=100.2, server=60.0)
    assert behind.status is Status.FAIL
    assert "-40.1 s" in behind.detail
    assert "timedatectl set-ntp true" in behind.fix
    # A slow round trip widens what counts as "in step".
    slow = skew_check(sent=100.0, received=130.0, server=125.0)
    assert slow.status is Status.OK
