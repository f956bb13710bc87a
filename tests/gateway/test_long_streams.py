"""Long-lived streams: watches end when their token is revoked or their session
waits for a person; executor streams are capped per token and re-verify their
token through a short cache."""

from __future__ import annotations

import asyncio
import time

import grpc
from prometheus_client import REGISTRY

from specloom.v1 import common_pb2 as pb
from specloom.v1 import gateway_pb2 as gpb
from tests.gateway.conftest import Stack, StartStack, bearer
from tests.reliability.executors import HandExecutor


def _verifications() -> float:
    value = REGISTRY.get_sample_value(
        "specloom_rpc_handled_total",
        {"service": "TokensService", "method": "VerifyToken", "code": "OK"},
    )
    return value or 0.0


async def _events(stack: Stack, token: str, session_id: str) -> list[pb.SessionEvent]:
    """Every event of a watch, which must end by itself within 10 s."""
    seen: list[pb.SessionEvent] = []

    async def follow() -> None:
        async for event in stack.client(token).watch(session_id, include_children=True):
            seen.append(event)

    await asyncio.wait_for(follow(), 10)
    return seen


async def test_a_watch_of_a_failed_or_paused_session_ends(stack: Stack) -> None:
    token = await stack.token()
    client = stack.client(token)
    # Already paused: the snapshot, then the end.
    paused = (await client.start_session("Build", {}, mode="manual")).session
    await client.pause(paused.id, "lunch")
    events = await _events(stack, token, paused.id)
    assert [e.WhichOneof("event") for e in events] == ["snapshot"]
    assert events[0].snapshot.status == pb.SESSION_STATUS_PAUSED
    # Failing while watched: the change, then the end.
    failing = (await client.start_session("Build", {}, mode="manual")).session
    watch = asyncio.ensure_future(_events(stack, token, failing.id))
    await asyncio.sleep(0.5)
    fatal = pb.Result(status=pb.RESULT_STATUS_ERROR, error_message="the disk is on fire")
    fatal.data.update({"fatal": True})
    await client.submit_result(failing.id, failing.interactions[0].id, fatal)
    events = await watch
    heads = [e.session for e in events if e.WhichOneof("event") == "session"]
    assert heads[-1].status == pb.SESSION_STATUS_FAILED
    assert "the disk is on fire" in heads[-1].status_reason


async def _watching(
    stack: Stack, token: str, session_id: str, received: list[float]
) -> grpc.StatusCode:
    call = stack.stub().WatchSession(
        gpb.WatchSessionRequest(session_id=session_id, include_output=True),
        metadata=bearer(token),
    )
    try:
        async for _ in call:
            received.append(time.monotonic())
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def _chatter(executor: HandExecutor, taken: gpb.CommandAssignment) -> None:
    while True:
        executor.send(
            gpb.ConnectRequest(
                output=gpb.CommandOutput(
                    session_id=taken.session.id,
                    interaction_id=taken.interaction.id,
                    lease_epoch=taken.interaction.lease.epoch,
                    stream=pb.OUTPUT_STREAM_STDOUT,
                    data=b"still going\n",
                )
            )
        )
        await asyncio.sleep(0.1)


async def test_a_revoked_token_ends_an_open_watch(start_stack: StartStack) -> None:
    stack = await start_stack(stream_token_check_seconds=0.5)
    admin = await stack.token("acme", "alpha", "root", admin=True)
    made = await stack.client(admin).create_token(
        pb.Scope(account_id="acme", project_id="alpha", user_id="viewer"), name="viewer"
    )
    executor = HandExecutor(stack.address, admin, "chatty", heartbeats=True)
    await executor.connect()
    chatter: asyncio.Task[None] | None = None
    try:
        started = await stack.client(admin).start_session("Build", {}, mode="agentic")
        taken = (await executor.next("assignment")).assignment
        chatter = asyncio.create_task(_chatter(executor, taken))
        received: list[float] = []
        watch = asyncio.ensure_future(_watching(stack, made.token, started.session.id, received))
        await asyncio.sleep(1.5)
        assert received, "the watch sees the output while its token is valid"
        await stack.client(admin).revoke_token(made.info.id)
        revoked = time.monotonic()
        code = await asyncio.wait_for(watch, 10)
        assert code == grpc.StatusCode.UNAUTHENTICATED
        # Output kept coming; the watch stopped delivering it within a re-check
        # interval and the re-check cache.
        assert max(received) - revoked < 0.5 + 5 + 1
    finally:
        if chatter is not None:
            chatter.cancel()
        await executor.close()


async def test_heartbeats_of_many_streams_share_one_verification(
    start_stack: StartStack,
) -> None:
    stack = await start_stack(token_cache_seconds=5)
    token = await stack.token()
    executors = [HandExecutor(stack.address, token, f"box-{n}", heartbeats=True) for n in range(10)]
    for executor in executors:
        await executor.connect()
    try:
        before = _verifications()
        await asyncio.sleep(3.2)  # three heartbeats each (1 s interval here)
        # Without the cache: 30 verifications; with it, one per cache period.
        assert _verifications() - before <= 2
    finally:
        for executor in executors:
            await executor.close()


async def test_executor_streams_are_capped_per_token(start_stack: StartStack) -> None:
    stack = await start_stack(max_executor_streams_per_token=3)
    token = await stack.token()
    other = await stack.token(user="bob")
    held = [HandExecutor(stack.address, token, f"box-{n}") for n in range(3)]
    for executor in held:
        await executor.connect()
    extra = HandExecutor(stack.address, token, "box-3")
    connecting = asyncio.ensure_future(extra.connect())
    try:
        async with asyncio.timeout(10):
            while extra.ended is None:
                await asyncio.sleep(0.05)
        assert extra.ended == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert not connecting.done() or connecting.exception() is not None
        # Another token is not affected; a closed stream frees its place.
        bob = HandExecutor(stack.address, other, "bob-box")
        await bob.connect()
        await bob.close()
        await held[0].close()
        again = HandExecutor(stack.address, token, "box-0")
        await again.connect()
        await again.close()
    finally:
        connecting.cancel()
        await asyncio.gather(connecting, return_exceptions=True)
        await extra.close()
        for executor in held[1:]:
            await executor.close()
