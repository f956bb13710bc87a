"""Children that wait for siblings: claim gating, the wake-up, the join, bad input.

On SQLite and PostgreSQL (the ``sessions_service`` fixture), through the
real API.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence

import grpc
import pytest

from specloom.ids import new_id
from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb
from tests.fixtures.sessions_server import SessionsUnderTest
from tests.sessions.helpers import create, failure, fetch, ok, pending, scope, step

EXECUTOR = spb.DISPATCH_EXECUTOR
AGENTIC = pb.EXECUTION_MODE_AGENTIC


class Family:
    """A parent waiting on children, some of which wait for others."""

    def __init__(self, service: SessionsUnderTest, where: pb.Scope, parent: pb.Session) -> None:
        self.service = service
        self.where = where
        self.parent = parent
        self.ids: dict[str, str] = {}
        self.leases: dict[str, pb.Interaction] = {}

    async def spawn(self, waits: Mapping[str, Sequence[str]], *, first: bool = True) -> None:
        """Create children named by ``waits``' keys, each waiting for the named siblings.

        ``first``: the parent's first command completes and its join is
        appended; otherwise the children are added beside the pending join.
        """
        for name in waits:
            self.ids.setdefault(name, new_id())
        kids = [
            spb.NewChild(
                id=self.ids[name],
                type="Leaf",
                key=name,
                definition_version=1,
                first=pending(f"Work-{name}", dispatch=EXECUTOR),
                depends_on=[self.ids[d] for d in deps],
            )
            for name, deps in waits.items()
        ]
        extra: dict[str, object] = {"create_children": kids}
        result: pb.Result | None = None
        if first:
            result = ok()
            spawn = pb.Command(step="Spawn")
            spawn.spawn_children.child_session_ids.extend(k.id for k in kids)
            extra["next_step"] = spb.NewInteraction(
                step="Spawn", command=spawn, dispatch=spb.DISPATCH_JOIN
            )
        await step(self.service, self.where, self.parent, result, **extra)  # type: ignore[arg-type]

    async def claim(self, limit: int = 50) -> list[str]:
        """Claim what is claimable; the children's names, in claim order."""
        response = await self.service.stub.ClaimCommands(
            spb.ClaimCommandsRequest(
                scope=self.where,
                executor_id="exec-1",
                max_commands=limit,
                lease_ttl_seconds=60,
            ),
            metadata=self.service.metadata,
        )
        self.leases.update({a.session.id: a.interaction for a in response.assignments})
        names = {v: k for k, v in self.ids.items()}
        return [names[a.session.id] for a in response.assignments]

    async def finish_request(self, name: str, status: int) -> spb.AdvanceSessionRequest:
        """Report the claimed command of ``name`` and end the child with ``status``."""
        interaction = self.leases[self.ids[name]]
        head = await fetch(self.service, self.where, self.ids[name], pb.INTERACTION_VIEW_NONE)
        return spb.AdvanceSessionRequest(
            scope=self.where,
            session_id=self.ids[name],
            expected_version=head.version,
            complete=spb.CompletePart(
                interaction_id=interaction.id,
                result=ok(),
                lease_epoch=interaction.lease.epoch,
            ),
            finish=spb.Finish(status=pb.SessionStatus.ValueType(status)),
        )

    async def finish(self, name: str, status: int = pb.SESSION_STATUS_COMPLETE) -> None:
        await self.service.stub.AdvanceSession(
            await self.finish_request(name, status), metadata=self.service.metadata
        )

    async def joins(self) -> list[str]:
        response = await self.service.stub.ClaimJoins(
            spb.ClaimJoinsRequest(claimer_id="gw-1", max_joins=10, lease_ttl_seconds=30),
            metadata=self.service.metadata,
        )
        return [j.session.id for j in response.joins if j.session.scope == self.where]


async def _family(service: SessionsUnderTest) -> Family:
    where = scope()
    parent = await create(service, where, mode=AGENTIC)
    return Family(service, where, parent)


async def test_a_child_is_claimable_once_every_dependency_is_complete(
    sessions_service: SessionsUnderTest,
) -> None:
    family = await _family(sessions_service)
    # A chain a -> b -> c, a diamond d -> (e, f) -> g, and one free part.
    await family.spawn(
        {
            "c": ["b"],
            "b": ["a"],
            "a": [],
            "g": ["e", "f"],
            "e": ["d"],
            "f": ["d"],
            "d": [],
            "free": [],
        }
    )
    assert await family.claim() == ["a", "d", "free"]
    await family.finish("a")
    await family.finish("free")
    assert await family.claim() == ["b"]
    await family.finish("d")
    assert await family.claim() == ["e", "f"]
    await family.finish("e")
    assert await family.claim() == []  # g waits for f too
    await family.finish("f")
    await family.finish("b")
    assert sorted(await family.claim()) == ["c", "g"]


async def test_a_dependency_created_by_an_earlier_spawn_counts_with_its_own(
    sessions_service: SessionsUnderTest,
) -> None:
    family = await _family(sessions_service)
    await family.spawn({"a": [], "b": ["a"]})
    # A later write adds a child waiting for b only; it waits for a as well.
    await family.spawn({"c": ["b"]}, first=False)
    assert await family.claim() == ["a"]
    await family.finish("a", pb.SESSION_STATUS_FAILED)
    # c waits on a failure two steps away: nothing can move, the join is ready.
    assert await family.joins() == [family.parent.id]


async def test_completing_a_dependency_wakes_claimers_of_its_scope(
    sessions_service: SessionsUnderTest,
) -> None:
    family = await _family(sessions_service)
    await family.spawn({"a": [], "b": ["a"], "x": [], "y": ["x"]})
    assert await family.claim() == ["a", "x"]
    call = sessions_service.stub.WatchWork(
        spb.WatchWorkRequest(), metadata=sessions_service.metadata
    )
    signals = _stream(call)
    try:
        await asyncio.wait_for(anext(signals), 10)  # the "claim everything" nudge
        # Finishing writes no new command; only the dependents make it work.
        await family.finish("a")
        await _executor_signal(signals, family.where)
        assert await family.claim() == ["b"]
        # The same through the batched write (pipelined on PostgreSQL).
        response = await sessions_service.stub.AdvanceSessions(
            spb.AdvanceSessionsRequest(
                items=[await family.finish_request("x", pb.SESSION_STATUS_COMPLETE)]
            ),
            metadata=sessions_service.metadata,
        )
        assert response.outcomes[0].WhichOneof("outcome") == "response"
        await _executor_signal(signals, family.where)
        assert await family.claim() == ["y"]
    finally:
        call.cancel()


async def test_the_join_waits_while_a_child_can_still_progress(
    sessions_service: SessionsUnderTest,
) -> None:
    family = await _family(sessions_service)
    await family.spawn({"a": [], "b": ["a"], "c": ["b"], "free": []})
    assert await family.claim() == ["a", "free"]
    await family.finish("free")
    assert await family.joins() == []  # a runs; b and c will follow
    await family.finish("a", pb.SESSION_STATUS_FAILED)
    assert await family.joins() == [family.parent.id]


async def test_the_join_fires_when_a_dependency_is_cancelled(
    sessions_service: SessionsUnderTest,
) -> None:
    family = await _family(sessions_service)
    await family.spawn({"a": [], "b": ["a"], "free": []})
    assert await family.claim() == ["a", "free"]
    await family.finish("free")
    assert await family.joins() == []
    await sessions_service.stub.CancelSessionTree(
        spb.CancelSessionTreeRequest(scope=family.where, session_id=family.ids["a"]),
        metadata=sessions_service.metadata,
    )
    assert await family.joins() == [family.parent.id]
    waiting = await fetch(sessions_service, family.where, family.ids["b"])
    assert waiting.status == pb.SESSION_STATUS_ACTIVE  # kept, for the parent to judge


async def test_waiting_for_a_dependency_is_not_waiting_for_an_executor(
    sessions_service: SessionsUnderTest,
) -> None:
    family = await _family(sessions_service)
    await family.spawn({"a": [], "b": ["a"]})

    async def unclaimed(waited_ms: int) -> list[str]:
        response = await sessions_service.stub.FindUnclaimedCommands(
            spb.FindUnclaimedCommandsRequest(waited_ms=waited_ms, limit=100),
            metadata=sessions_service.metadata,
        )
        names = {v: k for k, v in family.ids.items()}
        return [names[u.session.id] for u in response.unclaimed if u.session.id in names]

    await asyncio.sleep(2.5)
    assert await unclaimed(1) == ["a"]
    assert await family.claim() == ["a"]
    started = time.monotonic()
    await family.finish("a")
    # b was created 2.5 s ago but has waited for an executor only since a completed.
    found = await unclaimed(2000)
    assert time.monotonic() - started < 2.0, "too slow to tell the two clocks apart"
    assert found == []
    assert await unclaimed(1) == ["b"]


@pytest.mark.parametrize(
    ("waits", "message"),
    [
        ({"a": ["a"]}, "a child cannot wait for itself"),
        ({"a": ["b"], "b": ["c"], "c": ["a"]}, "depends_on forms a cycle"),
        ({"a": ["stranger"]}, "which is not a child of session"),
    ],
)
async def test_bad_dependencies_are_refused_naming_the_problem(
    sessions_service: SessionsUnderTest, waits: dict[str, list[str]], message: str
) -> None:
    family = await _family(sessions_service)
    other = await create(sessions_service, family.where)
    family.ids["stranger"] = other.id
    error = await failure(family.spawn(waits))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (error.details() or "")
    # Nothing of the step was written.
    head = await fetch(sessions_service, family.where, family.parent.id)
    assert head.interaction_count == 1


def _stream(
    call: grpc.aio.UnaryStreamCall[spb.WatchWorkRequest, spb.WatchWorkResponse],
) -> AsyncIterator[spb.WatchWorkResponse]:
    async def signals() -> AsyncIterator[spb.WatchWorkResponse]:
        async for signal in call:
            yield signal

    return signals()


async def _executor_signal(signals: AsyncIterator[spb.WatchWorkResponse], where: pb.Scope) -> None:
    while True:
        signal = await asyncio.wait_for(anext(signals), 10)
        if (signal.account_id, signal.project_id, signal.join) == (
            where.account_id,
            where.project_id,
            False,
        ):
            return
