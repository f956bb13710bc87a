"""Executors that die or freeze mid-command: real agent processes, signals, fencing.

PostgreSQL only: these are the concurrency cases (two executors racing for
one interaction), which is where ``FOR UPDATE SKIP LOCKED`` and the lease
fence have to hold.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb
from tests.gateway.conftest import MAKEFILE, Stack, StartStack, eventually, make_repo

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
]

SLOW_COMPILE = MAKEFILE.replace(
    "compile:\n\t@echo compiled\n",
    # The marker says which agent ran it; the nanoseconds make two runs'
    # results differ, so a late one can never pass as an exact repeat.
    "compile:\n\t@echo compiling by $$AGENT_MARK; sleep 3; echo compiled $$(date +%N)\n",
)


class AgentProcess:
    """A ``specloom agent``-equivalent process with its log in a file."""

    def __init__(self, stack: Stack, token: str, repo: Path, name: str, log: Path) -> None:
        env = {
            **os.environ,
            "SPECLOOM_AGENT_GATEWAY": stack.address,
            "SPECLOOM_AGENT_TOKEN": token,
            "SPECLOOM_AGENT_WORKSPACE": str(repo),
            "SPECLOOM_AGENT_NAME": name,
            "SPECLOOM_AGENT_MAX_PARALLEL": "1",
            "SPECLOOM_AGENT_BACKENDS": "[]",
            "SPECLOOM_AGENT_RECONNECT_INITIAL_SECONDS": "0.2",
            "SPECLOOM_AGENT_RECONNECT_MAX_SECONDS": "1",
            "AGENT_MARK": name,
        }
        self.log = log
        self._out = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.gateway.agent_process"],
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
        self.process.wait(10)
        self._out.close()


@pytest.fixture
def agents() -> Iterator[list[AgentProcess]]:
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        agent.stop()


def _refused(code: str) -> float:
    value = REGISTRY.get_sample_value("specloom_gateway_results_refused_total", {"code": code})
    return value or 0.0


async def _pending_lease(stack: Stack, session_id: str) -> pb.Interaction:
    response = await stack.sessions.stub.FetchSession(
        spb.FetchSessionRequest(
            scope=pb.Scope(account_id="acme", project_id="alpha", user_id="alice"),
            session_id=session_id,
            view=pb.INTERACTION_VIEW_LAST,
        ),
        metadata=stack.sessions.metadata,
    )
    return response.session.interactions[-1]


async def test_a_frozen_executor_loses_its_lease_and_its_late_result_is_refused(
    start_stack: StartStack, tmp_path: Path, agents: list[AgentProcess]
) -> None:
    # A 2 s lease; the stream itself is not timed out, so the frozen agent
    # comes back on the same stream and its result meets the fence.
    stack = await start_stack(
        lease_ttl_seconds=2, heartbeat_interval_seconds=1, stream_idle_timeout_seconds=600
    )
    token = await stack.token()
    repo = make_repo(tmp_path / "repo", {"Makefile": SLOW_COMPILE})
    frozen = AgentProcess(stack, token, repo, "agent-a", tmp_path / "a.log")
    agents.append(frozen)
    client = stack.client(token)
    await eventually(lambda: _connected(frozen), timeout=20)
    started = await client.start_session("Build", {}, mode="agentic")
    session_id = started.session.id

    async def leased() -> bool:
        return (await _pending_lease(stack, session_id)).lease.epoch == 1

    await eventually(leased, timeout=10)
    compile_step = await _pending_lease(stack, session_id)
    assert compile_step.step == "Compile"
    await eventually(lambda: _output_has(stack, token, session_id, "by agent-a"), timeout=10)
    frozen.signal(signal.SIGSTOP)
    refused_before = _refused("FAILED_PRECONDITION")

    rescuer = AgentProcess(stack, token, repo, "agent-b", tmp_path / "b.log")
    agents.append(rescuer)

    async def rescued() -> bool:
        session = await client.get_session(session_id, view=pb.INTERACTION_VIEW_ALL)
        return session.status == pb.SESSION_STATUS_COMPLETE

    await eventually(rescued, timeout=30)
    frozen.signal(signal.SIGCONT)

    async def late_result_refused() -> bool:
        return _refused("FAILED_PRECONDITION") > refused_before and _said(
            frozen, f"result for {compile_step.id} refused"
        )

    await eventually(late_result_refused, timeout=20)
    session = await client.get_session(session_id)
    assert [i.step for i in session.interactions] == ["Compile", "Test"]
    compiled = session.interactions[0]
    assert compiled.id == compile_step.id
    assert compiled.status == pb.INTERACTION_STATUS_COMPLETED
    # The one result recorded is the rescuer's.
    assert "compiling by agent-b" in compiled.result.stdout
    assert "agent-a" not in compiled.result.stdout
    assert "lease lost" in frozen.text() or "cancelling" in frozen.text()


async def test_a_killed_executors_command_goes_to_another_at_once(
    start_stack: StartStack, tmp_path: Path, agents: list[AgentProcess]
) -> None:
    stack = await start_stack(lease_ttl_seconds=60)
    token = await stack.token()
    repo = make_repo(tmp_path / "repo", {"Makefile": SLOW_COMPILE})
    victim = AgentProcess(stack, token, repo, "agent-a", tmp_path / "a.log")
    agents.append(victim)
    client = stack.client(token)
    await eventually(lambda: _connected(victim), timeout=20)
    started = await client.start_session("Build", {}, mode="agentic")
    await eventually(
        lambda: _output_has(stack, token, started.session.id, "by agent-a"), timeout=10
    )
    victim.signal(signal.SIGKILL)
    survivor = AgentProcess(stack, token, repo, "agent-b", tmp_path / "b.log")
    agents.append(survivor)

    async def done() -> bool:
        session = await client.get_session(started.session.id, view=pb.INTERACTION_VIEW_NONE)
        return session.status == pb.SESSION_STATUS_COMPLETE

    # Well inside the 60 s lease: the broken stream released it.
    await eventually(done, timeout=25)
    session = await client.get_session(started.session.id)
    assert [i.step for i in session.interactions] == ["Compile", "Test"]
    assert "compiling by agent-b" in session.interactions[0].result.stdout


async def _connected(agent: AgentProcess) -> bool:
    await asyncio.sleep(0)
    return "connected to" in agent.text()


def _said(agent: AgentProcess, text: str) -> bool:
    return text in agent.text()


async def _output_has(stack: Stack, token: str, session_id: str, text: str) -> bool:
    chunks, _ = await stack.client(token).read_output(session_id)
    return text.encode() in b"".join(chunk.data for chunk in chunks)
