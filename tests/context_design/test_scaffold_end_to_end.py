"""ContextDesign's scaffolding for real: a conflict, the fix, the scaffold, the commit.

The context_design orchestrator runs as a real gRPC server against the
Sessions service; each command is carried out by the executor engine in a
temporary git repository, the agents' edits replayed by the scripted
backend. The repository already has a stale ``src/inventory/stock.py``
where the design's ``Inventory.Stock`` goes: Scaffold refuses to overwrite
it and says so, FixScaffold is told exactly that and removes it, Scaffold
runs again and its import check passes, and Finalize commits the
scaffolding with the design on the session's branch.
"""

from __future__ import annotations

import json
from pathlib import Path

from specloom.agent.backends.scripted import ScriptedBackend
from specloom.agent.executor import Executor, ExecutorOptions
from specloom.agent.workspace import Workspace
from specloom.profiles import ScaffoldReport
from specloom.protoconv import struct_to_dict
from specloom.v1 import common_pb2 as pb
from specloom_context_design.service import SERVICE
from tests.coding.test_end_to_end import Driver
from tests.context_design.test_review_end_to_end import git
from tests.documents.samples import VALID_CONTEXT
from tests.fixtures.orchestrators import StartOrchestrator

STALE = "LEGACY_STOCK = {'apples': 3}\n"
INIT = '"""Stock keeping, by hand."""\n'

SCRIPT = {
    "entries": [
        {
            "match": {"session_type": "ContextDesign", "step": "GenerateContextDesign"},
            "edits": [{"path": "docs/design/inventory.md", "write": VALID_CONTEXT}],
            "reply": "Designed Inventory.",
        },
        {
            "match": {"session_type": "ContextDesign", "step": "FixScaffold", "round": 1},
            "edits": [{"path": "src/inventory/stock.py", "delete": True}],
            "reply": "src/inventory/stock.py was a stale leftover; removed it.",
        },
    ]
}


def make_repo(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Test Person")
    git(root, "config", "user.email", "test@example.invalid")
    for path, text in {"src/inventory/stock.py": STALE, "src/inventory/__init__.py": INIT}.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "a start")
    return root


async def test_a_conflict_goes_to_the_fix_step_then_the_scaffolding_is_committed(
    start_orchestrator: StartOrchestrator, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path)
    script = tmp_path / "script.json"
    script.write_text(json.dumps(SCRIPT))
    workspace = Workspace(repo)
    workspace.prepare()
    executor = Executor(
        workspace, backends={"scripted": ScriptedBackend(script)}, options=ExecutorOptions()
    )
    driver = Driver(await start_orchestrator(SERVICE), executor)
    session_id = await driver.run("ContextDesign", {"context": "Inventory"})
    session = await driver.session(session_id)
    assert session.status == pb.SESSION_STATUS_COMPLETE, session.status_reason
    steps = [i.step for i in session.interactions]
    assert steps == [
        "Initialize",
        "GenerateContextDesign",
        "ValidateDesign",
        "Scaffold",
        "FixScaffold",
        "Scaffold",
        "Finalize",
    ]

    # The first Scaffold ran for real and refused to overwrite the stale module.
    first, fix, second = session.interactions[3:6]
    assert first.command.shell.argv[0] == "python3"
    assert first.result.status == pb.RESULT_STATUS_ERROR
    report = ScaffoldReport.parse(first.result.stdout)
    assert report.conflicts == ("src/inventory/stock.py",)
    assert report.created == ()  # nothing is written while anything conflicts
    conflict = (
        "conflict: src/inventory/stock.py already exists with different content; "
        "scaffolding never overwrites a file"
    )
    assert conflict in first.result.error_message
    # The fix step was told the runner's words, and is capped like every fix loop.
    assert f"- {conflict}" in fix.command.agent.prompt
    assert "(fix round 1 of at most 3)" in fix.command.agent.prompt

    # The second Scaffold created the skeletons and its import check passed.
    again = ScaffoldReport.parse(second.result.stdout)
    assert second.result.status == pb.RESULT_STATUS_OK
    assert again.failed is None
    assert again.kept == ("src/inventory/__init__.py",)  # a package needs only the file
    assert again.created == (
        "src/inventory/stock.py",
        "src/inventory/warehouses.py",
        "tests/inventory/warehouses_test.py",
    )

    # Finalize committed the design with the scaffolding, on the session's branch only.
    state = struct_to_dict(session.state)
    branch = str(state["branch"])
    assert sorted(git(repo, "show", "--name-only", "--format=", branch).split()) == [
        "docs/design/inventory.md",
        "src/inventory/stock.py",
        "src/inventory/warehouses.py",
        "tests/inventory/warehouses_test.py",
    ]
    stock = git(repo, "show", f"{branch}:src/inventory/stock.py")
    assert stock.startswith('"""Inventory.Stock: The quantity of one product')
    assert "specloom:scaffold" in stock
    assert git(repo, "show", f"{branch}:src/inventory/__init__.py") == INIT
    assert git(repo, "branch", "--show-current").strip() == "main"
    assert (repo / "src/inventory/stock.py").read_text() == STALE  # the checkout is untouched
    worktree = repo / str(state["workdir"])
    assert git(worktree, "status", "--porcelain") == ""  # no bytecode or strays left
