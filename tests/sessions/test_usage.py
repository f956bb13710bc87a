"""AI usage: each recorded result adds to its session; totals sum a subtree at read time."""

from __future__ import annotations

import grpc
import pytest
from prometheus_client import REGISTRY

from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb
from tests.fixtures.sessions_server import SessionsUnderTest
from tests.sessions.helpers import create, failure, fetch, pending, scope, step


def agent_ok(tokens_in: int, tokens_out: int, cost: float, *, unpriced: bool = False) -> pb.Result:
    result = pb.Result(status=pb.RESULT_STATUS_OK, stdout="done")
    result.usage.CopyFrom(
        pb.Usage(
            model="claude-sonnet-4-5",
            models=[
                pb.ModelUsage(
                    model="claude-sonnet-4-5",
                    input_tokens=tokens_in,
                    output_tokens=tokens_out,
                    cost_usd=cost,
                    priced=not unpriced,
                )
            ],
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cache_creation_input_tokens=7,
            cache_read_input_tokens=11,
            cost_usd=cost,
            turns=3,
            duration_ms=1500,
            retries=1,
            agent_steps=1,
            unpriced_steps=1 if unpriced else 0,
        )
    )
    return result


async def total_of(service: SessionsUnderTest, where: pb.Scope, session_id: str) -> pb.Session:
    response = await service.stub.FetchSession(
        spb.FetchSessionRequest(
            scope=where,
            session_id=session_id,
            view=pb.INTERACTION_VIEW_NONE,
            include_total_usage=True,
        ),
        metadata=service.metadata,
    )
    return response.session


async def test_results_add_to_their_session_and_totals_sum_the_subtree(
    sessions_service: SessionsUnderTest,
) -> None:
    where = scope()
    parent = await create(sessions_service, where, mode=pb.EXECUTION_MODE_AGENTIC)
    await step(sessions_service, where, parent, agent_ok(100, 10, 0.25), next_step=pending("B"))
    await step(sessions_service, where, parent, agent_ok(50, 5, 0.125))
    child = await create(sessions_service, where, parent_id=parent.id, key="c1", type="Leaf")
    grandchild = await create(sessions_service, where, parent_id=child.id, key="g1", type="Leaf")
    await step(sessions_service, where, child, agent_ok(1000, 100, 1.0, unpriced=True))
    await step(sessions_service, where, grandchild, agent_ok(1, 1, 0.000001))
    # A non-agent result adds nothing.
    other = await create(sessions_service, where, parent_id=parent.id, key="c2", type="Leaf")
    await step(sessions_service, where, other, pb.Result(status=pb.RESULT_STATUS_OK))

    own = (await fetch(sessions_service, where, parent.id, pb.INTERACTION_VIEW_NONE)).usage
    assert (own.input_tokens, own.output_tokens, own.agent_steps) == (150, 15, 2)
    assert own.cost_usd == pytest.approx(0.375)
    assert (own.turns, own.duration_ms, own.retries) == (6, 3000, 2)
    assert (own.cache_creation_input_tokens, own.cache_read_input_tokens) == (14, 22)

    head = await total_of(sessions_service, where, parent.id)
    total = head.total_usage
    assert (total.input_tokens, total.output_tokens) == (1151, 116)
    assert total.agent_steps == 4
    assert total.unpriced_steps == 1
    assert total.cost_usd == pytest.approx(1.375001)
    assert head.usage == own  # the session's own usage is unchanged by the sum
    assert not (await fetch(sessions_service, where, other.id)).HasField("usage")
    # Only one-session reads that ask get the total.
    assert not (await fetch(sessions_service, where, parent.id)).HasField("total_usage")
    leaf = await total_of(sessions_service, where, grandchild.id)
    assert leaf.total_usage.input_tokens == 1


def tokens_counted(model: str, kind: str) -> float:
    value = REGISTRY.get_sample_value("specloom_agent_tokens_total", {"model": model, "kind": kind})
    return value or 0.0


async def test_a_replayed_result_adds_nothing(sessions_service: SessionsUnderTest) -> None:
    before = tokens_counted("claude-sonnet-4-5", "input")
    where = scope()
    session = await create(sessions_service, where)
    first = session.interactions[0]
    result = agent_ok(100, 10, 0.5)
    request = spb.CompleteInteractionRequest(
        scope=where, session_id=session.id, interaction_id=first.id, result=result
    )
    done = await sessions_service.stub.CompleteInteraction(
        request, metadata=sessions_service.metadata
    )
    again = await sessions_service.stub.CompleteInteraction(
        request, metadata=sessions_service.metadata
    )
    assert not done.replayed
    assert again.replayed
    usage = (await fetch(sessions_service, where, session.id)).usage
    assert (usage.input_tokens, usage.agent_steps) == (100, 1)
    # Prometheus counted the step once (the replay is not counted).
    assert tokens_counted("claude-sonnet-4-5", "input") - before == 100


async def test_batched_steps_add_usage_too(sessions_service: SessionsUnderTest) -> None:
    # AdvanceSessions runs as pipelined statements on PostgreSQL: the same
    # guard adds the usage there.
    where = scope()
    sessions = [await create(sessions_service, where) for _ in range(3)]
    items = []
    for n, session in enumerate(sessions, 1):
        items.append(
            spb.AdvanceSessionRequest(
                scope=where,
                session_id=session.id,
                expected_version=session.version,
                complete=spb.CompletePart(
                    interaction_id=session.interactions[0].id, result=agent_ok(n * 10, n, 0.5)
                ),
            )
        )
    response = await sessions_service.stub.AdvanceSessions(
        spb.AdvanceSessionsRequest(items=items), metadata=sessions_service.metadata
    )
    assert all(o.WhichOneof("outcome") == "response" for o in response.outcomes)
    for n, session in enumerate(sessions, 1):
        usage = (await fetch(sessions_service, where, session.id)).usage
        assert (usage.input_tokens, usage.output_tokens) == (n * 10, n)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("input_tokens", -1, "usage.input_tokens must be between 0"),
        ("cost_usd", float("nan"), "usage.cost_usd must be a finite amount"),
        ("cost_usd", -0.5, "usage.cost_usd must be a finite amount"),
        ("turns", 10**13, "usage.turns must be between 0"),
    ],
)
async def test_bad_usage_is_refused_naming_the_field(
    sessions_service: SessionsUnderTest, field: str, value: float, message: str
) -> None:
    where = scope()
    session = await create(sessions_service, where)
    result = agent_ok(1, 1, 0.0)
    setattr(result.usage, field, value)
    call = sessions_service.stub.CompleteInteraction(
        spb.CompleteInteractionRequest(
            scope=where,
            session_id=session.id,
            interaction_id=session.interactions[0].id,
            result=result,
        ),
        metadata=sessions_service.metadata,
    )
    refused = await failure(call)
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (refused.details() or "")
    assert not (await fetch(sessions_service, where, session.id)).HasField("usage")
