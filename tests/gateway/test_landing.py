"""A session with ``land_on`` ends with its work on the line and the line's scan recorded.

Real everything: Sessions, the coding orchestrator and the gateway on
loopback gRPC, a real executor agent on a real git repository, a real pytest
run of the component's tests; the implementation comes from the scripted
agent backend. The line (``specloom/main``) is a branch checked out nowhere
but its own detached worktree, which the executor creates and scans.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from specloom.client import Client
from specloom.errors import InvalidArgument
from specloom.protoconv import struct_to_dict
from specloom.v1 import common_pb2 as pb
from specloom_coding.service import SERVICE as CODING
from tests.gateway.conftest import StartStack, eventually, git, make_repo

LINE = "specloom/main"
CONTEXT_DESIGN = (
    Path(__file__).parent.parent / "coding" / "fixtures" / "designs" / "inventory.md"
).read_text()
COMPONENT_DESIGN = """\
# inventory.stock

## Purpose
Keeps the units on hand per product.

## Public API
- `level(levels, product) -> int`

## Execution Flow
1. Look the product up.

## Test Assertions
- an unknown product has level 0
"""
TESTS = """\
import importlib


def test_an_unknown_product_has_level_zero():
    stock = importlib.import_module("inventory.stock")
    assert stock.level({}, "apple") == 0
    assert stock.level({"apple": 3}, "apple") == 3
"""
CODE = """\
def level(levels: dict[str, int], product: str) -> int:
    return levels.get(product, 0)
"""
FINISHED = (pb.SESSION_STATUS_COMPLETE, pb.SESSION_STATUS_FAILED, pb.SESSION_STATUS_CANCELLED)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # The profile's `python -m pytest` must find this interpreter (it has
    # pytest), without this environment's plugins.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    root = make_repo(
        tmp_path / "shop",
        {
            "docs/design/inventory.md": CONTEXT_DESIGN,
            "docs/design/inventory/stock.md": COMPONENT_DESIGN,
            "tests/inventory/stock_test.py": TESTS,
        },
    )
    git(root, "branch", LINE, "main")
    return root


async def finished(client: Client, session_id: str) -> pb.Session:
    async def done() -> bool:
        session = await client.get_session(session_id, view=pb.INTERACTION_VIEW_NONE)
        return session.status in FINISHED

    await eventually(done, timeout=90, every=0.2)
    return await client.get_session(session_id)


async def test_a_session_that_lands_puts_its_work_on_the_line_and_records_its_scan(
    start_stack: StartStack, repo: Path, tmp_path: Path
) -> None:
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps(
            {
                "entries": [
                    {
                        "match": {
                            "session_type": "ComponentCoding",
                            "step": "GenerateImplementation",
                            "component": "inventory.stock",
                        },
                        "edits": [{"path": "src/inventory/stock.py", "write": CODE}],
                        "reply": "Implemented inventory.stock.",
                    }
                ]
            }
        )
    )
    main = git(repo, "rev-parse", "main").strip()
    stack = await start_stack(specs=[CODING])
    token = await stack.token()
    await stack.agent(token, repo, "ex-1", backends=["scripted"], scripted_file=script)
    client = stack.client(token)

    with pytest.raises(InvalidArgument) as refused:  # the client's INVALID_ARGUMENT
        await client.start_session(
            "ComponentCoding", {"component": "inventory.stock", "land_on": "spec loom"}
        )
    assert str(refused.value) == (
        "parameter 'land_on' of ComponentCoding is 'spec loom': not a branch name git "
        "accepts (it contains ' ')"
    )

    started = await client.start_session(
        "ComponentCoding", {"component": "inventory.stock", "base": LINE, "land_on": LINE}
    )
    session = await finished(client, started.session.id)
    assert session.status == pb.SESSION_STATUS_COMPLETE, session.status_reason
    finalize = [i for i in session.interactions if i.step == "Finalize"][-1]
    assert finalize.command.git.operations[0].commit.land_on == LINE

    # The session's commit is on the line (a fast-forward: the line had not moved).
    commit = str(struct_to_dict(session.state)["commit"])
    tip = git(repo, "rev-parse", LINE).strip()
    data = struct_to_dict(finalize.result.data)
    assert (data["commit"], data["landed"], data["land_on"]) == (commit, tip, LINE)
    assert tip == commit
    assert git(repo, "show", f"{LINE}:src/inventory/stock.py") == CODE

    # The stored Finalize result carries the scan of the line's worktree at that tip.
    assert finalize.result.HasField("project_scan")
    scan = finalize.result.project_scan
    assert (scan.profile, scan.branch, scan.revision) == ("python", LINE, tip)
    facts = {c.module: c for c in scan.components}
    assert facts["Inventory"].type == "context"
    stock = facts["inventory.stock"]
    assert stock.code.present
    assert stock.code.digest == hashlib.sha256(CODE.encode()).hexdigest()
    assert stock.test.present
    assert not facts["inventory.reservations"].code.present

    # The line's worktree is detached at the tip; the person's checkout untouched.
    line_tree = repo / ".specloom" / "worktrees" / "line"
    assert git(line_tree, "rev-parse", "HEAD").strip() == tip
    assert git(line_tree, "branch", "--show-current").strip() == ""
    assert git(repo, "branch", "--show-current").strip() == "main"
    assert git(repo, "rev-parse", "main").strip() == main
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == ""
