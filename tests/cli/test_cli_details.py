"""What a new user meets at the command line: statuses, the show header, a
step's full output, token listing, hints that name the data directory,
parameters checked at start, JSON in the CLI's own words."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
from pathlib import Path

from specloom.v1 import common_pb2 as pb
from specloom.v1 import gateway_pb2 as gpb
from tests.cli.conftest import Stack
from tests.reliability.executors import HandExecutor, result_for


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def _start_manual(stack: Stack) -> str:
    started = _ok(
        stack.run("session", "start", "ContextDesign", "--context", "Inventory", "--mode", "manual")
    )
    # The status is printed (it used to vanish: "[active]" read as console markup).
    assert "[active]" in " ".join(started.split()), started
    listed = json.loads(_ok(stack.run("session", "list", "--json")))
    return str(listed[0]["id"])


def test_steering_prints_the_status_and_show_has_a_header(stack: Stack) -> None:
    session_id = _start_manual(stack)
    paused = " ".join(_ok(stack.run("session", "pause", session_id, "--reason", "lunch")).split())
    assert "[paused] — lunch" in paused, paused
    resumed = " ".join(_ok(stack.run("session", "resume", session_id)).split())
    assert "[active]" in resumed, resumed
    shown = _ok(stack.run("session", "show", session_id))
    header = " ".join(shown.split())
    assert "status: active" in header, shown
    assert "branch: context-design-session-for-inventory" in header, shown
    assert "commit: -" in header, shown
    assert "total: " in header and " so far" in header, shown  # noqa: PT018
    cancelled = " ".join(_ok(stack.run("session", "cancel", session_id)).split())
    assert "[cancelled]" in cancelled, cancelled
    finished = " ".join(_ok(stack.run("session", "show", session_id)).split())
    assert "status: cancelled" in finished
    assert " so far" not in finished  # finished: the total is fixed


def test_json_speaks_the_words_the_options_take(stack: Stack) -> None:
    session_id = _start_manual(stack)
    _ok(stack.run("session", "cancel", session_id))
    listed = json.loads(_ok(stack.run("session", "list", "--status", "cancelled", "--json")))
    [session] = listed
    assert session["status"] == "cancelled"  # what --status takes, not SESSION_STATUS_…
    assert session["execution_mode"] == "manual"  # what --mode takes
    assert session["interaction_count"] == 1  # a number, not "1"
    assert isinstance(session["version"], int)
    again = json.loads(_ok(stack.run("session", "list", "--status", session["status"], "--json")))
    assert [s["id"] for s in again] == [session_id]
    shown = json.loads(_ok(stack.run("session", "show", session_id, "--json")))
    step = shown["interactions"][0]
    assert step["status"] == "abandoned"
    assert step["seq"] == 1


def test_unknown_profile_is_refused_at_start(stack: Stack) -> None:
    refused = stack.run(
        "session", "start", "ContextDesign", "--context", "Inventory", "--profile", "ruby"
    )
    assert refused.returncode == 2
    assert "unknown profile 'ruby'; use one of: python, elixir" in refused.stderr
    assert json.loads(_ok(stack.run("session", "list", "--json"))) == []


def test_no_token_hints_name_the_data_dir_given_once(stack: Stack, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    for args in (("session", "list"), ("whoami",)):
        done = subprocess.run(
            [*_cli(stack, elsewhere), *args], capture_output=True, text=True, check=False
        )
        assert done.returncode == 4
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, done.stderr
        assert str(elsewhere / "admin.token") in lines[0]
        assert ".local/share" not in lines[0]
        assert lines[0].count("admin.token") == 1
    bad = subprocess.run(
        [*_cli(stack, elsewhere), "--token", "slm_nothing_real", "session", "list"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 4
    assert "the token is not valid" in bad.stderr
    assert bad.stderr.count("admin.token") == 1


def _cli(stack: Stack, data_dir: Path) -> list[str]:
    from tests.cli.conftest import SPECLOOM

    return [SPECLOOM, "--gateway", stack.address, "--data-dir", str(data_dir)]


def test_token_list_shows_ids_names_and_state(stack: Stack) -> None:
    made = json.loads(
        _ok(
            stack.run(
                "token",
                "create",
                "--account",
                "local",
                "--project",
                "default",
                "--user",
                "ci",
                "--name",
                "ci box",
                "--json",
            )
        )
    )
    token_id = made["info"]["id"]
    listed = json.loads(_ok(stack.run("token", "list", "--json")))
    mine = next(t for t in listed if t["id"] == token_id)
    assert mine["name"] == "ci box"
    assert mine["admin"] is False
    assert all("token" not in t for t in listed)  # descriptions only, never secrets
    table = _ok(stack.run("token", "list"))
    assert token_id in "".join(table.split())  # the whole id, to copy into `token revoke`
    _ok(stack.run("token", "revoke", token_id))
    assert token_id not in {t["id"] for t in json.loads(_ok(stack.run("token", "list", "--json")))}
    everything = json.loads(_ok(stack.run("token", "list", "--all", "--json")))
    assert "revoked_at" in next(t for t in everything if t["id"] == token_id)


async def _run_a_step_with_output(stack: Stack) -> tuple[str, bytes]:
    token = (stack.data_dir / "admin.token").read_text().strip()
    executor = HandExecutor(stack.address, token, "hand", heartbeats=True)
    await executor.connect()
    try:
        first = executor.next("assignment")
        started = subprocess.run(
            [*_cli(stack, stack.data_dir), "session", "start", "ContextDesign", "--context", "Inv"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert started.returncode == 0
        taken = (await first).assignment
        sent = b"".join(f"line {n}: \u2713 ok\n".encode() for n in range(3000))
        for start in range(0, len(sent), 4096):
            executor.send(
                gpb.ConnectRequest(
                    output=gpb.CommandOutput(
                        session_id=taken.session.id,
                        interaction_id=taken.interaction.id,
                        lease_epoch=taken.interaction.lease.epoch,
                        stream=pb.OUTPUT_STREAM_STDOUT,
                        data=sent[start : start + 4096],
                    )
                )
            )
        executor.send(result_for(taken, "done"))
        assert (await executor.next("ack")).ack.accepted
    finally:
        await executor.close()
    return taken.session.id, sent


def test_session_output_prints_a_past_step_whole(stack: Stack) -> None:
    session_id, sent = asyncio.run(_run_a_step_with_output(stack))
    one = subprocess.run(
        [*_cli(stack, stack.data_dir), "session", "output", session_id, "--step", "1"],
        capture_output=True,
        check=True,
    )
    assert one.stdout == sent  # byte for byte: more than one page of output
    everything = subprocess.run(
        [*_cli(stack, stack.data_dir), "session", "output", session_id],
        capture_output=True,
        check=True,
    )
    assert everything.stdout.startswith(b"==> #1 Initialize <==\n" + sent)
    lines = _ok(stack.run("session", "output", session_id, "--step", "1", "--json"))
    chunks = [json.loads(line) for line in lines.splitlines()]
    # "data" is the bytes (base64, as protobuf's JSON has them); "text" for reading.
    assert b"".join(base64.b64decode(c["data"]) for c in chunks) == sent
    assert "line 2999" in chunks[-1]["text"]
    assert {c["step"] for c in chunks} == {"Initialize"}
    missing = stack.run("session", "output", session_id, "--step", "9")
    assert missing.returncode == 3
    assert "has no step #9" in missing.stderr
