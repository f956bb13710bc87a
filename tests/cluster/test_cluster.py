"""The cluster on one machine survives losing a gateway and an orchestrator mid-run.

Every service is its own ``specloom serve`` process on the local
PostgreSQL: two replica sets, each a gateway, a context_design and a
coding orchestrator and its own Sessions process. Four ``specloom agent``
processes (scripted backend) dial the gateways, two listing each replica
first. A ContextCoding session of four components runs on a real git
repository, tests written first; while the children run, one gateway and
one coding orchestrator are SIGKILLed. The session must still complete
with every interaction recorded exactly once and every component's code in
the final commit.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from specloom.client import Client
from specloom.protoconv import struct_to_dict
from specloom.v1 import common_pb2 as pb
from tests.cluster import project
from tests.cluster.cluster import Cluster, Proc, Samples, targets, value

pytestmark = pytest.mark.slow

GATEWAY = {
    # Short leases and sweeps, so what a dead process held moves on within
    # seconds (the defaults are tuned for hours-long agent commands).
    "lease_ttl_seconds": "5",
    "heartbeat_interval_seconds": "1",
    "claim_sweep_interval_seconds": "0.5",
    "join_sweep_interval_seconds": "0.5",
    "stalled_sweep_interval_seconds": "1",
    "stalled_idle_ms": "2000",
    "route_refresh_seconds": "5",
}
PARENT_STEPS = [
    "Initialize",
    "SpawnComponentCodingSessions",
    "IntegrateChildren",
    "RunTests",
    "Finalize",
]
COMPONENT_STEPS = ["Initialize", "GenerateImplementation", "RunTests", "Finalize"]
FIXED_STEPS = [
    "Initialize",
    "GenerateImplementation",
    "RunTests",
    "FixTestFailures",
    "RunTests",
    "Finalize",
]
RPC = "specloom_rpc_handled_total"


def reports(samples: Samples) -> float:
    """Executor reports an orchestrator answered OK, alone or in batches."""
    return sum(
        value(samples, RPC, service="OrchestratorService", method=method, code="OK")
        for method in ("ReportAndAdvance", "ReportAndAdvanceMany")
    )


def decided_steps(session: pb.Session) -> list[str]:
    """The steps of a history, without attempts the workflow retried.

    A step follows itself only when its previous attempt failed (ERROR or
    WARNING: the workflow's retry, e.g. after a git lock held by a parallel
    child). An OK attempt followed by the same step would be a step recorded
    twice: that one stays in the list, so the comparison catches it.
    """
    steps: list[str] = []
    interactions = list(session.interactions)
    for index, interaction in enumerate(interactions):
        following = interactions[index + 1] if index + 1 < len(interactions) else None
        retried = (
            following is not None
            and following.step == interaction.step
            and interaction.result.status != pb.RESULT_STATUS_OK
        )
        if not retried:
            steps.append(interaction.step)
    return steps


def describe(session: pb.Session) -> str:
    """A session's history, for a failure message."""
    lines = [f"{session.component.module_name or session.type} {session.id}:"]
    for i in session.interactions:
        result = i.result
        lines.append(
            f"  {i.seq} {i.step} {pb.ResultStatus.Name(result.status)} by {i.lease.executor_id}"
            f" epoch {i.lease.epoch}: {result.error_message} {result.stderr[-300:]}"
        )
    return "\n".join(lines)


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(0.2)


def query(url: str, sql: str, *args: object) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return list(conn.execute(sql, args).fetchall())


def start(cluster: Cluster) -> dict[str, Proc]:
    """Two replica sets, each with its own Sessions process; returns them by name."""
    procs: dict[str, Proc] = {}
    for n in ("1", "2"):
        procs[f"sessions-{n}"] = cluster.serve(f"sessions-{n}", "sessions")
    for n in ("1", "2"):
        sessions = procs[f"sessions-{n}"].address
        for service in ("coding", "context_design"):
            name = f"{service}-{n}"
            procs[name] = cluster.serve(name, service, sessions=sessions)
    orchestrators = [
        targets(procs["coding-1"].address, procs["coding-2"].address),
        targets(procs["context_design-1"].address, procs["context_design-2"].address),
    ]
    for n in ("1", "2"):
        name = f"gateway-{n}"
        sessions = procs[f"sessions-{n}"].address
        procs[name] = cluster.serve(
            name, "gateway", sessions=sessions, orchestrators=orchestrators, **GATEWAY
        )
    cluster.wait_serving(*procs.values())
    return procs


def children_progress(url: str, parent_id: str) -> tuple[int, int, int, int]:
    """(children, children complete, child steps completed, commands in flight)."""
    [(children, complete)] = query(
        url,
        "SELECT count(*), count(*) FILTER (WHERE status = %s) FROM sessions WHERE parent_id = %s",
        pb.SESSION_STATUS_COMPLETE,
        parent_id,
    )
    [(done, running)] = query(
        url,
        "SELECT count(*) FILTER (WHERE i.status = %s),"
        " count(*) FILTER (WHERE i.status = %s AND i.lease_owner IS NOT NULL)"
        " FROM interactions i JOIN sessions s ON s.id = i.session_id WHERE s.parent_id = %s",
        pb.INTERACTION_STATUS_COMPLETED,
        pb.INTERACTION_STATUS_PENDING,
        parent_id,
    )
    return int(children), int(complete), int(done), int(running)  # type: ignore[call-overload]


def assert_history_intact(url: str) -> int:
    """Every session's interactions: seq 1..n, each completed once with one result."""
    sessions = query(url, "SELECT id, interaction_count, pending_seq FROM sessions")
    total = 0
    for session_id, count, pending_seq in sessions:
        assert pending_seq is None, f"session {session_id} still has a pending interaction"
        rows = query(
            url,
            "SELECT seq, status, result IS NOT NULL, completed_at IS NOT NULL, reported_digest"
            " FROM interactions WHERE session_id = %s ORDER BY seq",
            session_id,
        )
        assert [row[0] for row in rows] == list(range(1, int(count) + 1)), session_id  # type: ignore[call-overload]
        for seq, status, has_result, has_completed, digest in rows:
            where = f"{session_id}#{seq}"
            assert status == pb.INTERACTION_STATUS_COMPLETED, f"{where} is {status}"
            assert has_result, f"{where} has no result"
            assert has_completed, f"{where} has no completion time"
            assert digest is not None, f"{where} has no reported digest"
        total += len(rows)
    return total


async def api_view(address: str, token: str, parent_id: str) -> tuple[pb.Session, list[pb.Session]]:
    async with Client(address, token) as client:
        parent = await client.get_session(parent_id)
        children = [await client.get_session(c.id) for c in await client.children(parent_id)]
    return parent, children


def test_a_context_is_coded_while_a_gateway_and_an_orchestrator_are_killed(
    cluster: Cluster, tmp_path: Path
) -> None:
    began = time.monotonic()
    repo, script = project.create(tmp_path / "project")
    procs = start(cluster)
    g1, g2 = procs["gateway-1"], procs["gateway-2"]
    c1, c2 = procs["coding-1"], procs["coding-2"]
    token = cluster.token()
    agents = [
        cluster.agent(name, targets(*first), token, repo, script)
        for name, first in (
            ("agent-1", (g1.address, g2.address)),
            ("agent-2", (g1.address, g2.address)),
            ("agent-3", (g2.address, g1.address)),
            ("agent-4", (g2.address, g1.address)),
        )
    ]
    for agent in agents:
        cluster.wait_for(agent, "connected to")
    wait_until(
        lambda: (
            value(g1.metrics(), "specloom_gateway_executors_connected") == 2
            and value(g2.metrics(), "specloom_gateway_executors_connected") == 2
        ),
        10,
        "two executors on each gateway replica",
    )

    started = json.loads(
        cluster.run(
            "--gateway",
            targets(g1.address, g2.address),
            "--token",
            token,
            "session",
            "start",
            "ContextCoding",
            "--context",
            project.CONTEXT,
            "--profile",
            "python",
            "--json",
            cwd=repo,
        )
    )
    parent_id = started["id"]
    url = cluster.database_url

    # Mid-run: every child exists and has made progress, commands are running,
    # and no child has finished yet.
    def mid_run() -> bool:
        children, complete, done, running = children_progress(url, parent_id)
        return children == 4 and complete == 0 and done >= 4 and running >= 2

    wait_until(mid_run, 60, "the children to be under way")
    c1_before_kill = c1.metrics()
    c2_before_kill = c2.metrics()
    g1.kill()
    c1.kill()
    at_kill = children_progress(url, parent_id)
    killed_at = time.monotonic()

    def finished() -> bool:
        [(status,)] = query(url, "SELECT status FROM sessions WHERE id = %s", parent_id)
        return status in (pb.SESSION_STATUS_COMPLETE, pb.SESSION_STATUS_FAILED)

    wait_until(finished, 120, "the parent session to finish")
    parent, children = asyncio.run(api_view(g2.address, token, parent_id))
    assert parent.status == pb.SESSION_STATUS_COMPLETE, parent.status_reason
    assert [i.step for i in parent.interactions] == PARENT_STEPS
    assert sorted(c.component.module_name for c in children) == project.MODULES
    for child in children:
        print(describe(child))
        assert child.status == pb.SESSION_STATUS_COMPLETE, child.status_reason
        fixed = child.component.module_name == f"{project.CONTEXT}.{project.FIXED}"
        assert decided_steps(child) == (FIXED_STEPS if fixed else COMPONENT_STEPS), describe(child)
        generated = next(i for i in child.interactions if i.step == "GenerateImplementation")
        assert struct_to_dict(generated.result.data)["replayed"] is True

    # Nothing lost, nothing doubled, straight from the database.
    recorded = assert_history_intact(url)
    retried = sum(len(c.interactions) - len(decided_steps(c)) for c in children)
    assert recorded == len(PARENT_STEPS) + 3 * len(COMPONENT_STEPS) + len(FIXED_STEPS) + retried

    # One commit on the parent's branch holds every component's code (the
    # children's branches merged, the whole suite run, squashed onto main).
    commit = str(struct_to_dict(parent.state)["commit"])
    branch = f"context-coding-session-for-{project.CONTEXT}-{parent.id[-8:]}"
    assert struct_to_dict(parent.state)["branch"] == branch
    assert project.git(repo, "rev-parse", branch).strip() == commit
    files = project.git(repo, "show", "--name-only", "--format=", commit).split()
    assert sorted(files) == project.CODE_FILES
    fixed_code = project.git(repo, "show", f"{commit}:src/{project.CONTEXT}/{project.FIXED}.py")
    assert 'raise ValueError("out of stock")' in fixed_code

    # The kills landed mid-run, and the survivors took over: both coding
    # replicas had served steps before the kill, the survivor served the
    # rest, and the agents of the dead gateway reconnected to the live one.
    assert at_kill[1] < 4, at_kill
    assert reports(c1_before_kill) > 0
    assert reports(c2_before_kill) > 0
    assert reports(c2.metrics()) > reports(c2_before_kill)
    assert value(g2.metrics(), "specloom_gateway_executors_connected") == 4
    for agent in agents[:2]:
        assert agent.text().count("connected to") >= 2, agent.text()[-2000:]
    print(
        f"cluster run: {time.monotonic() - began:.1f} s in all, "
        f"{time.monotonic() - killed_at:.1f} s after the kills; progress at the kill {at_kill}"
    )
