"""How a service plugs into a process.

Each service package exports one :class:`ServiceSpec` and registers it under
the ``specloom.services`` entry-point group. ``specloom serve <name>`` runs
one spec alone (what Kubernetes runs); ``specloom up`` runs every spec in
one process on one port, merging the orchestrators' workflow registries into
a single OrchestratorService. The kernel discovers services only through
entry points, so it never imports a service module.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Literal, TypeVar

import grpc
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from specloom.rpc.channels import ChannelPool
from specloom.rpc.server import GrpcServer
from specloom.workflow import Registry

DEFAULT_LISTEN = "127.0.0.1:7420"


def default_data_dir() -> Path:
    """Where the embedded mode keeps its SQLite file and first token."""
    return Path.home() / ".local" / "share" / "specloom"


class HostSettings(BaseSettings):
    """Settings every service process shares (environment: ``SPECLOOM_*``)."""

    model_config = SettingsConfigDict(env_prefix="SPECLOOM_", extra="ignore")

    listen: str = DEFAULT_LISTEN
    """Address the gRPC server binds (``host:port``; port 0 picks one)."""
    data_dir: Path = Field(default_factory=default_data_dir)
    """Embedded mode: directory of the SQLite file and the first admin token."""
    database_url: str = ""
    """SQLAlchemy URL of the database (Sessions only). Empty: SQLite in data_dir."""
    sessions_address: str = DEFAULT_LISTEN
    """Where the Sessions service listens (``dns:///sessions:7420`` on Kubernetes)."""
    orchestrator_addresses: list[str] = Field(default_factory=lambda: [DEFAULT_LISTEN])
    """Orchestrator services the gateway routes to; each is asked what it serves."""
    internal_secret: SecretStr | None = None
    """Shared service credential for internal calls; None disables the check
    (only sensible when internal services are unreachable from outside)."""
    token_pepper: SecretStr | None = None
    """Server-side secret mixed into token hashes (Sessions). Required outside tests."""
    tls_cert_file: Path | None = None
    """Serve TLS with this certificate (PEM) when set, with tls_key_file."""
    tls_key_file: Path | None = None
    """Private key for tls_cert_file."""
    tls_root_file: Path | None = None
    """CA bundle to verify internal peers when they serve TLS."""
    metrics_port: int | None = None
    """Serve Prometheus metrics on this port when set."""
    tracing: bool = False
    """Export OpenTelemetry spans (OTLP settings from the standard OTEL_* variables)."""
    log_format: Literal["text", "json"] = "text"
    """Log lines as text for people or JSON for collectors."""
    log_level: str = "INFO"
    """Root log level."""
    grace_seconds: float = 20.0
    """On SIGTERM: how long calls and executor streams get to drain."""

    def secret(self) -> str | None:
        """The internal secret in clear, if set."""
        return self.internal_secret.get_secret_value() if self.internal_secret else None


S = TypeVar("S", bound=BaseModel)


@dataclass
class ServiceContext:
    """What a service gets from the process hosting it."""

    settings: HostSettings
    channels: ChannelPool
    resources: contextlib.AsyncExitStack
    """Push cleanups here (engines, background tasks); closed on shutdown, last in first out."""
    overrides: Mapping[str, Any] = field(default_factory=dict)
    """Values from command-line flags, applied over environment variables."""
    serving: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the process's gRPC server serves: work that can wait for it
    (the web console's imports and HTTP server) starts then, so it does not
    delay the moment the gRPC port answers."""
    endpoints: dict[str, str] = field(default_factory=dict)
    """What a service serves besides the gRPC port, by name (the web console's
    URL): filled through :meth:`announce`, printed by ``specloom up``."""

    def announce(self, name: str, url: str) -> None:
        """Publish an endpoint this service serves on a port of its own."""
        self.endpoints[name] = url

    def channel(self, target: str) -> grpc.aio.Channel:
        """A channel to another specloom service (TLS when a root CA is configured)."""
        return self.channels.get(target, tls=self.settings.tls_root_file is not None)

    def settings_for(self, cls: type[S]) -> S:
        """A service's own settings class, environment plus the overrides it knows."""
        known = {k: v for k, v in self.overrides.items() if k in cls.model_fields}
        return cls(**known)


Setup = Callable[[GrpcServer, ServiceContext], Awaitable[None]]
AdminCommand = Callable[..., Coroutine[Any, Any, Any]]


@dataclass(frozen=True)
class ServiceSpec:
    """A service as a process sees it."""

    name: str
    """``sessions``, ``context_design``, ``coding``, ``gateway`` or ``web``."""
    summary: str
    """One line for ``specloom serve --help``."""
    setup: Setup
    """Register servicers on the server; start background work under ``resources``."""
    workflows: Registry | None = None
    """Orchestrator services: the workflows served (merged in the all-in-one mode)."""
    admin: Mapping[str, AdminCommand] = field(default_factory=dict)
    """Operations the CLI runs against the service's own resources without a
    server (``migrate``, ``prune``, ``issue-token`` for Sessions). Each takes
    the host settings and keyword arguments and returns something printable."""


def discover() -> dict[str, ServiceSpec]:
    """Every installed service, by name."""
    found: dict[str, ServiceSpec] = {}
    for entry in entry_points(group="specloom.services"):
        spec = entry.load()
        if not isinstance(spec, ServiceSpec):
            raise TypeError(f"entry point {entry.name} is not a ServiceSpec")
        found[spec.name] = spec
    return found


def new_secret() -> str:
    """A fresh random secret (internal credential, pepper)."""
    return secrets.token_urlsafe(32)
