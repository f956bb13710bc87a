"""A connection stopped by SQLAlchemy's terminate path still closes (loop shutdown never hangs)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from specloom_sessions import sqlite_driver


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
