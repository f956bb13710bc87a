"""Watch streams: snapshot first, then every change, children and output included."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from specloom.ids import new_id
from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb
from tests.fixtures.sessions_server import SessionsUnderTest, StartSessions
from tests.sessions.helpers import create, events_of, fetch, ok, pending, scope, step

TIMEOUT = 10.0


async def _next(events: AsyncIterator[pb.SessionEvent]) -> pb.SessionEvent:
    return await asyncio.wait_for(anext(events), TIMEOUT)


async def _until(
    events: AsyncIterator[pb.SessionEvent],
    done: Callable[[pb.SessionEvent], bool],
    limit: int = 500,
) -> list[pb.SessionEvent]:
    """Events up to and including the first for which ``done(event)`` holds."""
    seen: list[pb.SessionEvent] = []
    for _ in range(limit):
        event = await _next(events)
        seen.append(event)
        if done(event):
            return seen
    raise AssertionError(f"condition not reached in {limit} events: {seen}")


async def test_snapshot_then_every_change_in_order(sessions_service: SessionsUnderTest) -> None:
    where = scope()
    session = await create(sessions_service, where)
    await step(sessions_service, where, session, ok(), next_step=pending("Second"))
    async with events_of(sessions_service, where, session.id) as events:
        snapshot = await _next(events)
        assert snapshot.WhichOneof("event") == "snapshot"
        assert snapshot.version == 2
        assert [i.step for i in snapshot.snapshot.interactions] == ["Build", "Second"]

        steps = 20
        for n in range(steps):
            await step(sessions_service, where, session, ok(f"{n}"), next_step=pending(f"S{n}"))
        await step(sessions_service, where, session, ok(), finish=(pb.SESSION_STATUS_COMPLETE, ""))
        seen = await _until(
            events,
            lambda e: (
                e.WhichOneof("event") == "session"
                and e.session.status == pb.SESSION_STATUS_COMPLETE
            ),
        )
        # The stream ends once the session is complete.
        with pytest.raises(StopAsyncIteration):
            await _next(events)

    versions = [e.version for e in seen]
    assert versions == sorted(versions)
    heads = [e.session for e in seen if e.WhichOneof("event") == "session"]
    assert heads[-1].version == 2 + steps + 1
    interactions = [e.interaction for e in seen if e.WhichOneof("event") == "interaction"]
    final: dict[int, pb.Interaction] = {}
    for interaction in interactions:
        final[interaction.seq] = interaction
    # Every interaction after the snapshot was appended, and every pending one completed.
    assert sorted(final) == list(range(2, 2 + steps + 1))
    assert all(i.status == pb.INTERACTION_STATUS_COMPLETED for i in final.values())
    appended = {i.seq for i in interactions if i.status == pb.INTERACTION_STATUS_PENDING}
    # Coalescing may merge "appended" into "completed", but no seq is seen twice as new.
    assert len([i for i in interactions if i.status == pb.INTERACTION_STATUS_PENDING]) == len(
        appended
    )
    history = await fetch(sessions_service, where, session.id)
    assert [i.id for i in history.interactions[1:]] == [final[s].id for s in sorted(final)]


async def test_children_and_output_are_delivered(sessions_service: SessionsUnderTest) -> None:
    stub, md = sessions_service.stub, sessions_service.metadata
    where = scope()
    parent = await create(sessions_service, where)
    existing = await create(sessions_service, where, parent_id=parent.id, key="old", type="Leaf")
    async with events_of(
        sessions_service, where, parent.id, include_children=True, include_output=True
    ) as events:
        snapshot = await _next(events)
        assert snapshot.WhichOneof("event") == "snapshot"
        adopted = await _next(events)
        assert adopted.WhichOneof("event") == "session"
        assert adopted.session_id == existing.id

        kid = spb.NewChild(
            id=new_id(), type="Leaf", key="new", definition_version=1, first=pending("Code")
        )
        await step(
            sessions_service, where, parent, ok(), next_step=pending("Wait"), create_children=[kid]
        )
        seen = await _until(
            events, lambda e: e.session_id == kid.id and e.WhichOneof("event") == "session"
        )
        assert any(e.session_id == parent.id and e.WhichOneof("event") == "session" for e in seen)
        (child_first,) = [
            e.interaction
            for e in seen
            if e.session_id == kid.id and e.WhichOneof("event") == "interaction"
        ]
        assert child_first.step == "Code"

        await stub.AppendOutput(
            spb.AppendOutputRequest(
                scope=where,
                session_id=kid.id,
                interaction_id=child_first.id,
                parts=[
                    spb.OutputPart(stream=pb.OUTPUT_STREAM_STDOUT, data=b"hello "),
                    spb.OutputPart(stream=pb.OUTPUT_STREAM_STDERR, data=b"\xff\xfe not utf-8"),
                ],
            ),
            metadata=md,
        )
        outputs = await _until(
            events, lambda e: e.WhichOneof("event") == "output" and e.output.index == 1
        )
        chunks = [e.output for e in outputs if e.WhichOneof("event") == "output"]
        assert [(c.index, c.stream, c.data) for c in chunks] == [
            (0, pb.OUTPUT_STREAM_STDOUT, b"hello "),
            (1, pb.OUTPUT_STREAM_STDERR, b"\xff\xfe not utf-8"),
        ]
        assert all(c.interaction_id == child_first.id for c in chunks)

        child = await fetch(sessions_service, where, kid.id)
        await step(sessions_service, where, child, ok(), finish=(pb.SESSION_STATUS_COMPLETE, ""))
        done = await _until(
            events,
            lambda e: (
                e.session_id == kid.id
                and e.WhichOneof("event") == "session"
                and e.session.status == pb.SESSION_STATUS_COMPLETE
            ),
        )
        assert done[-1].version == 2


async def test_a_write_on_another_replica_reaches_the_watcher(
    start_sessions_service: StartSessions, database_url: str
) -> None:
    watched = await start_sessions_service()
    # Replicas share PostgreSQL and hear each other through LISTEN/NOTIFY.
    # SQLite is embedded in one process, so there the writer is the same service.
    writer = await start_sessions_service() if database_url.startswith("postgresql") else watched
    where = scope()
    session = await create(writer, where)
    async with events_of(watched, where, session.id) as events:
        assert (await _next(events)).WhichOneof("event") == "snapshot"
        await step(writer, where, session, ok(), next_step=pending("Next"))
        seen = await _until(
            events,
            lambda e: e.WhichOneof("event") == "interaction" and e.interaction.step == "Next",
        )
        assert seen[-1].version == 2


async def test_cancel_ends_the_stream_and_scope_is_walled(
    sessions_service: SessionsUnderTest,
) -> None:
    where = scope()
    session = await create(sessions_service, where)
    async with events_of(sessions_service, scope(), session.id) as events:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _next(events)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    async with events_of(sessions_service, where, session.id) as events:
        await _next(events)
        await sessions_service.stub.CancelSessionTree(
            spb.CancelSessionTreeRequest(scope=where, session_id=session.id),
            metadata=sessions_service.metadata,
        )
        seen = await _until(events, lambda e: e.WhichOneof("event") == "session")
        assert seen[-1].session.status == pb.SESSION_STATUS_CANCELLED
        abandoned = [e.interaction for e in seen if e.WhichOneof("event") == "interaction"]
        assert [i.status for i in abandoned] == [pb.INTERACTION_STATUS_ABANDONED]
        # The stream ends with the session.
        assert [e async for e in events] == []


async def test_watchers_survive_a_lost_listen_connection(
    sessions_service: SessionsUnderTest, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite publishes in process")
    where = scope()
    session = await create(sessions_service, where)
    async with events_of(sessions_service, where, session.id) as events:
        assert (await _next(events)).WhichOneof("event") == "snapshot"
        engine = create_async_engine(database_url)
        try:
            async with engine.connect() as conn:
                killed = await conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                    )
                )
                assert killed.all(), "the service's LISTEN connection was not found"
        finally:
            await engine.dispose()
        # Written while the listener may be reconnecting: the resync after
        # reconnecting re-reads every watched session, so nothing is lost.
        await step(sessions_service, where, session, ok(), next_step=pending("Next"))
        seen = await _until(
            events,
            lambda e: e.WhichOneof("event") == "interaction" and e.interaction.step == "Next",
        )
        assert seen[-1].version == 2
