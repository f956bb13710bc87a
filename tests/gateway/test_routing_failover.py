"""Replicas of one orchestrator behind one target: calls spread, and survive a replica dying.

The gateway is configured as on Kubernetes, with one target per
orchestrator service naming every replica (``ipv4:a,b`` here, what
``dns:///coding:7420`` resolves to there). Replica A sits behind a relay
that can swallow requests (a replica hung mid-call) and then drop every
connection (the replica SIGKILLed). Calls caught in A when it dies are
retried on B, so the client never sees the failure.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from specloom.host import HostSettings
from specloom.process import RunningHost, start_host
from specloom.v1 import common_pb2 as pb
from specloom_gateway.service import SERVICE as GATEWAY
from tests.fixtures.sessions_server import SessionsUnderTest
from tests.gateway.conftest import FAST, TOY, Stack, host_orchestrator

SESSIONS = 6


class Cutoff:
    """A TCP relay to ``target`` that can swallow requests, then drop every connection."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self._target = (host, int(port))
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.holding = False
        self.swallowed = 0
        self.address = ""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.address = f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers += [writer, up_writer]
        for source, sink, inbound in ((reader, up_writer, True), (up_reader, writer, False)):
            task = asyncio.create_task(self._pipe(source, sink, inbound=inbound))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, inbound: bool
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await source.read(65536):
                if inbound and self.holding:
                    self.swallowed += len(data)  # the replica never sees it
                    continue
                sink.write(data)
                await sink.drain()

    async def die(self) -> None:
        """Refuse new connections and reset every open one (a killed process)."""
        assert self._server is not None
        self.holding = True
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()


@pytest.fixture
async def replicas(sessions_service: SessionsUnderTest) -> AsyncIterator[list[RunningHost]]:
    hosts = [await host_orchestrator(sessions_service, TOY) for _ in range(2)]
    yield hosts
    for host in hosts:
        await host.stop(0.2)


async def test_calls_caught_in_a_dying_replica_are_retried_on_the_other(
    sessions_service: SessionsUnderTest, replicas: list[RunningHost]
) -> None:
    relay = Cutoff(replicas[0].address)
    await relay.start()
    settings = HostSettings(
        listen="127.0.0.1:0",
        sessions_address=sessions_service.address,
        orchestrator_addresses=[f"ipv4:{relay.address},{replicas[1].address}"],
        internal_secret=SecretStr(sessions_service.secret),
        grace_seconds=0.5,
    )
    gateway = await start_host([GATEWAY], settings, FAST)
    stack = Stack(sessions_service, gateway, orchestrators=[])  # the fixture stops the replicas
    try:
        token = await stack.token()
        client = stack.client(token)
        pending: list[tuple[str, str]] = []
        for _ in range(SESSIONS):
            started = await client.start_session("Build", {}, mode="manual")
            command = await client.next_command(started.session.id)
            assert isinstance(command, pb.Interaction)
            pending.append((started.session.id, command.id))

        # Replica A hangs: the calls round_robin gives it go nowhere.
        relay.holding = True
        ok = pb.Result(status=pb.RESULT_STATUS_OK, exit_code=0, stdout="compiled")
        calls = [
            asyncio.create_task(client.submit_result(session_id, interaction_id, ok))
            for session_id, interaction_id in pending
        ]
        done, hanging = await asyncio.wait(calls, timeout=2)
        # round_robin gave some calls to each replica: B answered, A holds the rest.
        assert done
        assert hanging
        assert relay.swallowed > 0

        # A dies: its calls come back UNAVAILABLE and are retried on B.
        await relay.die()
        answers = await asyncio.wait_for(asyncio.gather(*calls), 20)
        assert all(answer.completed.status == pb.INTERACTION_STATUS_COMPLETED for answer in answers)
        for session_id, interaction_id in pending:
            session = await client.get_session(session_id)
            assert [i.step for i in session.interactions] == ["Compile", "Test"]
            assert session.interactions[0].id == interaction_id
            assert session.interactions[0].result.stdout == "compiled"

        # The route keeps working with one replica left.
        again = await client.start_session("Build", {}, mode="manual")
        assert isinstance(await client.next_command(again.session.id), pb.Interaction)
    finally:
        await stack.close()
        await relay.die()
