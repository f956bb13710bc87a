"""Bad input gets INVALID_ARGUMENT (or RESOURCE_EXHAUSTED) naming the field; never INTERNAL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2, timestamp_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from specloom.protoconv import MAX_STRUCT_DEPTH
from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb
from specloom.v1 import tokens_pb2 as tpb
from specloom.v1.sessions_pb2_grpc import SessionsServiceStub
from tests.fixtures.sessions_server import SessionsUnderTest, StartSessions
from tests.sessions.helpers import create, failure, pending, scope

INVALID = grpc.StatusCode.INVALID_ARGUMENT
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


def _deep(levels: int) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    inner = struct
    for _ in range(levels - 1):
        inner = inner.fields["k"].struct_value
    inner.fields["leaf"].string_value = "x"
    return struct


def _create(**fields: Any) -> spb.CreateSessionRequest:
    request = spb.CreateSessionRequest(
        scope=scope(),
        type="Build",
        execution_mode=pb.EXECUTION_MODE_MANUAL,
        definition_version=1,
    )
    for name, value in fields.items():
        target = getattr(request, name)
        if hasattr(target, "CopyFrom"):
            target.CopyFrom(value)
        else:
            setattr(request, name, value)
    return request


async def _expect(call: Awaitable[Any], code: grpc.StatusCode, *words: str) -> None:
    error = await failure(call)
    assert error.code() == code, error.details()
    for word in words:
        assert word in (error.details() or ""), f"{word!r} not in {error.details()!r}"


async def test_bad_ids_and_scopes(sessions_service: SessionsUnderTest) -> None:
    stub, md = sessions_service.stub, sessions_service.metadata
    good = scope()
    cases = [
        (spb.FetchSessionRequest(scope=good, session_id=""), "session_id"),
        (spb.FetchSessionRequest(scope=good, session_id="x" * 65), "session_id"),
        (spb.FetchSessionRequest(scope=good, session_id="a\nb"), "session_id"),
        (
            spb.FetchSessionRequest(scope=pb.Scope(project_id="p", user_id="u"), session_id="s"),
            "scope.account_id",
        ),
        (
            spb.FetchSessionRequest(scope=pb.Scope(account_id="a", user_id="u"), session_id="s"),
            "scope.project_id",
        ),
        (
            spb.FetchSessionRequest(scope=pb.Scope(account_id="a", project_id="p"), session_id="s"),
            "scope.user_id",
        ),
        (
            spb.FetchSessionRequest(
                scope=good, session_id="s", view=pb.InteractionView.ValueType(99)
            ),
            "view",
        ),
    ]
    for request, field in cases:
        await _expect(stub.FetchSession(request, metadata=md), INVALID, field)


async def test_bad_creates(start_sessions_service: StartSessions) -> None:
    service = await start_sessions_service(sessions_max_struct_bytes=2048)
    stub, md = service.stub, service.metadata
    big = struct_pb2.Struct()
    big.fields["blob"].string_value = "x" * 4096
    no_kind = spb.NewInteraction(step="S", command=pb.Command(step="S"))
    leased_record = pending("S", lease=("e", 10))
    leased_record.immediate_result.CopyFrom(pb.Result(status=pb.RESULT_STATUS_OK))
    cases: list[tuple[spb.CreateSessionRequest, grpc.StatusCode, tuple[str, ...]]] = [
        (_create(type=""), INVALID, ("type",)),
        (_create(execution_mode=pb.EXECUTION_MODE_UNSPECIFIED), INVALID, ("execution_mode",)),
        (_create(execution_mode=9), INVALID, ("execution_mode",)),
        (_create(definition_version=0), INVALID, ("definition_version",)),
        (_create(idempotency_key="k" * 201), INVALID, ("idempotency_key",)),
        (_create(params=_deep(MAX_STRUCT_DEPTH + 1)), INVALID, ("params", "nested")),
        (_create(state=big), EXHAUSTED, ("state", "2048")),
        (_create(first=spb.NewInteraction(step="S")), INVALID, ("first.command",)),
        (_create(first=no_kind), INVALID, ("first.command.kind",)),
        (_create(first=pending("")), INVALID, ("first.step",)),
        (
            _create(
                first=spb.NewInteraction(
                    step="S", command=pending().command, dispatch=spb.Dispatch.ValueType(7)
                )
            ),
            INVALID,
            ("first.dispatch",),
        ),
        (_create(first=pending("S", lease=("e", 0))), INVALID, ("first.lease.ttl_seconds",)),
        (_create(first=pending("S", lease=("", 10))), INVALID, ("first.lease.executor_id",)),
        (_create(first=leased_record), INVALID, ("first",)),
    ]
    for request, code, words in cases:
        await _expect(stub.CreateSession(request, metadata=md), code, *words)
    # Exactly at the depth limit is fine.
    ok = await stub.CreateSession(_create(params=_deep(MAX_STRUCT_DEPTH)), metadata=md)
    assert ok.created


async def test_bad_steps(start_sessions_service: StartSessions) -> None:
    service = await start_sessions_service(
        sessions_max_result_bytes=4096, sessions_max_command_bytes=4096
    )
    stub, md = service.stub, service.metadata
    where = scope()
    session = await create(service, where)
    iid = session.interactions[0].id

    def advance(**fields: Any) -> Awaitable[spb.AdvanceSessionResponse]:
        request = spb.AdvanceSessionRequest(
            scope=where, session_id=session.id, expected_version=1, **fields
        )
        return stub.AdvanceSession(request, metadata=md)

    def done(result: pb.Result, **fields: Any) -> spb.CompletePart:
        return spb.CompletePart(interaction_id=iid, result=result, **fields)

    huge = pb.Result(status=pb.RESULT_STATUS_OK, stdout="x" * 8000)
    big_command = pending("S")
    big_command.command.shell.argv.append("y" * 8000)
    await _expect(
        stub.AdvanceSession(
            spb.AdvanceSessionRequest(scope=where, session_id=session.id), metadata=md
        ),
        INVALID,
        "expected_version",
    )
    await _expect(advance(complete=done(pb.Result())), INVALID, "complete.result.status")
    await _expect(
        advance(complete=done(pb.Result(status=pb.ResultStatus.ValueType(7)))),
        INVALID,
        "complete.result.status",
    )
    await _expect(advance(complete=done(huge)), EXHAUSTED, "complete.result", "4096")
    await _expect(
        advance(complete=done(pb.Result(status=pb.RESULT_STATUS_OK), reported_digest=b"abc")),
        INVALID,
        "complete.reported_digest",
    )
    await _expect(
        advance(complete=done(pb.Result(status=pb.RESULT_STATUS_OK), lease_epoch=-1)),
        INVALID,
        "complete.lease_epoch",
    )
    await _expect(
        advance(complete=spb.CompletePart(result=pb.Result(status=pb.RESULT_STATUS_OK))),
        INVALID,
        "complete.interaction_id",
    )
    await _expect(advance(append=[pending("A"), pending("B")]), INVALID, "append[0]")
    await _expect(advance(append=[big_command]), EXHAUSTED, "append[0].command", "4096")
    await _expect(
        advance(finish=spb.Finish(status=pb.SESSION_STATUS_CANCELLED)), INVALID, "finish.status"
    )
    await _expect(advance(finish=spb.Finish()), INVALID, "finish.status")
    await _expect(
        advance(finish=spb.Finish(status=pb.SESSION_STATUS_COMPLETE), append=[pending("X")]),
        INVALID,
        "append",
    )
    await _expect(
        advance(create_children=[spb.NewChild(type="Leaf", definition_version=1)]),
        INVALID,
        "create_children[0].id",
    )
    await _expect(
        stub.CompleteInteraction(
            spb.CompleteInteractionRequest(scope=where, session_id=session.id, interaction_id=iid),
            metadata=md,
        ),
        INVALID,
        "result",
    )
    await _expect(
        stub.AppendInteraction(
            spb.AppendInteractionRequest(scope=where, session_id=session.id), metadata=md
        ),
        INVALID,
        "interaction",
    )
    # Nothing of that was written.
    head = await stub.FetchSession(
        spb.FetchSessionRequest(scope=where, session_id=session.id), metadata=md
    )
    assert head.session.version == 1


async def test_bad_listings_claims_and_more(sessions_service: SessionsUnderTest) -> None:
    stub, md = sessions_service.stub, sessions_service.metadata
    tokens = sessions_service.tokens
    where = scope()
    calls: list[tuple[Callable[[], Awaitable[Any]], str]] = [
        (
            lambda: stub.QuerySessions(
                spb.QuerySessionsRequest(
                    scope=where, filter=pb.SessionFilter(statuses=[pb.SessionStatus.ValueType(0)])
                ),
                metadata=md,
            ),
            "filter.statuses[0]",
        ),
        (
            lambda: stub.QuerySessions(
                spb.QuerySessionsRequest(
                    scope=where, filter=pb.SessionFilter(statuses=[pb.SessionStatus.ValueType(42)])
                ),
                metadata=md,
            ),
            "filter.statuses[0]",
        ),
        (
            lambda: stub.QuerySessions(
                spb.QuerySessionsRequest(scope=where, page_size=501), metadata=md
            ),
            "page_size",
        ),
        (
            lambda: stub.QuerySessions(
                spb.QuerySessionsRequest(scope=where, page_size=-1), metadata=md
            ),
            "page_size",
        ),
        (
            lambda: stub.QuerySessions(
                spb.QuerySessionsRequest(scope=where, page_token="garbage!"), metadata=md
            ),
            "page_token",
        ),
        (
            lambda: stub.QuerySessions(
                spb.QuerySessionsRequest(
                    scope=where, filter=pb.SessionFilter(parent_id="p", top_level_only=True)
                ),
                metadata=md,
            ),
            "filter.parent_id",
        ),
        (
            lambda: stub.ClaimCommands(
                spb.ClaimCommandsRequest(
                    scope=where, executor_id="e", max_commands=0, lease_ttl_seconds=5
                ),
                metadata=md,
            ),
            "max_commands",
        ),
        (
            lambda: stub.ClaimCommands(
                spb.ClaimCommandsRequest(
                    scope=where, executor_id="e", max_commands=257, lease_ttl_seconds=5
                ),
                metadata=md,
            ),
            "max_commands",
        ),
        (
            lambda: stub.ClaimCommands(
                spb.ClaimCommandsRequest(
                    scope=where, executor_id="e", max_commands=1, lease_ttl_seconds=3601
                ),
                metadata=md,
            ),
            "lease_ttl_seconds",
        ),
        (
            lambda: stub.ClaimCommands(
                spb.ClaimCommandsRequest(scope=where, max_commands=1, lease_ttl_seconds=5),
                metadata=md,
            ),
            "executor_id",
        ),
        (
            lambda: stub.RenewLeases(
                spb.RenewLeasesRequest(
                    executor_id="e",
                    leases=[spb.LeaseRef(interaction_id="i", epoch=0)],
                    ttl_seconds=5,
                ),
                metadata=md,
            ),
            "leases[0].epoch",
        ),
        (
            lambda: stub.ClaimJoins(
                spb.ClaimJoinsRequest(claimer_id="g", max_joins=1), metadata=md
            ),
            "lease_ttl_seconds",
        ),
        (
            lambda: stub.FindStalledSessions(
                spb.FindStalledSessionsRequest(idle_ms=0, limit=0), metadata=md
            ),
            "limit",
        ),
        (
            lambda: stub.FetchOutput(
                spb.FetchOutputRequest(scope=where, session_id="s", after_index=-2), metadata=md
            ),
            "after_index",
        ),
        (
            lambda: stub.FetchOutput(
                spb.FetchOutputRequest(scope=where, session_id="s", after_index=3), metadata=md
            ),
            "after_index",
        ),
        (
            lambda: stub.AppendOutput(
                spb.AppendOutputRequest(
                    scope=where,
                    session_id="s",
                    interaction_id="i",
                    parts=[spb.OutputPart(stream=pb.OutputStream.ValueType(9))],
                ),
                metadata=md,
            ),
            "parts[0].stream",
        ),
        (
            lambda: stub.PruneSessions(spb.PruneSessionsRequest(older_than_days=0), metadata=md),
            "older_than_days",
        ),
        (lambda: tokens.IssueToken(tpb.IssueTokenRequest(), metadata=md), "scope.account_id"),
        (
            lambda: tokens.IssueToken(
                tpb.IssueTokenRequest(scope=where, ttl_seconds=-1), metadata=md
            ),
            "ttl_seconds",
        ),
        (lambda: tokens.QueryTokens(tpb.QueryTokensRequest(), metadata=md), "account_id"),
        (lambda: tokens.RetireToken(tpb.RetireTokenRequest(), metadata=md), "token_id"),
        (
            lambda: stub.CancelSessionTree(
                spb.CancelSessionTreeRequest(scope=where, session_id="s", reason="a\x00b"),
                metadata=md,
            ),
            "reason",
        ),
        (
            lambda: stub.QuerySessions(
                spb.QuerySessionsRequest(
                    scope=where,
                    filter=pb.SessionFilter(created_after=timestamp_pb2.Timestamp(seconds=10**12)),
                ),
                metadata=md,
            ),
            "filter.created_after",
        ),
        (
            lambda: stub.QuerySessions(
                spb.QuerySessionsRequest(
                    scope=where, filter=pb.SessionFilter(types=[f"T{n}" for n in range(101)])
                ),
                metadata=md,
            ),
            "filter.types",
        ),
        (
            lambda: stub.PruneSessions(
                spb.PruneSessionsRequest(older_than_days=2**31 - 1), metadata=md
            ),
            "older_than_days",
        ),
        (
            lambda: stub.AppendInteraction(
                spb.AppendInteractionRequest(
                    scope=where,
                    session_id="s",
                    interaction=pending("S", capability="a\x00"),
                ),
                metadata=md,
            ),
            "interaction.required_capability",
        ),
    ]
    for call, field in calls:
        await _expect(call(), INVALID, field)


async def test_undecodable_requests_are_invalid_argument(
    sessions_service: SessionsUnderTest,
) -> None:
    channel = sessions_service.channels.get(sessions_service.address)
    raw: Any = channel.unary_unary("/specloom.v1.SessionsService/FetchSession")
    # A string field (session_id = 2) carrying invalid UTF-8.
    bad_utf8 = b"\x12\x02\xff\xfe"
    for payload in (b"\xff\xff\xff", bad_utf8):
        error = await failure(raw(payload, metadata=sessions_service.metadata))
        assert error.code() == INVALID


async def test_the_internal_secret_is_required(sessions_service: SessionsUnderTest) -> None:
    channel = sessions_service.channels.get(sessions_service.address)
    stub = SessionsServiceStub(channel)
    request = spb.FetchSessionRequest(scope=scope(), session_id="s")
    for metadata in ((), (("x-specloom-internal", "wrong"),)):
        error = await failure(stub.FetchSession(request, metadata=metadata))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    error = await failure(
        sessions_service.tokens.VerifyToken(tpb.VerifyTokenRequest(token="slm_a_b"))
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    # Health checks (Kubernetes probes) need no secret.
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "specloom.v1.SessionsService", "specloom.v1.TokensService"):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("field", ["account_id", "project_id"])
async def test_scope_parts_are_length_checked(
    sessions_service: SessionsUnderTest, field: str
) -> None:
    where = scope()
    setattr(where, field, "a" * 129)
    await _expect(
        sessions_service.stub.QuerySessions(
            spb.QuerySessionsRequest(scope=where), metadata=sessions_service.metadata
        ),
        INVALID,
        f"scope.{field}",
    )
