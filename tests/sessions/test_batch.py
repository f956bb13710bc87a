"""AdvanceSessions: many steps, one transaction, each item under its own rules."""

from __future__ import annotations

import asyncio

import grpc

from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb
from tests.fixtures.sessions_server import SessionsUnderTest
from tests.sessions.helpers import code_of, create, fetch, ok, pending, scope

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
