"""The console's one connection to the gateway, used with each person's token.

The console holds no privilege of its own: every call carries the signed-in
person's token and goes through the public GatewayService, so the console
sees exactly what that token may see through the API (another project's
session is NOT_FOUND there, and so here).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import grpc

from specloom.client import Client
from specloom.v1 import common_pb2 as pb
from specloom_web.config import WebSettings

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Largest answer accepted (a session's full history with its collected files)."""

WORKFLOWS_TTL_SECONDS = 60.0
"""How long the step graphs are reused: they change only with a deploy."""


@dataclass
class _Workflows:
    fetched_at: float
    workflows: list[pb.WorkflowDescription]


class Gateway:
    """One shared gRPC channel; a :class:`Client` per call, with the caller's token."""

    def __init__(self, address: str, settings: WebSettings) -> None:
        self.address = address
        self._timeout = settings.web_call_timeout_seconds
        options: list[tuple[str, int | str]] = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            # Watches stay open for as long as a page is: keep idle
            # connections alive through proxies.
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 10_000),
        ]
        if settings.web_gateway_tls:
            root = (
                settings.web_gateway_ca_file.read_bytes()
                if settings.web_gateway_ca_file is not None
                else None
            )
            if settings.web_gateway_server_name:
                options.append(("grpc.ssl_target_name_override", settings.web_gateway_server_name))
            credentials = grpc.ssl_channel_credentials(root_certificates=root)
            self._channel = grpc.aio.secure_channel(address, credentials, options=options)
        else:
            self._channel = grpc.aio.insecure_channel(address, options=options)
        self._workflows: _Workflows | None = None

    def client(self, token: str) -> Client:
        """A client acting with ``token`` over the shared channel (closing it is free)."""
        return Client(self.address, token, timeout=self._timeout, channel=self._channel)

    async def workflows(self, token: str) -> list[pb.WorkflowDescription]:
        """Every session type's step graph, fetched with ``token`` and reused a minute.

        The graphs are the same for every caller; the cache is filled only by
        a call that authenticated, and pages that use it have already made a
        call of their own with the caller's token.
        """
        now = time.monotonic()
        cached = self._workflows
        if cached is not None and now - cached.fetched_at < WORKFLOWS_TTL_SECONDS:
            return cached.workflows
        workflows = await self.client(token).describe()
        self._workflows = _Workflows(now, workflows)
        return workflows

    async def close(self) -> None:
        """Close the channel (at shutdown)."""
        await self._channel.close(None)
