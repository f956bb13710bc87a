"""An orchestrator service as a :class:`~specloom.host.ServiceSpec`."""

from __future__ import annotations

from specloom.host import ServiceContext, ServiceSpec
from specloom.orchestration.config import OrchestratorSettings
from specloom.orchestration.engine import Engine
from specloom.orchestration.servicer import OrchestratorServicer
from specloom.orchestration.sessions_client import SessionsClient
from specloom.rpc.server import GrpcServer
from specloom.v1 import orchestrator_pb2_grpc as opb_grpc
from specloom.v1.sessions_pb2_grpc import SessionsServiceStub
from specloom.workflow import Registry

SERVICE_NAME = "specloom.v1.OrchestratorService"


def build_servicer(registry: Registry, ctx: ServiceContext) -> OrchestratorServicer:
    """An OrchestratorServicer for ``registry`` talking to the configured Sessions service."""
    settings = ctx.settings_for(OrchestratorSettings)
    # The generated stub's constructor is typed to return the async stub for
    # an aio channel.
    stub = SessionsServiceStub(ctx.channel(ctx.settings.sessions_address))
    sessions = SessionsClient(
        stub,
        ctx.channels.metadata,
        batch_max=settings.advance_batch_max,
        batches_in_flight=settings.advance_batches_in_flight,
    )
    return OrchestratorServicer(Engine(registry), sessions, cache_size=settings.head_cache_size)


def add_orchestrator(server: GrpcServer, servicer: OrchestratorServicer) -> None:
    """Register ``servicer`` as the server's OrchestratorService."""
    server.add(
        SERVICE_NAME,
        lambda grpc_server: opb_grpc.add_OrchestratorServiceServicer_to_server(
            servicer, grpc_server
        ),
    )


def orchestrator_service(name: str, summary: str, registry: Registry) -> ServiceSpec:
    """The spec of an orchestrator service serving ``registry``.

    In the all-in-one mode the host merges the registries of every
    orchestrator spec and registers one servicer for all of them (a server
    can hold only one OrchestratorService).
    """

    async def setup(server: GrpcServer, ctx: ServiceContext) -> None:
        add_orchestrator(server, build_servicer(registry, ctx))

    return ServiceSpec(name=name, summary=summary, setup=setup, workflows=registry)
