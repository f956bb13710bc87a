"""Server reflection under both names clients ask for: ``grpc.reflection.v1``
and the older ``grpc.reflection.v1alpha``.

grpcio-reflection ships only the v1alpha service. The v1 protocol is the same
protocol under a new package name (every message and field number equal),
so one servicer serves both: its v1alpha messages are read and written for
v1 calls byte for byte. The v1 file descriptor is added to the pool, derived
from v1alpha's with the package renamed, so reflection can describe the v1
service itself too (``grpcurl describe grpc.reflection.v1.ServerReflection``).
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

V1ALPHA = reflection.SERVICE_NAME
V1 = "grpc.reflection.v1.ServerReflection"
_ALPHA_PACKAGE = ".grpc.reflection.v1alpha."
_V1_PACKAGE = ".grpc.reflection.v1."


def _v1_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """v1's file descriptor: v1alpha's, renamed."""
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    proto.name = "grpc/reflection/v1/reflection.proto"
    proto.package = "grpc.reflection.v1"
    proto.ClearField("options")
    for message in proto.message_type:
        for item in message.field:
            if item.type_name:  # set only on message fields (presence matters here)
                item.type_name = item.type_name.replace(_ALPHA_PACKAGE, _V1_PACKAGE)
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(_ALPHA_PACKAGE, _V1_PACKAGE)
            method.output_type = method.output_type.replace(_ALPHA_PACKAGE, _V1_PACKAGE)
    return proto


def _add_v1_descriptor(pool: descriptor_pool.DescriptorPool) -> None:
    proto = _v1_descriptor()
    try:
        pool.FindFileByName(proto.name)
    except KeyError:
        pool.AddSerializedFile(proto.SerializeToString())


def enable_reflection(service_names: Iterable[str], server: grpc.aio.Server) -> None:
    """Serve reflection (v1 and v1alpha) listing ``service_names`` and itself."""
    pool = descriptor_pool.Default()
    _add_v1_descriptor(pool)
    servicer = reflection.aio.ReflectionServicer([*service_names, V1, V1ALPHA], pool=pool)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    v1 = grpc.method_handlers_generic_handler(
        V1,
        {
            "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                servicer.ServerReflectionInfo,
                request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((v1,))
