"""Executor work: claims, leases and fencing, joins, stalled sessions, work signals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from specloom.ids import new_id
from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb
from tests.fixtures.sessions_server import SessionsUnderTest, StartSessions
from tests.sessions.helpers import create, error, failure, fetch, ok, pending, scope, step

EXECUTOR = spb.DISPATCH_EXECUTOR


async def _claim(
    service: SessionsUnderTest,
    where: pb.Scope,
    executor: str,
    caps: list[str],
    limit: int = 10,
    ttl: int = 60,
) -> list[spb.Assignment]:
    response = await service.stub.ClaimCommands(
        spb.ClaimCommandsRequest(
            scope=where,
            executor_id=executor,
            capabilities=caps,
            max_commands=limit,
            lease_ttl_seconds=ttl,
        ),
        metadata=service.metadata,
    )
    return list(response.assignments)


def _report(
    where: pb.Scope, assignment: spb.Assignment, epoch: int, result: pb.Result | None = None
) -> spb.CompleteInteractionRequest:
    return spb.CompleteInteractionRequest(
        scope=where,
        session_id=assignment.session.id,
        interaction_id=assignment.interaction.id,
        result=result or ok(),
        lease_epoch=epoch,
    )


async def test_claims_follow_scope_capability_and_status(
    sessions_service: SessionsUnderTest,
) -> None:
    where = scope()
    agentic = pb.EXECUTION_MODE_AGENTIC
    shell = await create(
        sessions_service,
        where,
        mode=agentic,
        first=pending("A", dispatch=EXECUTOR, capability="shell"),
    )
    anyone = await create(
        sessions_service, where, mode=agentic, first=pending("B", dispatch=EXECUTOR)
    )
    agent = await create(
        sessions_service,
        where,
        mode=agentic,
        first=pending("C", dispatch=EXECUTOR, capability="agent"),
    )
    await create(sessions_service, where, first=pending("Manual"))
    paused = await create(
        sessions_service, where, mode=agentic, first=pending("D", dispatch=EXECUTOR)
    )
    await step(sessions_service, where, paused, finish=(pb.SESSION_STATUS_PAUSED, "hold"))
    await create(sessions_service, scope(), mode=agentic, first=pending("E", dispatch=EXECUTOR))

    claimed = await _claim(sessions_service, where, "exec-1", ["shell", "git"])
    assert [a.session.id for a in claimed] == [shell.id, anyone.id]
    for assignment in claimed:
        lease = assignment.interaction.lease
        assert (lease.executor_id, lease.epoch) == ("exec-1", 1)
        assert lease.expires_at.seconds > 0
        assert assignment.session.scope == where
        assert not assignment.session.interactions
    # Leased work is not handed out again; other capabilities get theirs.
    assert await _claim(sessions_service, where, "exec-2", ["shell"]) == []
    (agents,) = await _claim(sessions_service, where, "exec-2", ["agent"])
    assert agents.session.id == agent.id
    stored = await fetch(sessions_service, where, shell.id, pb.INTERACTION_VIEW_LAST)
    assert stored.interactions[0].lease.executor_id == "exec-1"
    # A claim is not a change of the session.
    assert stored.version == 1


async def test_concurrent_claimers_never_share_an_interaction(
    start_sessions_service: StartSessions, database_url: str
) -> None:
    first = await start_sessions_service()
    # On PostgreSQL the claimers are two replicas racing on the same rows
    # (FOR UPDATE SKIP LOCKED); SQLite has a single process.
    second = await start_sessions_service() if database_url.startswith("postgresql") else first
    where = scope()
    sessions = [
        await create(
            first, where, mode=pb.EXECUTION_MODE_AGENTIC, first=pending("W", dispatch=EXECUTOR)
        )
        for _ in range(40)
    ]

    async def drain(service: SessionsUnderTest, name: str) -> list[str]:
        got: list[str] = []
        while True:
            batch = await _claim(service, where, name, [], limit=3)
            if not batch:
                return got
            got += [a.interaction.id for a in batch]

    results = await asyncio.gather(
        *(drain(first if n % 2 else second, f"exec-{n}") for n in range(8))
    )
    everything = [i for r in results for i in r]
    assert len(everything) == len(set(everything)) == 40
    assert set(everything) == {s.interactions[0].id for s in sessions}


async def test_leases_expire_and_fence_late_reports(sessions_service: SessionsUnderTest) -> None:
    stub, md = sessions_service.stub, sessions_service.metadata
    where = scope()
    session = await create(
        sessions_service,
        where,
        mode=pb.EXECUTION_MODE_AGENTIC,
        first=pending("W", dispatch=EXECUTOR),
    )
    (first,) = await _claim(sessions_service, where, "exec-1", [], ttl=1)
    manual = await failure(stub.CompleteInteraction(_report(where, first, 0), metadata=md))
    assert manual.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "leased" in (manual.details() or "")

    await asyncio.sleep(1.2)
    expired = await failure(stub.CompleteInteraction(_report(where, first, 1), metadata=md))
    assert expired.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "expired" in (expired.details() or "")
    (second,) = await _claim(sessions_service, where, "exec-2", [], ttl=60)
    assert second.interaction.id == first.interaction.id
    assert second.interaction.lease.epoch == 2

    renewed = await stub.RenewLeases(
        spb.RenewLeasesRequest(
            executor_id="exec-1",
            leases=[spb.LeaseRef(interaction_id=first.interaction.id, epoch=1)],
            ttl_seconds=60,
        ),
        metadata=md,
    )
    assert not renewed.renewed
    assert [lost.epoch for lost in renewed.lost] == [1]
    late = await failure(stub.CompleteInteraction(_report(where, first, 1), metadata=md))
    assert late.code() == grpc.StatusCode.FAILED_PRECONDITION
    held = await stub.RenewLeases(
        spb.RenewLeasesRequest(
            executor_id="exec-2",
            leases=[spb.LeaseRef(interaction_id=first.interaction.id, epoch=2)],
            ttl_seconds=60,
        ),
        metadata=md,
    )
    assert [r.epoch for r in held.renewed] == [2]

    done = await stub.CompleteInteraction(_report(where, second, 2), metadata=md)
    assert done.interaction.status == pb.INTERACTION_STATUS_COMPLETED
    assert (await fetch(sessions_service, where, session.id)).version == 2
    # A completed interaction's lease is gone.
    after = await stub.RenewLeases(
        spb.RenewLeasesRequest(
            executor_id="exec-2",
            leases=[spb.LeaseRef(interaction_id=first.interaction.id, epoch=2)],
            ttl_seconds=60,
        ),
        metadata=md,
    )
    assert len(after.lost) == 1


async def test_a_granted_lease_and_release(sessions_service: SessionsUnderTest) -> None:
    stub, md = sessions_service.stub, sessions_service.metadata
    where = scope()
    session = await create(
        sessions_service,
        where,
        mode=pb.EXECUTION_MODE_AGENTIC,
        first=pending("W", dispatch=EXECUTOR, lease=("exec-1", 60)),
    )
    granted = session.interactions[0].lease
    assert (granted.executor_id, granted.epoch) == ("exec-1", 1)
    assert await _claim(sessions_service, where, "exec-2", []) == []

    released = await stub.ReleaseLeases(spb.ReleaseLeasesRequest(executor_id="exec-1"), metadata=md)
    assert released.released == 1
    (again,) = await _claim(sessions_service, where, "exec-2", [])
    assert again.interaction.lease.epoch == 2
    refused = await failure(
        stub.CompleteInteraction(
            spb.CompleteInteractionRequest(
                scope=where,
                session_id=session.id,
                interaction_id=again.interaction.id,
                result=ok(),
                lease_epoch=1,
            ),
            metadata=md,
        )
    )
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    only = await stub.ReleaseLeases(
        spb.ReleaseLeasesRequest(executor_id="exec-2", interaction_ids=[new_id()]), metadata=md
    )
    assert only.released == 0


async def test_only_the_holder_adopts_a_released_lease(sessions_service: SessionsUnderTest) -> None:
    """A release expires the lease and keeps its holder: the holder (reconnected)
    can adopt it back; another executor — another name, another user — cannot,
    and a claim by someone else ends the holder's claim to it."""
    stub, md = sessions_service.stub, sessions_service.metadata
    where = scope()
    session = await create(
        sessions_service,
        where,
        mode=pb.EXECUTION_MODE_AGENTIC,
        first=pending("W", dispatch=EXECUTOR, lease=("exec-1", 60)),
    )
    lease = spb.LeaseRef(interaction_id=session.interactions[0].id, epoch=1)

    async def adopt(executor: str) -> spb.RenewLeasesResponse:
        return await stub.RenewLeases(
            spb.RenewLeasesRequest(executor_id=executor, leases=[lease], ttl_seconds=60),
            metadata=md,
        )

    released = await stub.ReleaseLeases(spb.ReleaseLeasesRequest(executor_id="exec-1"), metadata=md)
    assert released.released == 1
    assert [r.interaction_id for r in (await adopt("exec-renamed")).lost] == [lease.interaction_id]
    assert [r.interaction_id for r in (await adopt("exec-1")).renewed] == [lease.interaction_id]
    assert await _claim(sessions_service, where, "exec-2", []) == []  # adopted: live again

    await stub.ReleaseLeases(spb.ReleaseLeasesRequest(executor_id="exec-1"), metadata=md)
    (taken,) = await _claim(sessions_service, where, "exec-2", [])
    assert taken.interaction.lease.epoch == 2
    assert [r.interaction_id for r in (await adopt("exec-1")).lost] == [lease.interaction_id]


async def _signals(
    service: SessionsUnderTest,
) -> tuple[
    grpc.aio.UnaryStreamCall[spb.WatchWorkRequest, spb.WatchWorkResponse],
    AsyncIterator[spb.WatchWorkResponse],
]:
    call = service.stub.WatchWork(spb.WatchWorkRequest(), metadata=service.metadata)

    async def signals() -> AsyncIterator[spb.WatchWorkResponse]:
        async for signal in call:
            yield signal

    return call, signals()


async def _signal_for(
    signals: AsyncIterator[spb.WatchWorkResponse], where: pb.Scope, *, join: bool
) -> spb.WatchWorkResponse:
    while True:
        signal = await asyncio.wait_for(anext(signals), 10)
        if (signal.account_id, signal.project_id, signal.join) == (
            where.account_id,
            where.project_id,
            join,
        ):
            return signal


async def test_joins_wait_for_every_child(sessions_service: SessionsUnderTest) -> None:
    stub, md = sessions_service.stub, sessions_service.metadata
    where = scope()
    call, signals = await _signals(sessions_service)
    try:
        first = await asyncio.wait_for(anext(signals), 10)
        assert first.account_id == ""  # "anything": claim everything once at start
        parent = await create(sessions_service, where, mode=pb.EXECUTION_MODE_AGENTIC)
        kids = [
            spb.NewChild(
                id=new_id(), type="Leaf", key=f"k{n}", definition_version=1, first=pending("C")
            )
            for n in range(2)
        ]
        spawn = pb.Command(step="Spawn")
        spawn.spawn_children.child_session_ids.extend(k.id for k in kids)
        await step(
            sessions_service,
            where,
            parent,
            ok(),
            next_step=spb.NewInteraction(step="Spawn", command=spawn, dispatch=spb.DISPATCH_JOIN),
            create_children=kids,
        )

        async def joins() -> list[spb.Assignment]:
            response = await stub.ClaimJoins(
                spb.ClaimJoinsRequest(claimer_id="gw-1", max_joins=10, lease_ttl_seconds=30),
                metadata=md,
            )
            return list(response.joins)

        assert await joins() == []
        one = await fetch(sessions_service, where, kids[0].id)
        await step(sessions_service, where, one, ok(), finish=(pb.SESSION_STATUS_COMPLETE, ""))
        assert await joins() == []
        other = await fetch(sessions_service, where, kids[1].id)
        await step(sessions_service, where, other, error(), finish=(pb.SESSION_STATUS_FAILED, "x"))
        await _signal_for(signals, where, join=True)
        (join,) = await joins()
        assert join.session.id == parent.id
        assert join.interaction.step == "Spawn"
        assert join.interaction.lease.executor_id == "gw-1"
        assert await joins() == []
        reported = await stub.CompleteInteraction(
            spb.CompleteInteractionRequest(
                scope=where,
                session_id=parent.id,
                interaction_id=join.interaction.id,
                result=ok(),
                lease_epoch=join.interaction.lease.epoch,
            ),
            metadata=md,
        )
        assert reported.interaction.status == pb.INTERACTION_STATUS_COMPLETED
    finally:
        call.cancel()


async def test_work_signals_announce_claimable_commands(
    sessions_service: SessionsUnderTest,
) -> None:
    where = scope()
    call, signals = await _signals(sessions_service)
    try:
        await asyncio.wait_for(anext(signals), 10)
        await create(
            sessions_service,
            where,
            mode=pb.EXECUTION_MODE_AGENTIC,
            first=pending("W", dispatch=EXECUTOR),
        )
        await _signal_for(signals, where, join=False)
        (claimed,) = await _claim(sessions_service, where, "exec-1", [])
        await sessions_service.stub.ReleaseLeases(
            spb.ReleaseLeasesRequest(
                executor_id="exec-1", interaction_ids=[claimed.interaction.id]
            ),
            metadata=sessions_service.metadata,
        )
        await _signal_for(signals, where, join=False)
    finally:
        call.cancel()


async def test_idle_agentic_sessions_are_found_stalled(sessions_service: SessionsUnderTest) -> None:
    where = scope()
    stalled = await create(sessions_service, where, mode=pb.EXECUTION_MODE_AGENTIC)
    await step(sessions_service, where, stalled, ok())  # completed, nothing appended
    busy = await create(sessions_service, where, mode=pb.EXECUTION_MODE_AGENTIC)
    manual = await create(sessions_service, where)
    await step(sessions_service, where, manual, ok())

    async def found(idle_ms: int) -> list[str]:
        response = await sessions_service.stub.FindStalledSessions(
            spb.FindStalledSessionsRequest(idle_ms=idle_ms, limit=100),
            metadata=sessions_service.metadata,
        )
        return [s.id for s in response.sessions]

    assert await found(0) == [stalled.id]
    assert await found(3_600_000) == []
    assert busy.id not in await found(0)
