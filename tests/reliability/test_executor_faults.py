"""Executors that misbehave: each case ends with exactly one accepted result.

The gateway, Sessions and the toy orchestrator run as processes on
PostgreSQL; the misbehaving executors are hand-driven ``Connect`` streams
(:class:`~tests.reliability.executors.HandExecutor`). The five cases run at
once, each in a project of its own, so no executor of one case can take
another case's work. Every case runs a toy ``Build`` session (Compile →
Test) and checks its history: both steps completed, each exactly once, and
Compile's result is the one from the executor that held the lease.

Also here: the agent side of "a refusal that recorded nothing is sent
again", against the gateway stand-in of ``tests/agent``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from specloom.agent.connection import AgentLoop
from specloom.agent.executor import Executor, ExecutorOptions
from specloom.agent.workspace import Workspace
from specloom.client import Client
from specloom.v1 import common_pb2 as pb
from specloom.v1 import gateway_pb2 as gpb
from specloom.v1 import sessions_pb2 as spb
from specloom.workflow import commands as c
from tests.agent.conftest import init_repo
from tests.agent.gateway_standin import start_standin
from tests.agent.test_connection import TOKEN, WELCOME, assignment, settings_for
from tests.reliability.cluster import Cluster
from tests.reliability.conftest import StartCluster
from tests.reliability.executors import HandExecutor, result_for

Case = Callable[[Cluster, Client, str], Awaitable[None]]


async def _complete(client: Client, session_id: str, compiled_by: str) -> pb.Session:
    """Wait for the session to complete; check each step has exactly one result."""
    async with asyncio.timeout(45):
        while True:
            session = await client.get_session(session_id)
            if session.status != pb.SESSION_STATUS_ACTIVE:
                break
            await asyncio.sleep(0.1)
    assert session.status == pb.SESSION_STATUS_COMPLETE, session.status_reason
    assert [i.step for i in session.interactions] == ["Compile", "Test"]
    for step in session.interactions:
        assert step.status == pb.INTERACTION_STATUS_COMPLETED
        assert step.result.status == pb.RESULT_STATUS_OK
    assert session.interactions[0].result.stdout == compiled_by
    return session


async def disconnects(c: Cluster, client: Client, token: str) -> None:
    """Takes Compile and vanishes: the lease is released at once and another runs it."""
    crashing = HandExecutor(c.gateway, token, "crashing")
    await crashing.connect()
    started = await client.start_session("Build", {}, mode="agentic")
    taken = (await crashing.next("assignment")).assignment
    assert taken.interaction.step == "Compile"
    await crashing.vanish()
    rescuer = HandExecutor(c.gateway, token, "rescuer").honest()
    await rescuer.connect()
    try:
        got = (await rescuer.next("assignment", within=10)).assignment
        # Moved on well inside the 6 s lease: the broken stream released it.
        assert (got.interaction.id, got.interaction.lease.epoch) == (taken.interaction.id, 2)
        await _complete(client, started.session.id, "by rescuer")
    finally:
        await rescuer.close()


async def hangs(c: Cluster, client: Client, token: str) -> None:
    """Takes Compile and stops heartbeating: cut off, and its late result refused."""
    frozen = HandExecutor(c.gateway, token, "frozen", heartbeats=True)
    welcome = await frozen.connect()
    started = await client.start_session("Build", {}, mode="agentic")
    taken = (await frozen.next("assignment")).assignment
    frozen.go_silent()
    rescuer = HandExecutor(c.gateway, token, "rescuer").honest()
    await rescuer.connect()
    try:
        async with asyncio.timeout(20):
            while frozen.ended is None:
                await asyncio.sleep(0.1)
        # Three heartbeat intervals of silence end the stream (and its leases).
        assert frozen.ended.name == "UNAVAILABLE"
        assert welcome.heartbeat_interval_seconds == 1
        await _complete(client, started.session.id, "by rescuer")
        # It wakes up and reports, on a new stream, what it was given long ago.
        await frozen.close()
        woken = HandExecutor(c.gateway, token, "frozen")
        await woken.connect()
        woken.send(result_for(taken, "by frozen, late"))
        late = (await woken.next("ack")).ack
        assert not late.accepted
        assert late.code == "FAILED_PRECONDITION"
        await woken.close()
        await _complete(client, started.session.id, "by rescuer")
    finally:
        await rescuer.close()


async def repeats(c: Cluster, client: Client, token: str) -> None:
    """Sends every result twice (once back to back, once after the ack), then a changed one."""
    stutter = HandExecutor(c.gateway, token, "stutter", heartbeats=True)
    await stutter.connect()
    started = await client.start_session("Build", {}, mode="agentic")
    compile_step = (await stutter.next("assignment")).assignment
    stutter.answer(compile_step, "compiled")
    stutter.answer(compile_step, "compiled")
    test_step = (await stutter.next("assignment")).assignment
    assert test_step.interaction.step == "Test"
    await asyncio.sleep(0.5)
    stutter.answer(compile_step, "compiled")
    stutter.answer(compile_step, "compiled differently")
    refused = [a for a in (await _acks(stutter, 4)) if not a.accepted]
    # Exact repeats are harmless no-ops; a different result is refused.
    assert [(a.interaction_id, a.code) for a in refused] == [
        (compile_step.interaction.id, "FAILED_PRECONDITION")
    ]
    stutter.answer(test_step, "tested")
    stutter.answer(test_step, "tested")
    session = await _complete(client, started.session.id, "compiled")
    assert session.interactions[1].result.stdout == "tested"
    await stutter.close()


async def _acks(executor: HandExecutor, count: int) -> list[gpb.ResultAck]:
    async with asyncio.timeout(20):
        while len(executor.acks()) < count:
            await asyncio.sleep(0.05)
    return executor.acks()


async def reports_for_another(c: Cluster, client: Client, token: str) -> None:
    """Reports on an interaction leased to another executor: refused, whatever the epoch."""
    one = HandExecutor(c.gateway, token, "one", heartbeats=True)
    other = HandExecutor(c.gateway, token, "other", heartbeats=True)
    await one.connect()
    started = await client.start_session("Build", {}, mode="agentic")
    taken = (await one.next("assignment")).assignment
    await other.connect()
    for epoch in (taken.interaction.lease.epoch, taken.interaction.lease.epoch + 1, 0):
        forged = result_for(taken, "by other")
        forged.result.lease_epoch = epoch
        other.send(forged)
        ack = (await other.next("ack")).ack
        assert not ack.accepted, epoch
        assert ack.code == "FAILED_PRECONDITION", (epoch, ack.code)
    one.answer(taken, "by one")
    assert (await one.next("ack")).ack.accepted
    one.answer((await one.next("assignment")).assignment, "tested")
    await _complete(client, started.session.id, "by one")
    await one.close()
    await other.close()


async def renames(c: Cluster, client: Client, token: str) -> None:
    """Comes back under another name claiming its old lease: refused; the work is re-run once."""
    before = HandExecutor(c.gateway, token, "before")
    await before.connect()
    started = await client.start_session("Build", {}, mode="agentic")
    taken = (await before.next("assignment")).assignment
    await before.vanish()
    lease = spb.LeaseRef(interaction_id=taken.interaction.id, epoch=taken.interaction.lease.epoch)
    after = HandExecutor(c.gateway, token, "after", running=[lease], heartbeats=True)
    await after.connect()
    after.send(result_for(taken, "by before, renamed"))
    ack = (await after.next("ack")).ack
    assert not ack.accepted
    assert ack.code == "FAILED_PRECONDITION"
    # The command is claimed afresh (a new epoch) and runs once more.
    again = (await after.next("assignment")).assignment
    assert again.interaction.id == taken.interaction.id
    assert again.interaction.lease.epoch > taken.interaction.lease.epoch
    after.answer(again, "by after")
    after.answer((await after.next("assignment")).assignment, "tested")
    await _complete(client, started.session.id, "by after")
    await after.close()


CASES: dict[str, Case] = {
    "disconnects": disconnects,
    "hangs": hangs,
    "repeats": repeats,
    "reports-for-another": reports_for_another,
    "renames": renames,
}


@pytest.mark.slow
async def test_misbehaving_executors_each_end_with_exactly_one_accepted_result(
    start_cluster: StartCluster,
) -> None:
    async with start_cluster(["toy"]) as cluster:
        admin = cluster.client()

        async def run(project: str, case: Case) -> None:
            scope = pb.Scope(account_id="acme", project_id=project, user_id="tester")
            token = (await admin.create_token(scope, name=project)).token
            await case(cluster, cluster.client(token), token)

        results = await asyncio.gather(
            *(run(name, case) for name, case in CASES.items()), return_exceptions=True
        )
        failed = {
            name: repr(result)
            for name, result in zip(CASES, results, strict=True)
            if isinstance(result, BaseException)
        }
        assert not failed, f"{failed}\n{cluster.logs()}"


async def test_the_agent_sends_a_result_again_when_nothing_was_recorded(
    tmp_path: Path,
) -> None:
    # The gateway answers UNAVAILABLE while a service behind it restarts: the
    # lease is still the agent's, so the result must come again, not be
    # dropped (dropping it has the gateway release the lease, and the
    # command run a second time elsewhere).
    workspace = Workspace(init_repo(tmp_path / "repo"))
    workspace.prepare()
    server, standin, port = await start_standin(TOKEN, WELCOME)
    counter = workspace.root / "runs.txt"
    loop = AgentLoop(
        settings_for(port, workspace),
        Executor(workspace, options=ExecutorOptions(kill_grace=0.2)),
    )
    task = asyncio.create_task(loop.run())
    try:
        stream = await standin.next_stream()
        script = f"open({str(counter)!r}, 'a').write('run\\n')"
        stream.send(assignment(c.shell("S", [sys.executable, "-c", script]), "i1"))
        first = await stream.expect("result")
        for code in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "ABORTED"):
            stream.send(
                gpb.ConnectResponse(
                    ack=gpb.ResultAck(interaction_id="i1", accepted=False, code=code, message="x")
                )
            )
            again = await stream.expect("result")
            assert again == first
        beat = await stream.expect("heartbeat")
        assert [r.interaction_id for r in beat.running] == ["i1"]  # the lease is still held
        stream.send(gpb.ConnectResponse(ack=gpb.ResultAck(interaction_id="i1", accepted=True)))
        async with asyncio.timeout(5):
            while loop.leases():
                await asyncio.sleep(0.05)
        # A refusal that is final drops the result: nothing will take it.
        stream.send(assignment(c.shell("S", [sys.executable, "-c", script]), "i2"))
        await stream.expect("result")
        stream.send(
            gpb.ConnectResponse(
                ack=gpb.ResultAck(interaction_id="i2", accepted=False, code="FAILED_PRECONDITION")
            )
        )
        async with asyncio.timeout(5):
            while loop.leases():
                await asyncio.sleep(0.05)
        assert counter.read_text() == "run\nrun\n"  # each command ran once
    finally:
        loop.stopped.set()
        await asyncio.wait_for(task, 15)
        await server.stop(0)
