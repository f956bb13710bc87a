"""The engine and the two kinds of transaction the store uses.

PostgreSQL: writers lock the rows they change (``UPDATE`` takes the session
row's lock, claims use ``FOR UPDATE SKIP LOCKED``), so any number of
replicas write concurrently. SQLite allows one writer at a time: writes in
this process queue on an asyncio lock and open with ``BEGIN IMMEDIATE``
(so a transaction never has to upgrade a read lock and fail with
"database is locked" halfway), and ``busy_timeout`` covers other processes
(``specloom prune`` beside a running server). WAL lets readers run beside
the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, NoReturn

import psycopg
from sqlalchemy import event, func, select
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import QueuePool

from specloom.errors import Aborted, Unavailable
from specloom_sessions import sqlite_driver
from specloom_sessions.config import SessionsSettings
from specloom_sessions.events import CHANNEL, Changes, Hub

log = logging.getLogger("specloom.sessions.db")

_RETRYABLE_SQLSTATES = {
    "40001": "a concurrent transaction conflicted",  # serialization_failure
    "40P01": "a concurrent transaction deadlocked with this one",  # deadlock_detected
    "55P03": "a row was locked by a concurrent transaction",  # lock_not_available
}


def async_url(url: str) -> str:
    """``url`` with the async driver this service uses (psycopg 3, aiosqlite)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    else:
        raise ValueError(f"unsupported database {backend!r}: use PostgreSQL or SQLite")
    return parsed.render_as_string(hide_password=False)


def sync_url(url: str) -> str:
    """``url`` with a synchronous driver (Alembic runs synchronously)."""
    parsed = make_url(async_url(url))
    if parsed.get_backend_name() == "sqlite":
        parsed = parsed.set(drivername="sqlite")
    return parsed.render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """A PostgreSQL URL as libpq (psycopg) takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def redacted(url: str) -> str:
    """``url`` safe for logs."""
    return make_url(url).render_as_string(hide_password=True)


@dataclass
class Tx:
    """A write transaction and the changes it will announce at commit."""

    conn: AsyncConnection
    postgres: bool
    changes: Changes = field(default_factory=Changes)
    """Announced at commit: NOTIFY before COMMIT on PostgreSQL, the hub after it on SQLite."""

    def inline_payload(self, changes: Changes) -> str | None:
        """The NOTIFY payload for ``changes``, for a statement to send itself.

        For a statement that puts ``pg_notify`` in its RETURNING (it must
        touch exactly one row, or the notification goes out once per row).
        None on SQLite, or when the changes need several payloads: then
        they join :attr:`changes` and go out at commit.
        """
        payloads = changes.payloads() if self.postgres else []
        if len(payloads) != 1:
            self.changes.update(changes)
            return None
        return payloads[0]

    async def driver(self) -> Any:
        """The driver's own connection inside this transaction (psycopg's or aiosqlite's).

        For statements the store hands to the driver itself (the step
        writes); they run in the transaction the SQL toolkit opened.
        """
        raw = await self.conn.get_raw_connection()
        connection = raw.driver_connection
        assert connection is not None
        return connection


class Database:
    """An async engine with the service's transaction rules."""

    def __init__(self, engine: AsyncEngine, hub: Hub) -> None:
        self.engine = engine
        self.hub = hub
        self.postgres = engine.dialect.name == "postgresql"
        self._write_lock = None if self.postgres else asyncio.Lock()

    @classmethod
    def open(cls, url: str, settings: SessionsSettings, hub: Hub | None = None) -> Database:
        """Create the engine for ``url`` (no connection is made yet)."""
        url = async_url(url)
        sqlite = make_url(url).get_backend_name() == "sqlite"
        engine = create_async_engine(
            url,
            pool_size=settings.sessions_pool_size,
            max_overflow=settings.sessions_max_overflow,
            pool_recycle=1800,
            connect_args={"async_creator_fn": sqlite_driver.connect} if sqlite else {},
        )
        if engine.dialect.name == "sqlite":
            _configure_sqlite(engine, settings.sessions_sqlite_busy_timeout_ms)
        return cls(engine, hub or Hub())

    async def close(self, grace: float = 5.0) -> None:
        """Close every pooled connection, once those still in use came back.

        Disposing while a request (one the server's stop cancelled, say) still
        holds a connection would leave that connection to return to a pool
        nobody closes: an aiosqlite connection then ends in the garbage
        collector, never closed. So wait, bounded by ``grace`` seconds, for
        every checked-out connection first.
        """
        pool = self.engine.pool
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while isinstance(pool, QueuePool) and pool.checkedout() > 0:
            if loop.time() >= deadline:
                log.warning(
                    "closing the database with %d connections still in use", pool.checkedout()
                )
                break
            await asyncio.sleep(0.01)
        await self.engine.dispose()

    @contextlib.asynccontextmanager
    async def read(self, *, snapshot: bool = False) -> AsyncIterator[AsyncConnection]:
        """A connection for reads; with ``snapshot`` every statement sees the same commit."""
        try:
            async with self.engine.connect() as conn:
                if self.postgres:
                    level = "REPEATABLE READ" if snapshot else "AUTOCOMMIT"
                    await conn.execution_options(isolation_level=level)
                yield conn
        except DBAPIError as exc:
            raise _translate(exc) from exc

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[Tx]:
        """A write transaction, committed when the block ends without an exception."""
        async with contextlib.AsyncExitStack() as stack:
            if self._write_lock is not None:
                await stack.enter_async_context(self._write_lock)
            try:
                conn = await stack.enter_async_context(self.engine.connect())
                if not self.postgres:
                    await conn.execution_options(sqlite_begin="IMMEDIATE")
                tx = Tx(conn, self.postgres)
                async with conn.begin():
                    yield tx
                    if self.postgres and tx.changes:
                        for payload in tx.changes.payloads():
                            await conn.execute(select(func.pg_notify(CHANNEL, payload)))
            except DBAPIError as exc:
                _reraise(exc)
            except (psycopg.Error, sqlite3.Error) as exc:
                # Raised by statements run on the driver's own connection
                # (the batched step writes), which bypass SQLAlchemy's
                # wrapping: wrapped here so a deadlock is ABORTED and a
                # restarting server UNAVAILABLE, as for every other statement.
                base = psycopg.Error if isinstance(exc, psycopg.Error) else sqlite3.Error
                wrapped = DBAPIError.instance(None, None, exc, base)
                assert isinstance(wrapped, DBAPIError)  # both are their DBAPI's base
                _reraise(wrapped)
        if not self.postgres and tx.changes:
            self.hub.publish(tx.changes)


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        # SQLAlchemy emits BEGIN itself (below), so the driver must not.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def _reraise(exc: DBAPIError) -> NoReturn:
    translated = _translate(exc)
    if translated is exc:
        raise exc
    raise translated from exc


def _translate(exc: DBAPIError) -> Exception:
    """A domain error for database failures a caller can act on; the error itself otherwise."""
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate in _RETRYABLE_SQLSTATES:
        return Aborted(f"{_RETRYABLE_SQLSTATES[sqlstate]}; read again and retry")
    if exc.connection_invalidated:
        return Unavailable("the sessions database connection was lost; retry")
    message = str(exc.orig)
    if "database is locked" in message or "database is busy" in message:
        return Unavailable("the sessions database is busy; retry")
    if sqlstate is not None and sqlstate.startswith("08"):
        return Unavailable("the sessions database cannot be reached; retry")
    if sqlstate is not None and sqlstate.startswith("57P"):
        # admin_shutdown, crash_shutdown, cannot_connect_now: the server is
        # restarting ("the database system is shutting down/starting up").
        return Unavailable("the sessions database is restarting; retry")
    if sqlstate is None and isinstance(exc, OperationalError) and not _sqlite(exc):
        # psycopg found no server to talk to (refused, reset, closed while
        # connecting): no statement ran, so the caller may simply retry.
        return Unavailable("the sessions database cannot be reached; retry")
    return exc


def _sqlite(exc: DBAPIError) -> bool:
    return type(exc.orig).__module__.startswith(("sqlite3", "aiosqlite"))
