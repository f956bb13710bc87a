"""Steps: the version guard, pending-only results, replays, status rules, children."""

from __future__ import annotations

import asyncio

import grpc

from specloom.ids import new_id
from specloom.protoconv import dict_to_struct, struct_to_dict
from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb
from specloom.workflow._proto import result_digest
from tests.fixtures.sessions_server import SessionsUnderTest, StartSessions
from tests.sessions.helpers import (
    code_of,
    control,
    create,
    error,
    failure,
    fetch,
    ok,
    pending,
    scope,
    step,
)


def _complete(
    where: pb.Scope, session_id: str, interaction_id: str, result: pb.Result, version: int = 0
) -> spb.CompleteInteractionRequest:
    return spb.CompleteInteractionRequest(
        scope=where,
        session_id=session_id,
        interaction_id=interaction_id,
        result=result,
        expected_version=version,
    )


async def test_append_and_complete_follow_the_rules(sessions_service: SessionsUnderTest) -> None:
    stub, md = sessions_service.stub, sessions_service.metadata
    where = scope()
    session = await create(sessions_service, where)
    first = session.interactions[0]

    # One pending interaction at a time.
    busy = await failure(
        stub.AppendInteraction(
            spb.AppendInteractionRequest(
                scope=where, session_id=session.id, expected_version=1, interaction=pending("Next")
            ),
            metadata=md,
        )
    )
    assert busy.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "pending" in (busy.details() or "")

    done = await stub.CompleteInteraction(
        _complete(where, session.id, first.id, ok(), version=1), metadata=md
    )
    assert not done.replayed
    assert done.interaction.status == pb.INTERACTION_STATUS_COMPLETED
    assert done.interaction.result == ok()
    assert done.session.version == 2

    stale = await failure(
        stub.AppendInteraction(
            spb.AppendInteractionRequest(
                scope=where, session_id=session.id, expected_version=1, interaction=pending("Next")
            ),
            metadata=md,
        )
    )
    assert stale.code() == grpc.StatusCode.ABORTED
    appended = await stub.AppendInteraction(
        spb.AppendInteractionRequest(
            scope=where, session_id=session.id, expected_version=2, interaction=pending("Next")
        ),
        metadata=md,
    )
    assert appended.interaction.seq == 2
    assert appended.session.version == 3
    assert appended.session.interaction_count == 2
    assert not appended.session.interactions


async def test_two_concurrent_completes_have_exactly_one_winner(
    sessions_service: SessionsUnderTest,
) -> None:
    stub, md = sessions_service.stub, sessions_service.metadata
    where = scope()
    for round_ in range(5):
        session = await create(sessions_service, where)
        interaction = session.interactions[0]
        requests = [
            spb.AdvanceSessionRequest(
                scope=where,
                session_id=session.id,
                expected_version=1,
                complete=spb.CompletePart(interaction_id=interaction.id, result=result),
                append=[pending(f"After{n}")],
            )
            for n, result in enumerate([ok("a"), error("b"), ok("c"), error("d")])
        ]
        outcomes = await asyncio.gather(
            *(stub.AdvanceSession(r, metadata=md) for r in requests), return_exceptions=True
        )
        wins = [o for o in outcomes if isinstance(o, spb.AdvanceSessionResponse)]
        losses = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
        assert len(wins) == 1, f"round {round_}: {outcomes}"
        assert len(losses) == 3
        assert {e.code() for e in losses} <= {
            grpc.StatusCode.ABORTED,
            grpc.StatusCode.FAILED_PRECONDITION,
        }
        history = await fetch(sessions_service, where, session.id)
        assert history.version == 2
        assert [i.seq for i in history.interactions] == [1, 2]
        assert history.interactions[0].result == wins[0].completed.result
        assert history.interactions[1].step == wins[0].appended[0].step


async def test_results_are_taken_only_for_the_pending_interaction(
    sessions_service: SessionsUnderTest,
) -> None:
    stub, md = sessions_service.stub, sessions_service.metadata
    where = scope()
    session = await create(sessions_service, where)
    first = session.interactions[0]

    unknown = await code_of(
        stub.CompleteInteraction(_complete(where, session.id, new_id(), ok()), metadata=md)
    )
    assert unknown == grpc.StatusCode.NOT_FOUND

    await stub.CompleteInteraction(_complete(where, session.id, first.id, ok("x")), metadata=md)
    before = await fetch(sessions_service, where, session.id)

    # An exact repeat is a no-op answered with what was stored.
    repeat = await stub.CompleteInteraction(
        _complete(where, session.id, first.id, ok("x")), metadata=md
    )
    assert repeat.replayed
    assert repeat.interaction.result == ok("x")
    after = await fetch(sessions_service, where, session.id)
    assert after == before

    # Anything else for a completed interaction is refused.
    different = await failure(
        stub.CompleteInteraction(_complete(where, session.id, first.id, ok("y")), metadata=md)
    )
    assert different.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert first.id in (different.details() or "")


async def test_a_repeat_is_recognised_after_the_session_moved_on(
    sessions_service: SessionsUnderTest,
) -> None:
    stub, md = sessions_service.stub, sessions_service.metadata
    where = scope()
    session = await create(sessions_service, where)
    first = session.interactions[0]
    reported = ok("as reported")
    judged = pb.Result()
    judged.CopyFrom(reported)
    judged.status = pb.RESULT_STATUS_ERROR  # the judge overrode the status
    advanced = await stub.AdvanceSession(
        spb.AdvanceSessionRequest(
            scope=where,
            session_id=session.id,
            expected_version=1,
            complete=spb.CompletePart(
                interaction_id=first.id, result=judged, reported_digest=result_digest(reported)
            ),
            append=[pending("Fix")],
        ),
        metadata=md,
    )
    assert advanced.completed.result.status == pb.RESULT_STATUS_ERROR
    await step(sessions_service, where, session, ok(), next_step=pending("Again"))

    # The executor resends its original report (digest computed by Sessions),
    # with the version it had then: still recognised, before the version check.
    resent = await stub.AdvanceSession(
        spb.AdvanceSessionRequest(
            scope=where,
            session_id=session.id,
            expected_version=1,
            complete=spb.CompletePart(interaction_id=first.id, result=reported),
        ),
        metadata=md,
    )
    assert resent.replayed
    assert resent.completed.result == judged
    assert resent.session.version == 3
    assert not resent.appended
    history = await fetch(sessions_service, where, session.id)
    assert history.version == 3
    assert len(history.interactions) == 3


async def test_advance_writes_a_whole_step_at_once(sessions_service: SessionsUnderTest) -> None:
    where = scope()
    session = await create(sessions_service, where)
    state = dict_to_struct({"branch": "b1", "rounds": {"Fix": 1}})
    progress = dict_to_struct({"next": "Test"})
    response = await step(
        sessions_service,
        where,
        session,
        ok(),
        state=state,
        progress=progress,
        append=[control(pb.CONTROL_ACTION_RESUME, "note")],
        next_step=pending("Test"),
    )
    assert response.completed.seq == 1
    assert [(i.seq, i.status) for i in response.appended] == [
        (2, pb.INTERACTION_STATUS_COMPLETED),
        (3, pb.INTERACTION_STATUS_PENDING),
    ]
    assert response.session.version == 2
    assert response.session.interaction_count == 3
    assert struct_to_dict(response.session.state) == {"branch": "b1", "rounds": {"Fix": 1}}
    assert struct_to_dict(response.session.progress) == {"next": "Test"}
    assert not response.replayed
    stored = await fetch(sessions_service, where, session.id)
    assert [i.step for i in stored.interactions] == [
        "Build",
        "control:CONTROL_ACTION_RESUME",
        "Test",
    ]
    assert stored.state == state
    # Unset state and progress leave them as they are.
    later = await step(sessions_service, where, session, ok(), next_step=pending("Ship"))
    assert later.session.state == state
    assert later.session.progress == progress


async def test_status_changes_and_what_they_allow(sessions_service: SessionsUnderTest) -> None:
    stub, md = sessions_service.stub, sessions_service.metadata
    where = scope()
    session = await create(sessions_service, where)
    # Paused mid-step: the pending result is still taken, but no new command.
    paused = await step(sessions_service, where, session, finish=(pb.SESSION_STATUS_PAUSED, "hold"))
    assert paused.session.status == pb.SESSION_STATUS_PAUSED
    assert paused.session.status_reason == "hold"
    refused = await failure(step(sessions_service, where, session, ok(), next_step=pending("Next")))
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    recorded = await step(sessions_service, where, session, ok(), append=[control()])
    assert recorded.appended[0].status == pb.INTERACTION_STATUS_COMPLETED
    # Resume and issue the next command in the same write.
    resumed = await step(
        sessions_service,
        where,
        session,
        finish=(pb.SESSION_STATUS_ACTIVE, ""),
        next_step=pending("Next"),
    )
    assert resumed.session.status == pb.SESSION_STATUS_ACTIVE
    assert not resumed.session.HasField("finished_at")
    done = await step(
        sessions_service, where, session, ok(), finish=(pb.SESSION_STATUS_COMPLETE, "")
    )
    assert done.session.status == pb.SESSION_STATUS_COMPLETE
    assert done.session.HasField("finished_at")
    # A complete session takes nothing more.
    for call in (
        step(sessions_service, where, session, next_step=pending("More")),
        step(sessions_service, where, session, finish=(pb.SESSION_STATUS_ACTIVE, "")),
        step(sessions_service, where, session, state=dict_to_struct({"a": 1})),
    ):
        assert await code_of(call) == grpc.StatusCode.FAILED_PRECONDITION
    # Finishing needs the pending result first.
    other = await create(sessions_service, where)
    early = await failure(
        stub.AdvanceSession(
            spb.AdvanceSessionRequest(
                scope=where,
                session_id=other.id,
                expected_version=1,
                finish=spb.Finish(status=pb.SESSION_STATUS_COMPLETE),
            ),
            metadata=md,
        )
    )
    assert early.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_failed_sessions_resume(sessions_service: SessionsUnderTest) -> None:
    where = scope()
    session = await create(sessions_service, where)
    failed = await step(
        sessions_service, where, session, error(), finish=(pb.SESSION_STATUS_FAILED, "stuck")
    )
    assert failed.session.status == pb.SESSION_STATUS_FAILED
    assert failed.session.status_reason == "stuck"
    assert (
        await code_of(step(sessions_service, where, session, next_step=pending("X")))
        == grpc.StatusCode.FAILED_PRECONDITION
    )
    resumed = await step(
        sessions_service,
        where,
        session,
        finish=(pb.SESSION_STATUS_ACTIVE, ""),
        append=[control(pb.CONTROL_ACTION_RESUME)],
        next_step=pending("X"),
    )
    assert resumed.session.status == pb.SESSION_STATUS_ACTIVE
    assert [i.seq for i in resumed.appended] == [2, 3]


async def test_children_are_created_once_and_revived(sessions_service: SessionsUnderTest) -> None:
    stub, md = sessions_service.stub, sessions_service.metadata
    where = scope()
    parent = await create(sessions_service, where, mode=pb.EXECUTION_MODE_MANUAL)
    kids = [
        spb.NewChild(
            id=new_id(),
            type="Leaf",
            name=f"part {n}",
            key=f"app.part{n}",
            definition_version=1,
            params=dict_to_struct({"n": n}),
            first=pending("Code", dispatch=spb.DISPATCH_EXECUTOR, capability="agent"),
        )
        for n in range(3)
    ]
    spawn = pb.Command(step="Spawn")
    spawn.spawn_children.child_session_ids.extend(k.id for k in kids)
    response = await step(
        sessions_service,
        where,
        parent,
        ok(),
        next_step=spb.NewInteraction(step="Spawn", command=spawn, dispatch=spb.DISPATCH_JOIN),
        create_children=kids,
    )
    assert [c.id for c in response.children] == [k.id for k in kids]
    for child in response.children:
        assert child.parent_id == parent.id
        # Executors run children; a manual parent's are confined (auto).
        assert child.execution_mode == pb.EXECUTION_MODE_AUTO
        assert child.scope == where
        assert child.interaction_count == 1
        # Each child as a head read gives it: with its (pending) first step.
        assert [(i.seq, i.step, i.status) for i in child.interactions] == [
            (1, "Code", pb.INTERACTION_STATUS_PENDING)
        ]
    first_child = await fetch(sessions_service, where, kids[0].id)
    assert response.children[0].interactions[0] == first_child.interactions[0]
    assert first_child.interactions[0].step == "Code"
    assert struct_to_dict(first_child.params) == {"n": 0}

    # A second child for the same key is refused, naming the key.
    again = spb.NewChild(id=new_id(), type="Leaf", key="app.part1", definition_version=1)
    head = await fetch(sessions_service, where, parent.id, pb.INTERACTION_VIEW_NONE)
    clash = await failure(
        stub.AdvanceSession(
            spb.AdvanceSessionRequest(
                scope=where,
                session_id=parent.id,
                expected_version=head.version,
                create_children=[again],
            ),
            metadata=md,
        )
    )
    assert clash.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "app.part1" in (clash.details() or "")

    # A failed child is revived by the parent's retried spawn.
    child = response.children[1]
    await step(sessions_service, where, child, error(), finish=(pb.SESSION_STATUS_FAILED, "no"))
    head = await fetch(sessions_service, where, parent.id, pb.INTERACTION_VIEW_NONE)
    revived = await stub.AdvanceSession(
        spb.AdvanceSessionRequest(
            scope=where,
            session_id=parent.id,
            expected_version=head.version,
            revive_children=[
                spb.RevivedChild(
                    session_id=child.id,
                    record=pb.ControlRecord(action=pb.CONTROL_ACTION_RESUME, reason="retry"),
                    progress=dict_to_struct({"rounds": {}}),
                )
            ],
        ),
        metadata=md,
    )
    after = {c.id: c for c in revived.children}[child.id]
    assert after.status == pb.SESSION_STATUS_ACTIVE
    assert after.status_reason == ""
    assert struct_to_dict(after.progress) == {"rounds": {}}
    history = await fetch(sessions_service, where, child.id)
    assert history.interactions[-1].command.control.action == pb.CONTROL_ACTION_RESUME
    assert history.interactions[-1].status == pb.INTERACTION_STATUS_COMPLETED
    # Reviving a child that is not failed is a conflict to re-read, not a silent no-op.
    head = await fetch(sessions_service, where, parent.id, pb.INTERACTION_VIEW_NONE)
    twice = await code_of(
        stub.AdvanceSession(
            spb.AdvanceSessionRequest(
                scope=where,
                session_id=parent.id,
                expected_version=head.version,
                revive_children=[
                    spb.RevivedChild(
                        session_id=child.id,
                        record=pb.ControlRecord(action=pb.CONTROL_ACTION_RESUME),
                    )
                ],
            ),
            metadata=md,
        )
    )
    assert twice == grpc.StatusCode.ABORTED


async def test_children_per_write_are_capped(start_sessions_service: StartSessions) -> None:
    service = await start_sessions_service(sessions_max_children_per_write=2)
    where = scope()
    parent = await create(service, where)
    kids = [
        spb.NewChild(id=new_id(), type="Leaf", key=f"k{n}", definition_version=1) for n in range(3)
    ]
    error_ = await failure(step(service, where, parent, create_children=kids))
    assert error_.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "create_children" in (error_.details() or "")
    assert "2" in (error_.details() or "")
    fine = await step(service, where, parent, create_children=kids[:2])
    assert len(fine.children) == 2


async def test_a_write_is_capped_as_a_whole(start_sessions_service: StartSessions) -> None:
    service = await start_sessions_service(
        sessions_max_struct_bytes=4096, sessions_max_write_bytes=10_000
    )
    where = scope()
    parent = await create(service, where)

    def child(n: int) -> spb.NewChild:
        kid = spb.NewChild(id=new_id(), type="Leaf", key=f"k{n}", definition_version=1)
        dict_to_struct({"notes": "n" * 3000}, kid.params)  # under the 4 KiB Struct cap
        return kid

    kids = [child(n) for n in range(4)]
    error_ = await failure(step(service, where, parent, create_children=kids))
    assert error_.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "one write carries at most 10000 bytes" in (error_.details() or ""), error_.details()
    assert "the write is 1" in (error_.details() or ""), error_.details()
    fine = await step(service, where, parent, create_children=kids[:3])
    assert len(fine.children) == 3
