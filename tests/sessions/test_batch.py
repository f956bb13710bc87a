"""AdvanceSessions: many steps, one transaction, each item under its own rules."""

from __future__ import annotations

import asyncio
import re

import grpc
from sqlalchemy import Text, cast, func, select
from sqlalchemy.ext.asyncio import create_async_engine

from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb
from specloom_sessions import tables
from specloom_sessions.config import SessionsSettings
from specloom_sessions.database import Database
from specloom_sessions.servicer import SessionsServicer
from specloom_sessions.store import advance as steps
from tests.fixtures.sessions_server import SessionsUnderTest
from tests.sessions.helpers import code_of, control, create, fetch, ok, pending, scope

EXECUTOR = spb.DISPATCH_EXECUTOR


async def _advance_item(
    service: SessionsUnderTest, where: pb.Scope, session_id: str, result: pb.Result, **extra: object
) -> spb.AdvanceSessionRequest:
    head = await fetch(service, where, session_id, pb.INTERACTION_VIEW_LAST)
    request = spb.AdvanceSessionRequest(
        scope=where, session_id=session_id, expected_version=head.version
    )
    request.complete.CopyFrom(
        spb.CompletePart(interaction_id=head.interactions[-1].id, result=result, **extra)  # type: ignore[arg-type]
    )
    request.append.append(pending("Next"))
    return request


async def _batch(
    service: SessionsUnderTest, items: list[spb.AdvanceSessionRequest]
) -> list[spb.AdvanceSessionsOutcome]:
    response = await service.stub.AdvanceSessions(
        spb.AdvanceSessionsRequest(items=items), metadata=service.metadata
    )
    return list(response.outcomes)


async def test_a_batch_advances_every_session(sessions_service: SessionsUnderTest) -> None:
    where = scope()
    sessions = [await create(sessions_service, where) for _ in range(5)]
    items = [
        await _advance_item(sessions_service, where, s.id, ok(f"s{n}"))
        for n, s in enumerate(sessions)
    ]
    outcomes = await _batch(sessions_service, items)
    assert [o.WhichOneof("outcome") for o in outcomes] == ["response"] * 5
    for session, outcome in zip(sessions, outcomes, strict=True):
        assert outcome.response.session.id == session.id
        assert outcome.response.session.version == session.version + 1
        stored = await fetch(sessions_service, where, session.id)
        assert [i.status for i in stored.interactions] == [
            pb.INTERACTION_STATUS_COMPLETED,
            pb.INTERACTION_STATUS_PENDING,
        ]


async def test_items_fail_alone_with_the_single_call_codes(
    sessions_service: SessionsUnderTest,
) -> None:
    where = scope()
    fine, stale, repeat, cancelled, fenced = [
        await create(sessions_service, where) for _ in range(4)
    ] + [
        await create(
            sessions_service, where, first=pending("W", dispatch=EXECUTOR, lease=("exec-1", 60))
        )
    ]
    good = await _advance_item(sessions_service, where, fine.id, ok())
    old = await _advance_item(sessions_service, where, stale.id, ok())
    old.expected_version += 5  # not the version it has
    again = await _advance_item(sessions_service, where, repeat.id, ok("once"))
    assert (await _batch(sessions_service, [again]))[0].WhichOneof("outcome") == "response"
    gone = await _advance_item(sessions_service, where, cancelled.id, ok())
    await sessions_service.stub.CancelSessionTree(
        spb.CancelSessionTreeRequest(scope=where, session_id=cancelled.id, reason="t"),
        metadata=sessions_service.metadata,
    )
    # The guard passes (version, status) but the lease is someone else's
    # epoch: refused after the guard wrote, so the batch is redone item by item.
    wrong_epoch = await _advance_item(sessions_service, where, fenced.id, ok(), lease_epoch=7)
    outcomes = await _batch(sessions_service, [good, old, again, gone, wrong_epoch])
    kinds = [o.WhichOneof("outcome") for o in outcomes]
    assert kinds == ["response", "error", "response", "error", "error"]
    assert outcomes[1].error.code == "ABORTED"
    assert outcomes[2].response.replayed, "an exact repeat is a replay"
    assert outcomes[3].error.code == "FAILED_PRECONDITION"
    assert outcomes[4].error.code == "FAILED_PRECONDITION"
    assert "epoch" in outcomes[4].error.message or "lease" in outcomes[4].error.message
    # Only the good item wrote.
    assert (await fetch(sessions_service, where, fine.id)).interaction_count == 2
    assert (await fetch(sessions_service, where, stale.id)).interaction_count == 1
    assert (await fetch(sessions_service, where, fenced.id)).interaction_count == 1


async def test_bad_batches_are_refused_whole(sessions_service: SessionsUnderTest) -> None:
    where = scope()
    session = await create(sessions_service, where)
    item = await _advance_item(sessions_service, where, session.id, ok())
    duplicate = spb.AdvanceSessionsRequest(items=[item, item])
    assert (
        await code_of(
            sessions_service.stub.AdvanceSessions(duplicate, metadata=sessions_service.metadata)
        )
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    huge = spb.AdvanceSessionsRequest(items=[item] * 1001)
    assert (
        await code_of(
            sessions_service.stub.AdvanceSessions(huge, metadata=sessions_service.metadata)
        )
        == grpc.StatusCode.RESOURCE_EXHAUSTED
    )
    broken = spb.AdvanceSessionRequest(scope=where, session_id=session.id, expected_version=1)
    broken.complete.interaction_id = session.interactions[0].id  # no result
    outcomes = await _batch(sessions_service, [broken])
    assert outcomes[0].error.code == "INVALID_ARGUMENT"
    assert "complete.result" in outcomes[0].error.message


async def test_overlapping_batches_do_not_deadlock_and_one_write_wins(
    sessions_service: SessionsUnderTest,
) -> None:
    where = scope()
    sessions = [await create(sessions_service, where) for _ in range(8)]
    items = [await _advance_item(sessions_service, where, s.id, ok()) for s in sessions]
    forward = _batch(sessions_service, items)
    backward = _batch(sessions_service, list(reversed(items)))
    first, second = await asyncio.wait_for(asyncio.gather(forward, backward), timeout=30)
    # The same writes twice: each session advanced once; the other batch's
    # item is an exact repeat (replay) or refused as stale.
    for session in sessions:
        stored = await fetch(sessions_service, where, session.id)
        assert stored.interaction_count == 2
        assert stored.version == session.version + 1
    wins = sum(
        1
        for outcome in [*first, *second]
        if outcome.WhichOneof("outcome") == "response" and not outcome.response.replayed
    )
    assert wins == len(sessions)


async def _stored(database_url: str, session_id: str) -> list[dict[str, object]]:
    """The session's rows as the database holds them: each value with its stored type."""
    engine = create_async_engine(database_url)
    sqlite = engine.dialect.name == "sqlite"
    kind = func.typeof if sqlite else func.pg_typeof
    rows: list[dict[str, object]] = []
    try:
        async with engine.connect() as conn:
            for table, where, order in (
                (tables.sessions, tables.sessions.c.id, tables.sessions.c.id),
                (tables.interactions, tables.interactions.c.session_id, tables.interactions.c.seq),
            ):
                picks = [p for c in table.c for p in (kind(c).label(f"{c.name}:type"), c)]
                if sqlite:
                    # Stamps are text there: the text itself, not as parsed.
                    stamps = [c for c in table.c if isinstance(c.type, tables.UtcDateTime)]
                    picks += [cast(c, Text).label(f"{c.name}:text") for c in stamps]
                query = select(*picks).where(where == session_id).order_by(order)
                for raw in (await conn.execute(query)).mappings():
                    row: dict[str, object] = {"table": table.name}
                    for key, value in raw.items():
                        if key.endswith(":type"):
                            value = str(value)
                        elif key.endswith(":text") and value is not None:
                            value = re.sub(r"\d", "9", value)  # its form, not its moment
                        row[str(key)] = value
                    rows.append(row)
    finally:
        await engine.dispose()
    return rows


_DIFFER = {"id", "session_id", "created_at", "updated_at", "completed_at", "lease_expires_at"}
"""Columns two sessions' rows may differ in (their ids and the moment they were written)."""


async def test_a_batch_and_a_lone_step_store_exactly_what_the_toolkit_stores(
    sessions_service: SessionsUnderTest,
) -> None:
    """Every column of every row, and on SQLite how each value is stored (text stamps included).

    A batch, and a lone step without children, hand their statements to the
    driver itself — pipelined on PostgreSQL, one trip to the connection's
    thread on SQLite — converting values as the SQL toolkit does; a stamp
    stored in another text form would compare wrongly against every lease
    expiry and cursor. The reference is the same step written statement by
    statement through the toolkit (what a step with children still does).
    """
    where = scope()
    first = pending("W", dispatch=EXECUTOR, lease=("exec-1", 60))
    sessions = [await create(sessions_service, where, first=first) for _ in range(3)]
    usage = pb.Result(status=pb.RESULT_STATUS_OK, stdout="done")
    usage.usage.input_tokens, usage.usage.agent_steps = 11, 1
    requests = []
    for session in sessions:
        request = await _advance_item(sessions_service, where, session.id, usage, lease_epoch=1)
        del request.append[:]
        request.append.extend(
            [control(reason="noted"), pending("Next", dispatch=EXECUTOR, lease=("exec-1", 60))]
        )
        request.state.update({"phase": "two"})
        requests.append(request)
    reference = requests[0]
    db = Database.open(sessions_service.database_url, SessionsSettings())
    try:
        written = await steps.advance(
            db,
            steps.Step(
                scope=reference.scope,
                session_id=reference.session_id,
                expected_version=reference.expected_version,
                complete=steps.completion(
                    reference.complete.interaction_id, reference.complete.result, 1, b""
                ),
                state=reference.state,
                append=list(reference.append),
            ),
        )
    finally:
        await db.close()
    expected = SessionsServicer._advanced(written)
    alone = await sessions_service.stub.AdvanceSession(
        requests[1], metadata=sessions_service.metadata
    )
    [outcome] = await _batch(sessions_service, [requests[2]])
    stored = await _stored(sessions_service.database_url, sessions[0].id)
    assert len(stored) == 4  # the session and its three interactions
    assert stored[0]["usage_input_tokens"] == 11
    assert stored[0]["interaction_count"] == 3
    for answer, session in ((alone, sessions[1]), (outcome.response, sessions[2])):
        # The answers agree ...
        assert answer.session.version == expected.session.version
        assert [i.step for i in answer.appended] == [i.step for i in expected.appended]
        assert answer.appended[1].lease.executor_id == "exec-1"
        assert answer.completed.result == expected.completed.result
        assert (
            answer.completed.completed_at.ToDatetime() >= answer.completed.created_at.ToDatetime()
        )
        # ... and so does every stored value.
        rows = await _stored(sessions_service.database_url, session.id)
        assert len(rows) == len(stored)
        for mine, theirs in zip(stored, rows, strict=True):
            assert {k: v for k, v in mine.items() if k not in _DIFFER} == {
                k: v for k, v in theirs.items() if k not in _DIFFER
            }
            for column in _DIFFER & set(mine):
                assert (mine[column] is None) == (theirs[column] is None), column
