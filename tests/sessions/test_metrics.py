"""The Sessions metrics: sessions by status, queue depth by lease state, lapsed leases."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb
from specloom_sessions.config import SessionsSettings
from specloom_sessions.database import Database
from specloom_sessions.metrics import refresh
from specloom_sessions.store.stats import read_figures
from tests.fixtures.sessions_server import SessionsUnderTest
from tests.sessions.helpers import create, ok, pending, scope, step


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def _claim(service: SessionsUnderTest, where: pb.Scope, executor: str) -> int:
    response = await service.stub.ClaimCommands(
        spb.ClaimCommandsRequest(
            scope=where, executor_id=executor, max_commands=10, lease_ttl_seconds=30
        ),
        metadata=service.metadata,
    )
    return len(response.assignments)


async def test_figures_count_sessions_and_pending_work(sessions_service: SessionsUnderTest) -> None:
    where = scope()
    executor = spb.DISPATCH_EXECUTOR
    await create(sessions_service, where)  # manual: pending, but nobody's queue
    await create(sessions_service, where, first=pending(dispatch=executor))
    await create(sessions_service, where, first=pending(dispatch=executor, lease=("ex-1", 60)))
    await create(sessions_service, where, first=pending(dispatch=executor, lease=("ex-2", 1)))
    done = await create(sessions_service, where)
    await step(sessions_service, where, done, ok(), finish=(pb.SESSION_STATUS_COMPLETE, ""))
    await asyncio.sleep(1.2)  # ex-2's lease lapses

    db = Database.open(sessions_service.database_url, SessionsSettings())
    try:
        figures = await read_figures(db)
        assert figures.sessions == {pb.SESSION_STATUS_ACTIVE: 4, pb.SESSION_STATUS_COMPLETE: 1}
        assert figures.queue == {
            ("executor", "unleased"): 1,
            ("executor", "held"): 1,
            ("executor", "expired"): 1,
        }

        await refresh(db)
        assert _sample("specloom_sessions_by_status", status="active") == 4
        assert _sample("specloom_sessions_by_status", status="failed") == 0
        assert _sample("specloom_queue_depth", dispatch="executor", lease="expired") == 1
        assert _sample("specloom_queue_depth", dispatch="join", lease="unleased") == 0

        # Claiming takes the unleased command and the lapsed one: one lease expired.
        lapsed = _sample("specloom_leases_expired_total", dispatch="executor")
        assert await _claim(sessions_service, where, "ex-3") == 2
        assert _sample("specloom_leases_expired_total", dispatch="executor") == lapsed + 1
        await refresh(db)
        assert _sample("specloom_queue_depth", dispatch="executor", lease="held") == 3
        assert _sample("specloom_queue_depth", dispatch="executor", lease="unleased") == 0
    finally:
        await db.close()
