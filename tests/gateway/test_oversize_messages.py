"""A message over the cap ends a stream with RESOURCE_EXHAUSTED naming the cap, every time.

The transport reads messages up to four times the 16 MiB cap whole and the
interceptor refuses them; refused by the transport mid-send instead, the
sender's own write would fail first and its library would report INTERNAL
("Failed execute_batch") in a race with the real status. Each size is sent
several times, each on a stream of its own, because the old failure was a
race that a single try usually won.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from specloom.v1 import common_pb2 as pb
from specloom.v1 import gateway_pb2 as gpb
from specloom.v1.gateway_pb2_grpc import GatewayServiceStub
from tests.gateway.conftest import Stack, bearer

MB = 1024 * 1024


async def _stream_ends_with(stack: Stack, token: str, message: gpb.ConnectRequest) -> grpc.RpcError:
    async def requests() -> AsyncIterator[gpb.ConnectRequest]:
        yield gpb.ConnectRequest(
            register=gpb.Register(name="big", capabilities=["shell"], max_parallel=1)
        )
        yield message

    channel = grpc.aio.insecure_channel(stack.address)
    try:
        call = GatewayServiceStub(channel).Connect(requests(), metadata=bearer(token))
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            async for _ in call:
                pass
        return failure.value
    finally:
        await channel.close(None)


@pytest.mark.parametrize("size_mb", [20, 50])
async def test_an_oversize_executor_message_is_resource_exhausted(
    stack: Stack, size_mb: int
) -> None:
    token = await stack.token()
    output = gpb.ConnectRequest(
        output=gpb.CommandOutput(
            session_id="s",
            interaction_id="i",
            stream=pb.OUTPUT_STREAM_STDOUT,
            data=b"z" * size_mb * MB,
        )
    )
    for _ in range(4):
        error = await _stream_ends_with(stack, token, output)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
        assert "larger than max (16777216 bytes)" in (error.details() or "")
        assert "ConnectRequest" in (error.details() or "")


async def test_an_oversize_unary_request_names_the_cap(stack: Stack) -> None:
    token = await stack.token()
    request = gpb.StartSessionRequest(type="Build")
    request.params.update({"blob": "x" * 30 * MB})
    for _ in range(3):
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stack.stub().StartSession(request, metadata=bearer(token))
        assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "StartSessionRequest message of" in (failure.value.details() or "")
