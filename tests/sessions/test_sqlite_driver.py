"""Our aiosqlite connections: a forced stop still closes; a batch runs on the thread."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from specloom_sessions import sqlite_driver
from specloom_sessions.config import SessionsSettings
from specloom_sessions.database import Database


async def test_close_after_a_forced_stop_returns(tmp_path: Path) -> None:
    connection = await sqlite_driver.connect(tmp_path / "one.db")
    # What SQLAlchemy's _terminate_force_close does to a connection whose
    # task was cancelled mid-close; close() then stops it a second time.
    connection.stop()
    with contextlib.suppress(ValueError):  # "Connection closed": it was stopped
        await asyncio.wait_for(connection.close(), 5)
    connection._thread.join(5)
    assert not connection._thread.is_alive()


async def test_stopping_twice_waits_for_the_one_worker(tmp_path: Path) -> None:
    connection = await sqlite_driver.connect(tmp_path / "two.db")
    first = connection.stop()
    assert connection.stop() is first
    await asyncio.wait_for(first, 5)  # type: ignore[arg-type]


async def test_closing_the_database_waits_for_connections_in_use(tmp_path: Path) -> None:
    # A service stopping while a request still holds a connection: disposed
    # at once, the engine left that connection to a pool nobody would close,
    # and the garbage collector later found an aiosqlite connection never
    # closed (a ResourceWarning, an error here, in whatever test ran then).
    db = Database.open(f"sqlite+aiosqlite:///{tmp_path / 'busy.db'}", SessionsSettings())
    holding, done = asyncio.Event(), asyncio.Event()

    async def request(db: Database) -> None:
        async with db.read() as conn:
            await conn.execute(text("SELECT 1"))
            holding.set()
            await done.wait()

    handler = asyncio.create_task(request(db))
    await holding.wait()
    closing = asyncio.create_task(db.close())
    await asyncio.sleep(0.05)
    assert not closing.done()  # waits for the connection in use
    done.set()
    await handler
    await asyncio.wait_for(closing, 5)
    del db, handler, closing
    gc.collect()  # an unclosed connection would warn here


async def test_closing_the_database_is_bounded_when_a_connection_never_comes_back(
    tmp_path: Path,
) -> None:
    db = Database.open(f"sqlite+aiosqlite:///{tmp_path / 'stuck.db'}", SessionsSettings())
    conn = await db.engine.connect()
    began = asyncio.get_running_loop().time()
    await asyncio.wait_for(db.close(grace=0.1), 5)  # gives up waiting, disposes the rest
    assert asyncio.get_running_loop().time() - began < 2
    await conn.invalidate()  # closes the connection itself (the pool is gone)
    await conn.close()
    del conn, db
    gc.collect()


async def test_run_executes_on_the_connection_thread_inside_the_open_transaction(
    tmp_path: Path,
) -> None:
    db = Database.open(f"sqlite+aiosqlite:///{tmp_path / 'run.db'}", SessionsSettings())
    try:
        async with db.write() as tx:
            await tx.conn.execute(text("CREATE TABLE notes (body TEXT NOT NULL)"))
        loop_thread = threading.get_ident()

        def write(connection: sqlite3.Connection) -> int:
            connection.execute("INSERT INTO notes (body) VALUES ('kept')")
            return threading.get_ident()

        async def transaction(*work: Callable[[sqlite3.Connection], object]) -> list[object]:
            async with db.write() as tx:
                raw = await tx.conn.get_raw_connection()
                driver = raw.driver_connection
                assert isinstance(driver, sqlite_driver.Connection)
                return [await driver.run(fn) for fn in work]

        assert await transaction(write) != [loop_thread]
        # A failing statement on the thread fails the transaction as any
        # statement does: wrapped as the SQL toolkit's error, and rolled back.
        broken = transaction(write, lambda c: c.execute("INSERT INTO missing VALUES (1)"))
        with pytest.raises(DBAPIError, match="no such table: missing"):
            await broken
        async with db.read() as conn:
            assert (await conn.execute(text("SELECT body FROM notes"))).scalars().all() == ["kept"]
    finally:
        await db.close()
