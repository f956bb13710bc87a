"""OpenSession issues a new session's first step once Sessions has chosen its id.

A v2 session's first command names the session (its worktree and branch),
so OpenSession is two writes: create, then issue the first step. A start
that stopped between them leaves a session without its first step; a retry
with the same idempotency key issues it, and concurrent retries issue it once.
"""

from __future__ import annotations

import asyncio

from specloom.orchestration.engine import Engine
from specloom.orchestration.sessions_client import SessionsClient
from specloom.protoconv import dict_to_struct
from specloom.v1 import common_pb2 as pb
from specloom.v1 import orchestrator_pb2 as opb
from specloom.v1 import sessions_pb2 as spb
from specloom_coding.service import SERVICE
from specloom_coding.workflows import REGISTRY
from tests.fixtures.orchestrators import StartOrchestrator

SCOPE = pb.Scope(account_id="acct-open", project_id="p", user_id="u")
PARAMS = {"component": "inventory.stock"}


async def test_the_first_command_names_the_session_it_belongs_to(
    start_orchestrator: StartOrchestrator,
) -> None:
    o = await start_orchestrator(SERVICE)
    opened = await o.stub.OpenSession(
        opb.OpenSessionRequest(scope=SCOPE, type="ComponentCoding", params=dict_to_struct(PARAMS)),
        metadata=o.metadata,
    )
    session = opened.session
    assert opened.created
    (first,) = session.interactions
    worktree = first.command.git.operations[0].add_worktree
    assert worktree.path == f".specloom/worktrees/{session.id}"
    assert worktree.branch == f"component-coding-session-for-inventory-stock-{session.id[-8:]}"


async def test_a_start_that_stopped_before_its_first_step_is_completed_by_its_retry(
    start_orchestrator: StartOrchestrator,
) -> None:
    o = await start_orchestrator(SERVICE)
    # The first write of an OpenSession, as the orchestrator makes it, and
    # then nothing (the orchestrator died before issuing the first step).
    session = Engine(REGISTRY).open("ComponentCoding", SCOPE, pb.EXECUTION_MODE_MANUAL, PARAMS)
    sessions = SessionsClient(o.sessions, o.metadata)
    created = await sessions.create(session, None, "start-1")
    assert created.created
    assert created.session.interaction_count == 0
    request = opb.OpenSessionRequest(
        scope=SCOPE,
        type="ComponentCoding",
        execution_mode=pb.EXECUTION_MODE_MANUAL,
        params=dict_to_struct(PARAMS),
        idempotency_key="start-1",
    )
    retries = await asyncio.gather(
        *(o.stub.OpenSession(request, metadata=o.metadata) for _ in range(3))
    )
    assert {r.session.id for r in retries} == {created.session.id}
    assert not any(r.created for r in retries)
    assert {r.session.interactions[0].id for r in retries} == {
        retries[0].session.interactions[0].id
    }
    stored = await o.sessions.FetchSession(
        spb.FetchSessionRequest(
            scope=SCOPE, session_id=created.session.id, view=pb.INTERACTION_VIEW_ALL
        ),
        metadata=o.metadata,
    )
    assert [i.step for i in stored.session.interactions] == ["Initialize"]  # issued once
