"""A repeated report whose first answer was lost still hands the executor its next command."""

from __future__ import annotations

from specloom.orchestration import orchestrator_service
from specloom.orchestration.simulate import report
from specloom.v1 import common_pb2 as pb
from specloom.v1 import orchestrator_pb2 as opb
from tests.fixtures.orchestrators import StartOrchestrator
from tests.orchestration.toy import REGISTRY

TOY = orchestrator_service("toy", "toy workflows", REGISTRY)
SCOPE = pb.Scope(account_id="acct-lost", project_id="p", user_id="u")


async def test_the_repeat_returns_the_command_already_leased_to_the_reporter(
    start_orchestrator: StartOrchestrator,
) -> None:
    orchestrator = await start_orchestrator(TOY)
    md = orchestrator.metadata
    opened = await orchestrator.stub.OpenSession(
        opb.OpenSessionRequest(scope=SCOPE, type="Build", execution_mode=pb.EXECUTION_MODE_AGENTIC),
        metadata=md,
    )
    first = opened.session.interactions[0]
    request = opb.ReportAndAdvanceRequest(
        scope=SCOPE,
        session_id=opened.session.id,
        interaction_id=first.id,
        result=report("ok"),
        lease_to_executor_id="exec-1",
        executor_capabilities=["shell"],
        lease_ttl_seconds=30,
    )
    answered = await orchestrator.stub.ReportAndAdvance(request, metadata=md)
    assert answered.interaction.lease.executor_id == "exec-1"
    # The answer was lost; the gateway sends the same report again.
    again = await orchestrator.stub.ReportAndAdvance(request, metadata=md)
    assert again.completed.id == first.id
    assert again.interaction.id == answered.interaction.id, "handed back, not lost for 30 s"
    # Without a lease offer (a person resubmitting), nothing is handed out.
    plain = opb.ReportAndAdvanceRequest()
    plain.CopyFrom(request)
    plain.ClearField("lease_to_executor_id")
    repeat = await orchestrator.stub.ReportAndAdvance(plain, metadata=md)
    assert not repeat.HasField("interaction")
    # Another executor repeating the report is not given someone else's command.
    other = opb.ReportAndAdvanceRequest()
    other.CopyFrom(request)
    other.lease_to_executor_id = "exec-2"
    stranger = await orchestrator.stub.ReportAndAdvance(other, metadata=md)
    assert not stranger.HasField("interaction")
