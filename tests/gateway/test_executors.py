"""Executor streams with real agents: dispatch, chaining, capacity, output, children, teardown."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from specloom.errors import FailedPrecondition
from specloom.orchestration.simulate import report
from specloom.v1 import common_pb2 as pb
from specloom.v1 import gateway_pb2 as gpb
from specloom.v1 import sessions_pb2 as spb
from tests.fixtures.sessions_server import SessionsUnderTest
from tests.gateway.conftest import (
    MAKEFILE,
    TOY,
    Stack,
    StartStack,
    bearer,
    eventually,
    host_gateway,
    host_orchestrator,
    make_repo,
)
from tests.gateway.proxy import Relay
from tests.gateway.sessions_relay import SessionsRelay
from tests.reliability.executors import HandExecutor


def _count(via: str) -> float:
    value = REGISTRY.get_sample_value("specloom_gateway_assignments_pushed_total", {"via": via})
    return value or 0.0


async def _status(stack: Stack, token: str, session_id: str, status: int) -> None:
    client = stack.client(token)

    async def reached() -> bool:
        session = await client.get_session(session_id, view=pb.INTERACTION_VIEW_NONE)
        return session.status == status

    await eventually(reached)


async def test_an_agentic_session_runs_on_an_executor_step_after_step(
    stack: Stack, tmp_path: Path
) -> None:
    token = await stack.token()
    repo = make_repo(tmp_path / "repo")
    agent = await stack.agent(token, repo, "laptop")
    chained_before = _count("chained")
    client = stack.client(token)
    started = await client.start_session("Build", {}, mode="agentic")
    await _status(stack, token, started.session.id, pb.SESSION_STATUS_COMPLETE)

    session = await client.get_session(started.session.id)
    assert [i.step for i in session.interactions] == ["Compile", "Test"]
    for interaction in session.interactions:
        assert interaction.status == pb.INTERACTION_STATUS_COMPLETED
        assert interaction.result.status == pb.RESULT_STATUS_OK
    handed = [a for _, _, a in stack.assignments() if a.session.id == started.session.id]
    assert [a.interaction.step for a in handed] == ["Compile", "Test"]
    assert {a.interaction.lease.executor_id for a in handed} == {agent.executor_id}
    assert all(ack.accepted for _, ack in stack.acks())
    # Step two came back leased from the fused report of step one.
    assert _count("chained") - chained_before >= 1
    output, _ = await client.read_output(started.session.id, session.interactions[0].id)
    assert b"compiled" in b"".join(chunk.data for chunk in output)


@pytest.mark.parametrize(
    ("mode", "child_mode"), [("auto", "auto"), ("manual", "auto"), ("agentic", "agentic")]
)
async def test_auto_sessions_run_on_executors_and_children_keep_the_confinement(
    stack: Stack, tmp_path: Path, mode: str, child_mode: str
) -> None:
    # auto is executor-driven like agentic; the mode travels with every
    # assignment (the executor confines the agent for AUTO), and children of
    # an auto or manual parent are auto, of an agentic parent agentic.
    token = await stack.token()
    repo = make_repo(tmp_path / "repo")
    await stack.agent(token, repo, "laptop")
    client = stack.client(token)
    modes = {"auto": pb.EXECUTION_MODE_AUTO, "agentic": pb.EXECUTION_MODE_AGENTIC}
    if mode == "manual":
        started = await client.start_session("Tree", {"parts": ["a", "b"]}, mode="manual")
        prepare = await client.next_command(started.session.id)
        assert isinstance(prepare, pb.Interaction)
        await client.submit_result(started.session.id, prepare.id, report("ok"))
    else:
        started = await client.start_session("Tree", {"parts": ["a", "b"]}, mode=mode)

    async def children_done() -> bool:
        found = await client.children(started.session.id)
        return len(found) == 2 and all(c.status == pb.SESSION_STATUS_COMPLETE for c in found)

    await eventually(children_done)
    children = await client.children(started.session.id)
    assert {c.execution_mode for c in children} == {modes[child_mode]}
    handed = [a for _, _, a in stack.assignments()]
    by_session = {a.session.id: a.session.execution_mode for a in handed}
    for child in children:
        assert by_session[child.id] == modes[child_mode]
    if mode != "manual":
        await _status(stack, token, started.session.id, pb.SESSION_STATUS_COMPLETE)
        handed = [a for _, _, a in stack.assignments()]
        assert {a.session.execution_mode for a in handed if a.session.id == started.session.id} == {
            modes[mode]
        }
        with pytest.raises(FailedPrecondition, match=f"is {mode}: connected executors"):
            await client.next_command(started.session.id)


async def test_children_spread_over_executors_within_capacity(stack: Stack, tmp_path: Path) -> None:
    token = await stack.token()
    repo = make_repo(tmp_path / "repo")
    agents = [await stack.agent(token, repo, f"box-{i}", max_parallel=1) for i in range(3)]
    client = stack.client(token)
    started = await client.start_session(
        "Tree", {"parts": ["a", "b", "c", "d", "e"]}, mode="agentic"
    )
    await _status(stack, token, started.session.id, pb.SESSION_STATUS_COMPLETE)

    children = await client.children(started.session.id)
    assert sorted(c.component.module_name for c in children) == [f"toy.{p}" for p in "abcde"]
    for child in children:
        assert child.status == pb.SESSION_STATUS_COMPLETE
    child_ids = {c.id for c in children}
    ran_by = {name for name, _, a in stack.assignments() if a.session.id in child_ids}
    # Three single-slot executors: the five children spread over all three.
    assert ran_by == {"box-0", "box-1", "box-2"}
    # Never more than one command at a time on a one-slot executor.
    for name in ran_by:
        held = peak = 0
        for seen in stack.seen:
            if seen.agent != name:
                continue
            kind = seen.message.WhichOneof("message")
            held += {"assignment": 1, "ack": -1}.get(kind or "", 0)
            peak = max(peak, held)
        assert peak == 1
    ids = {agent.executor_id for agent in agents}
    assert {a.interaction.lease.executor_id for _, _, a in stack.assignments()} <= ids
    parent = await client.get_session(started.session.id)
    spawn = next(i for i in parent.interactions if i.step == "Spawn")
    assert spawn.result.status == pb.RESULT_STATUS_OK
    assert [i.step for i in parent.interactions] == ["Prepare", "Spawn", "Finish"]


BLOCKING = MAKEFILE.replace(
    "compile:\n\t@echo compiled\n",
    "compile:\n\t@echo compiling; while [ -f block ]; do sleep 0.05; done; echo compiled\n",
).replace(
    "work:\n\t@echo working on it\n",
    "work:\n\t@echo working; while [ -f block ]; do sleep 0.05; done; echo worked\n",
)


def _blocking_repo(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "repo", {"Makefile": BLOCKING})
    (repo / "block").write_text("")
    return repo


def _handed(stack: Stack, session_id: str) -> list[tuple[str, gpb.CommandAssignment]]:
    return [(name, a) for name, _, a in stack.assignments() if a.session.id == session_id]


async def _handed_to(stack: Stack, session_id: str, step: str, agent: str) -> None:
    async def arrived() -> bool:
        return any(
            name == agent and a.interaction.step == step for name, a in _handed(stack, session_id)
        )

    await eventually(arrived, timeout=15)


async def test_each_executor_lists_the_commands_it_runs_to_its_project_only(
    stack: Stack, tmp_path: Path
) -> None:
    token = await stack.token()
    client = stack.client(token)
    repo = _blocking_repo(tmp_path)
    await stack.agent(token, repo, "laptop")
    before = time.time()
    started = await client.start_session("Build", {}, mode="agentic")
    await _handed_to(stack, started.session.id, "Compile", "laptop")
    (handed,) = [a for _, a in _handed(stack, started.session.id)]

    async def listed() -> list[pb.RunningCommand]:
        executors = await client.executors()  # none until its presence is first written
        return [c for e in executors for c in e.running_commands]

    async def running() -> bool:
        return len(await listed()) == 1

    # Written with the presence record at the next heartbeat (1 s here).
    await eventually(running, timeout=10)
    (command,) = await listed()
    assert command.session_id == started.session.id
    assert command.interaction_id == handed.interaction.id
    assert command.step == "Compile"
    assert before - 1 <= command.since.ToDatetime().timestamp() <= time.time()
    assert (await client.executors())[0].running == 1
    outsider = stack.client(await stack.token(project="beta", user="mallory"))
    assert await outsider.executors() == [], "another project sees no executor"

    (repo / "block").unlink()
    await _status(stack, token, started.session.id, pb.SESSION_STATUS_COMPLETE)

    async def idle() -> bool:
        executors = await client.executors()
        return len(executors) == 1 and not executors[0].running_commands

    await eventually(idle, timeout=10)


async def test_a_command_shows_at_the_next_heartbeat_not_the_next_routine_refresh(
    start_stack: StartStack, tmp_path: Path
) -> None:
    # Heartbeats every 4 s: the record is refreshed every 6 s when nothing
    # changes, but at the first heartbeat after its commands changed.
    stack = await start_stack(heartbeat_interval_seconds=4)
    token = await stack.token()
    client = stack.client(token)
    await stack.agent(token, _blocking_repo(tmp_path), "laptop")
    registered = time.monotonic()
    started = await client.start_session("Build", {}, mode="agentic")
    await _handed_to(stack, started.session.id, "Compile", "laptop")

    async def listed() -> bool:
        executors = await client.executors()
        return [c.session_id for e in executors for c in e.running_commands] == [started.session.id]

    await eventually(listed, timeout=15)
    assert time.monotonic() - registered < 6, "shown at the first heartbeat (4 s), not at 8 s"


async def test_output_reaches_watchers_live_and_is_stored(stack: Stack, tmp_path: Path) -> None:
    token = await stack.token()
    repo = _blocking_repo(tmp_path)
    await stack.agent(token, repo, "laptop")
    client = stack.client(token)
    started = await client.start_session("Build", {}, mode="agentic")
    chunks: list[bytes] = []

    async def watch() -> None:
        async for event in client.watch(started.session.id, include_output=True):
            if event.WhichOneof("event") == "output":
                chunks.append(event.output.data)

    watcher = asyncio.create_task(watch())
    await _handed_to(stack, started.session.id, "Compile", "laptop")

    async def streamed() -> bool:
        return b"compiling" in b"".join(chunks)

    # Seen while the command is still running (it waits for the block file).
    await eventually(streamed, timeout=10)
    (repo / "block").unlink()
    await _status(stack, token, started.session.id, pb.SESSION_STATUS_COMPLETE)
    session = await client.get_session(started.session.id)
    stored, more = await client.read_output(started.session.id, session.interactions[0].id)
    assert not more
    text = b"".join(chunk.data for chunk in stored)
    assert b"compiling" in text
    assert b"compiled" in text
    watcher.cancel()


async def test_a_disconnected_executors_work_moves_on_at_once(stack: Stack, tmp_path: Path) -> None:
    token = await stack.token()
    repo = _blocking_repo(tmp_path)
    first = await stack.agent(token, repo, "first")
    client = stack.client(token)
    started = await client.start_session("Build", {}, mode="agentic")
    await _handed_to(stack, started.session.id, "Compile", "first")
    await stack.stop_agent(first)
    (repo / "block").unlink()
    began = time.monotonic()
    await stack.agent(token, repo, "second")
    await _handed_to(stack, started.session.id, "Compile", "second")
    # Far sooner than the 30 s lease: the stream's end released the lease.
    assert time.monotonic() - began < 10
    await _status(stack, token, started.session.id, pb.SESSION_STATUS_COMPLETE)
    epochs = [
        a.interaction.lease.epoch
        for name, a in _handed(stack, started.session.id)
        if a.interaction.step == "Compile"
    ]
    assert epochs == [1, 2]


async def test_a_draining_executor_finishes_but_takes_nothing_new(
    stack: Stack, tmp_path: Path
) -> None:
    token = await stack.token()
    repo = _blocking_repo(tmp_path)
    leaving = await stack.agent(token, repo, "leaving", max_parallel=2)
    client = stack.client(token)
    first = await client.start_session("Build", {}, mode="agentic")
    await _handed_to(stack, first.session.id, "Compile", "leaving")
    leaving.draining.set()
    await asyncio.sleep(0.5)
    second = await client.start_session("Build", {}, mode="agentic")
    await asyncio.sleep(1.0)  # sweeps: the free slot of a draining executor is not used
    assert not _handed(stack, second.session.id)
    await stack.agent(token, repo, "staying", max_parallel=2)
    (repo / "block").unlink()
    await _status(stack, token, first.session.id, pb.SESSION_STATUS_COMPLETE)
    await _status(stack, token, second.session.id, pb.SESSION_STATUS_COMPLETE)
    by_leaving = [a.interaction.step for name, a in _handed(stack, first.session.id)]
    assert by_leaving[0] == "Compile"
    assert {name for name, _ in _handed(stack, second.session.id)} == {"staying"}
    # Its result was accepted, but the next step was not chained to it.
    assert [n for n, a in _handed(stack, first.session.id) if a.interaction.step == "Test"] == [
        "staying"
    ]


async def test_stopping_the_gateway_lets_running_commands_report_first(
    stack: Stack, tmp_path: Path
) -> None:
    token = await stack.token()
    repo = _blocking_repo(tmp_path)
    await stack.agent(token, repo, "box")
    client = stack.client(token)
    started = await client.start_session("Build", {}, mode="agentic")
    await _handed_to(stack, started.session.id, "Compile", "box")
    stopping = asyncio.create_task(stack.gateway.stop(10.0))
    await asyncio.sleep(0.5)
    assert not stopping.done()  # the stream stays while its command runs
    (repo / "block").unlink()
    began = time.monotonic()
    await asyncio.wait_for(stopping, 10)
    assert time.monotonic() - began < 5  # ended once the result was in, not at the grace
    session = await stack.sessions.stub.FetchSession(
        spb.FetchSessionRequest(
            scope=pb.Scope(account_id="acme", project_id="alpha", user_id="alice"),
            session_id=started.session.id,
        ),
        metadata=stack.sessions.metadata,
    )
    steps = session.session.interactions
    assert steps[0].status == pb.INTERACTION_STATUS_COMPLETED
    assert steps[0].result.status == pb.RESULT_STATUS_OK
    # The next step was not handed to an executor of a stopping gateway.
    assert steps[1].status == pb.INTERACTION_STATUS_PENDING
    assert not steps[1].lease.executor_id


async def test_cancelling_a_tree_stops_its_running_commands(stack: Stack, tmp_path: Path) -> None:
    token = await stack.token()
    repo = _blocking_repo(tmp_path)
    await stack.agent(token, repo, "a", max_parallel=2)
    await stack.agent(token, repo, "b", max_parallel=2)
    client = stack.client(token)
    started = await client.start_session("Tree", {"parts": ["x", "y", "z"]}, mode="agentic")

    async def children_running() -> bool:
        children = await client.children(started.session.id)
        ids = {c.id for c in children}
        running = {a.session.id for _, _, a in stack.assignments() if a.session.id in ids}
        return len(children) == 3 and len(running) == 3

    await eventually(children_running)
    await client.cancel(started.session.id, "changed my mind")

    async def cancels_sent() -> bool:
        cancelled = [s for s in stack.seen if s.message.WhichOneof("message") == "cancel"]
        return len(cancelled) == 3

    await eventually(cancels_sent, timeout=10)
    children = await client.children(started.session.id)
    assert {c.status for c in children} == {pb.SESSION_STATUS_CANCELLED}
    # The killed commands' results came back and were refused.

    async def refused() -> bool:
        return sum(1 for _, ack in stack.acks() if not ack.accepted) == 3

    await eventually(refused, timeout=15)
    for child in children:
        history = await client.get_session(child.id)
        assert [i.status for i in history.interactions] == [pb.INTERACTION_STATUS_ABANDONED]


async def test_a_command_past_its_time_limit_is_failed_by_the_gateway(
    start_stack: StartStack, tmp_path: Path
) -> None:
    stack = await start_stack(default_command_timeout_seconds=1, command_run_grace_seconds=0)
    token = await stack.token()
    repo = _blocking_repo(tmp_path)
    await stack.agent(token, repo, "hung")
    client = stack.client(token)
    started = await client.start_session("Build", {"max_rounds": 0}, mode="agentic")

    async def timed_out() -> bool:
        session = await client.get_session(started.session.id)
        first = session.interactions[0]
        return first.status == pb.INTERACTION_STATUS_COMPLETED

    await eventually(timed_out, timeout=15)
    session = await client.get_session(started.session.id)
    first = session.interactions[0]
    assert first.result.status == pb.RESULT_STATUS_ERROR
    assert "time limit" in first.result.error_message
    assert any(
        s.message.WhichOneof("message") == "cancel" and s.message.cancel.interaction_id == first.id
        for s in stack.seen
    )
    await client.cancel(started.session.id)


async def test_stalled_agentic_sessions_get_their_next_step(stack: Stack, tmp_path: Path) -> None:
    token = await stack.token()
    repo = make_repo(tmp_path / "repo")
    await stack.agent(token, repo, "box")
    scope = pb.Scope(account_id="acme", project_id="alpha", user_id="alice")
    # As a crash between two writes would leave it: active, agentic, nothing pending.
    created = await stack.sessions.stub.CreateSession(
        spb.CreateSessionRequest(
            scope=scope,
            type="Build",
            execution_mode=pb.EXECUTION_MODE_AGENTIC,
            definition_version=1,
        ),
        metadata=stack.sessions.metadata,
    )
    assert created.session.interaction_count == 0
    await _status(stack, token, created.session.id, pb.SESSION_STATUS_COMPLETE)
    session = await stack.client(token).get_session(created.session.id)
    assert [i.step for i in session.interactions] == ["Compile", "Test"]


async def test_a_reconnecting_executor_keeps_the_leases_it_still_holds(
    stack: Stack, tmp_path: Path
) -> None:
    token = await stack.token()
    repo = _blocking_repo(tmp_path)
    relay = Relay(stack.address)
    await relay.start()
    try:
        agent = await stack.agent(token, repo, "roaming", address=relay.address)
        client = stack.client(token)
        started = await client.start_session("Build", {}, mode="agentic")
        await _handed_to(stack, started.session.id, "Compile", "roaming")
        first_id = agent.executor_id
        # The executor's side of the connection drops; the gateway's stays up.
        relay.cut_clients()

        async def reconnected() -> bool:
            return agent.connected.is_set() and relay.upstreams >= 2

        await eventually(reconnected, timeout=10)
        assert agent.executor_id == first_id  # the same executor, so the same lease holder
        # The old stream's teardown must not release what the new one took over.
        relay.cut_upstreams(keep=1)
        await asyncio.sleep(0.5)
        (repo / "block").unlink()
        await _status(stack, token, started.session.id, pb.SESSION_STATUS_COMPLETE)
        compiles = [
            a.interaction.lease.epoch
            for _, a in _handed(stack, started.session.id)
            if a.interaction.step == "Compile"
        ]
        assert compiles == [1]  # never claimed again
        assert all(ack.accepted for _, ack in stack.acks())
        assert not [s for s in stack.seen if s.message.WhichOneof("message") == "cancel"]
    finally:
        await relay.close()


async def test_a_late_result_for_an_older_lease_leaves_the_newer_one_alone(
    start_stack: StartStack,
) -> None:
    # The executor stops heartbeating, its lease lapses, and the same
    # executor claims the command again: two epochs of one interaction.
    stack = await start_stack(lease_ttl_seconds=1, stream_idle_timeout_seconds=600)
    token = await stack.token()
    outbox: asyncio.Queue[gpb.ConnectRequest | None] = asyncio.Queue()
    received: asyncio.Queue[gpb.ConnectResponse] = asyncio.Queue()
    await outbox.put(
        gpb.ConnectRequest(
            register=gpb.Register(name="forgetful", capabilities=["shell"], max_parallel=2)
        )
    )

    async def requests() -> AsyncIterator[gpb.ConnectRequest]:
        while (message := await outbox.get()) is not None:
            yield message

    call = stack.stub().Connect(requests(), metadata=bearer(token))

    async def pump() -> None:
        async for response in call:
            await received.put(response)

    reader = asyncio.create_task(pump())

    async def next_of(kind: str) -> gpb.ConnectResponse:
        while True:
            message = await asyncio.wait_for(received.get(), 15)
            if message.WhichOneof("message") == kind:
                return message

    try:
        await next_of("welcome")
        client = stack.client(token)
        started = await client.start_session("Build", {}, mode="agentic")
        first = (await next_of("assignment")).assignment.interaction
        second = (await next_of("assignment")).assignment.interaction
        assert second.id == first.id
        assert (first.lease.epoch, second.lease.epoch) == (1, 2)

        def result(epoch: int, text: str) -> gpb.ConnectRequest:
            return gpb.ConnectRequest(
                result=gpb.CommandResult(
                    session_id=started.session.id,
                    interaction_id=first.id,
                    lease_epoch=epoch,
                    result=pb.Result(status=pb.RESULT_STATUS_OK, stdout=text),
                )
            )

        await outbox.put(result(1, "late"))
        late = (await next_of("ack")).ack
        assert not late.accepted
        assert late.code == "FAILED_PRECONDITION"
        # The newer lease is still this stream's: its output is kept.
        await outbox.put(
            gpb.ConnectRequest(
                output=gpb.CommandOutput(
                    session_id=started.session.id,
                    interaction_id=first.id,
                    lease_epoch=2,
                    stream=pb.OUTPUT_STREAM_STDOUT,
                    data=b"from the second run\n",
                )
            )
        )
        await outbox.put(result(2, "current"))
        assert (await next_of("ack")).ack.accepted
        session = await client.get_session(started.session.id)
        assert session.interactions[0].result.stdout == "current"
        chunks, _ = await client.read_output(started.session.id, first.id)
        assert b"".join(c.data for c in chunks) == b"from the second run\n"
    finally:
        await outbox.put(None)
        call.cancel()
        reader.cancel()


async def test_a_claim_in_flight_does_not_take_back_what_a_closing_stream_gives_up(
    sessions_service: SessionsUnderTest,
) -> None:
    # The dispatcher claims for an executor whose stream then closes; if the
    # teardown's release reached Sessions before that claim, the claim took
    # the released command again (a new epoch, handed to a closed stream and
    # released once more), and the executor that rescues it saw epoch 3. The
    # relay holds the claim in flight until the release went through, or a
    # second passed (the teardown now waits for the claim instead).
    relay = SessionsRelay(sessions_service.address)
    await relay.start()
    orchestrator = await host_orchestrator(sessions_service, TOY)
    gateway = await host_gateway(replace(sessions_service, port=relay.port), [orchestrator])
    stack = Stack(sessions_service, gateway, [orchestrator])
    try:
        token = await stack.token()
        crashing = HandExecutor(stack.address, token, "crashing")
        crashing_id = (await crashing.connect()).executor_id
        started = await stack.client(token).start_session("Build", {}, mode="agentic")
        taken = (await crashing.next("assignment")).assignment
        assert (taken.interaction.step, taken.interaction.lease.epoch) == ("Compile", 1)

        def for_crashing(request: bytes) -> bool:
            return spb.ClaimCommandsRequest.FromString(request).executor_id == crashing_id

        claims = relay.hold("ClaimCommands", for_crashing)
        async with asyncio.timeout(10):  # the sweep claims for its free slots
            await claims.arrived.wait()
        await crashing.vanish()
        await relay.completion("ReleaseLeases", within=1.0)
        relay.release(claims)

        rescuer = HandExecutor(stack.address, token, "rescuer").honest()
        await rescuer.connect()
        try:
            got = (await rescuer.next("assignment", within=10)).assignment
            assert (got.interaction.id, got.interaction.lease.epoch) == (taken.interaction.id, 2)
            await _status(stack, token, started.session.id, pb.SESSION_STATUS_COMPLETE)
        finally:
            await rescuer.close()
        releases = [
            spb.ReleaseLeasesRequest.FromString(request)
            for method, request in relay.completed
            if method == "ReleaseLeases"
        ]
        assert [
            [(lease.interaction_id, lease.epoch) for lease in release.leases]
            for release in releases
            if release.executor_id == crashing_id
        ] == [[(taken.interaction.id, 1)]]
    finally:
        await stack.close()
        await relay.stop()
