"""Branch names from names of any length stay names git can store."""

from __future__ import annotations

import subprocess
from pathlib import Path

from specloom.ids import new_id
from specloom.naming import MAX_BRANCH, branch_name, session_branch, worktree_path
from tests.agent.conftest import init_repo


def test_a_long_name_is_cut_to_a_branch_git_accepts_and_stays_distinct(tmp_path: Path) -> None:
    long_a = "Inventory " + "a" * 400 + " one"
    long_b = "Inventory " + "a" * 400 + " two"
    a, b = branch_name("context-design", long_a), branch_name("context-design", long_b)
    assert len(a) == len(b) == MAX_BRANCH
    assert a != b  # the cut keeps a hash of the whole name
    assert a.startswith("context-design-session-for-inventory-aaaa")
    assert branch_name("p", "short") == "p-session-for-short"  # short names unchanged
    repo = init_repo(tmp_path / "repo")
    for name in (a, b):
        subprocess.run(["git", "-C", str(repo), "branch", name], check=True, capture_output=True)


def test_every_session_gets_its_own_branch_even_when_started_in_the_same_minute() -> None:
    # UUIDv7 ids of sessions started together share their first characters
    # (a timestamp), so the suffix comes from the end of the id.
    first = session_branch("context-coding", "Inventory", new_id())
    second = session_branch("context-coding", "Inventory", new_id())
    assert first != second
    assert first.startswith("context-coding-session-for-inventory-")
    assert session_branch("p", "inventory.stock", "0190d7c8-aaaa-7bbb-8ccc-1234abcd5678") == (
        "p-session-for-inventory-stock-abcd5678"
    )
    assert worktree_path("abc") == ".specloom/worktrees/abc"
    long_one = session_branch("p", "x" * 400, new_id())
    assert len(long_one) == MAX_BRANCH
    assert long_one != session_branch("p", "x" * 400, new_id())  # the cut keeps a hash
