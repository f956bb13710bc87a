"""The PostgreSQL server every system is measured on: scratch databases, facts."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
from sqlalchemy.engine import make_url

RESERVE_CONNECTIONS = 12
"""Connections left free for everything else on the server (other engineers'
test suites share it): pgbench never takes the last ones."""


def database_url(admin_url: str, name: str) -> str:
    """The libpq URL of database ``name`` on the admin URL's server."""
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def async_url(url: str) -> str:
    """The SQLAlchemy async form (psycopg 3 driver) of a libpq URL."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


@contextlib.contextmanager
def scratch_database(admin_url: str, purpose: str) -> Iterator[str]:
    """Create an empty database, yield its libpq URL, drop it after."""
    name = f"specloom_bench_{purpose}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass(frozen=True)
class ServerFacts:
    """What the report says about the server."""

    version: str
    max_connections: int
    synchronous_commit: str
    fsync: str
    shared_buffers: str

    def free_connections(self, admin_url: str) -> int:
        """Connections a benchmark may open now without starving anyone."""
        with psycopg.connect(admin_url, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity").fetchone()
            reserved = conn.execute("SHOW superuser_reserved_connections").fetchone()
        used = int(row[0]) if row else 0
        held = int(reserved[0]) if reserved else 3
        return max(1, self.max_connections - used - held - RESERVE_CONNECTIONS)


def server_facts(admin_url: str) -> ServerFacts:
    """Version and the settings that bound commit throughput."""
    with psycopg.connect(admin_url, autocommit=True) as conn:

        def show(name: str) -> str:
            row = conn.execute(f"SHOW {name}").fetchone()
            return str(row[0]) if row else "?"

        version_row = conn.execute("SELECT version()").fetchone()
        return ServerFacts(
            version=str(version_row[0]).split(" on ")[0] if version_row else "?",
            max_connections=int(show("max_connections")),
            synchronous_commit=show("synchronous_commit"),
            fsync=show("fsync"),
            shared_buffers=show("shared_buffers"),
        )
