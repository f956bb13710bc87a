"""Many sessions' steps in one transaction (``AdvanceSessions``).

Every item obeys exactly the rules of a single step (:mod:`.advance`), and
fails alone. One transaction for the batch pays the per-transaction cost
(a pooled connection, BEGIN, COMMIT) once instead of once per step.

How an item can fail without spoiling the others:

- Its guard — the session-row update that checks every session-level rule —
  matches no row. Nothing of the item was written, so the transaction goes
  on; after the commit the item is diagnosed like a refused single step
  (an exact repeat is answered as a replay, anything else with its code).
- Anything after its guard refuses (the lease was taken over between the
  two statements) or any statement errors. That item's guard has written;
  on PostgreSQL an error also spoils the transaction. The whole batch rolls
  back and every item is done again on its own — rare, and always correct.

Items are written in session-id order, so two batches sharing sessions
lock them in the same order and cannot deadlock each other. Steps that
create or revive children run on their own: they are rare and write many
rows.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import DBAPIError, IntegrityError

from specloom.errors import SpecloomError
from specloom.protoconv import utcnow
from specloom_sessions.database import Database
from specloom_sessions.store.advance import (
    Advanced,
    Refused,
    Step,
    advance,
    precheck,
)
from specloom_sessions.store.diagnose import diagnose
from specloom_sessions.store.on_thread import advance_on_thread
from specloom_sessions.store.pipelined import advance_alone, advance_pipelined

Outcome = Advanced | SpecloomError


async def _alone(db: Database, step: Step) -> Outcome:
    try:
        return await advance(db, step)
    except SpecloomError as exc:
        return exc


async def _diagnosed(db: Database, step: Step) -> Outcome:
    try:
        return await diagnose(db, step)
    except SpecloomError as exc:
        return exc


async def _together(
    db: Database, steps: Sequence[Step], indexes: list[int], outcomes: list[Outcome | None]
) -> list[int]:
    """Write ``indexes`` in one transaction; returns those whose guard refused."""
    async with db.write() as tx:
        # PostgreSQL: three pipelined statements for the whole batch;
        # SQLite: the whole batch in one trip to the connection's thread.
        write = advance_pipelined if db.postgres else advance_on_thread
        done, skipped = await write(tx, [steps[i] for i in indexes], utcnow())
    for position, advanced in done.items():
        outcomes[indexes[position]] = advanced
    return [indexes[position] for position in skipped]


async def advance_many(db: Database, steps: Sequence[Step]) -> list[Outcome]:
    """Apply every step; one outcome per step, in order."""
    outcomes: list[Outcome | None] = [None] * len(steps)
    together: list[int] = []
    for index, step in enumerate(steps):
        try:
            precheck(step)
        except SpecloomError as exc:
            outcomes[index] = exc
            continue
        if not (step.create_children or step.revive_children):
            together.append(index)
    together.sort(key=lambda index: steps[index].session_id)
    try:
        refused = await _together(db, steps, together, outcomes)
    except (Refused, IntegrityError, DBAPIError, SpecloomError):
        # SpecloomError: db.write() turns deadlocks and serialization
        # failures into ABORTED; item by item, each gets its own answer.
        refused = []
        for index in together:
            outcomes[index] = await _alone(db, steps[index])
    for index in refused:
        outcomes[index] = await _diagnosed(db, steps[index])
    for index, step in enumerate(steps):
        if outcomes[index] is None:  # children: on their own
            outcomes[index] = await _alone(db, step)
    finished = [outcome for outcome in outcomes if outcome is not None]
    assert len(finished) == len(steps), "every step has an outcome"
    return finished


async def advance_one(db: Database, step: Step) -> Advanced:
    """One step, answered exactly as :func:`.advance.advance` answers it.

    A step without children is written on the driver's own connection: on
    PostgreSQL in one pipeline (three round trips instead of five), on SQLite
    in one trip to the connection's thread. Children are written statement
    by statement: they are rare and write many rows.
    """
    if step.create_children or step.revive_children:
        return await advance(db, step)
    precheck(step)
    try:
        async with db.write() as tx:
            if db.postgres:
                return await advance_alone(tx, step, utcnow())
            done, refused = await advance_on_thread(tx, [step], utcnow())
            if refused:
                raise Refused
            return done[0]
    except Refused:
        return await diagnose(db, step)
