"""An executor's output burst is stored whole, in order, at the pace Sessions takes it.

Before: the gateway buffered everything an executor sent while a write was
in flight, then wrote it in one AppendOutput — past the message cap, refused,
and dropped without a trace (50 MiB streamed, 9.5 MB stored, "dropped 655
output chunks" in the log). Now flushes are bounded, the stream stops being
read while too much is buffered (gRPC flow control holds the executor back),
and where output is cut the stored output and the result say so.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from specloom.process import start_host
from specloom.v1 import common_pb2 as pb
from specloom.v1 import gateway_pb2 as gpb
from specloom_sessions.service import SERVICE as SESSIONS
from tests.fixtures.sessions_server import StartSessions
from tests.gateway.conftest import TOY, Stack, eventually, host_gateway, host_orchestrator
from tests.reliability.executors import HandExecutor, result_for

MIB = 1024 * 1024
CHUNK = 64 * 1024


def _output(
    taken: gpb.CommandAssignment, index: int, stream: int = pb.OUTPUT_STREAM_STDOUT
) -> gpb.ConnectRequest:
    # Each chunk says where it belongs, so order and completeness can be checked.
    data = f"{index:08d}".encode() * (CHUNK // 8)
    return gpb.ConnectRequest(
        output=gpb.CommandOutput(
            session_id=taken.session.id,
            interaction_id=taken.interaction.id,
            lease_epoch=taken.interaction.lease.epoch,
            stream=stream,  # type: ignore[arg-type]
            data=data,
        )
    )


async def _stored(stack: Stack, token: str, taken: gpb.CommandAssignment) -> bytes:
    client = stack.client(token)
    stored = bytearray()
    after: int | None = None
    while True:
        chunks, more = await client.read_output(
            taken.session.id, taken.interaction.id, after_index=after
        )
        for chunk in chunks:
            stored += chunk.data
            after = chunk.index
        if not more:
            return bytes(stored)


async def _burst(stack: Stack, megabytes: int) -> tuple[str, gpb.CommandAssignment, bytes]:
    token = await stack.token()
    executor = HandExecutor(stack.address, token, "firehose", heartbeats=True)
    await executor.connect()
    try:
        client = stack.client(token)
        await client.start_session("Build", {}, mode="agentic")
        taken = (await executor.next("assignment")).assignment
        count = megabytes * MIB // CHUNK
        for index in range(count):  # as fast as the stream takes them
            # One chunk names a stream this version does not know: kept too.
            executor.send(_output(taken, index, 9 if index == 7 else pb.OUTPUT_STREAM_STDOUT))
        executor.send(result_for(taken, "done"))
        ack = (await executor.next("ack", within=120)).ack
        assert ack.accepted, ack
    finally:
        await executor.close()
    return token, taken, b"".join(_output(taken, i).output.data for i in range(count))


async def test_a_burst_of_output_is_stored_whole_and_in_order(stack: Stack) -> None:
    token, taken, sent = await _burst(stack, 40)
    stored = await _stored(stack, token, taken)
    assert len(stored) == len(sent)
    assert stored == sent
    session = await stack.client(token).get_session(taken.session.id)
    assert not session.interactions[0].result.output_truncated


@pytest.fixture
async def small_output_cap(start_sessions_service: StartSessions) -> AsyncIterator[Stack]:
    """The toy stack over a Sessions that keeps 1 MiB of output per interaction."""
    sessions = await start_sessions_service(sessions_max_output_bytes=MIB)
    orchestrator = await host_orchestrator(sessions, TOY)
    gateway = await host_gateway(sessions, [orchestrator])
    stack = Stack(sessions, gateway, [orchestrator])
    yield stack
    await stack.close()


async def test_output_cut_at_the_cap_says_so_in_the_output_and_the_result(
    small_output_cap: Stack,
) -> None:
    stack = small_output_cap
    token, taken, sent = await _burst(stack, 3)
    stored = await _stored(stack, token, taken)
    assert stored.startswith(sent[:MIB])
    marker = stored[MIB:]
    assert marker.startswith(b"\n[specloom: output past"), marker
    assert b"1048576 bytes" in marker
    session = await stack.client(token).get_session(taken.session.id)
    assert session.interactions[0].result.output_truncated


async def test_output_lost_while_sessions_was_down_is_marked_where_it_went_missing(
    stack: Stack,
) -> None:
    token = await stack.token()
    executor = HandExecutor(stack.address, token, "unlucky", heartbeats=True)
    await executor.connect()
    sessions = stack.sessions
    try:
        client = stack.client(token)
        await client.start_session("Build", {}, mode="agentic")
        taken = (await executor.next("assignment")).assignment
        for index in range(4):
            executor.send(_output(taken, index))

        async def written() -> bool:
            return len(await _stored(stack, token, taken)) == 4 * CHUNK

        await eventually(written)
        await sessions.host.stop(0.2)
        for index in range(4, 8):
            executor.send(_output(taken, index))
        await asyncio.sleep(2)  # the gateway tries to write them, and cannot
        sessions.host = await start_host([SESSIONS], sessions.settings(sessions.port))
        for _ in range(20):
            executor.send(result_for(taken, "done"))
            ack = (await executor.next("ack", within=30)).ack
            if ack.accepted:
                break
            assert ack.code == "UNAVAILABLE", ack
            await asyncio.sleep(0.5)
        assert ack.accepted
    finally:
        await executor.close()
    stored = await _stored(stack, token, taken)
    sent = b"".join(_output(taken, i).output.data for i in range(4))
    assert stored.startswith(sent)
    marker = stored[len(sent) :]
    assert marker.startswith(
        b"\n[specloom: 262144 bytes of output were not stored here (UNAVAILABLE"
    ), marker
    session = await stack.client(token).get_session(taken.session.id)
    assert session.interactions[0].result.output_truncated
