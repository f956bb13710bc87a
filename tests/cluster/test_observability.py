"""Metrics and JSON logs of real ``specloom serve`` processes while a session runs.

Sessions, the coding orchestrator and the gateway run as their own
processes with ``SPECLOOM_METRICS_PORT`` set and JSON logs at DEBUG; one
``specloom agent`` codes one component (a fix round included). The test
scrapes every metrics endpoint before, during and after the run and checks
that the counters and gauges moved, then that each step's log lines in
every service carry the session and interaction ids.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from specloom.client import Client
from specloom.v1 import common_pb2 as pb
from tests.cluster import project
from tests.cluster.cluster import Cluster, Proc, value

pytestmark = pytest.mark.slow

RPC = "specloom_rpc_handled_total"
LATENCY = "specloom_rpc_duration_seconds_count"
QUEUE = "specloom_queue_depth"
BY_STATUS = "specloom_sessions_by_status"


def json_lines(proc: Proc) -> list[dict[str, Any]]:
    """The JSON log records a process wrote (other lines, like the banner, skipped)."""
    records = []
    for line in proc.text().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    return records


async def history(address: str, token: str, session_id: str) -> pb.Session:
    async with Client(address, token) as client:
        return await client.get_session(session_id)


def test_metrics_move_and_logs_carry_ids_while_a_component_is_coded(
    cluster: Cluster, tmp_path: Path
) -> None:
    repo, script = project.create(tmp_path / "project")
    cluster.service_env.update(
        SPECLOOM_LOG_LEVEL="DEBUG", SPECLOOM_SESSIONS_METRICS_INTERVAL_SECONDS="0.2"
    )
    sessions = cluster.serve("sessions", "sessions")
    coding = cluster.serve("coding", "coding", sessions=sessions.address)
    gateway = cluster.serve(
        "gateway",
        "gateway",
        sessions=sessions.address,
        orchestrators=[coding.address],
        heartbeat_interval_seconds="1",
        claim_sweep_interval_seconds="0.5",
    )
    cluster.wait_serving(sessions, coding, gateway)
    token = cluster.token()
    agent = cluster.agent("agent", gateway.address, token, repo, script)
    cluster.wait_for(agent, "connected to")
    before = {proc.name: proc.metrics() for proc in (sessions, coding, gateway)}
    assert value(before["gateway"], "specloom_gateway_executors_connected") == 1
    assert value(before["sessions"], BY_STATUS, status="active") == 0

    started = json.loads(
        cluster.run(
            "--gateway",
            gateway.address,
            "--token",
            token,
            "session",
            "start",
            "ComponentCoding",
            "--component",
            f"{project.CONTEXT}.{project.FIXED}",
            "--profile",
            "python",
            "-p",
            f"context={project.CONTEXT}",
            "--json",
            cwd=repo,
        )
    )
    session_id = started["id"]

    # While it runs: a command is out under a lease, and the session is active.
    deadline = time.monotonic() + 30
    while True:
        during = sessions.metrics()
        if value(during, QUEUE, dispatch="executor", lease="held") >= 1:
            break
        assert time.monotonic() < deadline, "never saw a command running under a lease"
        time.sleep(0.1)
    assert value(during, BY_STATUS, status="active") == 1

    session = asyncio.run(history(gateway.address, token, session_id))
    while session.status == pb.SESSION_STATUS_ACTIVE:
        assert time.monotonic() < deadline + 60, "the session did not finish"
        time.sleep(0.3)
        session = asyncio.run(history(gateway.address, token, session_id))
    assert session.status == pb.SESSION_STATUS_COMPLETE, session.status_reason
    steps = [i.step for i in session.interactions]
    assert steps.count("RunTests") == 2  # the fix round ran
    # The gauges catch up at their next refresh.
    settled = time.monotonic() + 15
    while True:
        after = {proc.name: proc.metrics() for proc in (sessions, coding, gateway)}
        finished = value(after["sessions"], BY_STATUS, status="complete") == 1
        if finished and value(after["sessions"], QUEUE) == 0:
            break
        assert time.monotonic() < settled, "the gauges never showed the session complete"
        time.sleep(0.2)

    def moved(proc: str, name: str, **labels: str) -> float:
        return value(after[proc], name, **labels) - value(before[proc], name, **labels)

    # Gateway: the client call counted and timed, every command handed out.
    start_call = {"service": "GatewayService", "method": "StartSession"}
    assert moved("gateway", RPC, code="OK", **start_call) == 1
    assert moved("gateway", LATENCY, **start_call) == 1
    assert moved("gateway", "specloom_gateway_assignments_pushed_total") == len(steps)
    assert value(after["gateway"], "specloom_gateway_executors_connected") == 1
    # Orchestrator: one report per step (alone or batched), all OK.
    reports = sum(
        moved("coding", RPC, service="OrchestratorService", method=method, code="OK")
        for method in ("ReportAndAdvance", "ReportAndAdvanceMany")
    )
    assert reports >= len(steps) - 1  # the first command came with OpenSession, not a report
    # Sessions: the writes counted, the session moved from active to complete,
    # and the queue is empty again.
    writes = sum(
        moved("sessions", RPC, service="SessionsService", method=method, code="OK")
        for method in ("AdvanceSession", "AdvanceSessions")
    )
    assert writes >= len(steps) - 1
    assert moved("sessions", BY_STATUS, status="complete") == 1
    assert value(after["sessions"], BY_STATUS, status="active") == 0
    assert value(after["sessions"], QUEUE) == 0
    print(
        "metrics moved: gateway StartSession +1, assignments "
        f"+{moved('gateway', 'specloom_gateway_assignments_pushed_total'):.0f}, "
        f"orchestrator reports +{reports:.0f}, sessions writes +{writes:.0f}, "
        f"complete sessions {value(before['sessions'], BY_STATUS, status='complete'):.0f} -> "
        f"{value(after['sessions'], BY_STATUS, status='complete'):.0f}"
    )

    # Every step has JSON log lines carrying its ids in each of the three services.
    logs = {proc.name: json_lines(proc) for proc in (sessions, coding, gateway)}
    for interaction in session.interactions:
        for service, records in logs.items():
            tagged = [
                r
                for r in records
                if r.get("session_id") == session_id and r.get("interaction_id") == interaction.id
            ]
            # The first command is written by OpenSession, before it has a report.
            if service == "coding" and interaction.seq == 1:
                continue
            assert tagged, f"{service} logged nothing tagged with {interaction.step}"
            assert all(r["level"] in ("debug", "info", "warning", "error") for r in tagged)
