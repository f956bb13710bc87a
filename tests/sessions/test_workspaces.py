"""Workspaces in Sessions: claims by workspace and user, pinning, inheritance, waiting_for."""

from __future__ import annotations

import asyncio
import datetime as dt

import grpc

from specloom.ids import new_id
from specloom.protoconv import to_timestamp
from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb
from tests.fixtures.sessions_server import SessionsUnderTest
from tests.sessions.helpers import code_of, create, fetch, ok, pending, scope, step

EXECUTOR = spb.DISPATCH_EXECUTOR
AGENTIC = pb.EXECUTION_MODE_AGENTIC
API = pb.WorkspaceRef(id="ws-0123456789ab", name="api", root_commit="a" * 40)
WEB = pb.WorkspaceRef(id="ws-ba9876543210", name="web")


async def _start(
    service: SessionsUnderTest,
    where: pb.Scope,
    workspace: pb.WorkspaceRef | None = None,
    *,
    capability: str = "",
) -> pb.Session:
    response = await service.stub.CreateSession(
        spb.CreateSessionRequest(
            scope=where,
            type="Build",
            execution_mode=AGENTIC,
            definition_version=1,
            first=pending("Build", dispatch=EXECUTOR, capability=capability),
            workspace=workspace,
        ),
        metadata=service.metadata,
    )
    return response.session


async def _claim(
    service: SessionsUnderTest,
    where: pb.Scope,
    workspaces: list[pb.WorkspaceRef],
    *,
    own_user_only: bool = False,
    executor: str = "exec-1",
) -> list[spb.Assignment]:
    response = await service.stub.ClaimCommands(
        spb.ClaimCommandsRequest(
            scope=where,
            executor_id=executor,
            capabilities=["shell", "agent"],
            max_commands=10,
            lease_ttl_seconds=60,
            workspace_ids=[w.id for w in workspaces],
            default_workspace=workspaces[0] if workspaces else None,
            own_user_only=own_user_only,
        ),
        metadata=service.metadata,
    )
    return list(response.assignments)


async def _explained(service: SessionsUnderTest, where: pb.Scope, session_id: str) -> str:
    response = await service.stub.FetchSession(
        spb.FetchSessionRequest(
            scope=where,
            session_id=session_id,
            view=pb.INTERACTION_VIEW_NONE,
            explain_waiting=True,
        ),
        metadata=service.metadata,
    )
    return response.session.waiting_for


def _presence(
    where: pb.Scope,
    workspaces: list[pb.WorkspaceRef],
    *,
    serve: int = pb.EXECUTOR_SERVE_OWN,
    capabilities: tuple[str, ...] = ("shell", "git"),
    connection: str | None = None,
) -> pb.ExecutorPresence:
    return pb.ExecutorPresence(
        connection_id=connection or new_id(),
        executor_id=new_id(),
        scope=where,
        name=f"{where.user_id}-laptop",
        workspaces=workspaces,
        serve=pb.ExecutorServe.ValueType(serve),
        capabilities=capabilities,
        slots=2,
        gateway_id="gateway-1",
        agent_version="test",
    )


async def _record(
    service: SessionsUnderTest,
    presence: pb.ExecutorPresence,
    live_seconds: int = 60,
    *,
    refresh_only: bool = False,
) -> None:
    await service.stub.RecordExecutor(
        spb.RecordExecutorRequest(
            executor=presence, live_seconds=live_seconds, refresh_only=refresh_only
        ),
        metadata=service.metadata,
    )


async def test_claims_take_only_the_executors_workspaces(
    sessions_service: SessionsUnderTest,
) -> None:
    where = scope()
    in_api = await _start(sessions_service, where, API)
    in_web = await _start(sessions_service, where, WEB)
    assert in_api.workspace == API

    claimed = await _claim(sessions_service, where, [API])
    assert [a.session.id for a in claimed] == [in_api.id]
    assert claimed[0].session.workspace == API

    (web,) = await _claim(sessions_service, where, [WEB], executor="exec-2")
    assert web.session.id == in_web.id
    # An executor without workspaces runs only sessions of none.
    assert await _claim(sessions_service, where, [], executor="exec-3") == []


async def test_an_unpinned_session_is_pinned_at_its_first_claim(
    sessions_service: SessionsUnderTest,
) -> None:
    where = scope()
    unpinned = await _start(sessions_service, where)
    assert not unpinned.HasField("workspace")

    (claimed,) = await _claim(sessions_service, where, [WEB, API])
    assert claimed.session.workspace == WEB  # the claimant's default
    stored = await fetch(sessions_service, where, unpinned.id, pb.INTERACTION_VIEW_NONE)
    assert stored.workspace == WEB
    # Holding work is not a change of the session (orchestrators' caches stay valid).
    assert stored.version == unpinned.version

    # Its next command goes only to executors of that workspace.
    await step(
        sessions_service,
        where,
        stored,
        next_step=pending("Test", dispatch=EXECUTOR),
        complete=spb.CompletePart(
            interaction_id=claimed.interaction.id,
            result=ok(),
            lease_epoch=claimed.interaction.lease.epoch,
        ),
    )
    assert await _claim(sessions_service, where, [API], executor="exec-api") == []
    (again,) = await _claim(sessions_service, where, [WEB], executor="exec-web")
    assert again.session.id == unpinned.id
    assert again.interaction.step == "Test"


async def test_an_executor_of_no_workspace_does_not_pin(
    sessions_service: SessionsUnderTest,
) -> None:
    where = scope()
    unpinned = await _start(sessions_service, where)
    (claimed,) = await _claim(sessions_service, where, [])
    assert claimed.session.id == unpinned.id
    assert not claimed.session.HasField("workspace")
    stored = await fetch(sessions_service, where, unpinned.id, pb.INTERACTION_VIEW_NONE)
    assert not stored.HasField("workspace")


async def test_own_user_executors_claim_only_their_users_sessions(
    sessions_service: SessionsUnderTest,
) -> None:
    alice = scope(user="alice")
    bob = pb.Scope(account_id=alice.account_id, project_id=alice.project_id, user_id="bob")
    bobs = await _start(sessions_service, bob, API)

    assert await _claim(sessions_service, alice, [API], own_user_only=True) == []
    (claimed,) = await _claim(sessions_service, alice, [API], own_user_only=False)
    assert claimed.session.id == bobs.id
    assert claimed.session.scope.user_id == "bob"


async def test_children_take_the_parents_workspace_from_its_row(
    sessions_service: SessionsUnderTest,
) -> None:
    where = scope()
    parent = await _start(sessions_service, where)
    (claimed,) = await _claim(sessions_service, where, [API])  # pins the parent to API
    child_id = new_id()
    child = spb.NewChild(
        id=child_id,
        type="Build",
        name="child",
        definition_version=1,
        key="child",
        first=pending("Build", dispatch=EXECUTOR),
    )
    spawn = pb.Command(step="Spawn")
    spawn.spawn_children.child_session_ids.append(child_id)
    response = await step(
        sessions_service,
        where,
        parent,
        next_step=spb.NewInteraction(step="Spawn", command=spawn, dispatch=spb.DISPATCH_JOIN),
        complete=spb.CompletePart(
            interaction_id=claimed.interaction.id,
            result=ok(),
            lease_epoch=claimed.interaction.lease.epoch,
        ),
        create_children=[child],
    )
    (created,) = response.children
    assert created.workspace == API
    assert await _claim(sessions_service, where, [WEB], executor="exec-web") == []

    # CreateSession of a child: the parent's workspace too; naming one is refused.
    direct = await create(sessions_service, where, parent_id=parent.id, mode=AGENTIC)
    assert direct.workspace == API
    refused = sessions_service.stub.CreateSession(
        spb.CreateSessionRequest(
            scope=where,
            type="Build",
            execution_mode=AGENTIC,
            definition_version=1,
            parent_id=parent.id,
            workspace=WEB,
        ),
        metadata=sessions_service.metadata,
    )
    assert await code_of(refused) == grpc.StatusCode.INVALID_ARGUMENT


async def test_bad_workspace_fields_are_refused(sessions_service: SessionsUnderTest) -> None:
    where = scope()
    bad = pb.WorkspaceRef(id="../etc", name="x")
    call = sessions_service.stub.CreateSession(
        spb.CreateSessionRequest(
            scope=where, type="Build", execution_mode=AGENTIC, definition_version=1, workspace=bad
        ),
        metadata=sessions_service.metadata,
    )
    error = await code_of(call)
    assert error == grpc.StatusCode.INVALID_ARGUMENT
    claim = sessions_service.stub.ClaimCommands(
        spb.ClaimCommandsRequest(
            scope=where,
            executor_id="e",
            max_commands=1,
            lease_ttl_seconds=5,
            workspace_ids=[API.id],
            default_workspace=WEB,
        ),
        metadata=sessions_service.metadata,
    )
    assert await code_of(claim) == grpc.StatusCode.INVALID_ARGUMENT


async def test_waiting_for_names_what_no_live_executor_offers(
    sessions_service: SessionsUnderTest,
) -> None:
    alice = scope(user="alice")
    bob = pb.Scope(account_id=alice.account_id, project_id=alice.project_id, user_id="bob")
    session = await _start(sessions_service, alice, API, capability="agent")
    waiting = await _explained(sessions_service, alice, session.id)
    assert waiting == "an executor of workspace api (ws-0123456789ab)"
    # Only asked for: the orchestrators' reads never pay for it.
    plain = await fetch(sessions_service, alice, session.id, pb.INTERACTION_VIEW_LAST)
    assert plain.waiting_for == ""

    await _record(sessions_service, _presence(bob, [API]))
    assert await _explained(sessions_service, alice, session.id) == (
        "an executor of workspace api (ws-0123456789ab) serving alice's sessions"
    )
    await _record(sessions_service, _presence(bob, [API], serve=pb.EXECUTOR_SERVE_PROJECT))
    assert await _explained(sessions_service, alice, session.id) == (
        "an executor of workspace api (ws-0123456789ab) with the 'agent' capability"
    )
    mine = _presence(alice, [WEB, API], capabilities=("shell", "agent"))
    await _record(sessions_service, mine, live_seconds=1)
    assert await _explained(sessions_service, alice, session.id) == ""

    # The same, in listings, children and watch snapshots.
    listed = await sessions_service.stub.QuerySessions(
        spb.QuerySessionsRequest(scope=alice, explain_waiting=True),
        metadata=sessions_service.metadata,
    )
    assert [s.waiting_for for s in listed.sessions] == [""]

    # A record not refreshed in time is not live any more.
    await asyncio.sleep(1.2)
    assert "capability" in await _explained(sessions_service, alice, session.id)

    # A leased command waits for nothing.
    await _record(sessions_service, mine, live_seconds=60)
    assert len(await _claim(sessions_service, alice, [API])) == 1
    await sessions_service.stub.ForgetExecutor(
        spb.ForgetExecutorRequest(connection_id=mine.connection_id),
        metadata=sessions_service.metadata,
    )
    assert await _explained(sessions_service, alice, session.id) == ""


async def test_presence_is_recorded_refreshed_listed_and_forgotten(
    sessions_service: SessionsUnderTest,
) -> None:
    where = scope()
    other_project = scope()
    first = _presence(where, [API])
    await _record(sessions_service, first)
    await _record(sessions_service, _presence(other_project, [API]))
    listed = await sessions_service.stub.QueryExecutors(
        spb.QueryExecutorsRequest(scope=where), metadata=sessions_service.metadata
    )
    (record,) = listed.executors
    assert record.name == "alice-laptop"
    assert list(record.workspaces) == [API]
    assert record.serve == pb.EXECUTOR_SERVE_OWN
    assert record.slots == 2
    connected = record.connected_at.ToDatetime()

    first.running = 2
    await _record(sessions_service, first, refresh_only=True)
    listed = await sessions_service.stub.QueryExecutors(
        spb.QueryExecutorsRequest(scope=where), metadata=sessions_service.metadata
    )
    (record,) = listed.executors
    assert record.running == 2
    assert record.connected_at.ToDatetime() == connected

    forgotten = await sessions_service.stub.ForgetExecutor(
        spb.ForgetExecutorRequest(connection_id=first.connection_id),
        metadata=sessions_service.metadata,
    )
    assert forgotten.removed
    # A late heartbeat after the teardown does not bring the record back.
    await _record(sessions_service, first, refresh_only=True)
    listed = await sessions_service.stub.QueryExecutors(
        spb.QueryExecutorsRequest(scope=where), metadata=sessions_service.metadata
    )
    assert list(listed.executors) == []


async def test_presence_lists_the_commands_held_naming_sessions_the_gateway_did_not_know(
    sessions_service: SessionsUnderTest,
) -> None:
    where = scope()
    elsewhere = scope()
    known = await _start(sessions_service, where, API)
    carried = await _start(sessions_service, where, API)
    foreign = await _start(sessions_service, elsewhere, API)
    claimed = {a.session.id: a for a in await _claim(sessions_service, where, [API])}
    (theirs,) = await _claim(sessions_service, elsewhere, [API], executor="exec-x")
    since = to_timestamp(dt.datetime(2026, 12, 1, 10, 4, 5, tzinfo=dt.UTC))
    record = _presence(where, [API])
    record.running = 3
    record.running_commands.extend(
        [
            pb.RunningCommand(
                session_id=known.id,
                interaction_id=claimed[known.id].interaction.id,
                step="Build",
                since=since,
            ),
            # A lease carried over a reconnect: the gateway knows only the interaction.
            pb.RunningCommand(interaction_id=claimed[carried.id].interaction.id),
            # Another project's interaction is never named through this record.
            pb.RunningCommand(interaction_id=theirs.interaction.id),
        ]
    )
    await _record(sessions_service, record)
    listed = await sessions_service.stub.QueryExecutors(
        spb.QueryExecutorsRequest(scope=where), metadata=sessions_service.metadata
    )
    (shown,) = listed.executors
    assert [(c.session_id, c.step) for c in shown.running_commands] == [
        (known.id, "Build"),
        (carried.id, "Build"),
        ("", ""),
    ]
    assert shown.running_commands[0].since == since
    assert not shown.running_commands[1].HasField("since")
    assert foreign.id not in str(shown)

    # A refresh replaces the list (a command that ended is gone).
    del record.running_commands[1:]
    record.running = 1
    await _record(sessions_service, record, refresh_only=True)
    listed = await sessions_service.stub.QueryExecutors(
        spb.QueryExecutorsRequest(scope=where), metadata=sessions_service.metadata
    )
    assert [c.session_id for c in listed.executors[0].running_commands] == [known.id]

    bad = _presence(where, [API])
    bad.running_commands.append(pb.RunningCommand(session_id=known.id))
    refused = sessions_service.stub.RecordExecutor(
        spb.RecordExecutorRequest(executor=bad, live_seconds=60),
        metadata=sessions_service.metadata,
    )
    assert await code_of(refused) == grpc.StatusCode.INVALID_ARGUMENT


async def test_sessions_are_listed_by_workspace(sessions_service: SessionsUnderTest) -> None:
    where = scope()
    in_api = await _start(sessions_service, where, API)
    await _start(sessions_service, where, WEB)
    await _start(sessions_service, where)

    async def listed(workspace_id: str) -> list[str]:
        response = await sessions_service.stub.QuerySessions(
            spb.QuerySessionsRequest(
                scope=where, filter=pb.SessionFilter(workspace_id=workspace_id)
            ),
            metadata=sessions_service.metadata,
        )
        return [s.id for s in response.sessions]

    assert await listed(API.id) == [in_api.id]
    assert len(await listed("")) == 3
    assert await listed("ws-000000000000") == []
    refused = sessions_service.stub.QuerySessions(
        spb.QuerySessionsRequest(scope=where, filter=pb.SessionFilter(workspace_id="api")),
        metadata=sessions_service.metadata,
    )
    assert await code_of(refused) == grpc.StatusCode.INVALID_ARGUMENT


async def test_unclaimed_commands_say_what_they_wait_for(
    sessions_service: SessionsUnderTest,
) -> None:
    where = scope()
    stuck = await _start(sessions_service, where, API)
    queued = await _start(sessions_service, where, WEB)
    await _record(sessions_service, _presence(where, [WEB]))
    await asyncio.sleep(0.05)
    found = await sessions_service.stub.FindUnclaimedCommands(
        spb.FindUnclaimedCommandsRequest(waited_ms=1, limit=10),
        metadata=sessions_service.metadata,
    )
    reasons = {a.session.id: a.session.waiting_for for a in found.unclaimed}
    assert reasons[stuck.id] == "an executor of workspace api (ws-0123456789ab)"
    assert reasons[queued.id] == ""
