"""Sessions: create (idempotent), read views, the scope wall, listing and paging."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from specloom.protoconv import dict_to_struct
from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb
from tests.fixtures.sessions_server import SessionsUnderTest
from tests.sessions.helpers import code_of, create, fetch, ok, pending, scope, step


async def test_create_returns_the_session_with_its_first_interaction(
    sessions_service: SessionsUnderTest,
) -> None:
    where = scope()
    params = dict_to_struct({"context": "Inventory", "stories": ["a", "b"], "n": 3})
    response = await sessions_service.stub.CreateSession(
        spb.CreateSessionRequest(
            scope=where,
            type="ContextDesign",
            execution_mode=pb.EXECUTION_MODE_AGENTIC,
            name="Inventory",
            params=params,
            definition_version=2,
            first=pending("Initialize"),
        ),
        metadata=sessions_service.metadata,
    )
    assert response.created
    session = response.session
    assert session.status == pb.SESSION_STATUS_ACTIVE
    assert session.version == 1
    assert session.definition_version == 2
    assert session.scope == where
    assert session.params == params
    assert session.interaction_count == 1
    (first,) = session.interactions
    assert (first.seq, first.step, first.status) == (1, "Initialize", pb.INTERACTION_STATUS_PENDING)
    assert first.command.shell.argv == ["make", "initialize"]

    stored = await fetch(sessions_service, where, session.id)
    assert stored == session


async def test_create_is_idempotent_on_the_key(sessions_service: SessionsUnderTest) -> None:
    where = scope()
    first = await create(sessions_service, where, key="run-1")
    again = await sessions_service.stub.CreateSession(
        spb.CreateSessionRequest(
            scope=where,
            type="Build",
            execution_mode=pb.EXECUTION_MODE_MANUAL,
            definition_version=1,
            idempotency_key="run-1",
            first=pending(),
        ),
        metadata=sessions_service.metadata,
    )
    assert not again.created
    assert again.session.id == first.id
    assert [i.id for i in again.session.interactions] == [first.interactions[0].id]

    # The same key for a different request is a conflict, not a silent reuse.
    different = spb.CreateSessionRequest(
        scope=where,
        type="OtherType",
        execution_mode=pb.EXECUTION_MODE_MANUAL,
        definition_version=1,
        idempotency_key="run-1",
    )
    code = await code_of(
        sessions_service.stub.CreateSession(different, metadata=sessions_service.metadata)
    )
    assert code == grpc.StatusCode.ALREADY_EXISTS

    # Keys are per account and project.
    elsewhere = await create(
        sessions_service, scope(project="other", account=where.account_id), key="run-1"
    )
    assert elsewhere.id != first.id


async def test_concurrent_creates_with_one_key_make_one_session(
    sessions_service: SessionsUnderTest,
) -> None:
    where = scope()
    sessions = await asyncio.gather(
        *(create(sessions_service, where, key="same") for _ in range(8))
    )
    assert len({s.id for s in sessions}) == 1
    listed = await sessions_service.stub.QuerySessions(
        spb.QuerySessionsRequest(scope=where), metadata=sessions_service.metadata
    )
    assert len(listed.sessions) == 1


async def test_views_choose_how_much_history(sessions_service: SessionsUnderTest) -> None:
    where = scope()
    session = await create(sessions_service, where)
    for n in range(3):
        await step(sessions_service, where, session, ok(), next_step=pending(f"Step{n}"))
    full = await fetch(sessions_service, where, session.id, pb.INTERACTION_VIEW_ALL)
    assert [i.seq for i in full.interactions] == [1, 2, 3, 4]
    assert full.interaction_count == 4
    last = await fetch(sessions_service, where, session.id, pb.INTERACTION_VIEW_LAST)
    assert [i.step for i in last.interactions] == ["Step2"]
    assert last.interactions[0].status == pb.INTERACTION_STATUS_PENDING
    none = await fetch(sessions_service, where, session.id, pb.INTERACTION_VIEW_NONE)
    assert not none.interactions
    assert none.version == full.version == last.version == 4
    unspecified = await fetch(sessions_service, where, session.id, pb.INTERACTION_VIEW_UNSPECIFIED)
    assert len(unspecified.interactions) == 4


async def test_scope_wall_hides_sessions_of_other_accounts_and_projects(
    sessions_service: SessionsUnderTest,
) -> None:
    mine = scope(account="acme")
    session = await create(sessions_service, mine)
    interaction = session.interactions[0]
    other_account = scope(account="globex")
    other_project = scope(account="acme", project="secret")
    teammate = scope(account="acme", user="bob")
    stub, md = sessions_service.stub, sessions_service.metadata

    for outsider in (other_account, other_project):
        calls: list[Awaitable[Any]] = [
            stub.FetchSession(
                spb.FetchSessionRequest(scope=outsider, session_id=session.id), metadata=md
            ),
            stub.FetchChildren(
                spb.FetchChildrenRequest(scope=outsider, parent_id=session.id), metadata=md
            ),
            stub.CompleteInteraction(
                spb.CompleteInteractionRequest(
                    scope=outsider,
                    session_id=session.id,
                    interaction_id=interaction.id,
                    result=ok(),
                ),
                metadata=md,
            ),
            stub.AdvanceSession(
                spb.AdvanceSessionRequest(
                    scope=outsider,
                    session_id=session.id,
                    expected_version=1,
                    finish=spb.Finish(status=pb.SESSION_STATUS_PAUSED),
                ),
                metadata=md,
            ),
            stub.CancelSessionTree(
                spb.CancelSessionTreeRequest(scope=outsider, session_id=session.id), metadata=md
            ),
            stub.AppendOutput(
                spb.AppendOutputRequest(
                    scope=outsider,
                    session_id=session.id,
                    interaction_id=interaction.id,
                    parts=[spb.OutputPart(data=b"x")],
                ),
                metadata=md,
            ),
            stub.FetchOutput(
                spb.FetchOutputRequest(scope=outsider, session_id=session.id), metadata=md
            ),
            stub.CreateSession(
                spb.CreateSessionRequest(
                    scope=outsider,
                    type="Child",
                    execution_mode=pb.EXECUTION_MODE_AGENTIC,
                    definition_version=1,
                    parent_id=session.id,
                ),
                metadata=md,
            ),
        ]
        for call in calls:
            assert await code_of(call) == grpc.StatusCode.NOT_FOUND
        listed = await stub.QuerySessions(spb.QuerySessionsRequest(scope=outsider), metadata=md)
        assert session.id not in [s.id for s in listed.sessions]
        claimed = await stub.ClaimCommands(
            spb.ClaimCommandsRequest(
                scope=outsider, executor_id="e1", max_commands=10, lease_ttl_seconds=30
            ),
            metadata=md,
        )
        assert not claimed.assignments

    # Nothing was changed through the wall; the user is an owner, not a wall.
    seen = await fetch(sessions_service, teammate, session.id)
    assert seen.version == 1
    assert seen.status == pb.SESSION_STATUS_ACTIVE
    assert seen.scope.user_id == "alice"


async def test_listing_pages_newest_first_without_gaps_or_repeats(
    sessions_service: SessionsUnderTest,
) -> None:
    where = scope()
    created = [await create(sessions_service, where, name=f"s{n}") for n in range(7)]
    ids: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await sessions_service.stub.QuerySessions(
            spb.QuerySessionsRequest(scope=where, page_size=3, page_token=token),
            metadata=sessions_service.metadata,
        )
        pages += 1
        assert len(page.sessions) <= 3
        assert all(not s.interactions for s in page.sessions)
        ids += [s.id for s in page.sessions]
        token = page.next_page_token
        if not token:
            break
    assert pages == 3
    assert ids == [s.id for s in reversed(created)]


async def test_listing_filters(sessions_service: SessionsUnderTest) -> None:
    where = scope()
    stub, md = sessions_service.stub, sessions_service.metadata
    build = await create(sessions_service, where, type="Build")
    deploy = await create(sessions_service, where, type="Deploy")
    bobs = await create(sessions_service, scope(account=where.account_id, user="bob"), type="Build")
    child = await create(sessions_service, where, type="Leaf", parent_id=build.id)
    await step(sessions_service, where, deploy, ok(), finish=(pb.SESSION_STATUS_COMPLETE, ""))

    async def ids(**filters: object) -> set[str]:
        response = await stub.QuerySessions(
            spb.QuerySessionsRequest(scope=where, filter=pb.SessionFilter(**filters)),  # type: ignore[arg-type]
            metadata=md,
        )
        return {s.id for s in response.sessions}

    assert await ids() == {build.id, deploy.id, bobs.id, child.id}
    assert await ids(types=["Build"]) == {build.id, bobs.id}
    assert await ids(statuses=[pb.SESSION_STATUS_COMPLETE]) == {deploy.id}
    assert await ids(statuses=[pb.SESSION_STATUS_ACTIVE, pb.SESSION_STATUS_COMPLETE]) == {
        build.id,
        deploy.id,
        bobs.id,
        child.id,
    }
    assert await ids(parent_id=build.id) == {child.id}
    assert await ids(top_level_only=True) == {build.id, deploy.id, bobs.id}
    assert await ids(user_id="bob") == {bobs.id}
    after = timestamp_pb2.Timestamp()
    after.CopyFrom(bobs.created_at)
    assert await ids(created_after=after) == {bobs.id, child.id}
    assert await ids(created_before=after) == {build.id, deploy.id}


async def test_children_are_listed_oldest_first_with_views(
    sessions_service: SessionsUnderTest,
) -> None:
    where = scope()
    parent = await create(sessions_service, where)
    kids = [
        await create(sessions_service, where, type="Leaf", parent_id=parent.id, key=f"k{n}")
        for n in range(3)
    ]
    response = await sessions_service.stub.FetchChildren(
        spb.FetchChildrenRequest(scope=where, parent_id=parent.id, view=pb.INTERACTION_VIEW_LAST),
        metadata=sessions_service.metadata,
    )
    assert [c.id for c in response.children] == [k.id for k in kids]
    assert all(len(c.interactions) == 1 for c in response.children)
    assert all(c.parent_id == parent.id for c in response.children)
    assert [c.idempotency_key for c in response.children] == ["k0", "k1", "k2"]
    bare = await sessions_service.stub.FetchChildren(
        spb.FetchChildrenRequest(scope=where, parent_id=parent.id, view=pb.INTERACTION_VIEW_NONE),
        metadata=sessions_service.metadata,
    )
    assert all(not c.interactions for c in bare.children)
    # A child key is unique within its parent: the same key returns the same child.
    again = await create(sessions_service, where, type="Leaf", parent_id=parent.id, key="k1")
    assert again.id == kids[1].id
