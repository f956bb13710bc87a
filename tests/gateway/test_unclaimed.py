"""Waiting for an executor is visible and bounded: a command nobody can run pauses its session."""

from __future__ import annotations

from pathlib import Path

from specloom.v1 import common_pb2 as pb
from specloom.workspaces import identify, label
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
    assert session.status_reason.startswith(
        "waiting for an executor with the 'shell' capability: nothing claimed Compile"
    ), session.status_reason
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


async def test_a_session_waits_visibly_for_its_own_workspace_then_pauses(
    start_stack: StartStack, tmp_path: Path
) -> None:
    """Issue 12, finding 1: a step never moves to another clone. With only an agent of
    another workspace connected, the session says what it waits for, pauses with that
    reason, and runs in its own workspace once an agent there connects."""
    stack = await start_stack(executor_wait_timeout_seconds=2)
    token = await stack.token()
    client = stack.client(token)
    mine = make_repo(tmp_path / "api")
    other = make_repo(tmp_path / "api-other-clone")
    workspace = identify(mine)
    assert identify(other).id != workspace.id, "two clones are two workspaces"
    await stack.agent(token, other, "other-clone")

    started = await client.start_session("Build", {}, mode="agentic", workspace=workspace)
    session_id = started.session.id
    assert started.session.workspace == workspace
    waiting = await client.get_session(session_id, view=pb.INTERACTION_VIEW_NONE)
    assert waiting.status == pb.SESSION_STATUS_ACTIVE
    assert waiting.waiting_for == f"an executor of workspace {label(workspace)}"
    (listed,) = (await client.list_sessions())[0]
    assert listed.waiting_for == waiting.waiting_for

    async def paused() -> bool:
        session = await client.get_session(session_id, view=pb.INTERACTION_VIEW_NONE)
        return session.status == pb.SESSION_STATUS_PAUSED

    await eventually(paused, timeout=20)
    session = await client.get_session(session_id)
    assert session.status_reason.startswith(
        f"waiting for an executor of workspace {label(workspace)}"
    ), session.status_reason
    assert stack.assignments() == [], "the other clone never ran anything of it"

    await stack.agent(token, mine, "mine")
    await client.resume(session_id, "my agent runs now")

    async def complete() -> bool:
        session = await client.get_session(session_id, view=pb.INTERACTION_VIEW_NONE)
        return session.status == pb.SESSION_STATUS_COMPLETE

    await eventually(complete, timeout=30)
    assert {agent for agent, _, _ in stack.assignments()} == {"mine"}
    final = await client.get_session(session_id, view=pb.INTERACTION_VIEW_NONE)
    assert final.waiting_for == ""
    assert final.workspace == workspace
