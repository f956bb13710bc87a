"""Step writes on PostgreSQL, pipelined on psycopg's own connection.

A batch (:func:`advance_pipelined`) is three statements: the same ones a
single step runs (:mod:`.advance`), compiled once to SQL text
(:mod:`.compiled`) and sent with psycopg's ``executemany`` — which pipelines
every parameter set in one round trip and returns one result per set. A batch
therefore costs three round trips (guards, completions, inserts) whatever
its size, and skips the per-execute work of the SQL toolkit, which was the
largest share of the Sessions process's CPU per step. A lone step
(:func:`advance_alone`) is one pipeline across its statements.

Rules are exactly those of :func:`.advance.after_guard`; what cannot be
done this way (children, revivals) is left to the caller, which runs those
steps on their own.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Dialect

from specloom.v1 import common_pb2 as pb
from specloom_sessions.database import Tx
from specloom_sessions.rows import Row, interaction_of, session_of
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


async def _many(
    cursor: Any, dialect: Dialect, statement: Any, params: Sequence[dict[str, Any]]
) -> list[dict[str, Any] | None]:
    """Run ``statement`` once per parameter set; each set's first row (or None)."""
    compiled = compile_once(statement, dialect)
    constants = compiled.constants
    await cursor.executemany(compiled.sql, [{**constants, **p} for p in params], returning=True)
    # Every result set of one statement has the same columns (its RETURNING
    # list, described even when no row matched); psycopg builds its
    # description afresh on each read, so it is read once.
    names = [column.name for column in cursor.description or ()]
    rows: list[dict[str, Any] | None] = []
    while True:
        row = await cursor.fetchone()
        rows.append(dict(zip(names, row, strict=True)) if row is not None else None)
        if not cursor.nextset():
            break
    return rows


async def advance_pipelined(
    tx: Tx, steps: Sequence[Step], now: dt.datetime
) -> tuple[dict[int, Advanced], list[int]]:
    """Write ``steps`` (none with children); returns outcomes by index and refused indexes.

    A step whose guard refuses wrote nothing and is returned as refused. A
    step refused after its guard raises :class:`Refused`: the transaction
    must be rolled back and the steps done one by one.
    """
    connection = await tx.driver()
    dialect = tx.conn.dialect
    # Steps of one shape share a statement: one executemany per shape.
    guards: dict[Any, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for index, step in enumerate(steps):
        statement, params = guard_call(tx, step, now, inline=False)
        guards[statement].append((index, params))
    heads: dict[int, Row] = {}
    refused: list[int] = []
    async with connection.cursor() as cursor:
        for statement, members in guards.items():
            rows = await _many(cursor, dialect, statement, [p for _, p in members])
            for (index, _), row in zip(members, rows, strict=True):
                if row is None:
                    refused.append(index)
                else:
                    heads[index] = row
        completions: dict[Any, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
        for index in heads:
            if steps[index].complete is not None:
                statement, params = completion_call(steps[index], now)
                completions[statement].append((index, params))
        completed: dict[int, pb.Interaction] = {}
        for statement, members in completions.items():
            rows = await _many(cursor, dialect, statement, [p for _, p in members])
            for (index, _), row in zip(members, rows, strict=True):
                if row is None:
                    raise Refused  # after its guard wrote: spoiled
                completed[index] = interaction_of(row)
        appended: dict[int, list[dict[str, Any]]] = {
            index: append_values(steps[index], heads[index], now)
            for index in heads
            if steps[index].append
        }
        values = [row for rows in appended.values() for row in rows]
        if values:
            compiled = compile_once(insert_for(tuple(values[0])), dialect)
            constants = compiled.constants
            await cursor.executemany(compiled.sql, [{**constants, **v} for v in values])
    outcomes: dict[int, Advanced] = {}
    for index, head in heads.items():
        step = steps[index]
        note_finish(tx, step, head)
        outcomes[index] = Advanced(
            session=session_of(head),
            completed=completed.get(index),
            appended=[interaction_of(v) for v in appended.get(index, [])],
        )
    return outcomes, refused


async def _first(cursor: Any, compiled: Compiled) -> dict[str, Any] | None:
    """The first row of ``cursor``'s current result, converted as the SQL toolkit would."""
    row = await cursor.fetchone()
    if row is None:
        return None
    return compiled.row([column.name for column in cursor.description], row)


async def advance_alone(tx: Tx, step: Step, now: dt.datetime) -> Advanced:
    """One step (no children) in one pipeline: :class:`Refused` when a rule fails.

    Statement by statement a step is five round trips (BEGIN, guard,
    completion, insert, COMMIT), each an event-loop wake-up and the SQL
    toolkit's work around it. Here BEGIN, the guard and the completion go
    in one round trip — the completion may run before the guard's answer is
    read, since a refused guard rolls the whole transaction back — then the
    appended rows (numbered from the guard's row), then COMMIT.
    """
    connection = await tx.driver()
    dialect = tx.conn.dialect
    statement, params = guard_call(tx, step, now)  # NOTIFY rides in its RETURNING
    guard = compile_once(statement, dialect)
    completion: Compiled | None = None
    async with (
        connection.pipeline() as pipeline,
        connection.cursor() as heads,
        connection.cursor() as completions,
    ):
        await heads.execute(guard.sql, {**guard.constants, **params})
        if step.complete is not None:
            statement, params = completion_call(step, now)
            completion = compile_once(statement, dialect)
            await completions.execute(completion.sql, {**completion.constants, **params})
        await pipeline.sync()
        head = await _first(heads, guard)
        if head is None:
            raise Refused
        completed = None
        if completion is not None:
            completed = await _first(completions, completion)
            if completed is None:
                raise Refused
        values = append_values(step, head, now) if step.append else []
        if values:
            insert = compile_once(insert_for(tuple(values[0])), dialect)
            await heads.executemany(insert.sql, [{**insert.constants, **v} for v in values])
    note_finish(tx, step, head)
    return Advanced(
        session=session_of(head),
        completed=interaction_of(completed) if completed is not None else None,
        appended=[interaction_of(v) for v in values],
    )
