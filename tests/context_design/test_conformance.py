"""The Orchestrator conformance kit against the context_design service.

ContextDesign is the scenario: its ValidateDesign ⇄ ReviseDesign loop is the
capped loop, and a failure is a design with a different problem each time.
"""

from __future__ import annotations

import json

import pytest

from specloom.orchestration.conformance import (
    ConformanceScenario,
    OrchestratorConformance,
    OrchestratorUnderTest,
)
from specloom.orchestration.simulate import report
from specloom.v1 import common_pb2 as pb
from specloom_context_design.service import SERVICE
from tests.documents.samples import VALID_CONTEXT, component, context_with_components
from tests.fixtures.orchestrators import StartOrchestrator


def _ok(interaction: pb.Interaction, session: pb.Session) -> pb.Result:
    command = interaction.command
    kind = command.WhichOneof("kind")
    if kind == "noop":
        return report("ok", files={command.collect_files[0]: VALID_CONTEXT})
    if kind == "agent":
        # An agent that wrote the document it was asked for (v2 checks it exists).
        written = {path: VALID_CONTEXT for path in command.collect_files}
        return report("ok", data={"conversation_id": f"conv-{interaction.seq}"}, files=written)
    if kind == "shell":
        # The Scaffold runner's report: nothing to create, nothing wrong.
        return report("ok", stdout=json.dumps({"created": [], "failed": None}))
    return report("ok", stdout=f"{interaction.step} done", data={"commit": "c0ffee"})


def _fail(interaction: pb.Interaction, session: pb.Session, n: int) -> pb.Result:
    design = context_with_components(component(f"Stock{n}"))
    return report("ok", files={interaction.command.collect_files[0]: design})


class TestContextDesignConformance(OrchestratorConformance):
    @pytest.fixture
    async def orchestrator(self, start_orchestrator: StartOrchestrator) -> OrchestratorUnderTest:
        return await start_orchestrator(SERVICE)

    @pytest.fixture
    def scenario(self) -> ConformanceScenario:
        return ConformanceScenario(
            session_type="ContextDesign",
            params={"context": "Inventory"},
            loop_step="ValidateDesign",
            ok=_ok,
            fail=_fail,
        )
