"""Client channels, one per target, reused for the life of the process.

Targets may be ``host:port``, ``dns:///name:port`` or a fixed list
``ipv4:host:port,host:port``; every channel uses the ``round_robin``
policy, so on Kubernetes a headless Service's pods all get calls instead of
the first address taking everything, and a replica whose connection broke
gets no new calls until it is back.
"""

from __future__ import annotations

import json
from pathlib import Path

import grpc

from specloom.rpc import metadata as md
from specloom.rpc.local import LocalChannel, LocalRoutes
from specloom.rpc.server import KEEPALIVE_OPTIONS, MAX_MESSAGE_BYTES
from specloom.rpc.tracing import TraceInjector

_SERVICE_CONFIG = json.dumps(
    {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {
                # Transparent retry of calls that never reached a healthy
                # server (a pod restarting). Writes are safe to retry: the
                # version guard and the exact-repeat check make a second
                # attempt a no-op or an ABORTED that callers already handle.
                "name": [
                    {"service": "specloom.v1.SessionsService"},
                    {"service": "specloom.v1.TokensService"},
                ],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            },
            {
                # An orchestrator replica dying mid-call fails the call with
                # UNAVAILABLE; round_robin sends the retry to a live replica.
                # Only calls whose repeat is harmless: a result already
                # recorded is an exact repeat (a no-op), NextStep returns the
                # pending step again, Describe only reads. OpenSession (a
                # second session without an idempotency key) and
                # SteerSession (a second control record) are not retried.
                "name": [
                    {"service": "specloom.v1.OrchestratorService", "method": method}
                    for method in (
                        "ReportAndAdvance",
                        "ReportAndAdvanceMany",
                        "HandleResult",
                        "NextStep",
                        "Describe",
                    )
                ],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            },
        ],
    }
)


class ChannelPool:
    """Channels by target, with the options every specloom client uses."""

    def __init__(
        self,
        *,
        internal_secret: str | None = None,
        root_certificates: Path | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        tracing: bool = False,
    ) -> None:
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._local: tuple[str, LocalRoutes] | None = None
        # Only with tracing on: interceptors cost a little on every call.
        self._interceptors = [TraceInjector()] if tracing else None
        self._root = root_certificates.read_bytes() if root_certificates else None
        self._options: list[tuple[str, str | int]] = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.service_config", _SERVICE_CONFIG),
            ("grpc.enable_retries", 1),
            *KEEPALIVE_OPTIONS,
        ]
        self.metadata: tuple[tuple[str, str], ...] = (
            ((md.INTERNAL_SECRET, internal_secret),) if internal_secret else ()
        )
        """Metadata to send on every internal call (the service credential)."""

    def serve_locally(self, target: str, routes: LocalRoutes) -> None:
        """Calls to ``target`` that ``routes`` can answer stay in this process.

        For the all-in-one mode, whose services reach each other through
        its own server. Not with tracing: the trace context travels in the
        metadata a client interceptor adds, which a local call skips.
        """
        if self._interceptors is None:
            self._local = (target, routes)

    def get(self, target: str, *, tls: bool = False) -> grpc.aio.Channel:
        """The channel to ``target``, created on first use."""
        key = f"{'tls' if tls else 'plain'}|{target}"
        channel = self._channels.get(key)
        if channel is None:
            if tls:
                credentials = grpc.ssl_channel_credentials(root_certificates=self._root)
                channel = grpc.aio.secure_channel(
                    target, credentials, options=self._options, interceptors=self._interceptors
                )
            else:
                channel = grpc.aio.insecure_channel(
                    target, options=self._options, interceptors=self._interceptors
                )
            if self._local is not None and self._local[0] == target:
                channel = LocalChannel(channel, self._local[1])  # type: ignore[assignment]
            self._channels[key] = channel
        return channel

    async def close(self) -> None:
        """Close every channel."""
        channels = list(self._channels.values())
        self._channels.clear()
        for channel in channels:
            await channel.close(None)
