"""Prometheus metrics shared by every service.

Metric objects are module-level (prometheus-client's registry is global);
services add their own gauges beside these. Exposition is started by the
server host when a metrics port is configured.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RPC_HANDLED = Counter(
    "specloom_rpc_handled_total",
    "RPCs completed by this process, by method and status code.",
    ["service", "method", "code"],
)
RPC_LATENCY = Histogram(
    "specloom_rpc_duration_seconds",
    "RPC handling time on the server, by method.",
    ["service", "method"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def split_method(full: str) -> tuple[str, str]:
    """``/specloom.v1.SessionsService/FetchSession`` -> (``SessionsService``, ``FetchSession``)."""
    _, _, rest = full.partition("/")
    service, _, method = rest.partition("/")
    return service.rsplit(".", 1)[-1], method
