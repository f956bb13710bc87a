"""The gateway under test, with everything it talks to real.

``start_stack`` hosts, each through :func:`specloom.process.start_host`
(what ``specloom serve`` runs) on its own loopback port: the Sessions
service (the ``sessions_service`` fixture, so SQLite and PostgreSQL), the
orchestrator services asked for, and the gateway. Executors are the real
agent (:class:`specloom.agent.AgentLoop`) over real git repositories.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from pydantic import SecretStr

from specloom.agent import AgentLoop, AgentSettings, build_executor
from specloom.client import Client
from specloom.host import HostSettings, ServiceSpec
from specloom.orchestration import orchestrator_service
from specloom.process import RunningHost, start_host
from specloom.rpc import metadata as md
from specloom.v1 import common_pb2 as pb
from specloom.v1 import gateway_pb2 as gpb
from specloom.v1 import tokens_pb2 as tpb
from specloom.v1.gateway_pb2_grpc import GatewayServiceStub
from specloom_gateway.service import SERVICE as GATEWAY
from tests.fixtures.sessions_server import SessionsUnderTest
from tests.orchestration.toy import REGISTRY as TOY_REGISTRY

if TYPE_CHECKING:
    from specloom.v1.gateway_pb2_grpc import GatewayServiceAsyncStub

TOY = orchestrator_service("toy", "toy workflows (tests only)", TOY_REGISTRY)

FAST = {
    # Short enough that lease expiry and sweeps happen within a test.
    "lease_ttl_seconds": 30,
    "heartbeat_interval_seconds": 1,
    "claim_sweep_interval_seconds": 0.2,
    "join_sweep_interval_seconds": 0.5,
    "stalled_sweep_interval_seconds": 0.5,
    "stalled_idle_ms": 500,
    "output_flush_interval_seconds": 0.05,
}

MAKEFILE = """\
.PHONY: compile test fix work prepare finish slow
compile:
\t@echo compiled
test:
\t@echo tested
fix:
\t@echo fixed
work:
\t@echo working on it
prepare:
\t@echo prepared
finish:
\t@echo finished
"""


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo``."""
    done = subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    )
    return done.stdout


def make_repo(path: Path, files: dict[str, str] | None = None) -> Path:
    """A git repository with one commit on ``main`` (a Makefile for the toy workflows)."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test Person")
    git(path, "config", "user.email", "test@example.invalid")
    for name, content in {"Makefile": MAKEFILE, **(files or {})}.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "initial")
    return path


@dataclass(frozen=True)
class Seen:
    """A message an agent received from the gateway."""

    agent: str
    at: float
    message: gpb.ConnectResponse
    wall: float = field(default_factory=time.time)
    """Wall-clock time it arrived (comparable with the times Sessions records)."""


class StreamRecorder(grpc.aio.StreamStreamClientInterceptor):
    """Records what the gateway sends an agent (the agent itself keeps no history)."""

    def __init__(self, agent: str, seen: list[Seen]) -> None:
        self._agent = agent
        self._seen = seen

    async def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        call = await continuation(client_call_details, request_iterator)

        async def responses() -> AsyncIterator[gpb.ConnectResponse]:
            async for response in call:
                self._seen.append(Seen(self._agent, time.monotonic(), response))
                yield response

        return responses()


@dataclass
class Stack:
    """Sessions, orchestrators and a gateway, running; helpers to reach them."""

    sessions: SessionsUnderTest
    gateway: RunningHost
    orchestrators: list[RunningHost]
    agents: list[tuple[AgentLoop, asyncio.Task[int]]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    """Every message the gateway sent to agents started by :meth:`agent`."""
    clients: list[Client] = field(default_factory=list)
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    @property
    def address(self) -> str:
        """The gateway's ``127.0.0.1:<port>``."""
        return self.gateway.address

    async def token(
        self,
        account: str = "acme",
        project: str = "alpha",
        user: str = "alice",
        *,
        admin: bool = False,
    ) -> str:
        """A fresh token, issued straight through TokensService."""
        response = await self.sessions.tokens.IssueToken(
            tpb.IssueTokenRequest(
                scope=pb.Scope(account_id=account, project_id=project, user_id=user),
                admin=admin,
                name=f"{user} test token",
            ),
            metadata=self.sessions.metadata,
        )
        return response.token

    def client(self, token: str | None) -> Client:
        """A client SDK connection with ``token``."""
        client = Client(self.address, token)
        self.clients.append(client)
        return client

    def stub(self) -> GatewayServiceAsyncStub:
        """A raw gateway stub (pass :func:`bearer` metadata yourself)."""
        channel = grpc.aio.insecure_channel(self.address)
        self.channels.append(channel)
        return GatewayServiceStub(channel)

    async def agent(
        self,
        token: str,
        workspace: Path,
        name: str,
        *,
        max_parallel: int = 1,
        address: str | None = None,
        **settings: Any,
    ) -> AgentLoop:
        """Start a real executor agent in this process; returns once it is connected."""
        target = address or self.address
        agent_settings = AgentSettings(
            gateway=target,
            token=SecretStr(token),
            workspace=workspace,
            name=name,
            max_parallel=max_parallel,
            backends=settings.pop("backends", []),
            reconnect_initial_seconds=0.1,
            reconnect_max_seconds=1.0,
            drain_seconds=5.0,
            **settings,
        )
        recorder = StreamRecorder(name, self.seen)

        def channel() -> grpc.aio.Channel:
            ca = agent_settings.tls_ca_file
            if ca is not None:
                # As the agent's own channel does: verify the gateway against the CA.
                credentials = grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())
                channel = grpc.aio.secure_channel(target, credentials, interceptors=[recorder])
            else:
                channel = grpc.aio.insecure_channel(target, interceptors=[recorder])
            self.channels.append(channel)
            return channel

        loop = AgentLoop(agent_settings, build_executor(agent_settings), channel_factory=channel)
        task = asyncio.create_task(loop.run())
        self.agents.append((loop, task))
        await asyncio.wait_for(loop.connected.wait(), 10)
        return loop

    def assignments(self) -> list[tuple[str, float, gpb.CommandAssignment]]:
        """(agent name, arrival time, assignment) for every command handed out."""
        return [
            (seen.agent, seen.at, seen.message.assignment)
            for seen in self.seen
            if seen.message.WhichOneof("message") == "assignment"
        ]

    def acks(self) -> list[tuple[str, gpb.ResultAck]]:
        """(agent name, ack) for every result acknowledged."""
        return [
            (seen.agent, seen.message.ack)
            for seen in self.seen
            if seen.message.WhichOneof("message") == "ack"
        ]

    async def stop_agent(self, loop: AgentLoop) -> None:
        """Stop one agent at once (its stream closes, running commands are cancelled)."""
        for candidate, task in self.agents:
            if candidate is loop:
                loop.stopped.set()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(task, 15)

    async def close(self) -> None:
        for loop, _ in self.agents:
            loop.stopped.set()
        for _, task in self.agents:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, 15)
        for client in self.clients:
            await client.close()
        for channel in self.channels:
            await channel.close(None)
        await self.gateway.stop(0.5)
        for host in self.orchestrators:
            await host.stop(0.2)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying ``token``."""
    return ((md.AUTHORIZATION, f"Bearer {token}"),)


StartStack = Callable[..., Awaitable[Stack]]


async def host_orchestrator(sessions: SessionsUnderTest, spec: ServiceSpec) -> RunningHost:
    """Start an orchestrator spec against ``sessions``."""
    settings = HostSettings(
        listen="127.0.0.1:0",
        sessions_address=sessions.address,
        internal_secret=SecretStr(sessions.secret),
        grace_seconds=0.5,
    )
    return await start_host([spec], settings)


async def host_gateway(
    sessions: SessionsUnderTest, orchestrators: Sequence[RunningHost], **overrides: Any
) -> RunningHost:
    """Start the gateway against ``sessions`` and ``orchestrators``."""
    settings = HostSettings(
        listen="127.0.0.1:0",
        sessions_address=sessions.address,
        orchestrator_addresses=[host.address for host in orchestrators],
        internal_secret=SecretStr(sessions.secret),
        grace_seconds=2.0,
    )
    return await start_host([GATEWAY], settings, {**FAST, **overrides})


@pytest.fixture
async def start_stack(sessions_service: SessionsUnderTest) -> AsyncIterator[StartStack]:
    """A factory: ``await start_stack(specs=[TOY], **gateway_settings)``."""
    stacks: list[Stack] = []

    async def start(specs: Sequence[ServiceSpec] = (TOY,), **overrides: Any) -> Stack:
        orchestrators = [await host_orchestrator(sessions_service, spec) for spec in specs]
        gateway = await host_gateway(sessions_service, orchestrators, **overrides)
        stack = Stack(sessions_service, gateway, orchestrators)
        stacks.append(stack)
        return stack

    yield start
    for stack in stacks:
        await stack.close()


@pytest.fixture
async def stack(start_stack: StartStack) -> Stack:
    """The gateway over the toy workflows."""
    return await start_stack()


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 20.0, every: float = 0.05
) -> None:
    """Wait until ``check()`` is true (fails the test after ``timeout`` seconds)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(every)
