"""The Sessions service's Prometheus metrics: sessions by status, the work queue, lapsed leases,
AI tokens and cost.

The gauges are database-wide figures, read by every Sessions replica every
``SPECLOOM_SESSIONS_METRICS_INTERVAL_SECONDS`` (only when the process serves
metrics): aggregate them across replicas with ``max``, not ``sum``. The
counters are per replica (each counts what it did): ``sum`` them.

Tokens are counted here, where a result is recorded, rather than by agents
(which nobody scrapes) or the gateway (which cannot tell a first report
from a resend): a step's usage is counted once, after its transaction
committed, never for a replay, for executor and manual results alike.
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
    "Leases that lapsed or were released, whose work this Sessions replica handed out again.",
    ["dispatch"],
)
AGENT_TOKENS = Counter(
    "specloom_agent_tokens_total",
    "AI model tokens of recorded agent steps, by model and kind "
    "('input', 'output', 'cache_write', 'cache_read').",
    ["model", "kind"],
)
AGENT_COST = Counter(
    "specloom_agent_cost_usd_total",
    "Estimated cost in US dollars of recorded agent steps, by model (from the executors' "
    "price tables; models without a price add nothing).",
    ["model"],
)
AGENT_STEPS = Counter(
    "specloom_agent_steps_total",
    "Recorded agent steps that reported usage, by the model they ran.",
    ["model"],
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


def count_usage(result: pb.Result) -> None:
    """Count a newly recorded result's tokens and cost (call once, after the commit)."""
    if not result.HasField("usage"):
        return
    usage = result.usage
    AGENT_STEPS.labels(usage.model or "unknown").inc()
    for model in usage.models:
        name = model.model or "unknown"
        for kind, count in (
            ("input", model.input_tokens),
            ("output", model.output_tokens),
            ("cache_write", model.cache_creation_input_tokens),
            ("cache_read", model.cache_read_input_tokens),
        ):
            if count > 0:
                AGENT_TOKENS.labels(name, kind).inc(count)
        if model.cost_usd > 0:
            AGENT_COST.labels(name).inc(model.cost_usd)
