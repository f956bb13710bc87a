"""The executor's gateway loop against a stand-in of the gateway's Connect stream."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from specloom.agent.config import AgentSettings
from specloom.agent.connection import AgentLoop
from specloom.agent.executor import Executor, ExecutorOptions
from specloom.agent.workspace import Workspace
from specloom.v1 import common_pb2 as pb
from specloom.v1 import gateway_pb2 as gpb
from specloom.workflow import commands as c

from .gateway_standin import GatewayStandin, start_standin

TOKEN = "executor-token"
WELCOME = gpb.Welcome(
    executor_id="ex-1", heartbeat_interval_seconds=1, lease_ttl_seconds=30, max_output_chunk_bytes=8
)


def assignment(command: pb.Command, interaction_id: str, epoch: int = 1) -> gpb.ConnectResponse:
    interaction = pb.Interaction(id=interaction_id, seq=1, step=command.step, command=command)
    interaction.lease.epoch = epoch
    session = pb.Session(id="session-1", type="ComponentCoding")
    return gpb.ConnectResponse(
        assignment=gpb.CommandAssignment(session=session, interaction=interaction)
    )


def ack(interaction_id: str, accepted: bool = True) -> gpb.ConnectResponse:
    return gpb.ConnectResponse(ack=gpb.ResultAck(interaction_id=interaction_id, accepted=accepted))


class Harness:
    def __init__(self, standin: GatewayStandin, loop: AgentLoop, task: asyncio.Task[int]) -> None:
        self.standin = standin
        self.loop = loop
        self.task = task


def settings_for(port: int, workspace: Workspace, **overrides: object) -> AgentSettings:
    values: dict[str, object] = {
        "gateway": f"127.0.0.1:{port}",
        "token": TOKEN,
        "workspace": workspace.root,
        "name": "test-executor",
        "labels": {"os": "linux"},
        "max_parallel": 2,
        "backends": [],
        "reconnect_initial_seconds": 0.05,
        "reconnect_max_seconds": 0.2,
        "drain_seconds": 5.0,
        **overrides,
    }
    return AgentSettings.model_validate(values)


@pytest.fixture
async def harness(workspace: Workspace) -> AsyncIterator[Harness]:
    server, standin, port = await start_standin(TOKEN, WELCOME)
    executor = Executor(workspace, options=ExecutorOptions(kill_grace=0.2))
    loop = AgentLoop(settings_for(port, workspace), executor)
    task = asyncio.create_task(loop.run())
    try:
        yield Harness(standin, loop, task)
    finally:
        loop.stopped.set()
        await asyncio.wait_for(task, 15)
        await server.stop(0)


async def test_register_run_stream_and_report(harness: Harness) -> None:
    stream = await harness.standin.next_stream()
    register = await stream.expect("register")
    assert register.name == "test-executor"
    assert list(register.capabilities) == ["shell", "git"]
    assert dict(register.labels) == {"os": "linux"}
    assert register.max_parallel == 2
    assert stream.metadata["authorization"] == f"Bearer {TOKEN}"
    command = c.shell(
        "RunTests",
        [sys.executable, "-c", "import time; print('hello world, long line'); time.sleep(1.5)"],
    )
    stream.send(assignment(command, "int-1", epoch=7))
    output = await stream.expect("output")
    assert output.interaction_id == "int-1"
    assert output.lease_epoch == 7
    assert len(output.data) <= 8  # chunked to Welcome.max_output_chunk_bytes
    heartbeat = await stream.expect("heartbeat")
    assert [(r.interaction_id, r.epoch) for r in heartbeat.running] == [("int-1", 7)]
    result = await stream.expect("result")
    assert result.lease_epoch == 7
    assert result.session_id == "session-1"
    assert result.result.status == pb.RESULT_STATUS_OK
    assert result.result.stdout == "hello world, long line\n"
    # Unacknowledged: the lease is still held.
    assert [r.interaction_id for r in harness.loop.leases()] == ["int-1"]
    stream.send(ack("int-1"))
    await asyncio.sleep(0.1)
    assert harness.loop.leases() == []


async def test_cancel_command(harness: Harness) -> None:
    stream = await harness.standin.next_stream()
    stream.send(
        assignment(c.shell("S", [sys.executable, "-c", "import time; time.sleep(60)"]), "i2")
    )
    await asyncio.sleep(0.3)
    stream.send(
        gpb.ConnectResponse(cancel=gpb.CancelCommand(interaction_id="i2", reason="lease lost"))
    )
    result = await stream.expect("result")
    assert result.result.status == pb.RESULT_STATUS_ERROR
    assert "cancelled" in result.result.error_message


async def test_reconnect_keeps_running_work_and_resends_results(harness: Harness) -> None:
    stream = await harness.standin.next_stream()
    sleeper = c.shell("S", [sys.executable, "-c", "import time; time.sleep(1); print('done')"])
    stream.send(assignment(sleeper, "i3", epoch=2))
    await asyncio.sleep(0.2)
    stream.drop()
    second = await harness.standin.next_stream()
    register = await second.expect("register")
    assert [(r.interaction_id, r.epoch) for r in register.running] == [("i3", 2)]
    result = await second.expect("result")
    assert result.result.stdout == "done\n"
    # Dropped before the ack: the result is sent again on the next stream.
    second.drop()
    third = await harness.standin.next_stream()
    again = await third.expect("result")
    assert again.interaction_id == "i3"
    third.send(ack("i3"))
    await asyncio.sleep(0.1)
    assert harness.loop.leases() == []


async def test_duplicate_assignment_runs_once(harness: Harness, workspace: Workspace) -> None:
    stream = await harness.standin.next_stream()
    marker = workspace.root / "count.txt"
    script = f"open({str(marker)!r}, 'a').write('x')"
    command = c.shell("S", [sys.executable, "-c", script])
    stream.send(assignment(command, "i4"))
    stream.send(assignment(command, "i4"))
    await stream.expect("result")
    stream.send(ack("i4"))
    await asyncio.sleep(0.2)
    assert marker.read_text() == "x"


async def test_a_duplicate_arriving_after_the_ack_runs_once(
    harness: Harness, workspace: Workspace
) -> None:
    stream = await harness.standin.next_stream()
    marker = workspace.root / "count.txt"
    script = f"open({str(marker)!r}, 'a').write('x')"
    command = c.shell("S", [sys.executable, "-c", script])
    stream.send(assignment(command, "i8"))
    assert (await stream.expect("result")).interaction_id == "i8"
    stream.send(ack("i8"))
    # The same assignment again, once the first run is acknowledged and
    # forgotten as a job; then another command, whose result comes after the
    # duplicate was handled (the agent reads its stream in order).
    stream.send(assignment(command, "i8"))
    stream.send(assignment(c.shell("S", ["true"]), "i9"))
    assert (await stream.expect("result")).interaction_id == "i9"
    assert "i8" not in harness.loop.jobs
    assert marker.read_text() == "x"
    # A newer lease on it is a new run (the last result was refused).
    stream.send(assignment(command, "i8", epoch=2))
    again = await stream.expect("result")
    assert (again.interaction_id, again.lease_epoch) == ("i8", 2)
    assert marker.read_text() == "xx"


async def test_a_newer_lease_on_the_same_command_is_adopted(harness: Harness) -> None:
    stream = await harness.standin.next_stream()
    stream.send(assignment(c.shell("S", ["true"]), "i7", epoch=1))
    first = await stream.expect("result")
    assert first.lease_epoch == 1
    # The gateway re-leased it (say after our reconnect) before acknowledging.
    stream.send(assignment(c.shell("S", ["true"]), "i7", epoch=2))
    second = await stream.expect("result")
    assert second.lease_epoch == 2
    assert second.result == first.result


async def test_drain_finishes_running_work_then_stops(harness: Harness) -> None:
    stream = await harness.standin.next_stream()
    work = c.shell("S", [sys.executable, "-c", "import time; time.sleep(0.5); print('finished')"])
    stream.send(assignment(work, "i5"))
    await asyncio.sleep(0.1)
    harness.loop.draining.set()
    draining = await stream.expect("draining")
    assert draining.reason == "SIGTERM"
    # New work is not started while draining.
    stream.send(assignment(c.shell("S", ["true"]), "i6"))
    result = await stream.expect("result")
    assert result.interaction_id == "i5"
    assert result.result.stdout == "finished\n"
    stream.send(ack("i5"))
    assert await asyncio.wait_for(harness.task, 10) == 0
    assert "i6" not in harness.loop.jobs


async def test_unauthenticated_stops_the_executor(workspace: Workspace) -> None:
    server, _, port = await start_standin("another-token", WELCOME)
    try:
        loop = AgentLoop(settings_for(port, workspace), Executor(workspace))
        assert await asyncio.wait_for(loop.run(), 10) == 2
    finally:
        await server.stop(0)


def make_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for localhost (its own CA)."""
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return key, cert


async def test_tls_verifies_the_server(workspace: Workspace, tmp_path: Path) -> None:
    key, cert = make_certificate(tmp_path, "server")
    _, other = make_certificate(tmp_path, "impostor-ca")
    credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    server, standin, port = await start_standin(TOKEN, WELCOME, credentials)
    try:
        untrusted = AgentLoop(settings_for(port, workspace, tls_ca_file=other), Executor(workspace))
        refused = asyncio.create_task(untrusted.run())
        with pytest.raises(TimeoutError):
            await standin.next_stream(timeout=2)  # nothing ever registered
        untrusted.stopped.set()
        await asyncio.wait_for(refused, 10)
        trusted = AgentLoop(settings_for(port, workspace, tls_ca_file=cert), Executor(workspace))
        accepted = asyncio.create_task(trusted.run())
        stream = await standin.next_stream()
        assert (await stream.expect("register")).name == "test-executor"
        trusted.stopped.set()
        await asyncio.wait_for(accepted, 10)
    finally:
        await server.stop(0)
