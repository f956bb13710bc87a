"""The gateway's own settings (environment: ``SPECLOOM_*``).

Process-wide settings (listen address, Sessions and orchestrator addresses,
TLS, grace) live in :class:`specloom.host.HostSettings`; these are the knobs
of executor streams and dispatch.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    """Executor leases, timeouts and background sweeps."""

    model_config = SettingsConfigDict(env_prefix="SPECLOOM_", extra="ignore")

    lease_ttl_seconds: int = Field(default=30, ge=1, le=3600)
    """Lease length granted with every command; a lease not renewed in this
    time lapses and the command goes to another executor."""
    heartbeat_interval_seconds: int = Field(default=10, ge=1, le=600)
    """How often executors are told to heartbeat (renewing their leases).
    Keep it well under the lease TTL so one lost heartbeat costs nothing."""
    stream_idle_timeout_seconds: float = Field(default=0.0, ge=0)
    """Close an executor stream that sent nothing (not even a heartbeat) for
    this long, releasing its leases at once. 0 means three heartbeat
    intervals; gRPC keepalive catches dead peers too, but later."""
    command_run_grace_seconds: int = Field(default=60, ge=0)
    """A command still running this long after its own ``timeout_seconds``
    (the executor should have killed it) is reported as timed out by the
    gateway, under the executor's lease, and the executor is told to stop."""
    default_command_timeout_seconds: int = Field(default=3600, ge=1)
    """Run limit for commands that set no ``timeout_seconds``."""
    max_output_chunk_bytes: int = Field(default=64 * 1024, ge=1024, le=4 * 1024 * 1024)
    """Executors send output in chunks of at most this many bytes."""
    output_flush_bytes: int = Field(default=256 * 1024, ge=1, le=4 * 1024 * 1024)
    """Buffered output of one command is written to Sessions once it reaches
    this size (or at the flush interval, or before its result); one write
    carries about this much, however much is buffered."""
    output_buffer_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    """Output one executor stream may have waiting to be written. Past it the
    gateway stops reading the stream until writes catch up, so a burst holds
    the executor back (gRPC flow control) instead of growing memory or being
    dropped."""
    output_flush_interval_seconds: float = Field(default=0.25, gt=0)
    """Longest time buffered output waits before it is written."""
    claim_sweep_interval_seconds: float = Field(default=2.0, gt=0)
    """How often to claim for free executors without a signal: expired
    leases produce no signal, so only a sweep finds their work."""
    join_sweep_interval_seconds: float = Field(default=5.0, gt=0)
    """How often to look for children-joins without a signal."""
    join_lease_ttl_seconds: int = Field(default=30, ge=1, le=3600)
    """Lease a gateway holds on a join while reporting it."""
    stalled_sweep_interval_seconds: float = Field(default=30.0, gt=0)
    """How often to look for agentic sessions left with nothing pending."""
    stalled_idle_ms: int = Field(default=10_000, ge=0)
    """Only sessions unchanged for this long count as stalled."""
    executor_wait_timeout_seconds: float = Field(default=600.0, ge=0)
    """A command no executor claims for this long (none able to run it is
    connected) pauses its session with a reason naming the capability
    needed; resuming it makes the command claimable again. 0: wait forever."""
    route_refresh_seconds: float = Field(default=60.0, gt=0)
    """How often orchestrators are asked again which session types they serve."""
    upstream_timeout_seconds: float = Field(default=30.0, gt=0)
    """Deadline of calls to Sessions, Tokens and orchestrators."""
    report_batch_max: int = Field(default=256, ge=1, le=1000)
    """Most executor reports carried by one ``ReportAndAdvanceMany`` call."""
    report_batches_in_flight: int = Field(default=4, ge=1, le=64)
    """Report batches out to one orchestrator at once; reports arriving
    meanwhile wait and leave together (fewer, larger batches under load)."""

    token_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    """A token re-verified on a long-lived stream (each executor heartbeat, each
    watch re-check) is trusted this long after its last verification, so a
    thousand streams of one token cost one VerifyToken per interval, not one
    per heartbeat. A revoked token's streams end within this plus one
    heartbeat interval. Calls are never served from this cache: every call
    is verified. 0 turns the cache off."""
    stream_token_check_seconds: float = Field(default=30.0, gt=0, le=3600)
    """WatchSession streams verify their token again this often and end
    UNAUTHENTICATED once it is revoked or expired (executor streams do it at
    every heartbeat)."""
    max_executor_streams_per_token: int = Field(default=100, ge=1, le=100_000)
    """Executor streams one token may hold open on one gateway process; a
    further Connect is RESOURCE_EXHAUSTED. Per process: behind N replicas a
    token may hold up to N times this. Give each fleet of agents its own
    token, or raise it."""

    def idle_timeout(self) -> float:
        """The effective stream idle timeout in seconds."""
        return self.stream_idle_timeout_seconds or 3.0 * self.heartbeat_interval_seconds
