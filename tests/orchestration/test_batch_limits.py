"""Batches that do not fit in a message: each item gets its own truthful answer.

Twenty reports whose writes are small but whose sessions are large leave
the orchestrator in one AdvanceSessions batch; Sessions' answer (every
session head, params included) is more than one message carries. That says
nothing about any one write (and a write refused for its size fails its
session), so the items past what fits are answered ABORTED — recorded, ask
again — and their repeats get their answers alone.
"""

from __future__ import annotations

import logging

import pytest

from specloom.orchestration import orchestrator_service
from specloom.orchestration.simulate import report
from specloom.v1 import common_pb2 as pb
from specloom.v1 import orchestrator_pb2 as opb
from specloom.v1 import sessions_pb2 as spb
from tests.fixtures.orchestrators import StartOrchestrator
from tests.orchestration.toy import REGISTRY

TOY = orchestrator_service("toy", "toy workflows", REGISTRY)
SCOPE = pb.Scope(account_id="acct-batch", project_id="p", user_id="u")
MIB = 1024 * 1024


async def test_a_batch_whose_answer_is_too_large_is_sent_again_item_by_item(
    start_orchestrator: StartOrchestrator, caplog: pytest.LogCaptureFixture
) -> None:
    orchestrator = await start_orchestrator(TOY)
    md = orchestrator.metadata
    items = []
    for n in range(20):
        params = {"parts": [f"{n}" + "x" * (9 * MIB // 10)]}  # under the 1 MiB params cap
        request = opb.OpenSessionRequest(
            scope=SCOPE, type="Build", execution_mode=pb.EXECUTION_MODE_AGENTIC
        )
        request.params.update(params)
        opened = await orchestrator.stub.OpenSession(request, metadata=md)
        items.append(
            opb.ReportAndAdvanceRequest(
                scope=SCOPE,
                session_id=opened.session.id,
                interaction_id=opened.session.interactions[0].id,
                result=report("ok"),
                lease_to_executor_id="exec-1",
                executor_capabilities=["shell"],
                lease_ttl_seconds=30,
            )
        )
    many = await orchestrator.stub.ReportAndAdvanceMany(
        opb.ReportAndAdvanceManyRequest(items=items), metadata=md
    )
    answered = [o for o in many.outcomes if o.HasField("response")]
    left_out = [i for i, o in zip(items, many.outcomes, strict=True) if o.HasField("error")]
    # What fits in the answer is answered; the rest was recorded and says so.
    assert answered
    assert left_out
    for outcome in many.outcomes:
        if outcome.HasField("error"):
            assert outcome.error.code == "ABORTED"
            assert "recorded, but its answer did not fit" in outcome.error.message
    assert sum(o.ByteSize() for o in many.outcomes) < 16 * MIB
    # Sent again alone (what a gateway's executor does), each is an exact
    # repeat and gets its answer.
    for item in left_out:
        again = await orchestrator.stub.ReportAndAdvance(item, metadata=md)
        answered.append(opb.ReportAndAdvanceOutcome(response=again))
    assert [o.response.completed.step for o in answered] == ["Compile"] * 20
    assert [o.response.interaction.step for o in answered] == ["Test"] * 20
    for item in items:
        fetched = await orchestrator.sessions.FetchSession(
            spb.FetchSessionRequest(
                scope=SCOPE, session_id=item.session_id, view=pb.INTERACTION_VIEW_ALL
            ),
            metadata=md,
        )
        assert [i.step for i in fetched.session.interactions] == ["Compile", "Test"]
    # Nothing failed mid-send (grpc logs that as an error of the servicer).
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.records
