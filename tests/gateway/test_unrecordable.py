"""Writes that can never succeed fail their session with the reason; nothing runs again.

A write refused for its size is refused every time it is sent. Before, the
executor's result was refused, the executor dropped it, the lease lapsed and
the command ran again — forever, with the session ACTIVE and no reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from specloom.errors import ResourceExhausted
from specloom.rpc.server import MAX_MESSAGE_BYTES
from specloom.v1 import common_pb2 as pb
from tests.fixtures.sessions_server import StartSessions
from tests.gateway.conftest import (
    MAKEFILE,
    TOY,
    Stack,
    eventually,
    host_gateway,
    host_orchestrator,
    make_repo,
)
from tests.reliability.executors import HandExecutor, result_for

MIB = 1024 * 1024


async def _failed(stack: Stack, token: str, session_id: str) -> pb.Session:
    client = stack.client(token)

    async def stopped() -> bool:
        session = await client.get_session(session_id, view=pb.INTERACTION_VIEW_NONE)
        return session.status != pb.SESSION_STATUS_ACTIVE

    await eventually(stopped, timeout=30)
    return await client.get_session(session_id)


async def test_a_fan_out_too_large_for_one_write_fails_the_parent_with_the_reason(
    stack: Stack, tmp_path: Path
) -> None:
    token = await stack.token()
    repo = make_repo(tmp_path / "repo")
    await stack.agent(token, repo, "laptop")
    client = stack.client(token)
    # Each child's params are under the 1 MiB Struct cap; twenty copies
    # together are more than one write may carry (more than a message, even).
    payload = "u" * (9 * MIB // 10)
    parts = [f"p{i}" for i in range(20)]
    started = await client.start_session(
        "Tree", {"parts": parts, "payload": payload}, mode="agentic"
    )
    session = await _failed(stack, token, started.session.id)
    assert session.status == pb.SESSION_STATUS_FAILED
    assert session.status_reason.startswith("Spawn cannot start: the write is "), (
        session.status_reason
    )
    assert "bytes; one write carries at most 10485760 bytes" in session.status_reason
    # The step before was recorded once, with its own result, and not run again.
    assert [(i.step, i.status) for i in session.interactions] == [
        ("Prepare", pb.INTERACTION_STATUS_COMPLETED)
    ]
    assert session.interactions[0].result.status == pb.RESULT_STATUS_OK
    await asyncio.sleep(2)
    handed = [a for _, _, a in stack.assignments() if a.session.id == started.session.id]
    assert [(a.interaction.step, a.interaction.lease.epoch) for a in handed] == [("Prepare", 1)]
    assert [ack.accepted for _, ack in stack.acks()] == [True]
    assert not await client.children(started.session.id)
    # A resume plans the same write and is refused with the same reason.
    with pytest.raises(ResourceExhausted, match="one write carries at most 10485760 bytes"):
        await client.resume(started.session.id)
    assert (await client.get_session(started.session.id)).status == pb.SESSION_STATUS_FAILED


@pytest.fixture
async def small_results(start_sessions_service: StartSessions) -> AsyncIterator[Stack]:
    """The toy stack over a Sessions that stores results of at most 4 KiB."""
    sessions = await start_sessions_service(sessions_max_result_bytes=4096)
    orchestrator = await host_orchestrator(sessions, TOY)
    gateway = await host_gateway(sessions, [orchestrator])
    stack = Stack(sessions, gateway, [orchestrator])
    yield stack
    await stack.close()


CHATTY = MAKEFILE.replace(
    "compile:\n\t@echo compiled\n",
    "compile:\n\t@for i in $$(seq 1 400); do echo 'a line of compiler chatter'; done\n",
)


async def test_an_executor_result_too_large_to_store_fails_the_session_and_runs_once(
    small_results: Stack, tmp_path: Path
) -> None:
    stack = small_results
    token = await stack.token()
    repo = make_repo(tmp_path / "repo", {"Makefile": CHATTY})
    await stack.agent(token, repo, "laptop")
    client = stack.client(token)
    # The real agent keeps 64 KiB of each stream's tail in the result: 10 KB
    # of chatter makes a result over the 4 KiB this Sessions stores.
    started = await client.start_session("Build", {}, mode="agentic")
    session = await _failed(stack, token, started.session.id)
    assert session.status == pb.SESSION_STATUS_FAILED
    reason = session.status_reason
    assert reason.startswith("Compile failed: its result could not be recorded: "), reason
    assert "the cap is 4096 bytes" in reason, reason
    [compiled] = session.interactions
    assert compiled.status == pb.INTERACTION_STATUS_COMPLETED
    assert compiled.result.status == pb.RESULT_STATUS_ERROR
    assert compiled.result.error_message == reason.removeprefix("Compile failed: ")
    assert not compiled.result.stdout  # the stand-in, not the oversize report
    # The whole output is still there, streamed beside the result.
    chunks, _ = await client.read_output(started.session.id, compiled.id)
    assert b"".join(c.data for c in chunks).count(b"compiler chatter") == 400
    # The executor's report was answered (accepted), so the command ran once.
    await asyncio.sleep(2)
    handed = [a for _, _, a in stack.assignments() if a.session.id == started.session.id]
    assert [(a.interaction.step, a.interaction.lease.epoch) for a in handed] == [("Compile", 1)]
    assert [ack.accepted for _, ack in stack.acks()] == [True]


async def test_a_result_whose_report_would_not_fit_in_a_message_is_kept_in_brief(
    stack: Stack,
) -> None:
    token = await stack.token()
    executor = HandExecutor(stack.address, token, "big-mouth", heartbeats=True)
    await executor.connect()
    try:
        client = stack.client(token)
        started = await client.start_session("Build", {}, mode="agentic")
        taken = (await executor.next("assignment")).assignment
        # Within the message cap as the executor sends it; the report around
        # it (scope, executor id, capabilities) would not be.
        message = result_for(taken, "")
        message.result.result.stdout = "z" * (MAX_MESSAGE_BYTES - 20 - message.ByteSize())
        assert MAX_MESSAGE_BYTES - 40 < message.ByteSize() <= MAX_MESSAGE_BYTES
        executor.send(message)
        ack = (await executor.next("ack")).ack
        assert ack.accepted, ack
        session = await client.get_session(started.session.id)
        first = session.interactions[0]
        assert first.status == pb.INTERACTION_STATUS_COMPLETED
        assert first.result.status == pb.RESULT_STATUS_ERROR
        assert first.result.error_message.startswith("the executor's result was 167"), (
            first.result.error_message
        )
        assert "more than a message carries (16777216 bytes)" in first.result.error_message
        assert first.result.output_truncated
        assert not first.result.stdout
    finally:
        await executor.close()
