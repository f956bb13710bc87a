"""Server reflection answers under grpc.reflection.v1 (what current grpcurl asks
first) and under v1alpha (what older clients ask)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from specloom.rpc.server import GrpcServer


def _message(name: str) -> Any:
    return message_factory.GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(name))


async def _ask(channel: grpc.aio.Channel, version: str, **request: Any) -> Any:
    """One request on ServerReflectionInfo of ``version``, in that version's own messages."""
    ask = _message(f"grpc.reflection.{version}.ServerReflectionRequest")
    answer = _message(f"grpc.reflection.{version}.ServerReflectionResponse")
    call = channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=ask.SerializeToString,
        response_deserializer=answer.FromString,
    )

    async def one() -> AsyncIterator[Any]:
        yield ask(**request)

    async for response in call(one()):
        return response
    raise AssertionError("no answer")


async def test_reflection_answers_as_v1_and_as_v1alpha() -> None:
    server = GrpcServer("127.0.0.1:0")
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        for version in ("v1", "v1alpha"):
            listed = await _ask(channel, version, list_services="")
            names = {service.name for service in listed.list_services_response.service}
            assert {
                "grpc.health.v1.Health",
                "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection",
            } <= names, (version, names)
            # Describing a service: its file comes back (grpcurl describe).
            for symbol in ("grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"):
                found = await _ask(channel, version, file_containing_symbol=symbol)
                files = found.file_descriptor_response.file_descriptor_proto
                assert files, (version, symbol, found)
                parsed = descriptor_pb2.FileDescriptorProto.FromString(files[0])
                assert symbol.rsplit(".", 1)[0] == parsed.package
    finally:
        await channel.close()
        await server.stop(0)
