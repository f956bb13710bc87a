"""Waiting for an executor is bounded: a command nobody can run pauses its session."""

from __future__ import annotations

from pathlib import Path

from specloom.v1 import common_pb2 as pb
from tests.gateway.conftest import StartStack, eventually, make_repo


async def test_a_command_no_executor_claims_pauses_its_session_until_resumed(
    start_stack: StartStack, tmp_path: Path
) -> None:
    stack = await start_stack(executor_wait_timeout_seconds=1)
    token = await stack.token()
    client = stack.client(token)
    # Nothing is connected: the first command (shell) waits for an executor.
    started = await client.start_session("Build", {}, mode="agentic")
    session_id = started.session.id

    async def paused() -> bool:
        session = await client.get_session(session_id, view=pb.INTERACTION_VIEW_NONE)
        return session.status == pb.SESSION_STATUS_PAUSED

    await eventually(paused, timeout=20)
    session = await client.get_session(session_id)
    assert "no executor claimed Compile" in session.status_reason
    assert "'shell'" in session.status_reason, "the reason names the capability needed"
    assert session.interactions[0].status == pb.INTERACTION_STATUS_PENDING, "nothing is lost"

    # A capable executor arrives; a person resumes; the same command runs.
    await stack.agent(token, make_repo(tmp_path / "repo"), "late")
    await client.resume(session_id, "an executor is connected now")

    async def complete() -> bool:
        session = await client.get_session(session_id, view=pb.INTERACTION_VIEW_NONE)
        return session.status == pb.SESSION_STATUS_COMPLETE

    await eventually(complete, timeout=30)
    history = await client.get_session(session_id)
    assert history.interactions[0].id == session.interactions[0].id
    assert history.interactions[0].status == pb.INTERACTION_STATUS_COMPLETED
