"""aiosqlite connections that can be stopped twice without hanging.

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
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import aiosqlite

_NOT_STOPPED: Any = object()


class Connection(aiosqlite.Connection):
    """An aiosqlite connection whose ``stop()`` is idempotent."""

    def __init__(self, connector: Any, iter_chunk_size: int) -> None:
        super().__init__(connector, iter_chunk_size)
        self._stopping: asyncio.Future[Any] | None = _NOT_STOPPED

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
