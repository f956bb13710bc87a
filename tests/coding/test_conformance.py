"""The Orchestrator conformance kit against the coding service (SQLite and PostgreSQL).

ComponentCoding is the scenario: RunTests ⇄ FixTestFailures is the capped
loop, and a failure is a JUnit report whose failing test says something
different each time (so stuck detection does not end the loop early).
"""

from __future__ import annotations

import pytest

from specloom.orchestration.conformance import (
    ConformanceScenario,
    OrchestratorConformance,
    OrchestratorUnderTest,
)
from specloom.orchestration.simulate import report
from specloom.v1 import common_pb2 as pb
from specloom_coding.service import SERVICE
from tests.coding.executor_double import COMPONENT_DESIGN, failing, junit, passing
from tests.fixtures.orchestrators import StartOrchestrator

CLASSNAME = "tests.inventory.stock_test"
TEST_FILE = "tests/inventory/stock_test.py"


def _files(command: pb.Command) -> dict[str, str | bytes | None]:
    files: dict[str, str | bytes | None] = {}
    for path in command.collect_files:
        if path.endswith(".md") and "*" not in path:
            files[path] = COMPONENT_DESIGN.format(module="inventory.stock")
        elif "*" in path:
            files[path] = None
        else:
            files[path] = f"# {command.step} wrote {path}\n"
    return files


def _ok(interaction: pb.Interaction, session: pb.Session) -> pb.Result:
    command = interaction.command
    kind = command.WhichOneof("kind")
    if kind == "shell":
        (path,) = command.collect_files
        return report("ok", files={path: junit(passing(), CLASSNAME, TEST_FILE)})
    if kind == "agent":
        return report(
            "ok", files=_files(command), data={"conversation_id": f"conv-{interaction.seq}"}
        )
    return report("ok", files=_files(command), data={"commit": "c0ffee", "branch": "b"})


def _fail(interaction: pb.Interaction, session: pb.Session, n: int) -> pb.Result:
    (path,) = interaction.command.collect_files
    run = failing({"test_receive_adds": f"AssertionError: assert {n} == 5"})
    return report("ok", files={path: junit(run, CLASSNAME, TEST_FILE)}, exit_code=1)


class TestCodingConformance(OrchestratorConformance):
    @pytest.fixture
    async def orchestrator(self, start_orchestrator: StartOrchestrator) -> OrchestratorUnderTest:
        return await start_orchestrator(SERVICE)

    @pytest.fixture
    def scenario(self) -> ConformanceScenario:
        return ConformanceScenario(
            session_type="ComponentCoding",
            params={"component": "inventory.stock", "context": "inventory"},
            loop_step="RunTests",
            ok=_ok,
            fail=_fail,
        )
