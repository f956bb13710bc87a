"""Branch names from names of any length stay names git can store."""

from __future__ import annotations

import subprocess
from pathlib import Path

from specloom.naming import MAX_BRANCH, branch_name
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
