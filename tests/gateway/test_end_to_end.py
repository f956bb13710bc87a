"""The whole system: a client codes a three-component context through the gateway.

Real everything: the Sessions service, the coding orchestrator and the
gateway on loopback gRPC; three executor agents on one real git repository
(each child session in its own worktree); real pytest runs of the
component tests. The implementation edits come from the scripted agent
backend, which replays recorded edits and says so in every result.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from specloom.protoconv import struct_to_dict
from specloom.v1 import common_pb2 as pb
from specloom_coding.service import SERVICE as CODING
from tests.gateway.conftest import StartStack, eventually, git

CONTEXT_DESIGN = (
    Path(__file__).parent.parent / "coding" / "fixtures" / "designs" / "inventory.md"
).read_text()

COMPONENT_DESIGN = """\
# {module}

## Purpose
{purpose}

## Public API
{api}

## Execution Flow
1. Validate the arguments.
2. Compute the new level.

## Test Assertions
{assertions}
"""

COMPONENTS = {
    "stock": {
        "purpose": "Keeps the units on hand per product.",
        "api": "- `level(levels, product) -> int`",
        "assertions": "- an unknown product has level 0",
        "tests": """\
import importlib


def test_an_unknown_product_has_level_zero():
    stock = importlib.import_module("inventory.stock")
    assert stock.level({}, "apple") == 0
    assert stock.level({"apple": 3}, "apple") == 3
""",
        "code": """\
def level(levels: dict[str, int], product: str) -> int:
    return levels.get(product, 0)
""",
    },
    "reservations": {
        "purpose": "Reserves units of a product for an order.",
        "api": "- `reserve(level, units) -> int`: raises ValueError when out of stock",
        "assertions": "- reserving more than the level raises",
        "tests": """\
import importlib

import pytest


def test_reserving_lowers_the_level():
    reservations = importlib.import_module("inventory.reservations")
    assert reservations.reserve(level=5, units=2) == 3


def test_reserving_more_than_the_level_is_refused():
    reservations = importlib.import_module("inventory.reservations")
    with pytest.raises(ValueError, match="out of stock"):
        reservations.reserve(level=1, units=2)
""",
        # The first attempt forgets the stock check; the fix round adds it.
        "code": """\
def reserve(level: int, units: int) -> int:
    return level - units
""",
    },
    "restock": {
        "purpose": "Adds received units to a product's stock level.",
        "api": "- `restock(level, units) -> int`",
        "assertions": "- receiving units raises the level by that many",
        "tests": """\
import importlib


def test_restocking_raises_the_level():
    restock = importlib.import_module("inventory.restock")
    assert restock.restock(level=1, units=4) == 5
""",
        "code": """\
def restock(level: int, units: int) -> int:
    return level + units
""",
    },
}

SCRIPT = {
    "entries": [
        *(
            {
                "match": {
                    "session_type": "ComponentCoding",
                    "step": "GenerateImplementation",
                    "component": f"inventory.{name}",
                },
                "edits": [{"path": f"src/inventory/{name}.py", "write": spec["code"]}],
                "reply": f"Implemented inventory.{name}.",
            }
            for name, spec in COMPONENTS.items()
        ),
        {
            "match": {
                "session_type": "ComponentCoding",
                "step": "FixTestFailures",
                "component": "inventory.reservations",
            },
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
            "reply": "Added the stock check.",
        },
    ]
}


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # The profile's `python -m pytest` must find this interpreter (it has
    # pytest), without this environment's plugins.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    root = tmp_path / "shop"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Test Person")
    git(root, "config", "user.email", "test@example.invalid")
    (root / "docs" / "design" / "inventory").mkdir(parents=True)
    (root / "tests" / "inventory").mkdir(parents=True)
    (root / "docs" / "design" / "inventory.md").write_text(CONTEXT_DESIGN)
    for name, spec in COMPONENTS.items():
        module = f"inventory.{name}"
        (root / "docs" / "design" / "inventory" / f"{name}.md").write_text(
            COMPONENT_DESIGN.format(module=module, **spec)
        )
        (root / "tests" / "inventory" / f"{name}_test.py").write_text(spec["tests"])
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "designs and tests of inventory")
    return root


def _in_flight_peak(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    peak = current = 0
    for _, delta in edges:
        current += delta
        peak = max(peak, current)
    return peak


async def test_a_context_is_coded_by_three_executors_in_parallel(
    start_stack: StartStack, repo: Path, tmp_path: Path
) -> None:
    stack = await start_stack(specs=[CODING])
    token = await stack.token()
    script = tmp_path / "script.json"
    script.write_text(json.dumps(SCRIPT))
    for name in ("ex-1", "ex-2", "ex-3"):
        await stack.agent(
            token, repo, name, backends=["scripted"], scripted_file=script, max_parallel=1
        )
    client = stack.client(token)
    started = await client.start_session("ContextCoding", {"context": "inventory"})
    parent_id = started.session.id

    events: list[pb.SessionEvent] = []

    async def watch() -> None:
        async for event in client.watch(parent_id, include_children=True):
            events.append(event)

    watcher = asyncio.create_task(watch())

    async def finished() -> bool:
        session = await client.get_session(parent_id, view=pb.INTERACTION_VIEW_NONE)
        return session.status in (pb.SESSION_STATUS_COMPLETE, pb.SESSION_STATUS_FAILED)

    await eventually(finished, timeout=120, every=0.2)
    parent = await client.get_session(parent_id)
    assert parent.status == pb.SESSION_STATUS_COMPLETE, parent.status_reason
    assert [i.step for i in parent.interactions] == [
        "Initialize",
        "SpawnComponentCodingSessions",
        "IntegrateChildren",
        "RunTests",
        "Finalize",
    ]

    # One commit on the parent's own branch with every component's files,
    # right on top of where the session started (the children's merges squashed).
    branch = f"context-coding-session-for-inventory-{parent_id[-8:]}"
    assert struct_to_dict(parent.state)["branch"] == branch
    commit = str(struct_to_dict(parent.state)["commit"])
    assert git(repo, "rev-parse", branch).strip() == commit
    assert sorted(git(repo, "show", "--name-only", "--format=", commit).split()) == [
        "src/inventory/reservations.py",
        "src/inventory/restock.py",
        "src/inventory/stock.py",
    ]
    assert git(repo, "rev-parse", f"{commit}~1").strip() == git(repo, "rev-parse", "main").strip()
    assert 'raise ValueError("out of stock")' in git(
        repo, "show", f"{commit}:src/inventory/reservations.py"
    )

    children = await client.children(parent_id)
    assert sorted(c.component.module_name for c in children) == [
        "inventory.reservations",
        "inventory.restock",
        "inventory.stock",
    ]
    histories = {c.id: await client.get_session(c.id) for c in children}
    # Usage: the parent runs no agent step itself; its total sums the
    # children's (zero tokens: the scripted backend, which says so).
    agent_steps = sum(c.usage.agent_steps for c in histories.values())
    assert agent_steps >= 3
    assert not parent.HasField("usage")
    assert parent.total_usage.agent_steps == agent_steps
    assert parent.total_usage.input_tokens == 0
    for child in histories.values():
        assert child.status == pb.SESSION_STATUS_COMPLETE, child.status_reason
        workdirs = {i.command.workdir for i in child.interactions if i.step != "Initialize"}
        assert workdirs == {f".specloom/worktrees/{child.id}"}
    parent_workdirs = {i.command.workdir for i in parent.interactions[2:]}
    assert parent_workdirs == {f".specloom/worktrees/{parent_id}"}
    reservations = next(
        h for h in histories.values() if h.component.module_name == "inventory.reservations"
    )
    assert [i.step for i in reservations.interactions] == [
        "Initialize",
        "GenerateImplementation",
        "RunTests",
        "FixTestFailures",
        "RunTests",
        "Finalize",
    ]

    # The children ran in parallel where the design lets them, on different
    # executors: reservations and restock depend on stock, so they start once
    # it is complete, from its branch, and then run at once. A child runs from
    # its first assignment reaching an executor to its last step's completion
    # as Sessions recorded it (not the ack: that reaches the executor after the
    # result is recorded, and by then a dependent may already be handed out).
    child_ids = set(histories)
    first_assigned: dict[str, float] = {}
    for seen in stack.seen:
        if seen.message.WhichOneof("message") == "assignment":
            sid = seen.message.assignment.session.id
            if sid in child_ids:
                first_assigned.setdefault(sid, seen.wall)
    whole = {
        cid: (
            first_assigned[cid],
            max(i.completed_at.ToNanoseconds() for i in h.interactions) / 1e9,
        )
        for cid, h in histories.items()
    }
    by_module = {h.component.module_name: cid for cid, h in histories.items()}
    stock_done = whole[by_module["inventory.stock"]][1]
    for dependent in ("inventory.reservations", "inventory.restock"):
        assert whole[by_module[dependent]][0] >= stock_done
        merged = struct_to_dict(histories[by_module[dependent]].interactions[0].result.data)
        stock_branch = struct_to_dict(histories[by_module["inventory.stock"]].state)["branch"]
        assert merged["merged"] == [stock_branch]
    assert _in_flight_peak(list(whole.values())) == 2  # the two dependents at once
    runners = {name for name, _, a in stack.assignments() if a.session.id in child_ids}
    assert len(runners) >= 2

    # The watch saw every step of the parent and of every child complete.
    async def watched_everything() -> bool:
        seen = {
            (e.session_id, e.interaction.id)
            for e in events
            if e.WhichOneof("event") == "interaction"
            and e.interaction.status == pb.INTERACTION_STATUS_COMPLETED
        }
        wanted = {(parent_id, i.id) for i in parent.interactions} | {
            (cid, i.id) for cid, h in histories.items() for i in h.interactions
        }
        return wanted <= seen

    await eventually(watched_everything, timeout=10)
    watcher.cancel()
    assert events[0].WhichOneof("event") == "snapshot"
    # The edits were replayed, and say so.
    generated = next(i for i in reservations.interactions if i.step == "GenerateImplementation")
    assert struct_to_dict(generated.result.data)["replayed"] is True
    # Every session, the parent too, had its own worktree; the checkout stayed on main.
    status = subprocess.run(
        ["git", "-C", str(repo), "worktree", "list"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert len(status) == 5
    assert git(repo, "branch", "--show-current").strip() == "main"


async def test_context_coding_runs_twice_in_a_row_on_the_same_context(
    start_stack: StartStack, repo: Path, tmp_path: Path
) -> None:
    # Issue 12: the second run failed as "stuck: ... already checked out at
    # .specloom/worktrees/..." because children's branches had no unique name.
    stack = await start_stack(specs=[CODING])
    token = await stack.token()
    script = tmp_path / "script.json"
    script.write_text(json.dumps(SCRIPT))
    await stack.agent(
        token, repo, "ex-1", backends=["scripted"], scripted_file=script, max_parallel=3
    )
    client = stack.client(token)
    runs = []
    for _ in range(2):
        started = await client.start_session("ContextCoding", {"context": "inventory"})
        session_id = started.session.id

        async def finished(session_id: str = session_id) -> bool:
            session = await client.get_session(session_id, view=pb.INTERACTION_VIEW_NONE)
            return session.status in (pb.SESSION_STATUS_COMPLETE, pb.SESSION_STATUS_FAILED)

        await eventually(finished, timeout=120, every=0.2)
        runs.append(await client.get_session(session_id))
    branches = []
    for run in runs:
        assert run.status == pb.SESSION_STATUS_COMPLETE, run.status_reason
        state = struct_to_dict(run.state)
        branch = str(state["branch"])
        branches.append(branch)
        assert sorted(git(repo, "show", "--name-only", "--format=", branch).split()) == [
            "src/inventory/reservations.py",
            "src/inventory/restock.py",
            "src/inventory/stock.py",
        ]
        children = await client.children(run.id)
        assert {c.status for c in children} == {pb.SESSION_STATUS_COMPLETE}
    assert branches[0] != branches[1]
    # Two parents and six children, each with its own worktree; main untouched.
    worktrees = git(repo, "worktree", "list").splitlines()
    assert len(worktrees) == 1 + 2 + 6
    assert git(repo, "branch", "--show-current").strip() == "main"
    assert git(repo, "status", "--porcelain") == ""
