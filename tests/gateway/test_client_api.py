"""The client API end to end: manual sessions, steering, watch, routing, tokens."""

from __future__ import annotations

import asyncio

import pytest

from specloom.errors import FailedPrecondition, InvalidArgument, NotFound
from specloom.orchestration.simulate import report
from specloom.v1 import common_pb2 as pb
from specloom.v1 import orchestrator_pb2 as opb
from specloom_coding.service import SERVICE as CODING
from tests.gateway.conftest import TOY, Stack, StartStack, eventually


async def _next(client: object, session_id: str) -> pb.Interaction:
    from specloom.client import Client

    assert isinstance(client, Client)
    nxt = await client.next_command(session_id)
    assert isinstance(nxt, pb.Interaction), nxt
    return nxt


async def test_a_manual_session_runs_to_completion_and_watch_sees_every_step(
    stack: Stack,
) -> None:
    client = stack.client(await stack.token())
    started = await client.start_session("Build", {}, mode="manual", idempotency_key="k1")
    assert started.created
    session_id = started.session.id
    again = await client.start_session("Build", {}, mode="manual", idempotency_key="k1")
    assert not again.created
    assert again.session.id == session_id

    events: list[pb.SessionEvent] = []

    async def watch() -> None:
        async for event in client.watch(session_id):
            events.append(event)

    def completed_steps() -> list[str]:
        return [
            e.interaction.step
            for e in events
            if e.WhichOneof("event") == "interaction"
            and e.interaction.status == pb.INTERACTION_STATUS_COMPLETED
        ]

    watcher = asyncio.create_task(watch())
    steps = []
    for _ in range(2):
        interaction = await _next(client, session_id)
        steps.append(interaction.step)
        # The command is idempotent until a result arrives.
        assert (await _next(client, session_id)).id == interaction.id
        await client.submit_result(session_id, interaction.id, report("ok"))
    assert steps == ["Compile", "Test"]
    done = await client.next_command(session_id)
    assert isinstance(done, opb.Done)
    assert done.status == pb.SESSION_STATUS_COMPLETE
    session = await client.get_session(session_id)
    assert session.status == pb.SESSION_STATUS_COMPLETE

    async def watched_all() -> bool:
        return completed_steps() == ["Compile", "Test"]

    await eventually(watched_all, timeout=10)
    watcher.cancel()
    assert events[0].WhichOneof("event") == "snapshot"
    assert [i.step for i in session.interactions] == ["Compile", "Test"]
    assert any(
        e.WhichOneof("event") == "session" and e.session.status == pb.SESSION_STATUS_COMPLETE
        for e in events
    )


async def test_pause_resume_and_retry_steer_the_session(stack: Stack) -> None:
    client = stack.client(await stack.token())
    session_id = (await client.start_session("Build", {}, mode="manual")).session.id
    compile_step = await _next(client, session_id)
    await client.submit_result(session_id, compile_step.id, report("ok"))
    assert (await _next(client, session_id)).step == "Test"

    paused = await client.pause(session_id, "lunch")
    assert paused.status == pb.SESSION_STATUS_PAUSED
    # The command pending at the pause may still report; nothing new starts.
    test_step = await _next(client, session_id)
    assert test_step.step == "Test"
    answer = await client.submit_result(
        session_id, test_step.id, report("error", data={"fingerprint": "f1"})
    )
    assert answer.WhichOneof("next") == "done"
    assert answer.done.status == pb.SESSION_STATUS_PAUSED
    resumed = await client.resume(session_id, "back")
    assert resumed.status == pb.SESSION_STATUS_ACTIVE
    fix = await _next(client, session_id)
    assert fix.step == "Fix"
    with pytest.raises(FailedPrecondition, match="running Fix"):
        await client.retry(session_id, "Compile", "while Fix runs")
    await client.pause(session_id, "to retry")
    answer = await client.submit_result(session_id, fix.id, report("ok"))
    assert answer.WhichOneof("next") == "done"
    retried = await client.retry(session_id, "Compile", "again")
    assert retried.status == pb.SESSION_STATUS_ACTIVE
    assert (await _next(client, session_id)).step == "Compile"
    with pytest.raises(InvalidArgument):
        await client.retry(session_id, "", "no step")
    with pytest.raises(InvalidArgument, match="Nope"):
        await client.retry(session_id, "Nope")
    history = await client.get_session(session_id)
    controls = [
        i.command.control.action for i in history.interactions if i.command.HasField("control")
    ]
    assert controls == [
        pb.CONTROL_ACTION_PAUSE,
        pb.CONTROL_ACTION_RESUME,
        pb.CONTROL_ACTION_PAUSE,
        pb.CONTROL_ACTION_RETRY_FROM,
    ]


async def test_sessions_are_routed_to_the_orchestrator_serving_their_type(
    start_stack: StartStack,
) -> None:
    stack = await start_stack(specs=[TOY, CODING])
    client = stack.client(await stack.token())
    types = {w.type for w in await client.describe()}
    assert {"Build", "Tree", "Leaf", "ContextCoding", "ComponentCoding"} <= types
    with pytest.raises(InvalidArgument, match="unknown session type 'Nope'"):
        await client.start_session("Nope", {}, mode="manual")
    toy = await client.start_session("Build", {}, mode="manual")
    assert (await _next(client, toy.session.id)).step == "Compile"
    coding = await client.start_session("ContextCoding", {"context": "inventory"}, mode="manual")
    first = await _next(client, coding.session.id)
    assert first.step == "Initialize"
    assert first.command.HasField("git")


async def test_manual_calls_refuse_agentic_sessions_and_spawn_steps(stack: Stack) -> None:
    client = stack.client(await stack.token())
    agentic = await client.start_session("Build", {}, mode="agentic")
    with pytest.raises(FailedPrecondition, match="agentic"):
        await client.next_command(agentic.session.id)
    tree = await client.start_session("Tree", {"parts": ["a"]}, mode="manual")
    prepare = await _next(client, tree.session.id)
    await client.submit_result(tree.session.id, prepare.id, report("ok"))
    spawn = await _next(client, tree.session.id)
    assert spawn.command.HasField("spawn_children")
    with pytest.raises(FailedPrecondition, match="children"):
        await client.submit_result(tree.session.id, spawn.id, report("ok"))
    with pytest.raises(NotFound):
        await client.get_session("0190f0f0-0000-7000-8000-000000000000")
