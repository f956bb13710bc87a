"""What the gateway's parts share: settings, upstream clients, the executor hub."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from specloom.v1 import common_pb2 as pb
from specloom_gateway.auth import Authenticator
from specloom_gateway.config import GatewaySettings
from specloom_gateway.hub import ExecutorHub, ScopeKey
from specloom_gateway.routing import Router
from specloom_gateway.upstream import Upstream


@dataclass
class Deps:
    """One gateway instance's shared parts."""

    settings: GatewaySettings
    upstream: Upstream
    auth: Authenticator
    router: Router
    hub: ExecutorHub
    wake: Callable[[ScopeKey | None], None]
    """Tell dispatch that work or capacity may be available in a scope (None: any)."""
    replica_id: str = ""
    """This gateway instance (it claims joins and records executor presence under it)."""
    draining: bool = False
    """This gateway is shutting down: hand out no new work."""

    def deadline(self, command: pb.Command) -> float:
        """When the gateway gives up on ``command`` if it was handed out now."""
        limit = command.timeout_seconds or self.settings.default_command_timeout_seconds
        return time.monotonic() + limit + self.settings.command_run_grace_seconds
