"""Settings of the Sessions service (environment: ``SPECLOOM_SESSIONS_*``).

The database URL and the token pepper are process settings
(:class:`specloom.host.HostSettings`: ``SPECLOOM_DATABASE_URL``,
``SPECLOOM_TOKEN_PEPPER``), because ``specloom up`` and the test fixtures
set them programmatically on the host; reading them a second time here
would let an environment variable silently override those.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from specloom.host import HostSettings

MIB = 1024 * 1024


class SessionsSettings(BaseSettings):
    """Knobs of the Sessions service; the defaults suit one machine and small clusters."""

    model_config = SettingsConfigDict(env_prefix="SPECLOOM_", extra="ignore", frozen=True)

    sessions_pool_size: int = Field(default=20, ge=1)
    """Database connections kept open (PostgreSQL and SQLite alike)."""
    sessions_max_overflow: int = Field(default=20, ge=0)
    """Extra connections opened under load, closed when idle."""
    sessions_migrate_on_start: bool = False
    """Apply migrations when the service starts (else run ``specloom migrate`` first)."""
    sessions_max_struct_bytes: int = Field(default=1 * MIB, ge=1024)
    """Largest params, state or progress Struct accepted (RESOURCE_EXHAUSTED above)."""
    sessions_max_command_bytes: int = Field(default=4 * MIB, ge=1024)
    """Largest serialized Command accepted (agent prompts carry whole documents)."""
    sessions_max_result_bytes: int = Field(default=8 * MIB, ge=1024)
    """Largest serialized Result accepted (collected files travel inside it)."""
    sessions_max_output_bytes: int = Field(default=64 * MIB, ge=1)
    """Output kept per interaction; the rest of an append is dropped and reported truncated."""
    sessions_max_children_per_write: int = Field(default=2000, ge=1)
    """Children one AdvanceSession may create (RESOURCE_EXHAUSTED above)."""
    sessions_max_write_bytes: int = Field(default=10 * MIB, ge=1024, le=12 * MIB)
    """Largest AdvanceSession as a whole (each item of a batch on its own):
    the per-field caps above bound each part, this bounds their sum (twenty
    children each under the params cap, say). The answer echoes the write
    with the session head around it and must fit in a 16 MiB message too,
    hence the ceiling."""
    sessions_work_nudge_seconds: float = Field(default=10.0, gt=0)
    """WatchWork sends an "anything" signal this often, so expired leases get reclaimed."""
    sessions_sqlite_busy_timeout_ms: int = Field(default=10_000, ge=0)
    """How long a SQLite writer waits for another process's write lock."""
    sessions_metrics_interval_seconds: float = Field(default=15.0, gt=0)
    """With metrics served: how often the sessions-by-status and queue-depth
    gauges are read from the database (grouped counts that indexes answer)."""


def database_url(host: HostSettings) -> str:
    """The SQLAlchemy async URL to use: the configured one, else SQLite in the data dir."""
    if host.database_url:
        return host.database_url
    directory = Path(host.data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{directory / 'specloom.db'}"
