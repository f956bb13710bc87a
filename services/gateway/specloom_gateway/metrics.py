"""The gateway's Prometheus metrics (module-level: prometheus-client's registry is global)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

EXECUTORS_CONNECTED = Gauge(
    "specloom_gateway_executors_connected",
    "Executor streams currently open on this gateway.",
)
EXECUTOR_SLOTS_FREE = Gauge(
    "specloom_gateway_executor_slots_free",
    "Commands the connected executors could take now (capacity minus running).",
)
ASSIGNMENTS_PUSHED = Counter(
    "specloom_gateway_assignments_pushed_total",
    "Commands handed to executors, by how: 'claimed' by dispatch, 'chained' "
    "(leased by the fused report of the previous step), 'started' (a new session's "
    "first command, leased by its create) or 'resumed' after a reconnect.",
    ["via"],
)
CLAIM_CALLS = Counter(
    "specloom_gateway_claim_calls_total",
    "ClaimCommands calls made, by outcome ('work' or 'empty').",
    ["outcome"],
)
LEASES_LOST = Counter(
    "specloom_gateway_leases_lost_total",
    "Leases an executor held that lapsed or were taken over (it was told to stop).",
)
RESULTS_REFUSED = Counter(
    "specloom_gateway_results_refused_total",
    "Executor results that were not recorded, by status code.",
    ["code"],
)
COMMANDS_TIMED_OUT = Counter(
    "specloom_gateway_commands_timed_out_total",
    "Commands the gateway reported as timed out because they ran past their limit.",
)
JOINS_REPORTED = Counter(
    "specloom_gateway_joins_reported_total",
    "Children-joins reported to a parent's orchestrator, by outcome.",
    ["outcome"],
)
COMMANDS_UNCLAIMED = Counter(
    "specloom_gateway_commands_unclaimed_total",
    "Sessions paused because no executor claimed their command in time.",
)
STALLED_KICKED = Counter(
    "specloom_gateway_stalled_sessions_kicked_total",
    "Agentic sessions with nothing pending that were asked for their next step.",
)
