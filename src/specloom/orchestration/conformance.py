"""The Orchestrator conformance kit: one suite every orchestrator service passes.

Like langgraph's checkpoint conformance tests: a service's test module
subclasses :class:`OrchestratorConformance` and provides two fixtures —

* ``orchestrator``: an :class:`OrchestratorUnderTest` (the service's real
  gRPC server on a loopback port, talking to a real Sessions service, and a
  way to restart it);
* ``scenario``: a :class:`ConformanceScenario` (a session type it serves,
  its params, a step whose ERROR loops, and how to report OK or a failure
  for any step of it).

Every test drives the service only through the proto, so what passes here
holds for any implementation of OrchestratorService.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from specloom.ids import new_id
from specloom.protoconv import JsonValue, dict_to_struct
from specloom.v1 import common_pb2 as pb
from specloom.v1 import orchestrator_pb2 as opb
from specloom.v1 import sessions_pb2 as spb

if TYPE_CHECKING:
    # Async stub types exist only in the generated .pyi files.
    from specloom.v1.orchestrator_pb2_grpc import OrchestratorServiceAsyncStub
    from specloom.v1.sessions_pb2_grpc import SessionsServiceAsyncStub

Reporter = Callable[[pb.Interaction, pb.Session], pb.Result]


@dataclass
class OrchestratorUnderTest:
    """A running orchestrator service and what the kit needs around it."""

    stub: OrchestratorServiceAsyncStub
    sessions: SessionsServiceAsyncStub
    metadata: Sequence[tuple[str, str]]
    restart: Callable[[], Awaitable[OrchestratorServiceAsyncStub]]
    """Stop the orchestrator and start a fresh one (empty caches) on the same
    database; returns the new stub."""


@dataclass
class ConformanceScenario:
    """How to drive one session type of the service under test."""

    session_type: str
    params: Mapping[str, JsonValue]
    loop_step: str
    """A step whose ERROR leads into a revise/fix loop with the default cap."""
    ok: Reporter
    """A report that makes any step of the workflow pass."""
    fail: Callable[[pb.Interaction, pb.Session, int], pb.Result]
    """A report that makes ``loop_step`` fail; different ``n`` give different failures."""
    default_cap: int = 3
    extra: Mapping[str, Any] = field(default_factory=dict)


def _scope() -> pb.Scope:
    return pb.Scope(account_id=f"acct-{new_id()[:8]}", project_id="conformance", user_id="kit")


class OrchestratorConformance:
    """The suite. Subclass it in a test module that provides the two fixtures."""

    # -- helpers --------------------------------------------------------------------

    @staticmethod
    async def _open(
        o: OrchestratorUnderTest, s: ConformanceScenario, scope: pb.Scope
    ) -> pb.Session:
        params = dict_to_struct(dict(s.params))
        response = await o.stub.OpenSession(
            opb.OpenSessionRequest(
                scope=scope,
                type=s.session_type,
                execution_mode=pb.EXECUTION_MODE_MANUAL,
                params=params,
            ),
            metadata=o.metadata,
        )
        return response.session

    @staticmethod
    async def _next(
        o: OrchestratorUnderTest, scope: pb.Scope, session_id: str
    ) -> opb.NextStepResponse:
        return await o.stub.NextStep(
            opb.NextStepRequest(scope=scope, session_id=session_id), metadata=o.metadata
        )

    @staticmethod
    async def _history(o: OrchestratorUnderTest, scope: pb.Scope, session_id: str) -> pb.Session:
        response = await o.sessions.FetchSession(
            spb.FetchSessionRequest(
                scope=scope, session_id=session_id, view=pb.INTERACTION_VIEW_ALL
            ),
            metadata=o.metadata,
        )
        return response.session

    async def _drive_to(
        self,
        o: OrchestratorUnderTest,
        s: ConformanceScenario,
        scope: pb.Scope,
        session: pb.Session,
        step: str,
        limit: int = 30,
    ) -> pb.Interaction:
        """Report OK until ``step`` is the pending interaction."""
        for _ in range(limit):
            response = await self._next(o, scope, session.id)
            assert response.HasField("interaction"), f"session ended before {step}"
            interaction = response.interaction
            if interaction.step == step:
                return interaction
            await o.stub.ReportAndAdvance(
                opb.ReportAndAdvanceRequest(
                    scope=scope,
                    session_id=session.id,
                    interaction_id=interaction.id,
                    result=s.ok(interaction, response.session),
                ),
                metadata=o.metadata,
            )
        raise AssertionError(f"{step} not reached within {limit} steps")

    async def _report(
        self,
        o: OrchestratorUnderTest,
        scope: pb.Scope,
        session_id: str,
        interaction: pb.Interaction,
        result: pb.Result,
    ) -> opb.ReportAndAdvanceResponse:
        return await o.stub.ReportAndAdvance(
            opb.ReportAndAdvanceRequest(
                scope=scope,
                session_id=session_id,
                interaction_id=interaction.id,
                result=result,
            ),
            metadata=o.metadata,
        )

    # -- the suite --------------------------------------------------------------------

    async def test_describe_lists_the_type_and_its_steps(
        self, orchestrator: OrchestratorUnderTest, scenario: ConformanceScenario
    ) -> None:
        described = await orchestrator.stub.Describe(
            opb.DescribeRequest(), metadata=orchestrator.metadata
        )
        types = {w.type: w for w in described.workflows}
        assert scenario.session_type in types
        workflow = types[scenario.session_type]
        assert workflow.version >= 1
        assert scenario.loop_step in {step.name for step in workflow.steps}

    async def test_open_records_the_definition_version(
        self, orchestrator: OrchestratorUnderTest, scenario: ConformanceScenario
    ) -> None:
        scope = _scope()
        session = await self._open(orchestrator, scenario, scope)
        described = await orchestrator.stub.Describe(
            opb.DescribeRequest(), metadata=orchestrator.metadata
        )
        version = {w.type: w.version for w in described.workflows}[scenario.session_type]
        assert session.definition_version == version
        assert session.status == pb.SESSION_STATUS_ACTIVE
        assert len(session.interactions) == 1

    async def test_unknown_type_is_invalid_argument(
        self, orchestrator: OrchestratorUnderTest
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await orchestrator.stub.OpenSession(
                opb.OpenSessionRequest(scope=_scope(), type="NoSuchWorkflow"),
                metadata=orchestrator.metadata,
            )
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "NoSuchWorkflow" in (info.value.details() or "")

    async def test_next_step_is_idempotent(
        self, orchestrator: OrchestratorUnderTest, scenario: ConformanceScenario
    ) -> None:
        scope = _scope()
        session = await self._open(orchestrator, scenario, scope)
        first = await self._next(orchestrator, scope, session.id)
        again = await self._next(orchestrator, scope, session.id)
        assert first.interaction.id == again.interaction.id
        history = await self._history(orchestrator, scope, session.id)
        assert len(history.interactions) == 1

    async def test_results_only_for_the_pending_interaction(
        self, orchestrator: OrchestratorUnderTest, scenario: ConformanceScenario
    ) -> None:
        scope = _scope()
        session = await self._open(orchestrator, scenario, scope)
        pending = (await self._next(orchestrator, scope, session.id)).interaction
        ok = scenario.ok(pending, session)
        stray = pb.Interaction()
        stray.CopyFrom(pending)
        stray.id = new_id()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await self._report(orchestrator, scope, session.id, stray, ok)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND

        accepted = await self._report(orchestrator, scope, session.id, pending, ok)
        assert accepted.completed.id == pending.id
        # The same result again is a no-op; nothing new is written.
        before = await self._history(orchestrator, scope, session.id)
        repeat = await self._report(orchestrator, scope, session.id, pending, ok)
        assert repeat.completed.id == pending.id
        assert not repeat.HasField("interaction")
        after = await self._history(orchestrator, scope, session.id)
        assert after.version == before.version
        # A different result for a completed interaction is refused.
        different = pb.Result()
        different.CopyFrom(ok)
        different.stdout = ok.stdout + "\n(a different report)"
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await self._report(orchestrator, scope, session.id, pending, different)
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    async def test_caps_are_honoured_and_resume_restarts_the_count(
        self, orchestrator: OrchestratorUnderTest, scenario: ConformanceScenario
    ) -> None:
        scope = _scope()
        session = await self._open(orchestrator, scenario, scope)
        pending = await self._drive_to(orchestrator, scenario, scope, session, scenario.loop_step)
        failures = 0
        status: int = pb.SESSION_STATUS_ACTIVE
        while failures <= scenario.default_cap + 1:
            failures += 1
            response = await self._report(
                orchestrator, scope, session.id, pending, scenario.fail(pending, session, failures)
            )
            if response.HasField("done"):
                status = response.done.status
                break
            # Through the revise/fix step(s) back to the loop step.
            pending = response.interaction
            while pending.step != scenario.loop_step:
                response = await self._report(
                    orchestrator, scope, session.id, pending, scenario.ok(pending, session)
                )
                pending = response.interaction
        assert status == pb.SESSION_STATUS_FAILED
        assert failures == scenario.default_cap + 1
        failed = await self._history(orchestrator, scope, session.id)
        assert str(scenario.default_cap) in failed.status_reason

        steered = await orchestrator.stub.SteerSession(
            opb.SteerSessionRequest(
                scope=scope, session_id=session.id, action=pb.CONTROL_ACTION_RESUME
            ),
            metadata=orchestrator.metadata,
        )
        assert steered.session.status == pb.SESSION_STATUS_ACTIVE
        assert steered.HasField("interaction"), "resume issues the next command"
        # The count restarted: one more failure does not end the session.
        pending = steered.interaction
        while pending.step != scenario.loop_step:
            pending = (
                await self._report(
                    orchestrator, scope, session.id, pending, scenario.ok(pending, session)
                )
            ).interaction
        response = await self._report(
            orchestrator, scope, session.id, pending, scenario.fail(pending, session, 99)
        )
        assert response.HasField("interaction")

    async def test_the_same_failure_twice_is_stuck(
        self, orchestrator: OrchestratorUnderTest, scenario: ConformanceScenario
    ) -> None:
        scope = _scope()
        session = await self._open(orchestrator, scenario, scope)
        pending = await self._drive_to(orchestrator, scenario, scope, session, scenario.loop_step)
        response = await self._report(
            orchestrator, scope, session.id, pending, scenario.fail(pending, session, 1)
        )
        pending = response.interaction
        while pending.step != scenario.loop_step:
            pending = (
                await self._report(
                    orchestrator, scope, session.id, pending, scenario.ok(pending, session)
                )
            ).interaction
        response = await self._report(
            orchestrator, scope, session.id, pending, scenario.fail(pending, session, 1)
        )
        assert response.HasField("done")
        assert response.done.status == pb.SESSION_STATUS_FAILED
        assert "stuck" in response.done.reason

    async def test_cancelled_sessions_are_refused(
        self, orchestrator: OrchestratorUnderTest, scenario: ConformanceScenario
    ) -> None:
        scope = _scope()
        session = await self._open(orchestrator, scenario, scope)
        pending = (await self._next(orchestrator, scope, session.id)).interaction
        await orchestrator.sessions.CancelSessionTree(
            spb.CancelSessionTreeRequest(scope=scope, session_id=session.id, reason="kit"),
            metadata=orchestrator.metadata,
        )
        done = await self._next(orchestrator, scope, session.id)
        assert done.HasField("done")
        assert done.done.status == pb.SESSION_STATUS_CANCELLED
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await self._report(
                orchestrator, scope, session.id, pending, scenario.ok(pending, session)
            )
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    async def test_restart_mid_session_resumes_from_the_database(
        self, orchestrator: OrchestratorUnderTest, scenario: ConformanceScenario
    ) -> None:
        scope = _scope()
        session = await self._open(orchestrator, scenario, scope)
        pending = await self._drive_to(orchestrator, scenario, scope, session, scenario.loop_step)
        stub = await orchestrator.restart()
        orchestrator.stub = stub
        again = await self._next(orchestrator, scope, session.id)
        assert again.interaction.id == pending.id
        # And it carries on to the end from where it was.
        response = await self._report(
            orchestrator, scope, session.id, pending, scenario.ok(pending, session)
        )
        for _ in range(30):
            if response.HasField("done"):
                break
            response = await self._report(
                orchestrator,
                scope,
                session.id,
                response.interaction,
                scenario.ok(response.interaction, session),
            )
        assert response.done.status == pb.SESSION_STATUS_COMPLETE

    async def test_concurrent_results_have_one_winner(
        self, orchestrator: OrchestratorUnderTest, scenario: ConformanceScenario
    ) -> None:
        scope = _scope()
        session = await self._open(orchestrator, scenario, scope)
        pending = await self._drive_to(orchestrator, scenario, scope, session, scenario.loop_step)
        good = scenario.ok(pending, session)
        bad = scenario.fail(pending, session, 1)
        outcomes = await asyncio.gather(
            *(
                orchestrator.stub.HandleResult(
                    opb.HandleResultRequest(
                        scope=scope, session_id=session.id, interaction_id=pending.id, result=r
                    ),
                    metadata=orchestrator.metadata,
                )
                for r in (good, bad, good, bad)
            ),
            return_exceptions=True,
        )
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        wins = [o for o in outcomes if not isinstance(o, BaseException)]
        assert wins, f"no report was accepted: {errors}"
        for error in errors:
            assert isinstance(error, grpc.aio.AioRpcError)
            assert error.code() in (grpc.StatusCode.ABORTED, grpc.StatusCode.FAILED_PRECONDITION)
        history = await self._history(orchestrator, scope, session.id)
        recorded = [i for i in history.interactions if i.id == pending.id]
        assert len(recorded) == 1
        assert recorded[0].status == pb.INTERACTION_STATUS_COMPLETED
        # Every accepted call saw the same, single recorded result.
        assert {w.interaction.result.SerializeToString(deterministic=True) for w in wins} == {
            recorded[0].result.SerializeToString(deterministic=True)
        }

    async def test_runs_to_completion_with_the_fused_call(
        self, orchestrator: OrchestratorUnderTest, scenario: ConformanceScenario
    ) -> None:
        scope = _scope()
        session = await self._open(orchestrator, scenario, scope)
        response = await self._next(orchestrator, scope, session.id)
        pending = response.interaction
        steps = 0
        while True:
            steps += 1
            assert steps < 50, "did not complete"
            reported = await self._report(
                orchestrator, scope, session.id, pending, scenario.ok(pending, session)
            )
            if reported.HasField("done"):
                assert reported.done.status == pb.SESSION_STATUS_COMPLETE
                break
            pending = reported.interaction
        history = await self._history(orchestrator, scope, session.id)
        assert history.status == pb.SESSION_STATUS_COMPLETE
        assert all(i.status == pb.INTERACTION_STATUS_COMPLETED for i in history.interactions)
        assert [i.seq for i in history.interactions] == list(
            range(1, len(history.interactions) + 1)
        )

    async def test_reports_of_many_sessions_in_one_call(
        self, orchestrator: OrchestratorUnderTest, scenario: ConformanceScenario
    ) -> None:
        scope = _scope()
        sessions = [await self._open(orchestrator, scenario, scope) for _ in range(4)]
        items = []
        for session in sessions:
            pending = (await self._next(orchestrator, scope, session.id)).interaction
            items.append(
                opb.ReportAndAdvanceRequest(
                    scope=scope,
                    session_id=session.id,
                    interaction_id=pending.id,
                    result=scenario.ok(pending, session),
                )
            )
        stray = opb.ReportAndAdvanceRequest()
        stray.CopyFrom(items[0])
        stray.interaction_id = new_id()
        response = await orchestrator.stub.ReportAndAdvanceMany(
            opb.ReportAndAdvanceManyRequest(items=[*items, stray]), metadata=orchestrator.metadata
        )
        kinds = [outcome.WhichOneof("outcome") for outcome in response.outcomes]
        assert kinds == ["response"] * 4 + ["error"]
        assert response.outcomes[4].error.code == "NOT_FOUND"
        for session, item, outcome in zip(sessions, items, response.outcomes, strict=False):
            assert outcome.response.completed.id == item.interaction_id
            history = await self._history(orchestrator, scope, session.id)
            recorded = [i for i in history.interactions if i.id == item.interaction_id]
            assert recorded[0].status == pb.INTERACTION_STATUS_COMPLETED
