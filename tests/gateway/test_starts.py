"""A start hands its first command straight to a free executor, with no claim.

Sessions (behind a relay that records and can hold its calls) leases the
command in the create's own transaction; the gateway pushes it. Real
gateway, orchestrator and Sessions servers on loopback ports.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from prometheus_client import REGISTRY

from specloom.client import Client
from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb
from specloom_gateway import dispatch
from tests.fixtures.sessions_server import SessionsUnderTest
from tests.gateway.conftest import (
    TOY,
    Stack,
    StartStack,
    eventually,
    host_gateway,
    host_orchestrator,
)
from tests.gateway.sessions_relay import SessionsRelay
from tests.reliability.executors import HandExecutor


@pytest.fixture
async def relayed(
    sessions_service: SessionsUnderTest,
) -> AsyncIterator[tuple[Stack, SessionsRelay]]:
    """A stack whose gateway and orchestrator both reach Sessions through one relay."""
    relay = SessionsRelay(sessions_service.address)
    await relay.start()
    through = replace(sessions_service, port=relay.port)
    orchestrator = await host_orchestrator(through, TOY)
    gateway = await host_gateway(through, [orchestrator])
    stack = Stack(sessions_service, gateway, [orchestrator])
    try:
        yield stack, relay
    finally:
        await stack.close()
        await relay.stop()


def _calls(relay: SessionsRelay, method: str) -> list[bytes]:
    return [request for name, request in relay.completed if name == method]


async def _given_back_and_rescued(
    stack: Stack, relay: SessionsRelay, token: str, executor_id: str, interaction_id: str
) -> None:
    """``executor_id``'s lease on ``interaction_id`` (epoch 1) was released, not left to
    lapse: the next executor to connect gets the command at once, at epoch 2."""

    async def released() -> bool:
        return any(
            request.executor_id == executor_id
            and [(lease.interaction_id, lease.epoch) for lease in request.leases]
            == [(interaction_id, 1)]
            for request in map(spb.ReleaseLeasesRequest.FromString, _calls(relay, "ReleaseLeases"))
        )

    await eventually(released)
    rescuer = HandExecutor(stack.address, token, "rescuer")
    await rescuer.connect()
    try:
        got = (await rescuer.next("assignment", within=10)).assignment
        assert (got.interaction.id, got.interaction.lease.epoch) == (interaction_id, 2)
    finally:
        await rescuer.close()


async def test_a_start_leases_its_first_command_to_a_free_executor(
    relayed: tuple[Stack, SessionsRelay],
) -> None:
    stack, relay = relayed
    token = await stack.token()
    executor = HandExecutor(stack.address, token, "laptop")
    executor_id = (await executor.connect()).executor_id
    try:
        started = await stack.client(token).start_session("Build", {}, mode="agentic")
        # It came back with its first command already leased to the executor...
        (first,) = started.session.interactions
        assert (first.lease.executor_id, first.lease.epoch) == (executor_id, 1)
        got = (await executor.next("assignment", within=10)).assignment
        assert (got.session.id, got.interaction.id) == (started.session.id, first.id)
        assert got.interaction.lease.epoch == 1
        # ...offered in the create, which leased it.
        (create,) = [spb.CreateSessionRequest.FromString(r) for r in _calls(relay, "CreateSession")]
        assert create.claim.executor_id == executor_id
        assert create.id == started.session.id
    finally:
        await executor.close()


async def test_a_start_without_a_free_executor_waits_for_a_claim(
    relayed: tuple[Stack, SessionsRelay],
) -> None:
    stack, relay = relayed
    token = await stack.token()
    started = await stack.client(token).start_session("Build", {}, mode="agentic")
    (first,) = started.session.interactions
    assert not first.HasField("lease")
    (create,) = [spb.CreateSessionRequest.FromString(r) for r in _calls(relay, "CreateSession")]
    assert not create.HasField("claim")
    executor = HandExecutor(stack.address, token, "late")
    await executor.connect()
    try:
        got = (await executor.next("assignment", within=10)).assignment
        assert (got.interaction.id, got.interaction.lease.epoch) == (first.id, 1)
    finally:
        await executor.close()


async def test_a_first_command_leased_to_a_stream_that_closed_is_given_back_at_once(
    relayed: tuple[Stack, SessionsRelay],
) -> None:
    stack, relay = relayed
    token = await stack.token()
    leaving = HandExecutor(stack.address, token, "leaving")
    leaving_id = (await leaving.connect()).executor_id
    # The create is held in flight while the offered executor's stream closes.
    creates = relay.hold("CreateSession", lambda request: True)
    start = asyncio.create_task(stack.client(token).start_session("Build", {}, mode="agentic"))
    async with asyncio.timeout(10):
        await creates.arrived.wait()
    await leaving.vanish()
    await asyncio.sleep(0.2)  # the stream's teardown waits for the start in flight
    relay.release(creates)
    started = await start
    (first,) = started.session.interactions
    assert (first.lease.executor_id, first.lease.epoch) == (leaving_id, 1)

    await _given_back_and_rescued(stack, relay, token, leaving_id, first.id)
    session = await stack.client(token).get_session(
        started.session.id, view=pb.INTERACTION_VIEW_LAST
    )
    assert session.interactions[-1].lease.executor_id != leaving_id


def _empty_claims() -> float:
    value = REGISTRY.get_sample_value("specloom_gateway_claim_calls_total", {"outcome": "empty"})
    return value or 0.0


async def test_work_committed_after_an_empty_claim_does_not_wait_out_the_gap(
    start_stack: StartStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Claims that find nothing are spaced (MIN_PASS_GAP), but work Sessions
    # says was committed after such a claim began may be just what it could
    # not see. Spaced by 30 s here, the old rule would leave the command
    # waiting that long.
    monkeypatch.setattr(dispatch, "MIN_PASS_GAP", 30.0)
    stack = await start_stack()
    elsewhere = await host_gateway(stack.sessions, stack.orchestrators)
    try:
        token = await stack.token()
        before = _empty_claims()
        executor = HandExecutor(stack.address, token, "laptop")
        await executor.connect()

        async def claimed_nothing() -> bool:
            return _empty_claims() > before

        await eventually(claimed_nothing)  # its arrival's claim: no work yet
        # Started through a gateway with no executor: no offer, a work signal.
        async with Client(elsewhere.address, token) as client:
            started = await client.start_session("Build", {}, mode="agentic")
        try:
            got = (await executor.next("assignment", within=10)).assignment
            assert got.session.id == started.session.id
        finally:
            await executor.close()
    finally:
        await elsewhere.stop()


async def test_a_next_command_leased_to_a_stream_that_closed_is_given_back_at_once(
    relayed: tuple[Stack, SessionsRelay],
) -> None:
    # The fused report leases the next command to the reporting executor.
    # If its stream closed while the report was in flight, that lease is in
    # none of the stream's held leases: without giving it back it lapsed
    # only after the lease time, and the session waited that long.
    stack, relay = relayed
    token = await stack.token()
    leaving = HandExecutor(stack.address, token, "leaving")
    leaving_id = (await leaving.connect()).executor_id
    started = await stack.client(token).start_session("Build", {}, mode="agentic")
    first = (await leaving.next("assignment", within=10)).assignment
    writes = [
        relay.hold(method, lambda request: True) for method in ("AdvanceSession", "AdvanceSessions")
    ]
    leaving.answer(first, "compiled")
    async with asyncio.timeout(10):
        while not any(hold.arrived.is_set() for hold in writes):
            await asyncio.sleep(0.01)
    await leaving.vanish()
    await asyncio.sleep(0.2)  # the stream's teardown waits for the report in flight
    for hold in writes:
        relay.release(hold)

    async def next_leased() -> pb.Interaction | None:
        session = await stack.client(token).get_session(
            started.session.id, view=pb.INTERACTION_VIEW_LAST
        )
        last = session.interactions[-1]
        return last if last.id != first.interaction.id else None

    async def moved_on() -> bool:
        return await next_leased() is not None

    await eventually(moved_on)
    after = await next_leased()
    assert after is not None
    assert (after.lease.executor_id, after.lease.epoch) == (leaving_id, 1)

    await _given_back_and_rescued(stack, relay, token, leaving_id, after.id)
