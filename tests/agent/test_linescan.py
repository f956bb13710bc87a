"""After landing: the line's worktree follows the line, and its scan rides on the result.

Real repositories, the kernel's real scanner. The worktree is created
detached, moved to the line's tip when it is clean, and otherwise scanned as
it is (a person's edits there are what the map shows); a scan that fails is
said in the output and never fails the landing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from specloom.agent.workspace import Workspace
from specloom.v1 import common_pb2 as pb

from .conftest import git
from .test_gitland import LINE, finalize, session, tip

CONTEXT_DESIGN = (
    Path(__file__).parent.parent / "coding" / "fixtures" / "designs" / "inventory.md"
).read_text()
STOCK = "def level(levels, product):\n    return levels.get(product, 0)\n"
RESTOCK = "def restock(level, units):\n    return level + units\n"


@pytest.fixture
def line(workspace: Workspace) -> str:
    """main holds the inventory context's design; the line starts there."""
    root = workspace.root
    (root / "docs" / "design").mkdir(parents=True)
    (root / "docs" / "design" / "inventory.md").write_text(CONTEXT_DESIGN)
    git(root, "add", "docs")
    git(root, "commit", "-q", "-m", "inventory design")
    git(root, "branch", LINE, "main")
    return tip(root, LINE)


def line_tree(workspace: Workspace) -> Path:
    return workspace.root / ".specloom" / "worktrees" / "line"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_the_line_worktree_follows_the_line_and_each_landing_carries_its_scan(
    workspace: Workspace, line: str
) -> None:
    stock = session(workspace, "session-a", {"src/inventory/stock.py": STOCK})
    restock = session(workspace, "session-b", {"src/inventory/restock.py": RESTOCK})
    first, lines = finalize(workspace, stock, ["src/inventory/stock.py"])
    assert first.status == pb.RESULT_STATUS_OK, first.error_message
    tree = line_tree(workspace)
    assert git(tree, "rev-parse", "HEAD").strip() == tip(workspace.root, LINE)
    assert git(tree, "branch", "--show-current").strip() == ""  # detached
    assert any("created .specloom/worktrees/line" in text for text in lines)
    scan = first.project_scan
    assert scan is not None
    assert (scan.profile, scan.branch, scan.revision) == ("python", LINE, first.data["landed"])
    facts = {c.module: c for c in scan.components}
    assert list(facts) == [
        "Inventory",
        "inventory.stock",
        "inventory.reservations",
        "inventory.restock",
    ]
    assert facts["inventory.stock"].code.digest == digest(STOCK)
    assert not facts["inventory.restock"].code.present

    second, lines = finalize(workspace, restock, ["src/inventory/restock.py"])
    assert second.status == pb.RESULT_STATUS_OK, second.error_message
    merge = tip(workspace.root, LINE)
    assert git(tree, "rev-parse", "HEAD").strip() == merge
    assert any(f"moved to {merge[:12]}" in text for text in lines)
    scan = second.project_scan
    assert scan is not None
    assert scan.revision == merge
    facts = {c.module: c for c in scan.components}
    assert facts["inventory.stock"].code.present
    assert facts["inventory.restock"].code.digest == digest(RESTOCK)
    # The scanner's cache lives in the repository's git directory, not in the worktree.
    assert (workspace.root / ".git" / "specloom" / "scan-cache.json").is_file()
    assert git(tree, "status", "--porcelain") == ""
    assert git(workspace.root, "branch", "--show-current").strip() == "main"


def test_a_line_worktree_a_person_changed_or_checked_out_is_scanned_as_it_is(
    workspace: Workspace, line: str
) -> None:
    stock = session(workspace, "session-a", {"src/inventory/stock.py": STOCK})
    restock = session(workspace, "session-b", {"src/inventory/restock.py": RESTOCK})
    finalize(workspace, stock, ["src/inventory/stock.py"])
    tree = line_tree(workspace)
    at = git(tree, "rev-parse", "HEAD").strip()
    (tree / "src" / "inventory" / "stock.py").unlink()  # a person deletes a file there
    outcome, lines = finalize(workspace, restock, ["src/inventory/restock.py"])
    assert outcome.status == pb.RESULT_STATUS_OK, outcome.error_message
    assert tip(workspace.root, LINE) != at  # the line moved ...
    assert git(tree, "rev-parse", "HEAD").strip() == at  # ... its worktree did not
    assert any("has changes of its own" in text for text in lines)
    scan = outcome.project_scan
    assert scan is not None
    facts = {c.module: c for c in scan.components}
    assert not facts["inventory.stock"].code.present  # the map shows the deletion
    assert scan.branch == ""  # not at the line's tip: not the line's scan by name
    assert scan.revision == at

    git(tree, "checkout", "-q", "--", ".")
    git(tree, "checkout", "-q", "-b", "mine")
    third = session(workspace, "session-c", {"notes.txt": "n\n"})
    outcome, lines = finalize(workspace, third, ["notes.txt"])
    assert outcome.status == pb.RESULT_STATUS_OK, outcome.error_message
    assert git(tree, "branch", "--show-current").strip() == "mine"
    assert any("is on branch mine, not detached" in text for text in lines)


def test_a_scan_that_fails_is_said_and_the_landing_stands(workspace: Workspace, line: str) -> None:
    tree = session(
        workspace,
        "session-a",
        {"src/inventory/stock.py": STOCK, "specloom.toml": 'profile = "cobol"\n'},
    )
    outcome, lines = finalize(workspace, tree, ["src/inventory/stock.py", "specloom.toml"])
    assert outcome.status == pb.RESULT_STATUS_OK, outcome.error_message
    assert outcome.data["landed"] == tip(workspace.root, LINE)
    assert outcome.project_scan is None
    failed = [text for text in lines if "was not scanned" in text]
    assert len(failed) == 1
    assert failed[0].startswith(f"project map: the line {LINE} was not scanned: ")
    assert "specloom.toml" in failed[0]
