"""The conformance kit run against the toy registry: the kit checks itself.

If a kit test passed against any implementation, it would prove nothing;
running it against the reference servicer with a workflow whose behaviour
is pinned by the engine tests shows each kit test exercises real behaviour.
"""

from __future__ import annotations

import pytest

from specloom.orchestration import orchestrator_service
from specloom.orchestration.conformance import (
    ConformanceScenario,
    OrchestratorConformance,
    OrchestratorUnderTest,
)
from specloom.orchestration.simulate import report
from specloom.v1 import common_pb2 as pb
from tests.fixtures.orchestrators import StartOrchestrator
from tests.orchestration.toy import REGISTRY

TOY = orchestrator_service("toy", "toy workflows for the kit's self-test", REGISTRY)


def _ok(interaction: pb.Interaction, session: pb.Session) -> pb.Result:
    return report("ok", stdout=f"{interaction.step} done")


def _fail(interaction: pb.Interaction, session: pb.Session, n: int) -> pb.Result:
    return report("error", data={"fingerprint": f"failure-{n}"}, error=f"failure {n}")


class TestToyConformance(OrchestratorConformance):
    @pytest.fixture
    async def orchestrator(self, start_orchestrator: StartOrchestrator) -> OrchestratorUnderTest:
        return await start_orchestrator(TOY)

    @pytest.fixture
    def scenario(self) -> ConformanceScenario:
        return ConformanceScenario(
            session_type="Build", params={}, loop_step="Test", ok=_ok, fail=_fail
        )
