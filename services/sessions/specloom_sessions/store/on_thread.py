"""A batch of step writes on SQLite, in one trip to the connection's thread.

aiosqlite runs each connection on a worker thread, and every statement
sent through the SQL toolkit is a trip there and back: a queue, a thread
wake-up, a callback into the event loop, and the toolkit's per-execute work
around it. Under SQLite's single writer those trips are serial, so at 64
sessions they were most of ``specloom up``'s time per step. Here the whole
batch — every step's guard, completion and appended rows — is one function
run on that thread, with the statements a single step runs
(:mod:`.advance`) compiled once (:mod:`.compiled`) and handed to ``sqlite3``
as text, their values converted exactly as the toolkit converts them.

Rules are exactly those of :func:`.advance.after_guard`, step by step in
the order given: a step whose guard matches no row wrote nothing and is
returned as refused; a step refused after its guard raises
:class:`~.advance.Refused` and the caller rolls the transaction back and
does the steps one by one. Children and revivals are left to the caller.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Dialect

from specloom_sessions.database import Tx
from specloom_sessions.rows import interaction_of, session_of
from specloom_sessions.sqlite_driver import Connection
from specloom_sessions.store.advance import (
    Advanced,
    Refused,
    Step,
    append_values,
    completion_call,
    guard_call,
    note_finish,
)
from specloom_sessions.store.compiled import Compiled, compile_once, insert_for


@dataclass
class _Write:
    """One step's statements, bound; and, once run, what they returned."""

    step: Step
    guard: Compiled
    guard_params: tuple[Any, ...]
    completion: Compiled | None = None
    completion_params: tuple[Any, ...] = ()
    head: dict[str, Any] | None = None
    completed: dict[str, Any] | None = None
    appended: list[dict[str, Any]] = field(default_factory=list)


def _returning(connection: sqlite3.Connection, compiled: Compiled, params: tuple[Any, ...]) -> Any:
    """The first row ``compiled`` returns, converted; None if it matched no row."""
    cursor = connection.execute(compiled.sql, params)
    try:
        # Read to the end: SQLite finishes an UPDATE ... RETURNING's writes
        # only when the statement has been stepped through.
        rows = cursor.fetchall()
        if not rows:
            return None
        names = [column[0] for column in cursor.description]
        return compiled.row(names, rows[0])
    finally:
        cursor.close()


def _run(
    writes: list[_Write], now: dt.datetime, dialect: Dialect
) -> Callable[[sqlite3.Connection], None]:
    """The batch's writes as one function for the connection's thread."""

    def run(connection: sqlite3.Connection) -> None:
        inserts: list[dict[str, Any]] = []
        for write in writes:
            write.head = _returning(connection, write.guard, write.guard_params)
            if write.head is None:
                continue  # the guard refused: nothing of this step was written
            if write.completion is not None:
                write.completed = _returning(connection, write.completion, write.completion_params)
                if write.completed is None:
                    raise Refused  # after its guard wrote: spoiled
            if write.step.append:
                write.appended = append_values(write.step, write.head, now)
                inserts.extend(write.appended)
        # Appended rows of every step have the same columns: one statement.
        if inserts:
            compiled = compile_once(insert_for(tuple(inserts[0])), dialect)
            connection.executemany(compiled.sql, [compiled.positional(v) for v in inserts])

    return run


async def advance_on_thread(
    tx: Tx, steps: Sequence[Step], now: dt.datetime
) -> tuple[dict[int, Advanced], list[int]]:
    """Write ``steps`` (none with children); returns outcomes by index and refused indexes."""
    # aiosqlite's connection (ours, :mod:`..sqlite_driver`), inside the
    # transaction the SQL toolkit opened with BEGIN IMMEDIATE.
    connection = await tx.driver()
    assert isinstance(connection, Connection)
    dialect = tx.conn.dialect
    writes: list[_Write] = []
    for step in steps:
        statement, params = guard_call(tx, step, now, inline=False)
        guard = compile_once(statement, dialect)
        write = _Write(step, guard, guard.positional(params))
        if step.complete is not None:
            statement, params = completion_call(step, now)
            write.completion = compile_once(statement, dialect)
            write.completion_params = write.completion.positional(params)
        writes.append(write)
    await connection.run(_run(writes, now, dialect))
    outcomes: dict[int, Advanced] = {}
    refused: list[int] = []
    for index, write in enumerate(writes):
        if write.head is None:
            refused.append(index)
            continue
        note_finish(tx, write.step, write.head)
        outcomes[index] = Advanced(
            session=session_of(write.head),
            completed=interaction_of(write.completed) if write.completed is not None else None,
            appended=[interaction_of(v) for v in write.appended],
        )
    return outcomes, refused
