"""ContextDesignReview for real: Initialize, the project's rules, a reviewer that fixes.

The context_design orchestrator runs as a real gRPC server against the
Sessions service; each command is carried out by the executor engine in a
temporary git repository: real worktrees and commits, and the reviewer's
edits replayed by the scripted backend (which says so in its result). The
review agent is told the project's rules and its persona, and asked to fix
the designs; its edits land in the design files, are validated, and
Finalize commits them with the review on the session's branch — the
person's checkout untouched.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from specloom.agent.backends.scripted import ScriptedBackend
from specloom.agent.executor import Executor, ExecutorOptions
from specloom.agent.workspace import Workspace
from specloom.protoconv import struct_to_dict
from specloom.rules import CONTEXT_REVIEWER, persona
from specloom.v1 import common_pb2 as pb
from specloom_context_design.service import SERVICE
from tests.coding.test_end_to_end import Driver
from tests.documents.samples import VALID_CONTEXT, VALID_SCHEMA
from tests.fixtures.orchestrators import StartOrchestrator

WAREHOUSES = """\
# Inventory.Warehouses

## Purpose
Queries and writes for warehouses, scoped by account.

## Public API
- `list_warehouses(scope)` returns the account's warehouses.
- `restock(scope, warehouse_id, product_id, units)` calls `Inventory.Stock.add/3`.

## Execution Flow
1. Load the warehouse of the scope's account.
2. Add the units to its stock.

## Test Assertions
- a warehouse of another account is not found
"""

REVIEW = """\
# Review: Inventory

## Summary
The context design and its two component designs agree, after one fix: the warehouses
design called a stock function that the stock design does not offer.

## Findings
- `Inventory.Warehouses` called `Inventory.Stock.add/3`, which `Inventory.Stock` does not
  define; fixed in `docs/design/inventory/warehouses.md` to record the change through the
  stock's fields, as the schema design describes.
- The user story "A clerk restocks a warehouse" had no test assertion; added one to the
  context design.

## Recommendations
None.
"""

PROJECT_RULE = """\
---
name: Money in cents
component_type: "*"
session_type: design
---
Amounts of money are integers in cents, never floats.
"""

PERSONA_RULE = """\
---
name: House reviewer
component_type: context
session_type: design
persona: context_reviewer
---
Our designs are read by auditors: name every change you make.
"""

SCRIPT = {
    "entries": [
        {
            "match": {"session_type": "ContextDesignReview", "step": "ExecuteReview"},
            "edits": [
                {
                    "path": "docs/design/inventory/warehouses.md",
                    "replace": {
                        "old": "calls `Inventory.Stock.add/3`",
                        "new": "raises the stock's `quantity` field",
                    },
                },
                {
                    "path": "docs/design/inventory.md",
                    "replace": {
                        "old": "- a warehouse of another account is not found\n",
                        "new": "- a warehouse of another account is not found\n"
                        "- restocking a warehouse raises its stock by the units received\n",
                    },
                },
                {"path": "docs/review/inventory/context_design.md", "write": REVIEW},
            ],
            "reply": "Reviewed Inventory; fixed the warehouses design and a missing assertion.",
        }
    ]
}


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    )
    return done.stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Test Person")
    git(root, "config", "user.email", "test@example.invalid")
    files = {
        "docs/design/inventory.md": VALID_CONTEXT,
        "docs/design/inventory/stock.md": VALID_SCHEMA,
        "docs/design/inventory/warehouses.md": WAREHOUSES,
        ".specloom/rules/money.md": PROJECT_RULE,
        ".specloom/rules/reviewer.md": PERSONA_RULE,
    }
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "designs of Inventory")
    return root


async def test_the_review_is_told_the_rules_fixes_the_designs_and_commits_them(
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
    stories = ["A clerk restocks a warehouse"]
    session_id = await driver.run(
        "ContextDesignReview", {"context": "Inventory", "user_stories": stories}
    )
    session = await driver.session(session_id)
    assert session.status == pb.SESSION_STATUS_COMPLETE, session.status_reason
    assert [i.step for i in session.interactions] == ["Initialize", "ExecuteReview", "Finalize"]

    # The reviewer was told who it is (the persona, as the project's rule extends it),
    # the project's rules, the user stories, and to fix what it finds.
    review = session.interactions[1]
    agent = review.command.agent
    assert agent.system_prompt == (
        f"{persona(CONTEXT_REVIEWER).text}\n\n## From the project's rules\n\n"
        "### House reviewer\n\nOur designs are read by auditors: name every change you make."
    )
    assert "### Money in cents\n\nAmounts of money are integers in cents" in agent.prompt
    assert "auditors" not in agent.prompt  # the persona rule is not task guidance
    assert "- A clerk restocks a warehouse" in agent.prompt
    assert "fix the problems you find in the design documents themselves" in agent.prompt
    assert "- `Inventory.Warehouses` (repository): `docs/design/inventory/warehouses.md`" in (
        agent.prompt
    )
    assert struct_to_dict(review.result.data)["replayed"] is True  # scripted, and says so

    # The edits landed in the design files and Finalize committed them with the review,
    # on the session's branch; the design the review did not touch is not in the commit.
    branch = str(struct_to_dict(session.state)["branch"])
    assert branch == f"context-design-review-session-for-inventory-{session_id[-8:]}"
    assert sorted(git(repo, "show", "--name-only", "--format=", branch).split()) == [
        "docs/design/inventory.md",
        "docs/design/inventory/warehouses.md",
        "docs/review/inventory/context_design.md",
    ]
    warehouses = git(repo, "show", f"{branch}:docs/design/inventory/warehouses.md")
    assert "raises the stock's `quantity` field" in warehouses
    assert "Inventory.Stock.add/3" not in warehouses
    assert "- restocking a warehouse raises its stock" in git(
        repo, "show", f"{branch}:docs/design/inventory.md"
    )
    assert git(repo, "show", f"{branch}:docs/review/inventory/context_design.md") == REVIEW
    message = git(repo, "log", "-1", "--format=%B", branch)
    assert message.startswith("Review of Inventory\n\nDesign documents reviewed, fixed where")
    # The person's checkout was never touched.
    assert git(repo, "branch", "--show-current").strip() == "main"
    assert git(repo, "log", "--format=%s").splitlines() == ["designs of Inventory"]
    assert git(repo, "status", "--porcelain") == ""
