"""``specloom up`` + ``specloom agent`` + session commands, as subprocesses.

Everything here goes through the installed ``specloom`` executable: the
server, the executor agent (scripted backend) and the client commands, the
way a person (or a script) would use them.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from specloom.demo.run import create_project
from specloom.demo.script import write_script
from specloom.workspaces import identify
from tests.cli.conftest import SPECLOOM, Stack, stop


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single error line, asserting there is no traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, "an error must say something"
    return "\n".join(lines)


@pytest.mark.slow
def test_start_watch_show_with_a_scripted_agent(stack: Stack, tmp_path: Path) -> None:
    project, origin = tmp_path / "inventory", tmp_path / "origin.git"
    create_project(project, origin)
    script = write_script(tmp_path / "script.json")
    token = (stack.data_dir / "admin.token").read_text().strip()
    token_file = tmp_path / "agent.token"
    token_file.write_text(token + "\n")
    agent_log = (tmp_path / "agent.log").open("w")
    agent = subprocess.Popen(
        [
            SPECLOOM,
            "--gateway",
            stack.address,
            "agent",
            "--token-file",
            str(token_file),
            "--workspace",
            str(project),
            "--backend",
            "scripted",
            "--script",
            str(script),
        ],
        stdout=agent_log,
        stderr=subprocess.STDOUT,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("SPECLOOM_")},
    )
    try:
        # The token is nowhere on the agent's command line (others can read it).
        assert token not in Path(f"/proc/{agent.pid}/cmdline").read_text()
        started = stack.run(
            "session", "start", "ContextDesign", "--context", "Inventory", "--json", cwd=project
        )
        assert started.returncode == 0, started.stderr
        session = json.loads(started.stdout)
        assert session["type"] == "ContextDesign"
        assert session["created"] is True
        workspace = identify(project)
        assert session["workspace"]["id"] == workspace.id, "it runs in the repository it came from"

        watched = stack.run("session", "watch", session["id"], "--json", timeout=120)
        assert watched.returncode == 0, watched.stderr
        events = [json.loads(line) for line in watched.stdout.splitlines()]
        assert "snapshot" in events[0]
        steps = {e["interaction"]["step"] for e in events if "interaction" in e}
        assert {"GenerateContextDesign", "ValidateDesign", "ReviseDesign", "Finalize"} <= steps

        shown = stack.run("session", "show", session["id"], "--json")
        assert shown.returncode == 0, shown.stderr
        history = json.loads(shown.stdout)
        assert history["status"] == "complete"
        sequence = [i["step"] for i in history["interactions"]]
        assert sequence == [
            "Initialize",
            "GenerateContextDesign",
            "ValidateDesign",
            "ReviseDesign",
            "ValidateDesign",
            "Scaffold",
            "Finalize",
        ]
        scripted = [
            i
            for i in history["interactions"]
            if i["result"].get("data", {}).get("backend") == "scripted"
        ]
        assert scripted, "replayed edits are labelled in the session record"
        # The agent steps' usage: zero, and it says why.
        assert all("no model ran" in i["result"]["usage"]["note"] for i in scripted)
        assert history["usage"]["agent_steps"] == len(scripted)  # counts are numbers in --json
        assert history["usage"]["input_tokens"] == 0

        table = stack.run("session", "show", session["id"])
        assert "ReviseDesign" in table.stdout
        assert "replayed" in table.stdout
        # The header: status, the branch and the commit Finalize made, total time.
        header = " ".join(table.stdout.split())
        assert "status: complete" in header
        assert "branch: context-design-session-for-inventory" in header
        assert f"commit: {history['state']['commit'][:12]}" in header
        assert "total: " in header
        assert "no model ran" in table.stdout
        assert f"usage, this session: {len(scripted)} agent steps, 0 input + 0 output" in (
            " ".join(table.stdout.split())
        )
        assert workspace.id in table.stdout

        executors = stack.run("executors", "--json")
        assert executors.returncode == 0, executors.stderr
        (connected,) = json.loads(executors.stdout)
        assert [w["id"] for w in connected["workspaces"]] == [workspace.id]

        listed = stack.run("session", "list", "--top-level", "--json")
        assert [s["id"] for s in json.loads(listed.stdout)] == [session["id"]]
        # Manual mode: no agent picks it up, so it is still there to cancel.
        start_manual = (
            "session",
            "start",
            "ContextDesign",
            "--context",
            "Inventory",
            "--mode",
            "manual",
            "--key",
            "k1",
            "--json",
        )
        again = stack.run(*start_manual)
        same = stack.run(*start_manual)
        assert json.loads(again.stdout)["id"] == json.loads(same.stdout)["id"]
        assert json.loads(same.stdout)["created"] is False
        cancelled = stack.run("session", "cancel", json.loads(again.stdout)["id"])
        assert cancelled.returncode == 0
        assert "cancelled" in cancelled.stdout
    finally:
        assert stop(agent) == 0, (tmp_path / "agent.log").read_text()
        agent_log.close()
    committed = subprocess.run(
        [
            "git",
            "-C",
            str(project),
            "log",
            "--format=%s",
            "-1",
            f"context-design-session-for-inventory-{session['id'][-8:]}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert committed.stdout.strip().startswith("Design")
    # The session worked in its own worktree: the person's checkout never moved.
    current = subprocess.run(
        ["git", "-C", str(project), "branch", "--show-current"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert current.stdout.strip() == "main"


@pytest.mark.slow
def test_bad_input_is_one_line_with_a_reliable_exit_code(stack: Stack, tmp_path: Path) -> None:
    unknown = stack.run("session", "start", "NoSuchType", "--context", "X")
    assert unknown.returncode == 2
    assert "unknown session type 'NoSuchType'" in one_line_error(unknown)

    missing = stack.run("session", "start", "ContextDesign")
    assert missing.returncode == 2
    assert "'context' is required" in one_line_error(missing)

    bad_token = stack.run("--token", "slm_nope_nope", "session", "list")
    assert bad_token.returncode == 4
    message = one_line_error(bad_token)
    assert "slm_nope_nope" not in message, "tokens are never echoed"

    nowhere = stack.run("--gateway", "127.0.0.1:9", "session", "list")
    assert nowhere.returncode == 5
    assert "cannot reach the specloom gateway" in one_line_error(nowhere)

    not_found = stack.run("session", "show", "00000000-0000-7000-8000-000000000000")
    assert not_found.returncode == 3
    one_line_error(not_found)

    not_a_repo = tmp_path / "plain"
    not_a_repo.mkdir()
    agent = stack.run("agent", "--workspace", str(not_a_repo), "--backend", "scripted")
    assert agent.returncode == 2
    assert "not a git repository" in one_line_error(agent)

    # Issue 12, finding 7: a token on the agent's command line is visible to every
    # user of the machine for as long as it runs, so the agent refuses one.
    repo = tmp_path / "repo"
    create_project(repo, tmp_path / "origin.git")
    on_argv = stack.run(
        "--token", "slm_secret_token", "agent", "--workspace", str(repo), "--backend", "scripted"
    )
    assert on_argv.returncode == 2
    refusal = one_line_error(on_argv)
    assert "visible to every user" in refusal
    assert "--token-file" in refusal
    assert "slm_secret_token" not in refusal

    debug = stack.run("--debug", "session", "show", "00000000-0000-7000-8000-000000000000")
    assert debug.returncode == 3
    assert "Traceback" in debug.stderr, "--debug shows the traceback"
