"""Cancelling a session tree; pruning old finished trees."""

from __future__ import annotations

import datetime as dt

import grpc
from sqlalchemy import update
from sqlalchemy.ext.asyncio import create_async_engine

from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb
from specloom_sessions import tables
from specloom_sessions.service import SERVICE
from tests.fixtures.sessions_server import SessionsUnderTest
from tests.sessions.helpers import code_of, create, fetch, ok, pending, scope, step


async def test_cancel_cascades_to_every_descendant(sessions_service: SessionsUnderTest) -> None:
    stub, md = sessions_service.stub, sessions_service.metadata
    where = scope()
    root = await create(sessions_service, where)
    child = await create(sessions_service, where, parent_id=root.id, key="a", type="Leaf")
    done_child = await create(sessions_service, where, parent_id=root.id, key="b", type="Leaf")
    await step(sessions_service, where, done_child, ok(), finish=(pb.SESSION_STATUS_COMPLETE, ""))
    grandchild = await create(sessions_service, where, parent_id=child.id, key="c", type="Leaf")
    unrelated = await create(sessions_service, where)

    response = await stub.CancelSessionTree(
        spb.CancelSessionTreeRequest(scope=where, session_id=root.id, reason="not needed"),
        metadata=md,
    )
    assert response.session.status == pb.SESSION_STATUS_CANCELLED
    assert response.session.status_reason == "not needed"
    assert response.session.HasField("finished_at")
    assert sorted(response.cancelled_descendant_ids) == sorted([child.id, grandchild.id])
    for session_id in (root.id, child.id, grandchild.id):
        cancelled = await fetch(sessions_service, where, session_id)
        assert cancelled.status == pb.SESSION_STATUS_CANCELLED
        assert cancelled.interactions[-1].status == pb.INTERACTION_STATUS_ABANDONED
        assert cancelled.interactions[-1].HasField("completed_at")
    assert (await fetch(sessions_service, where, done_child.id)).status == (
        pb.SESSION_STATUS_COMPLETE
    )
    assert (await fetch(sessions_service, where, unrelated.id)).status == pb.SESSION_STATUS_ACTIVE

    # No result is taken for an abandoned interaction; cancelling again is a no-op.
    late = await code_of(
        stub.CompleteInteraction(
            spb.CompleteInteractionRequest(
                scope=where,
                session_id=child.id,
                interaction_id=child.interactions[0].id,
                result=ok(),
            ),
            metadata=md,
        )
    )
    assert late == grpc.StatusCode.FAILED_PRECONDITION
    again = await stub.CancelSessionTree(
        spb.CancelSessionTreeRequest(scope=where, session_id=root.id), metadata=md
    )
    assert again.session.version == response.session.version
    assert not again.cancelled_descendant_ids
    # A complete session is not cancelled.
    assert (
        await code_of(
            stub.CancelSessionTree(
                spb.CancelSessionTreeRequest(scope=where, session_id=done_child.id), metadata=md
            )
        )
        == grpc.StatusCode.FAILED_PRECONDITION
    )


async def _age(database_url: str, session_ids: list[str], days: int) -> None:
    """Make sessions look finished ``days`` ago (time travel for the retention test)."""
    engine = create_async_engine(database_url)
    when = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                update(tables.sessions)
                .where(tables.sessions.c.id.in_(session_ids))
                .values(finished_at=when)
            )
    finally:
        await engine.dispose()


async def test_prune_deletes_old_finished_trees_only(sessions_service: SessionsUnderTest) -> None:
    stub, md = sessions_service.stub, sessions_service.metadata
    where = scope()
    old = await create(sessions_service, where)
    old_child = await create(sessions_service, where, parent_id=old.id, key="k", type="Leaf")
    await sessions_service.stub.AppendOutput(
        spb.AppendOutputRequest(
            scope=where,
            session_id=old_child.id,
            interaction_id=old_child.interactions[0].id,
            parts=[spb.OutputPart(data=b"one"), spb.OutputPart(data=b"two")],
        ),
        metadata=md,
    )
    await step(sessions_service, where, old_child, ok(), finish=(pb.SESSION_STATUS_COMPLETE, ""))
    await step(sessions_service, where, old, ok(), next_step=pending("Finalize"))
    await step(sessions_service, where, old, ok(), finish=(pb.SESSION_STATUS_COMPLETE, ""))
    recent = await create(sessions_service, where)
    await step(sessions_service, where, recent, ok(), finish=(pb.SESSION_STATUS_FAILED, "x"))
    running = await create(sessions_service, where)
    await _age(sessions_service.database_url, [old.id, old_child.id], days=40)

    counted = await stub.PruneSessions(
        spb.PruneSessionsRequest(older_than_days=30, dry_run=True), metadata=md
    )
    assert (counted.sessions, counted.interactions, counted.output_chunks) == (2, 3, 2)
    assert (await fetch(sessions_service, where, old.id)).id == old.id

    pruned = await stub.PruneSessions(spb.PruneSessionsRequest(older_than_days=30), metadata=md)
    assert (pruned.sessions, pruned.interactions, pruned.output_chunks) == (2, 3, 2)
    for gone in (old.id, old_child.id):
        assert (
            await code_of(
                stub.FetchSession(
                    spb.FetchSessionRequest(scope=where, session_id=gone), metadata=md
                )
            )
            == grpc.StatusCode.NOT_FOUND
        )
    for kept in (recent.id, running.id):
        assert (await fetch(sessions_service, where, kept)).id == kept

    # The admin command (no server) prunes the same way.
    await _age(sessions_service.database_url, [recent.id], days=3)
    settings = sessions_service.settings()
    assert await SERVICE.admin["prune"](settings, older_than_days=7) == {
        "sessions": 0,
        "interactions": 0,
        "output_chunks": 0,
    }
    assert await SERVICE.admin["prune"](settings, older_than_days=2, dry_run=True) == {
        "sessions": 1,
        "interactions": 1,
        "output_chunks": 0,
    }
    assert await SERVICE.admin["prune"](settings, older_than_days=2) == {
        "sessions": 1,
        "interactions": 1,
        "output_chunks": 0,
    }
    assert (
        await code_of(
            stub.FetchSession(
                spb.FetchSessionRequest(scope=where, session_id=recent.id), metadata=md
            )
        )
        == grpc.StatusCode.NOT_FOUND
    )
