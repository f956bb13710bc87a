"""Tests first, then code, for real: the coding service over gRPC, a real executor.

The coding orchestrator runs as a real gRPC server against the Sessions
service; every command it issues is carried out by the executor engine in a
temporary git repository: real git operations, real pytest runs, and agent
edits replayed by the scripted backend (which says so in every result).
ComponentTest writes the tests and shows they fail; ComponentCoding then
implements the component, fails once, is fixed in the same conversation, and
ends with a commit that holds exactly the component's files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from specloom.agent.backends.scripted import ScriptedBackend
from specloom.agent.executor import Executor, ExecutorOptions
from specloom.agent.workspace import Workspace
from specloom.orchestration.conformance import OrchestratorUnderTest
from specloom.protoconv import dict_to_struct, struct_to_dict
from specloom.v1 import common_pb2 as pb
from specloom.v1 import orchestrator_pb2 as opb
from specloom.v1 import sessions_pb2 as spb
from specloom_coding.service import SERVICE
from specloom_coding.state import CodingState
from tests.fixtures.orchestrators import StartOrchestrator

DESIGN = """\
# inventory.stock

## Purpose
Keeps the units on hand per product.

## Public API
- `level(product) -> int`
- `receive(product, units) -> int`: the new level.

## Execution Flow
1. A new product has level 0.
2. Receiving units adds them to the level.

## Test Assertions
- a new product has level 0
- receiving units raises the level by that many
"""

TESTS = """\
import importlib

import pytest


@pytest.fixture
def stock():
    module = importlib.import_module("inventory.stock")
    module.reset()
    return module


def test_a_new_product_has_level_zero(stock):
    assert stock.level("apple") == 0


def test_receiving_units_raises_the_level(stock):
    assert stock.receive("apple", 5) == 5
    assert stock.level("apple") == 5
"""

BUGGY = """\
_levels: dict[str, int] = {}


def reset() -> None:
    _levels.clear()


def level(product: str) -> int:
    return _levels.get(product, 0)


def receive(product: str, units: int) -> int:
    _levels[product] = level(product) + units + 1
    return _levels[product]
"""

SCRIPT = {
    "entries": [
        {
            "match": {"session_type": "ComponentTest", "step": "GenerateTestsAndFixtures"},
            "edits": [{"path": "tests/inventory/stock_test.py", "write": TESTS}],
            "reply": "Wrote two tests from the design's assertions.",
        },
        {
            "match": {"session_type": "ComponentCoding", "step": "GenerateImplementation"},
            "edits": [{"path": "src/inventory/stock.py", "write": BUGGY}],
            "reply": "Implemented inventory.stock.",
        },
        {
            "match": {"session_type": "ComponentCoding", "step": "FixTestFailures", "round": 1},
            "edits": [
                {
                    "path": "src/inventory/stock.py",
                    "replace": {"old": "+ units + 1", "new": "+ units"},
                }
            ],
            "reply": "receive added one unit too many; fixed.",
        },
    ]
}


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    )
    return done.stdout


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # `python -m pytest` from the profile must find this interpreter (it has pytest).
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    # The scratch project needs none of this environment's pytest plugins.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    root = tmp_path / "shop"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Test Person")
    git(root, "config", "user.email", "test@example.invalid")
    (root / "docs" / "design" / "inventory").mkdir(parents=True)
    (root / "docs" / "design" / "inventory" / "stock.md").write_text(DESIGN)
    (root / "notes.txt").write_text("first notes\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "design of inventory.stock")
    # Someone's unrelated work in progress: it must stay out of every commit.
    (root / "notes.txt").write_text("edited, not to be committed\n")
    (root / "scratch.py").write_text("print('untracked')\n")
    return root


class Driver:
    """Drives one session through the orchestrator's RPCs, running each command for real."""

    def __init__(self, orchestrator: OrchestratorUnderTest, executor: Executor) -> None:
        self.o = orchestrator
        self.executor = executor
        self.scope = pb.Scope(account_id="acct", project_id="shop", user_id="dev")

    async def run(self, session_type: str, params: dict[str, Any], limit: int = 20) -> str:
        opened = await self.o.stub.OpenSession(
            opb.OpenSessionRequest(
                scope=self.scope,
                type=session_type,
                execution_mode=pb.EXECUTION_MODE_MANUAL,
                params=dict_to_struct(params),
            ),
            metadata=self.o.metadata,
        )
        session_id: str = opened.session.id
        await self.drive(session_id, limit)
        return session_id

    async def drive(self, session_id: str, limit: int = 20) -> None:
        """Run the session's commands until it is done (children first, as the gateway does)."""
        step = await self.o.stub.NextStep(
            opb.NextStepRequest(scope=self.scope, session_id=session_id), metadata=self.o.metadata
        )
        interaction = step.interaction if step.HasField("interaction") else None
        for _ in range(limit):
            if interaction is None:
                return
            command = interaction.command
            if command.WhichOneof("kind") == "spawn_children":
                # What the gateway does: run every child to a terminal status,
                # then report the join; the parent's judge checks the children.
                children = list(command.spawn_children.child_session_ids)
                for child in children:
                    await self.drive(child, limit)
                result = pb.Result(status=pb.RESULT_STATUS_OK)
                dict_to_struct({"children": children}, result.data)
            else:
                result = await self.executor.execute(command)
            advanced = await self.o.stub.ReportAndAdvance(
                opb.ReportAndAdvanceRequest(
                    scope=self.scope,
                    session_id=session_id,
                    interaction_id=interaction.id,
                    result=result,
                ),
                metadata=self.o.metadata,
            )
            interaction = advanced.interaction if advanced.HasField("interaction") else None
        raise AssertionError(f"session {session_id} did not finish within {limit} steps")

    async def session(self, session_id: str) -> pb.Session:
        fetched = await self.o.sessions.FetchSession(
            spb.FetchSessionRequest(
                scope=self.scope, session_id=session_id, view=pb.INTERACTION_VIEW_ALL
            ),
            metadata=self.o.metadata,
        )
        session: pb.Session = fetched.session
        return session


async def test_tests_first_then_code_against_a_real_repository(
    start_orchestrator: StartOrchestrator, repo: Path, tmp_path: Path
) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps(SCRIPT))
    workspace = Workspace(repo)
    workspace.prepare()
    executor = Executor(
        workspace, backends={"scripted": ScriptedBackend(script)}, options=ExecutorOptions()
    )
    driver = Driver(await start_orchestrator(SERVICE), executor)
    params = {"component": "inventory.stock", "context": "inventory"}

    # ComponentTest: the tests are written, run for real, and fail (no code yet).
    tested = await driver.session(await driver.run("ComponentTest", params))
    assert tested.status == pb.SESSION_STATUS_COMPLETE, tested.status_reason
    run = next(i for i in tested.interactions if i.step == "RunTests")
    verdict: Any = struct_to_dict(run.result.data)["judgement"]
    facts = verdict["facts"]["test_run"]
    assert (facts["passed"], facts["errors"]) == (0, 2)  # each test fails on its own
    assert "No module named 'inventory'" in facts["failures"][0]["message"]
    # The session worked in its own worktree, on its own branch; the person's
    # checkout stayed on main.
    tests_branch = str(struct_to_dict(tested.state)["branch"])
    assert tests_branch == f"component-test-session-for-inventory-stock-{tested.id[-8:]}"
    assert git(repo, "branch", "--show-current").strip() == "main"
    assert git(repo, "show", "--name-only", "--format=", tests_branch).split() == [
        "tests/inventory/stock_test.py"
    ]

    # ComponentCoding, started from the tests' branch: implemented, one
    # failure, fixed in the same conversation.
    coded_id = await driver.run("ComponentCoding", {**params, "base": tests_branch})
    coded = await driver.session(coded_id)
    assert coded.status == pb.SESSION_STATUS_COMPLETE, coded.status_reason
    steps = [i.step for i in coded.interactions]
    assert steps == [
        "Initialize",
        "GenerateImplementation",
        "RunTests",
        "FixTestFailures",
        "RunTests",
        "Finalize",
    ]
    first_run, fix, second_run = coded.interactions[2:5]
    assert first_run.result.status == pb.RESULT_STATUS_ERROR
    assert "assert 6 == 5" in first_run.result.error_message
    assert "tests/inventory/stock_test.py:18" in fix.command.agent.prompt
    generated = struct_to_dict(coded.interactions[1].result.data)
    assert generated["replayed"] is True  # the scripted backend says what it is
    assert fix.command.agent.resume_conversation_id == generated["conversation_id"]
    assert second_run.result.status == pb.RESULT_STATUS_OK

    # The commit holds exactly the component's changed file, on the session branch.
    branch = f"component-coding-session-for-inventory-stock-{coded.id[-8:]}"
    assert git(repo, "show", "--name-only", "--format=", branch).split() == [
        "src/inventory/stock.py"
    ]
    assert git(repo, "show", f"{branch}:src/inventory/stock.py") == BUGGY.replace(
        "+ units + 1", "+ units"
    )
    message = git(repo, "log", "-1", "--format=%B", branch)
    assert message.startswith("Implement inventory.stock\n\nComponents:\n- inventory.stock\n")
    final = struct_to_dict(coded.interactions[-1].result.data)
    assert final["commit"] == git(repo, "rev-parse", branch).strip()
    # The person's checkout was never touched: still on main, its unrelated
    # work in progress left alone and uncommitted.
    assert git(repo, "branch", "--show-current").strip() == "main"
    assert git(repo, "log", "--format=%s").splitlines() == ["design of inventory.stock"]
    status = git(repo, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert sorted(status) == [" M notes.txt", "?? scratch.py"]
    assert git(repo, "log", "--format=%s", branch).splitlines() == [
        "Implement inventory.stock",
        "Add tests for inventory.stock",
        "design of inventory.stock",
    ]


RESERVATIONS_TESTS = """\
import importlib

import pytest


@pytest.fixture
def reservations():
    return importlib.import_module("inventory.reservations")


def test_reserving_lowers_the_level(reservations):
    assert reservations.reserve(level=5, units=2) == 3


def test_reserving_more_than_the_level_is_refused(reservations):
    with pytest.raises(ValueError, match="out of stock"):
        reservations.reserve(level=1, units=2)
"""

RESTOCK_TESTS = """\
import importlib


def test_restocking_raises_the_level():
    restock = importlib.import_module("inventory.restock")
    assert restock.restock(level=1, units=4) == 5
"""

RESERVATIONS_BUGGY = """\
def reserve(level: int, units: int) -> int:
    return level - units
"""

RESTOCK = """\
def restock(level: int, units: int) -> int:
    return level + units
"""

CONTEXT_SCRIPT = {
    "entries": [
        {
            "match": {"step": "GenerateImplementation", "component": "inventory.stock"},
            "edits": [{"path": "src/inventory/stock.py", "write": BUGGY.replace(" + 1", "")}],
        },
        {
            "match": {"step": "GenerateImplementation", "component": "inventory.reservations"},
            "edits": [{"path": "src/inventory/reservations.py", "write": RESERVATIONS_BUGGY}],
        },
        {
            "match": {"step": "FixTestFailures", "component": "inventory.reservations"},
            "edits": [
                {
                    "path": "src/inventory/reservations.py",
                    "replace": {
                        "old": "    return level - units",
                        "new": (
                            "    if units > level:\n"
                            '        raise ValueError("out of stock")\n'
                            "    return level - units"
                        ),
                    },
                }
            ],
        },
        {
            "match": {"step": "GenerateImplementation", "component": "inventory.restock"},
            "edits": [{"path": "src/inventory/restock.py", "write": RESTOCK}],
        },
    ]
}


async def test_a_context_codes_its_components_in_worktrees_and_commits_them_together(
    start_orchestrator: StartOrchestrator, repo: Path, tmp_path: Path
) -> None:
    context_design = (Path(__file__).parent / "fixtures" / "designs" / "inventory.md").read_text()
    (repo / "docs" / "design" / "inventory.md").write_text(context_design)
    for name, tests in (
        ("stock", TESTS),
        ("reservations", RESERVATIONS_TESTS),
        ("restock", RESTOCK_TESTS),
    ):
        (repo / "docs" / "design" / "inventory" / f"{name}.md").write_text(
            DESIGN.replace("inventory.stock", f"inventory.{name}")
        )
        (repo / "tests" / "inventory").mkdir(parents=True, exist_ok=True)
        (repo / "tests" / "inventory" / f"{name}_test.py").write_text(tests)
    git(repo, "add", "docs", "tests")
    git(repo, "commit", "-q", "-m", "designs and tests of inventory")
    script = tmp_path / "script.json"
    script.write_text(json.dumps(CONTEXT_SCRIPT))
    workspace = Workspace(repo)
    workspace.prepare()
    executor = Executor(workspace, backends={"scripted": ScriptedBackend(script)})
    driver = Driver(await start_orchestrator(SERVICE), executor)

    parent = await driver.session(await driver.run("ContextCoding", {"context": "inventory"}))
    assert parent.status == pb.SESSION_STATUS_COMPLETE, parent.status_reason
    assert [i.step for i in parent.interactions] == [
        "Initialize",
        "SpawnComponentCodingSessions",
        "IntegrateChildren",
        "RunTests",
        "Finalize",
    ]
    # The children's branches were merged into the parent's worktree and the
    # whole suite ran there, for real: all five tests of the three files.
    run = CodingState.read(struct_to_dict(parent.state)).test_run or {}
    assert (run["passed"], run["failed"], run["errors"]) == (5, 0, 0)
    # The parent's branch got one commit with every child's files, squashed
    # onto where it started; the children each committed on their own.
    state = struct_to_dict(parent.state)
    branch = f"context-coding-session-for-inventory-{parent.id[-8:]}"
    assert state["branch"] == branch
    assert sorted(git(repo, "show", "--name-only", "--format=", branch).split()) == [
        "src/inventory/reservations.py",
        "src/inventory/restock.py",
        "src/inventory/stock.py",
    ]
    assert git(repo, "log", "--format=%s", branch).splitlines() == [
        "Implement for inventory",
        "designs and tests of inventory",
        "design of inventory.stock",
    ]
    message = git(repo, "log", "-1", "--format=%B", branch)
    assert "- inventory.stock\n- inventory.reservations\n- inventory.restock" in message
    children = state["children"]
    assert isinstance(children, list)
    for name, child in zip(("stock", "reservations", "restock"), children, strict=True):
        assert isinstance(child, dict)
        assert child["branch"] == (
            f"component-coding-session-for-inventory-{name}-{str(child['id'])[-8:]}"
        )
        assert git(repo, "log", "-1", "--format=%s", str(child["branch"])).strip() == (
            f"Implement inventory.{name}"
        )
    fixed = git(repo, "show", f"{branch}:src/inventory/reservations.py")
    assert 'raise ValueError("out of stock")' in fixed
    # Every session, the parent too, worked in a worktree under .specloom/,
    # which git ignores; the person's checkout stayed on main.
    worktrees = git(repo, "worktree", "list").splitlines()
    assert len(worktrees) == 5
    assert all("/.specloom/worktrees/" in line for line in worktrees[1:])
    assert git(repo, "branch", "--show-current").strip() == "main"
    status = git(repo, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert sorted(status) == [" M notes.txt", "?? scratch.py"]
    # The push had no remote to go to: a warning the judge lets finish.
    recorded = CodingState.read(state)
    assert recorded.pushed is False
    assert "not configured" in recorded.push_warning
