"""SIGKILL of every service process in turn, under a load of 100 concurrent sessions.

One cluster, one process per service as on Kubernetes, on PostgreSQL:
Sessions, the bench orchestrator (the load: 100 no-op sessions kept running,
every tenth fanning out to children), both product orchestrators (the demo
pipeline ContextDesign → ContextComponentsDesign → ContextCoding on a real
git repository with the scripted backend, in another project) and the
gateway. Executors are real ``specloom agent`` processes. Each service is
killed with SIGKILL while it is busy and started again on the same port;
after the last restart the load drains, and every session must be complete
with every step recorded exactly once.
"""

from __future__ import annotations

import asyncio
import collections
import time
from functools import partial
from pathlib import Path

import pytest

from specloom.client import Client
from specloom.demo.run import PIPELINE, create_project, stage_params
from specloom.demo.script import write_script
from specloom.protoconv import struct_to_dict
from specloom.v1 import common_pb2 as pb
from tests.reliability.cluster import Cluster, Proc
from tests.reliability.conftest import StartCluster
from tests.reliability.load import RETRIABLE, Load, retrying

pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]

TERMINAL = (pb.SESSION_STATUS_COMPLETE, pb.SESSION_STATUS_FAILED, pb.SESSION_STATUS_CANCELLED)


class Pipeline:
    """The demo's three sessions, one after the other, through the public API."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.stage = ""
        self.sessions: list[pb.Session] = []
        self.errors: collections.Counter[str] = collections.Counter()
        self.steps = 0
        """Commands the current stage's session has issued so far."""
        self.gates = {stage: asyncio.Event() for stage in PIPELINE}
        """Each stage starts once its gate opens, so a kill can be aimed at it."""

    async def run(self) -> None:
        base = ""
        for session_type in PIPELINE:
            await self.gates[session_type].wait()
            self.stage, self.steps = session_type, 0
            started = await retrying(
                partial(
                    self.client.start_session,
                    session_type,
                    stage_params(base),  # each stage builds on the last one's branch
                    mode="agentic",
                    idempotency_key=f"demo-{session_type}",
                ),
                self.errors,
            )
            while True:
                session = await retrying(
                    partial(self.client.get_session, started.session.id), self.errors
                )
                self.steps = len(session.interactions)
                if session.status in TERMINAL:
                    break
                await asyncio.sleep(0.2)
            self.sessions.append(session)
            if session.status != pb.SESSION_STATUS_COMPLETE:
                return
            base = str(struct_to_dict(session.state)["branch"])
        self.stage = "done"

    async def start(self, stage: str, steps: int, within: float = 120.0) -> None:
        """Open ``stage``'s gate; return once its session has issued ``steps`` commands."""
        self.gates[stage].set()
        deadline = time.monotonic() + within
        while self.stage != stage or self.steps < steps:
            if time.monotonic() > deadline:
                raise AssertionError(f"{stage} did not get to {steps} steps in {within} s")
            await asyncio.sleep(0.05)


async def _kill(proc: Proc, log: list[str], load: Load, pipeline: Pipeline) -> None:
    stage = pipeline.stage
    began = time.monotonic()
    await proc.restart()
    log.append(
        f"{proc.name} killed at {time.strftime('%X')} ({len(load.finished)} load sessions "
        f"done, the pipeline in {stage}), serving again {time.monotonic() - began:.1f} s later"
    )


async def test_every_service_killed_in_turn_under_load_loses_nothing(
    start_cluster: StartCluster, tmp_path: Path
) -> None:
    # Leases outlive every outage here (a restart takes a few seconds), so
    # no command may run twice: a result that could not be recorded while a
    # process was down must be sent again, not dropped and re-run.
    env = {"SPECLOOM_LEASE_TTL_SECONDS": "15"}
    async with start_cluster(["bench", "context_design", "coding"], env=env) as c:
        await _run(c, tmp_path)


async def _run(c: Cluster, tmp_path: Path) -> None:
    admin = c.client()
    demo_token = (
        await admin.create_token(
            pb.Scope(account_id="acme", project_id="demo", user_id="dora"), name="demo"
        )
    ).token
    project, origin = tmp_path / "inventory", tmp_path / "origin.git"
    create_project(project, origin)
    script = write_script(tmp_path / "script.json")
    bulk = tmp_path / "bulk"
    create_project(bulk, tmp_path / "bulk-origin.git")
    # The load's executors and the demo's are in different projects, so the
    # demo never waits for a slot behind a hundred no-op sessions.
    agents = [c.agent(f"bulk-{i}", bulk, max_parallel=64) for i in range(2)]
    agents.append(c.agent("demo", project, token=demo_token, script=script, max_parallel=8))
    for agent in agents:
        await c.connected(agent)

    load = Load(c.client(), target=100, ticks=5)
    pipeline = Pipeline(c.client(demo_token))
    loading = asyncio.create_task(load.run())
    piping = asyncio.create_task(pipeline.run())
    kills: list[str] = []
    try:
        # The design orchestrator while it designs, and Sessions right after.
        await load.progress(10)
        await pipeline.start("ContextDesign", steps=2)
        await _kill(c.services["context_design"], kills, load, pipeline)
        await _kill(c.services["sessions"], kills, load, pipeline)
        await load.progress(30)
        # The gateway while the components' design children run and join.
        await pipeline.start("ContextComponentsDesign", steps=2)
        await _kill(c.services["gateway"], kills, load, pipeline)
        await load.progress(30)
        # The coding orchestrator while the coding children run.
        await pipeline.start("ContextCoding", steps=2)
        await _kill(c.services["coding"], kills, load, pipeline)
        await _kill(c.services["bench"], kills, load, pipeline)
        await load.progress(30)
        await load.drain()
        await asyncio.wait_for(piping, 240)
    except BaseException:
        print(c.logs())
        raise
    finally:
        load.stop.set()
        await asyncio.gather(loading, return_exceptions=True)
        piping.cancel()
        await asyncio.gather(piping, return_exceptions=True)

    print(
        f"{len(load.sessions)} load sessions; {'; '.join(kills)}; "
        f"client errors {dict(load.errors)} / {dict(pipeline.errors)}"
    )
    problems = await load.verify()
    reclaimed = await asyncio.to_thread(c.leased_more_than_once)
    twice = c.ran_more_than_once()
    assert len(c.commands_run()) > 1000  # the agents' logs were read
    # A re-lease alone is not a second run: a command leased to an executor
    # by a gateway killed before it pushed the command down the stream is
    # claimed again once the lease lapses, and runs once. What must never
    # happen is an agent starting a command it (or another) already ran.
    print(f"{len(reclaimed)} commands leased more than once; {len(twice)} ran more than once")
    assert not problems, "\n".join(problems[:30])
    assert len(load.sessions) >= 200  # 100 finished between kills, 100 running
    assert not twice, "\n".join(twice)
    assert [s.type for s in pipeline.sessions] == list(PIPELINE)
    for session in pipeline.sessions:
        assert session.status == pb.SESSION_STATUS_COMPLETE, (session.type, session.status_reason)
        for step in session.interactions:
            assert step.status == pb.INTERACTION_STATUS_COMPLETED, (session.type, step.step)
        for child in await retrying(
            partial(pipeline.client.children, session.id),
            load.errors,
        ):
            assert child.status == pb.SESSION_STATUS_COMPLETE, (child.name, child.status_reason)
    # Clients saw nothing worse than "try again" while processes died.
    assert set(load.errors) | set(pipeline.errors) <= RETRIABLE
    # Nothing logged an internal error (a bug) on the way.
    for proc in c.processes():
        assert "unhandled error" not in proc.text(), proc.name
