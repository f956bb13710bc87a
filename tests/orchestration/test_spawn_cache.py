"""Children come back from their spawn with their first step: no read per child."""

from __future__ import annotations

from prometheus_client import REGISTRY as METRICS

from specloom.orchestration import orchestrator_service
from specloom.orchestration.simulate import report
from specloom.protoconv import dict_to_struct
from specloom.v1 import common_pb2 as pb
from specloom.v1 import orchestrator_pb2 as opb
from specloom.v1 import sessions_pb2 as spb
from tests.fixtures.orchestrators import StartOrchestrator
from tests.orchestration.toy import REGISTRY

TOY = orchestrator_service("toy", "toy workflows", REGISTRY)
SCOPE = pb.Scope(account_id="acct-spawn", project_id="p", user_id="u")


def _head_reads() -> float:
    # Sessions runs in this process (the fixture), so its RPC counters are here.
    value = METRICS.get_sample_value(
        "specloom_rpc_handled_total",
        {"service": "SessionsService", "method": "FetchSession", "code": "OK"},
    )
    return value or 0.0


async def test_a_spawning_orchestrator_reads_no_child_before_its_first_result(
    start_orchestrator: StartOrchestrator,
) -> None:
    orchestrator = await start_orchestrator(TOY)
    md = orchestrator.metadata
    params = dict_to_struct({"parts": ["a", "b", "c"]})
    opened = await orchestrator.stub.OpenSession(
        opb.OpenSessionRequest(
            scope=SCOPE, type="Tree", params=params, execution_mode=pb.EXECUTION_MODE_AGENTIC
        ),
        metadata=md,
    )
    spawned = await orchestrator.stub.ReportAndAdvance(
        opb.ReportAndAdvanceRequest(
            scope=SCOPE,
            session_id=opened.session.id,
            interaction_id=opened.session.interactions[0].id,
            result=report("ok"),
        ),
        metadata=md,
    )
    child_ids = list(spawned.interaction.command.spawn_children.child_session_ids)
    assert len(child_ids) == 3
    # The ids of the children's first steps, read straight from Sessions
    # (not counted: the count below is of the orchestrator's reads only).
    firsts = {}
    for child_id in child_ids:
        child = await orchestrator.sessions.FetchSession(
            spb.FetchSessionRequest(
                scope=SCOPE, session_id=child_id, view=pb.INTERACTION_VIEW_LAST
            ),
            metadata=md,
        )
        firsts[child_id] = child.session.interactions[0].id

    before = _head_reads()
    for child_id, first in firsts.items():
        done = await orchestrator.stub.ReportAndAdvance(
            opb.ReportAndAdvanceRequest(
                scope=SCOPE, session_id=child_id, interaction_id=first, result=report("ok")
            ),
            metadata=md,
        )
        assert done.completed.id == first
        assert done.session.status == pb.SESSION_STATUS_COMPLETE
    assert _head_reads() == before, "the orchestrator read a child it had just spawned"

    # A fresh orchestrator (nothing cached) reads the head, and still decides right.
    stub = await orchestrator.restart()
    again = await stub.ReportAndAdvance(
        opb.ReportAndAdvanceRequest(
            scope=SCOPE,
            session_id=child_ids[0],
            interaction_id=firsts[child_ids[0]],
            result=report("ok"),
        ),
        metadata=md,
    )
    assert again.completed.id == firsts[child_ids[0]]  # an exact repeat: a replay
    assert _head_reads() > before
