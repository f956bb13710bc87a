"""aiosqlite connections that can be stopped twice without hanging, and run a batch.

aiosqlite (0.22) runs each connection on a worker thread that ends when it
reaches a stop marker. ``Connection.stop()`` queues one, and
``Connection.close()`` queues another in its ``finally`` and waits for it.
SQLAlchemy's aiosqlite dialect closes a connection whose task was cancelled
in a shielded task and, when the waiting task is cancelled again, stops it
outright (``_terminate_force_close``). Loop shutdown cancels every task at
once, so both happen: the first marker ends the thread, and ``close()`` then
waits forever for the second one. Everything that closes the loop — a test's
teardown, ``specloom up`` on SIGTERM — hangs with it (the same deadlock is
reported against other projects as wapiti-scanner/wapiti#802).

Here a second ``stop()`` returns the first one's future, which the worker
resolves when it reaches that marker, so ``close()`` after ``stop()``
returns as soon as the thread has finished.

:meth:`Connection.run` hands the worker a whole function at once — a batch
of statements for one trip to the thread (:mod:`.store.on_thread`).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

_NOT_STOPPED: Any = object()
T = TypeVar("T")


class Connection(aiosqlite.Connection):
    """An aiosqlite connection whose ``stop()`` is idempotent."""

    def __init__(self, connector: Any, iter_chunk_size: int) -> None:
        super().__init__(connector, iter_chunk_size)
        self._stopping: asyncio.Future[Any] | None = _NOT_STOPPED

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn(connection)`` on this connection's own thread: many statements, one trip.

        The thread is the only one that may touch the ``sqlite3``
        connection; ``fn`` runs between the statements queued before and
        after it, so inside whatever transaction is open.
        """
        # aiosqlite leaves its own primitive untyped.
        result: T = await self._execute(self._call, fn)  # type: ignore[no-untyped-call]
        return result

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return fn(self._conn)

    def stop(self) -> asyncio.Future[Any] | None:
        """Queue the worker's stop marker once; later calls wait for that same marker."""
        if self._stopping is _NOT_STOPPED:
            self._stopping = super().stop()
        return self._stopping


def connect(
    database: str | bytes | Path, *, iter_chunk_size: int = 64, **kwargs: Any
) -> Connection:
    """``aiosqlite.connect`` with :class:`Connection`, as SQLAlchemy's ``async_creator_fn``."""
    location = database.decode() if isinstance(database, bytes) else str(database)

    def connector() -> sqlite3.Connection:
        connection: sqlite3.Connection = sqlite3.connect(location, **kwargs)
        return connection

    connection = Connection(connector, iter_chunk_size)
    # As SQLAlchemy does for the connections it makes itself: a worker left
    # behind by a connection nobody closed must not keep the process alive.
    connection._thread.daemon = True
    return connection
