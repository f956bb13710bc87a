"""Bad input at the edges: oversize, deep, malformed and absurd requests get clear errors.

Over real processes (Sessions, the bench orchestrator, the gateway) on
PostgreSQL: oversize messages and payloads, Structs nested past the limit,
invalid UTF-8 in output (kept byte for byte) and in text fields (refused),
enum numbers the schema does not define, a workflow asked for 10,000
children, and ids, keys and reasons of 10 KB. Each gets a documented status
code whose message names the field or the limit, and the services' memory
stays bounded throughout.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf.struct_pb2 import Struct

from specloom.errors import InvalidArgument
from specloom.v1 import common_pb2 as pb
from specloom.v1 import gateway_pb2 as gpb
from specloom.v1.gateway_pb2_grpc import GatewayServiceStub
from tests.gateway.conftest import bearer
from tests.reliability.cluster import Cluster, rss_mb
from tests.reliability.executors import HandExecutor, result_for
from tests.reliability.protostrategies import nested

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

MB = 1024 * 1024
TEN_KB = "s" * 10 * 1024


async def _failure(call: Any) -> grpc.aio.AioRpcError:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc
    raise AssertionError("the call succeeded")


def _stub(c: Cluster) -> tuple[Any, grpc.aio.Channel]:
    # Clients may send up to 64 MB, so what is refused is refused by the server.
    channel = grpc.aio.insecure_channel(
        c.gateway, options=[("grpc.max_send_message_length", 64 * MB)]
    )
    return GatewayServiceStub(channel), channel


async def test_absurd_requests_get_clear_errors_and_memory_stays_bounded(
    bench_cluster: Cluster,
) -> None:
    c = bench_cluster
    stub, channel = _stub(c)
    meta = bearer(c.admin_token)
    gateway, sessions = c.services["gateway"], c.services["sessions"]
    before = rss_mb(gateway.pid), rss_mb(sessions.pid)
    try:
        await _oversize(stub, meta)
        await _deep(stub, channel, meta)
        await _unknown_enums(stub, meta)
        await _ten_kilobyte_ids(stub, meta)
        await _bad_text(channel, meta)
        await _output_bytes_and_oversize_results(c, stub, meta)
    finally:
        await channel.close()
    grown = rss_mb(gateway.pid) - before[0], rss_mb(sessions.pid) - before[1]
    assert max(grown) < 150, f"gateway grew {grown[0]:.0f} MB, sessions {grown[1]:.0f} MB"
    for proc in c.processes():
        assert proc.alive(), proc.name
        assert "unhandled error" not in proc.text(), f"{proc.name}:\n{proc.text()[-5000:]}"


def _params(**fields: Any) -> Struct:
    struct = Struct()
    struct.update(fields)
    return struct


def _start(session_type: str, params: Struct, **fields: Any) -> gpb.StartSessionRequest:
    # CopyFrom, not the constructor: upb's constructor re-parses a Struct
    # and refuses to build one nested as deep as these tests need.
    request = gpb.StartSessionRequest(type=session_type, **fields)
    request.params.CopyFrom(params)
    return request


async def _oversize(stub: Any, meta: Any) -> None:
    # Past the 16 MiB message cap: refused by the transport, before any code runs.
    huge = _start("BenchNoop", _params(blob="x" * 20 * MB))
    error = await _failure(stub.StartSession(huge, metadata=meta))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in (error.details() or "")
    # Under the transport cap, over the 1 MiB cap on params: named.
    big = _start("BenchNoop", _params(ticks=1, project={"notes": "x" * 5 * MB}))
    error = await _failure(stub.StartSession(big, metadata=meta))
    assert error.code() in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INVALID_ARGUMENT)
    assert "params" in (error.details() or ""), error.details()


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field in protobuf wire format."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _deep_struct(depth: int) -> bytes:
    """A Struct nested ``depth`` levels: {"n": {"n": ...}}."""
    struct = b""
    for _ in range(depth):
        value = _field(5, struct)  # Value.struct_value
        struct = _field(1, _field(1, b"n") + _field(2, value))  # Struct.fields entry
    return struct


async def _deep(stub: Any, channel: grpc.aio.Channel, meta: Any) -> None:
    # Past the 32 levels a Struct may nest (protobuf's own decoder stops a
    # little further down, at 64 message levels: either names the problem).
    for depth in (33, 40):
        request = _start("BenchNoop", _params(ticks=1, project=nested(depth)))
        error = await _failure(stub.StartSession(request, metadata=meta))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "params is nested deeper than 32" in (error.details() or "") or (
            "not a valid specloom.v1.StartSessionRequest" in (error.details() or "")
        ), error.details()
    # Past protobuf's own recursion limit (no library builds that; hand-made
    # bytes do): the request does not even decode.
    raw = _field(1, b"BenchNoop") + _field(3, _deep_struct(200))
    call: Any = channel.unary_unary("/specloom.v1.GatewayService/StartSession")
    error = await _failure(call(raw, metadata=meta))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid specloom.v1.StartSessionRequest" in (error.details() or "")
    # In a result too (manual mode).
    started = await stub.StartSession(
        gpb.StartSessionRequest(
            type="BenchNoop", execution_mode=pb.EXECUTION_MODE_MANUAL, params=_params(ticks=2)
        ),
        metadata=meta,
    )
    pending = started.session.interactions[-1]
    submit = gpb.SubmitResultRequest(session_id=started.session.id, interaction_id=pending.id)
    submit.result.status = pb.RESULT_STATUS_OK
    submit.result.data.update({"deep": nested(33)})
    error = await _failure(stub.SubmitResult(submit, metadata=meta))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "deeper than 32" in (error.details() or "") or "not a valid" in (
        error.details() or ""
    ), error.details()


async def _unknown_enums(stub: Any, meta: Any) -> None:
    cases = {
        "execution_mode": stub.StartSession(
            gpb.StartSessionRequest(type="BenchNoop", execution_mode=99),  # type: ignore[arg-type]
            metadata=meta,
        ),
        "statuses": stub.ListSessions(
            gpb.ListSessionsRequest(filter=pb.SessionFilter(statuses=[77])),  # type: ignore[list-item]
            metadata=meta,
        ),
    }
    for name, call in cases.items():
        error = await _failure(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        assert name in (error.details() or ""), (name, error.details())
    started = await stub.StartSession(
        gpb.StartSessionRequest(
            type="BenchNoop", execution_mode=pb.EXECUTION_MODE_MANUAL, params=_params(ticks=2)
        ),
        metadata=meta,
    )
    pending = started.session.interactions[-1]
    error = await _failure(
        stub.SubmitResult(
            gpb.SubmitResultRequest(
                session_id=started.session.id,
                interaction_id=pending.id,
                result=pb.Result(status=9),  # type: ignore[arg-type]
            ),
            metadata=meta,
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "status" in (error.details() or "")
    error = await _failure(
        stub.GetSession(
            gpb.GetSessionRequest(session_id=started.session.id, view=42),  # type: ignore[arg-type]
            metadata=meta,
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "view 42" in (error.details() or "")


async def _ten_kilobyte_ids(stub: Any, meta: Any) -> None:
    calls = {
        "GetSession": stub.GetSession(gpb.GetSessionRequest(session_id=TEN_KB), metadata=meta),
        "ListChildren": stub.ListChildren(
            gpb.ListChildrenRequest(session_id=TEN_KB), metadata=meta
        ),
        "ReadOutput": stub.ReadOutput(gpb.ReadOutputRequest(session_id=TEN_KB), metadata=meta),
        "CancelSession": stub.CancelSession(
            gpb.CancelSessionRequest(session_id=TEN_KB), metadata=meta
        ),
        "PauseSession": stub.PauseSession(
            gpb.PauseSessionRequest(session_id=TEN_KB), metadata=meta
        ),
        "ResumeSession": stub.ResumeSession(
            gpb.ResumeSessionRequest(session_id=TEN_KB), metadata=meta
        ),
        "RetrySession": stub.RetrySession(
            gpb.RetrySessionRequest(session_id=TEN_KB, from_step="Tick"), metadata=meta
        ),
        "GetNextCommand": stub.GetNextCommand(
            gpb.GetNextCommandRequest(session_id=TEN_KB), metadata=meta
        ),
        "SubmitResult": stub.SubmitResult(
            gpb.SubmitResultRequest(
                session_id=TEN_KB,
                interaction_id="x",
                result=pb.Result(status=pb.RESULT_STATUS_OK),
            ),
            metadata=meta,
        ),
        "RevokeToken": stub.RevokeToken(gpb.RevokeTokenRequest(token_id=TEN_KB), metadata=meta),
    }
    for name, call in calls.items():
        error = await _failure(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, error.code())
        assert "10240 characters" in (error.details() or ""), (name, error.details())
    watch = stub.WatchSession(gpb.WatchSessionRequest(session_id=TEN_KB), metadata=meta)
    error = await _failure(_drain(watch))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    others = {
        "idempotency_key": gpb.StartSessionRequest(type="BenchNoop", idempotency_key=TEN_KB),
        "reason": gpb.CancelSessionRequest(session_id="a", reason=TEN_KB * 2),
        "type": gpb.StartSessionRequest(type=TEN_KB),
    }
    for name, request in others.items():
        method = stub.StartSession if name != "reason" else stub.CancelSession
        error = await _failure(method(request, metadata=meta))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        assert name in (error.details() or "") or "unknown session type" in (
            error.details() or ""
        ), (name, error.details())
        assert len(error.details() or "") < 1100, name  # the message does not echo 10 KB


async def _drain(call: Any) -> None:
    async for _ in call:
        pass


async def _bad_text(channel: grpc.aio.Channel, meta: Any) -> None:
    # A string field holding invalid UTF-8 cannot come from a protobuf
    # library; it comes from hand-made bytes. It does not decode.
    raw = gpb.GetSessionRequest(session_id="PLACEHOLDER").SerializeToString()
    raw = raw.replace(b"PLACEHOLDER", b"\xff\xfe\x80bad\xc3")
    call: Any = channel.unary_unary("/specloom.v1.GatewayService/GetSession")
    error = await _failure(call(raw, metadata=meta))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "GetSessionRequest" in (error.details() or "")


async def _output_bytes_and_oversize_results(c: Cluster, stub: Any, meta: Any) -> None:
    executor = HandExecutor(c.gateway, c.admin_token, "limits", heartbeats=True)
    await executor.connect()
    try:
        started = await stub.StartSession(
            gpb.StartSessionRequest(
                type="BenchNoop", execution_mode=pb.EXECUTION_MODE_AGENTIC, params=_params(ticks=2)
            ),
            metadata=meta,
        )
        taken = (await executor.next("assignment")).assignment
        interaction = taken.interaction
        junk = b"\xff\xfe\x80 not utf-8 \xc3\x28 \x00\x01"
        executor.send(
            gpb.ConnectRequest(
                output=gpb.CommandOutput(
                    session_id=taken.session.id,
                    interaction_id=interaction.id,
                    lease_epoch=interaction.lease.epoch,
                    stream=pb.OUTPUT_STREAM_STDOUT,
                    data=junk,
                )
            )
        )
        # A result over the 8 MiB cap on results can never be stored, and
        # refused, the command would run again: it is answered, a short ERROR
        # saying why is stored in its place, and the session fails naming it.
        oversize = result_for(taken, "y" * 9 * MB)
        executor.send(oversize)
        ack = (await executor.next("ack")).ack
        assert ack.accepted, ack
        failed = await stub.GetSession(
            gpb.GetSessionRequest(session_id=taken.session.id), metadata=meta
        )
        assert failed.session.status == pb.SESSION_STATUS_FAILED
        assert "its result could not be recorded: complete.result is " in (
            failed.session.status_reason
        ), failed.session.status_reason
        assert "the cap is 8388608 bytes" in failed.session.status_reason
        stored = failed.session.interactions[-1].result
        assert stored.status == pb.RESULT_STATUS_ERROR
        assert not stored.stdout
        # The step took its answer: another result for it is refused.
        executor.answer(taken, "fine")
        assert (await executor.next("ack")).ack.code == "FAILED_PRECONDITION"
        output = await stub.ReadOutput(
            gpb.ReadOutputRequest(session_id=taken.session.id, interaction_id=interaction.id),
            metadata=meta,
        )
        assert b"".join(chunk.data for chunk in output.chunks) == junk  # byte for byte
        # An output chunk past the message cap ends the stream, clearly.
        executor.send(
            gpb.ConnectRequest(
                output=gpb.CommandOutput(
                    session_id=taken.session.id, interaction_id="x", data=b"z" * 20 * MB
                )
            )
        )
        async with asyncio.timeout(20):
            while executor.ended is None:
                await asyncio.sleep(0.05)
        assert executor.ended == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert started.session.id == taken.session.id
    finally:
        await executor.close()


async def _requests(*messages: gpb.ConnectRequest) -> AsyncIterator[gpb.ConnectRequest]:
    for message in messages:
        yield message


async def test_ten_thousand_children_fail_the_session_with_the_limit_named(
    bench_cluster: Cluster,
) -> None:
    c = bench_cluster
    client = c.client()
    reason = "Spawn cannot start: step Spawn asked for 10000 children; the limit is 2000"
    # Manual: the result of the step before is recorded; the session stops, saying why.
    manual = await client.start_session("BenchParent", {"children": 10_000}, mode="manual")
    start = manual.session.interactions[-1]
    answer = await client.submit_result(
        manual.session.id, start.id, pb.Result(status=pb.RESULT_STATUS_OK)
    )
    assert answer.completed.status == pb.INTERACTION_STATUS_COMPLETED
    assert answer.WhichOneof("next") == "done"
    assert answer.done.status == pb.SESSION_STATUS_FAILED
    assert answer.done.reason == reason
    # A resume asks for the same children, and is refused with the same reason.
    with pytest.raises(InvalidArgument, match="asked for 10000 children; the limit is 2000"):
        await client.resume(manual.session.id)
    # Agentic: the executor's result is taken once; the step is not run again and again.
    executor = HandExecutor(c.gateway, c.admin_token, "spawner").honest()
    await executor.connect()
    gateway, sessions = c.services["gateway"], c.services["sessions"]
    before = rss_mb(gateway.pid), rss_mb(sessions.pid)
    try:
        agentic = await client.start_session("BenchParent", {"children": 10_000}, mode="agentic")
        async with asyncio.timeout(20):
            while (await client.get_session(agentic.session.id)).status == pb.SESSION_STATUS_ACTIVE:
                await asyncio.sleep(0.1)
        await asyncio.sleep(3)  # time for a (wrong) second attempt
        session = await client.get_session(agentic.session.id)
        assert session.status == pb.SESSION_STATUS_FAILED
        assert session.status_reason == reason
        assert [i.step for i in session.interactions] == ["Start"]
        assert len(executor.assignments()) == 1
        assert [a.accepted for a in executor.acks()] == [True]
        assert not await client.children(agentic.session.id)
    finally:
        await executor.close()
    assert rss_mb(gateway.pid) - before[0] < 50
    assert rss_mb(sessions.pid) - before[1] < 50
