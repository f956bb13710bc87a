"""The Sessions service's Prometheus metrics: sessions by status, the work queue, lapsed leases.

The gauges are database-wide figures, read by every Sessions replica every
``SPECLOOM_SESSIONS_METRICS_INTERVAL_SECONDS`` (only when the process serves
metrics): aggregate them across replicas with ``max``, not ``sum``. The
counter is per replica (each counts the claims it made): ``sum`` it.
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import Counter, Gauge

from specloom.v1 import common_pb2 as pb
from specloom_sessions.database import Database
from specloom_sessions.store.stats import DISPATCH_KINDS, LEASE_STATES, read_figures

log = logging.getLogger("specloom.sessions.metrics")

STATUSES = {
    name.removeprefix("SESSION_STATUS_").lower(): number
    for name, number in pb.SessionStatus.items()
    if number != pb.SESSION_STATUS_UNSPECIFIED
}
"""``active``, ``paused``, ``complete``, ``failed``, ``cancelled`` -> SessionStatus value."""

SESSIONS_BY_STATUS = Gauge(
    "specloom_sessions_by_status",
    "Sessions in the database, by status (database-wide: every Sessions replica reports it).",
    ["status"],
)
QUEUE_DEPTH = Gauge(
    "specloom_queue_depth",
    "Pending work in the database, by dispatch ('executor' commands, children-'join's) "
    "and lease ('unleased' or 'expired': claimable now; 'held': running under a lease).",
    ["dispatch", "lease"],
)
LEASES_EXPIRED = Counter(
    "specloom_leases_expired_total",
    "Leases that lapsed and whose work this Sessions replica handed out again, by dispatch.",
    ["dispatch"],
)
METRICS_READS_FAILED = Counter(
    "specloom_sessions_metrics_reads_failed_total",
    "Readings of the database-wide gauges that failed (the gauges keep their last values).",
)


async def refresh(db: Database) -> None:
    """Read the database once and set the gauges."""
    figures = await read_figures(db)
    for name, status in STATUSES.items():
        SESSIONS_BY_STATUS.labels(name).set(figures.sessions.get(status, 0))
    for kind in DISPATCH_KINDS.values():
        for state in LEASE_STATES:
            QUEUE_DEPTH.labels(kind, state).set(figures.queue.get((kind, state), 0))


async def refresh_forever(db: Database, interval: float) -> None:
    """Refresh the gauges every ``interval`` seconds until cancelled."""
    while True:
        try:
            await refresh(db)
        except Exception as exc:
            # A failed reading (the database restarting) must never take the
            # service down; the next one sets the gauges again.
            METRICS_READS_FAILED.inc()
            log.warning("could not read the metrics gauges: %s", exc)
        await asyncio.sleep(interval)
