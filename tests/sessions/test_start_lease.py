"""A create that leases its first command to an offered executor (ClaimOffer).

The offer must lease exactly when ClaimCommands with the same fields would
have claimed the command: the rules are evaluated in Python for the row
being inserted (no query), so they are compared with the claim's SQL over
every combination of scope, user, workspace and capability.
"""

from __future__ import annotations

import itertools

import grpc
import pytest

from specloom.ids import new_id
from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb
from tests.fixtures.sessions_server import SessionsUnderTest
from tests.sessions.helpers import code_of, failure, fetch, pending, scope

EXECUTOR = spb.DISPATCH_EXECUTOR
AGENTIC = pb.EXECUTION_MODE_AGENTIC
API = pb.WorkspaceRef(id="ws-0123456789ab", name="api", root_commit="a" * 40)
WEB = pb.WorkspaceRef(id="ws-ba9876543210", name="web")
CAPABILITIES = ["shell", "agent"]


def _create(
    where: pb.Scope,
    *,
    workspace: pb.WorkspaceRef | None = None,
    capability: str = "",
    claim: pb.ClaimOffer | None = None,
    session_id: str = "",
    key: str = "",
) -> spb.CreateSessionRequest:
    return spb.CreateSessionRequest(
        id=session_id,
        scope=where,
        type="Build",
        execution_mode=AGENTIC,
        definition_version=1,
        first=pending("Build", dispatch=EXECUTOR, capability=capability),
        workspace=workspace,
        claim=claim,
        idempotency_key=key,
    )


def _offer(
    executor_scope: pb.Scope,
    workspaces: list[pb.WorkspaceRef],
    *,
    own_user_only: bool,
    executor: str = "exec-1",
) -> pb.ClaimOffer:
    return pb.ClaimOffer(
        scope=executor_scope,
        executor_id=executor,
        capabilities=CAPABILITIES,
        lease_ttl_seconds=60,
        workspace_ids=[w.id for w in workspaces],
        default_workspace=workspaces[0] if workspaces else None,
        own_user_only=own_user_only,
    )


async def test_an_offer_leases_exactly_what_the_claim_would_claim(
    sessions_service: SessionsUnderTest,
) -> None:
    service = sessions_service
    cases = itertools.product(
        (None, API, WEB),  # the session's workspace
        ([], [API], [WEB, API]),  # the executor's workspaces (first: its default)
        ("", "agent", "gpu"),  # the capability the command needs
        (False, True),  # the executor serves only its own user
        ("same", "other user", "other project"),  # whose executor it is
    )
    leased_count = 0
    for workspace, workspaces, capability, own, whose in cases:
        served = [w.name for w in workspaces]
        label = f"{workspace and workspace.name}/{served}/{capability}/{own}/{whose}"
        where = scope()
        executor_scope = pb.Scope()
        executor_scope.CopyFrom(where)
        if whose == "other user":
            executor_scope.user_id = "bob"
        elif whose == "other project":
            executor_scope.project_id = "elsewhere"
        offer = _offer(executor_scope, workspaces, own_user_only=own)

        offered = (
            await service.stub.CreateSession(
                _create(where, workspace=workspace, capability=capability, claim=offer),
                metadata=service.metadata,
            )
        ).session
        # The reference: the same session in a scope of its own, then the claim.
        alone = scope()
        reference_executor = pb.Scope()
        reference_executor.CopyFrom(executor_scope)
        reference_executor.account_id = alone.account_id
        created = (
            await service.stub.CreateSession(
                _create(alone, workspace=workspace, capability=capability),
                metadata=service.metadata,
            )
        ).session
        claimed = (
            await service.stub.ClaimCommands(
                spb.ClaimCommandsRequest(
                    scope=reference_executor,
                    executor_id=offer.executor_id,
                    capabilities=CAPABILITIES,
                    max_commands=1,
                    lease_ttl_seconds=60,
                    workspace_ids=offer.workspace_ids,
                    default_workspace=offer.default_workspace
                    if offer.HasField("default_workspace")
                    else None,
                    own_user_only=own,
                ),
                metadata=service.metadata,
            )
        ).assignments

        (first,) = offered.interactions
        leased = first.HasField("lease")
        assert leased == bool(claimed), label
        stored = await fetch(service, where, offered.id)
        assert stored.interactions[0].HasField("lease") == leased, label
        if not leased:
            assert stored.workspace == (workspace or pb.WorkspaceRef()), label
            continue
        leased_count += 1
        (assignment,) = claimed
        assert assignment.session.id == created.id
        assert first.lease.executor_id == assignment.interaction.lease.executor_id
        assert first.lease.epoch == assignment.interaction.lease.epoch == 1
        # Pinned as the claim pins: to the executor's default when unpinned.
        assert offered.workspace == assignment.session.workspace, label
        assert stored.workspace == assignment.session.workspace, label
        # Holding work is no change of the session.
        assert stored.version == created.version, label
    assert leased_count > 0


async def test_a_leased_first_command_is_not_claimed_again(
    sessions_service: SessionsUnderTest,
) -> None:
    service = sessions_service
    where = scope()
    offered = (
        await service.stub.CreateSession(
            _create(where, claim=_offer(where, [API], own_user_only=True)),
            metadata=service.metadata,
        )
    ).session
    assert offered.interactions[0].lease.executor_id == "exec-1"
    assert offered.workspace == API
    response = await service.stub.ClaimCommands(
        spb.ClaimCommandsRequest(
            scope=where,
            executor_id="exec-2",
            capabilities=CAPABILITIES,
            max_commands=10,
            lease_ttl_seconds=60,
            workspace_ids=[API.id],
        ),
        metadata=service.metadata,
    )
    assert list(response.assignments) == []


async def test_a_chosen_id_and_a_retried_start(sessions_service: SessionsUnderTest) -> None:
    service = sessions_service
    where = scope()
    chosen = new_id()
    first = await service.stub.CreateSession(
        _create(
            where, session_id=chosen, key="start-1", claim=_offer(where, [], own_user_only=False)
        ),
        metadata=service.metadata,
    )
    assert first.created
    assert first.session.id == chosen
    # A retry chooses another id and may offer another executor: the same start.
    again = await service.stub.CreateSession(
        _create(
            where,
            session_id=new_id(),
            key="start-1",
            claim=_offer(where, [], own_user_only=False, executor="exec-2"),
        ),
        metadata=service.metadata,
    )
    assert not again.created
    assert again.session.id == chosen
    assert again.session.interactions[0].lease.executor_id == "exec-1"
    # The key still guards against a different start (the first command is
    # planned from the start's fields, so those are what is compared).
    other = _create(where, session_id=new_id(), key="start-1", workspace=API)
    assert await code_of(service.stub.CreateSession(other, metadata=service.metadata)) == (
        grpc.StatusCode.ALREADY_EXISTS
    )
    # An id that is taken, without a key: refused, naming it.
    taken = await failure(
        service.stub.CreateSession(_create(where, session_id=chosen), metadata=service.metadata)
    )
    assert taken.code() == grpc.StatusCode.ALREADY_EXISTS
    assert chosen in (taken.details() or "")


async def test_a_start_created_before_ids_were_chosen_is_found_by_its_retry(
    sessions_service: SessionsUnderTest,
) -> None:
    # Created the older way: no id, no first command (issued by a later write).
    service = sessions_service
    where = scope()
    older = spb.CreateSessionRequest(
        scope=where,
        type="Build",
        execution_mode=AGENTIC,
        definition_version=1,
        idempotency_key="start-1",
    )
    older.state.update({"round": 0})
    created = await service.stub.CreateSession(older, metadata=service.metadata)
    retry = _create(where, session_id=new_id(), key="start-1")
    retry.state.update({"round": 0})
    retry.first_state.update({"round": 1})
    again = await service.stub.CreateSession(retry, metadata=service.metadata)
    assert not again.created
    assert again.session.id == created.session.id


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda r: r.ClearField("first"), "first is unset"),
        (
            lambda r: r.first.lease.CopyFrom(spb.LeaseGrant(executor_id="x", ttl_seconds=5)),
            "one or the other",
        ),
        (lambda r: r.claim.ClearField("executor_id"), "claim.executor_id is required"),
        (lambda r: setattr(r.claim, "lease_ttl_seconds", 0), "claim.lease_ttl_seconds"),
        (lambda r: r.claim.workspace_ids.append("nope"), "claim.workspace_ids[0]"),
        (lambda r: r.claim.capabilities.append("bad\x00"), "claim.capabilities[2]"),
        (lambda r: r.first_state.update({"a": 1}), "first_state"),
    ],
)
async def test_bad_offers_are_refused_by_name(
    sessions_service: SessionsUnderTest, change: object, words: str
) -> None:
    where = scope()
    request = _create(where, claim=_offer(where, [], own_user_only=False))
    change(request)  # type: ignore[operator]
    error = await failure(
        sessions_service.stub.CreateSession(request, metadata=sessions_service.metadata)
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in (error.details() or "")


async def test_a_create_stores_exactly_what_it_answers(sessions_service: SessionsUnderTest) -> None:
    # On PostgreSQL a top-level create is one statement (the session's insert
    # a CTE of the interaction's, the NOTIFY in its RETURNING); every field
    # it answers with must be what a read finds.
    service = sessions_service
    where = scope()
    request = _create(
        where,
        session_id=new_id(),
        key="full",
        capability="agent",
        claim=_offer(where, [WEB, API], own_user_only=True),
    )
    request.name = "ledger"
    request.component.name = "ledger"
    request.params.update({"component": "ledger", "depth": 2})
    request.state.update({"round": 0})
    request.first_state.update({"round": 1, "notes": ["a", None]})
    request.progress.update({"done": 0})
    created = (await service.stub.CreateSession(request, metadata=service.metadata)).session
    stored = await fetch(service, where, created.id)
    assert stored == created
    assert stored.state == request.first_state
    assert stored.workspace == WEB
    assert stored.interactions[0].lease.executor_id == "exec-1"
    # And nothing when its key is taken: no second interaction, no error.
    again = await service.stub.CreateSession(request, metadata=service.metadata)
    assert not again.created
    assert (await fetch(service, where, created.id)).interaction_count == 1
