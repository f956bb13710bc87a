"""A command that ignores SIGTERM, forks, and prints 1 GiB, run by a real ``specloom agent``.

End to end through the gateway: the agent process runs a toy ``Build``
session whose Compile step is that command. Its time limit is enforced, its
whole process group is killed (children included), its output is capped
where it is stored, the agent's own memory stays bounded, and the agent
stays healthy: the same agent process runs the session's next commands.
The unit-level cases (each misbehaviour alone, 200 MiB through the sink)
are in ``tests/agent/test_shell.py``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from specloom.client import Client
from specloom.v1 import common_pb2 as pb
from tests.agent.test_shell import alive
from tests.gateway.conftest import MAKEFILE, make_repo
from tests.reliability.cluster import Proc
from tests.reliability.conftest import StartCluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

OUTPUT_LIMIT = 1024 * 1024
TIME_LIMIT = 8

HOSTILE = r"""
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
pids = [os.getpid()]
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        time.sleep(600)  # inherits SIG_IGN for SIGTERM
        os._exit(0)
    pids.append(pid)
with open("pids", "w") as handle:
    handle.write(" ".join(map(str, pids)))
block = b"x" * (1 << 20)
for _ in range(1024):  # 1 GiB
    sys.stdout.buffer.write(block)
sys.stdout.buffer.flush()
with open("printed", "w") as handle:
    handle.write("1 GiB")
time.sleep(600)
"""

# Compile misbehaves while the file `hostile` exists, and behaves after.
HOSTILE_MAKEFILE = MAKEFILE.replace(
    "compile:\n\t@echo compiled\n",
    "compile:\n\t@if [ -f hostile ]; then python3 hostile.py; else echo compiled; fi\n",
)


def _peak_rss_mb(proc: Proc) -> float:
    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    raise AssertionError("no VmHWM")


async def _settled(client: Client, session_id: str, within: float) -> pb.Session:
    async with asyncio.timeout(within):
        while True:
            session = await client.get_session(session_id)
            if session.status != pb.SESSION_STATUS_ACTIVE:
                return session
            await asyncio.sleep(0.2)


async def test_a_hostile_command_is_stopped_and_capped_and_the_agent_carries_on(
    start_cluster: StartCluster, tmp_path: Path
) -> None:
    repo = make_repo(
        tmp_path / "repo", {"Makefile": HOSTILE_MAKEFILE, "hostile.py": HOSTILE, "hostile": ""}
    )
    async with start_cluster(["toy"]) as c:
        agent = c.agent(
            "box",
            repo,
            env={
                "SPECLOOM_AGENT_DEFAULT_TIMEOUT_SECONDS": str(TIME_LIMIT),
                "SPECLOOM_AGENT_OUTPUT_LIMIT_BYTES": str(OUTPUT_LIMIT),
                "SPECLOOM_AGENT_KILL_GRACE_SECONDS": "1",
            },
        )
        await c.connected(agent)
        pid, peak_before = agent.pid, _peak_rss_mb(agent)
        client = c.client()
        began = time.monotonic()
        started = await client.start_session("Build", {"max_rounds": 0}, mode="agentic")
        session = await _settled(client, started.session.id, within=TIME_LIMIT + 60)
        elapsed = time.monotonic() - began

        # The time limit ended it (SIGTERM ignored, so SIGKILL after the grace).
        assert session.status == pb.SESSION_STATUS_FAILED, session.status_reason
        compile_step = session.interactions[0]
        assert compile_step.step == "Compile"
        result = compile_step.result
        assert result.status == pb.RESULT_STATUS_ERROR
        assert f"timed out after {TIME_LIMIT}s" in result.error_message
        assert "process group was killed" in result.error_message
        assert TIME_LIMIT <= elapsed < TIME_LIMIT + 30
        # The whole gigabyte was written (and read by the agent) before that.
        assert (repo / "printed").read_text() == "1 GiB"
        pids = [int(p) for p in (repo / "pids").read_text().split()]
        assert len(pids) == 3
        for _ in range(50):  # reparented children are reaped by init shortly
            if not any(alive(p) for p in pids):
                break
            await asyncio.sleep(0.1)
        assert not [p for p in pids if alive(p)], "a process of the group survived"

        # Capped: what was stored and what the result carries.
        assert result.output_truncated
        assert len(result.stdout.encode()) <= 64 * 1024
        stored = b""
        after, more = -1, True
        while more:
            chunks, more = await client.read_output(started.session.id, compile_step.id, after)
            stored += b"".join(chunk.data for chunk in chunks)
            after = chunks[-1].index
        assert OUTPUT_LIMIT <= len(stored) <= OUTPUT_LIMIT + 4096
        assert b"output limit of" in stored
        # 1 GiB went through the agent; its peak memory grew by far less.
        assert _peak_rss_mb(agent) - peak_before < 128

        # The same agent process runs what comes next.
        (repo / "hostile").unlink()
        await client.resume(started.session.id, "the command is fixed")
        session = await _settled(client, started.session.id, within=60)
        assert session.status == pb.SESSION_STATUS_COMPLETE, session.status_reason
        steps = [
            (i.step, i.result.status)
            for i in session.interactions
            if i.command.WhichOneof("kind") != "control"
        ]
        assert steps[-2:] == [("Compile", pb.RESULT_STATUS_OK), ("Test", pb.RESULT_STATUS_OK)]
        assert agent.alive()
        assert (agent.pid, agent.starts) == (pid, 1)
