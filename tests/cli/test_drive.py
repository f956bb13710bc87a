"""``specloom session drive``: a person carries out a manual session from the CLI.

No executor agent runs here: the person's CLI runs each command in their
repository (the same Executor an agent uses, scripted backend for the agent
steps) or reports one they did by hand.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from specloom.demo.run import create_project
from specloom.demo.script import write_script
from tests.cli.conftest import Stack


def start_manual(stack: Stack) -> str:
    started = stack.run(
        "session", "start", "ContextDesign", "--context", "Inventory", "--mode", "manual", "--json"
    )
    assert started.returncode == 0, started.stderr
    return str(json.loads(started.stdout)["id"])


@pytest.mark.slow
def test_a_person_drives_a_manual_session_to_completion(stack: Stack, tmp_path: Path) -> None:
    project, origin = tmp_path / "inventory", tmp_path / "origin.git"
    create_project(project, origin)
    script = write_script(tmp_path / "script.json")
    session_id = start_manual(stack)

    # One step by hand: the person reports an error with what went wrong.
    first = stack.run(
        "session",
        "drive",
        session_id,
        "--workspace",
        str(project),
        "--once",
        "--report",
        "error",
        "--message",
        "my git hook refused the branch",
    )
    assert first.returncode == 0, first.stderr
    assert "step 1: Initialize (git" in first.stdout  # the pending command, shown
    assert "my git hook refused the branch" in first.stdout

    # Then the rest run here, step after step, until the session completes.
    driven = stack.run(
        "session", "drive", session_id, "--workspace", str(project), "--run",
        "--backend", "scripted", "--script", str(script),
        timeout=180,
    )  # fmt: skip
    assert driven.returncode == 0, driven.stdout + driven.stderr
    assert "GenerateContextDesign (agent" in driven.stdout
    assert "prompt:" in driven.stdout
    # The persona a person driving by hand should give the agent, shown first.
    assert "  system prompt:\n    You are an expert in designing bounded contexts." in (
        driven.stdout
    )
    assert "replaying recorded edits" in driven.stdout  # the agent's transcript, streamed
    assert "is complete" in driven.stdout

    shown = json.loads(stack.run("session", "show", session_id, "--json").stdout)
    assert shown["status"] == "SESSION_STATUS_COMPLETE"
    steps = [i["step"] for i in shown["interactions"]]
    assert steps[:2] == ["Initialize", "Initialize"]  # the failed one by hand, then run
    assert shown["interactions"][0]["result"]["data"]["reported_by"] == "person"
    assert "my git hook refused the branch" in shown["interactions"][0]["result"]["error_message"]
    assert "Finalize" in steps
    branch = subprocess.run(
        [
            "git",
            "-C",
            str(project),
            "branch",
            "--list",
            f"context-design-session-for-inventory-{session_id[-8:]}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert branch.stdout.strip(), "the Initialize run here made the session's branch"

    # Driving a finished session says so; an auto session is not driven by hand.
    again = stack.run("session", "drive", session_id, "--workspace", str(project), "--run")
    assert again.returncode == 0
    assert "is complete" in again.stdout


def test_drive_refuses_bad_input_with_one_line(stack: Stack, tmp_path: Path) -> None:
    project, origin = tmp_path / "inventory", tmp_path / "origin.git"
    create_project(project, origin)
    session_id = start_manual(stack)
    bad = stack.run(
        "session", "drive", session_id, "--workspace", str(project), "--report", "maybe"
    )
    assert bad.returncode == 2
    assert "--report takes ok or error" in bad.stderr
    no_message = stack.run(
        "session", "drive", session_id, "--workspace", str(project), "--report", "error"
    )
    assert no_message.returncode == 2
    assert "--message" in no_message.stderr
    nobody = stack.run("session", "drive", session_id, "--workspace", str(project))
    assert nobody.returncode == 2
    assert "pass --run" in nobody.stderr
    auto = stack.run(
        "session", "start", "ContextDesign", "--context", "Other", "--mode", "auto", "--json"
    )
    auto_id = json.loads(auto.stdout)["id"]
    refused = stack.run("session", "drive", auto_id, "--workspace", str(project), "--run")
    assert refused.returncode == 1
    assert "is auto: connected executors run its commands" in refused.stderr
