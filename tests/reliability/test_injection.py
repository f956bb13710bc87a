"""Hostile names end to end: sessions on a real repository, run by a real ``specloom agent``.

Context names, branch prefixes and component names (written into a context
design by the "model") carrying quotes, ``$()``, backticks, ``;``, newlines
and ``../``. Every one either becomes a sanitised branch name and a path
inside the workspace, or is refused with a reason naming it; none executes
anything (each tries to create a canary file, which must never appear).
Unit-level companions: ``tests/agent/test_gitops.py::test_hostile_names_execute_nothing``,
``tests/coding/test_workflows.py::test_hostile_component_names_are_refused_at_open``
and ``::test_every_name_reaching_git_or_a_process_is_structured_and_sanitised``.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from pathlib import Path

import pytest

from specloom.client import Client
from specloom.demo.run import create_project
from specloom.demo.script import CONTEXT_DESIGN_FIRST, TEST_ASSERTIONS, entries
from specloom.errors import InvalidArgument
from specloom.naming import MAX_BRANCH, session_branch
from specloom.protoconv import struct_to_dict
from specloom.v1 import common_pb2 as pb
from tests.reliability.conftest import StartCluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

BRANCH = re.compile(r"^[a-z0-9_-]+$")
TEMPLATES = [
    "Billing'; touch {canary}",
    'Billing"; touch {canary}; echo "',
    "Billing$(touch {canary})",
    "Billing`touch {canary}`",
    "Billing; touch {canary}",
    "Billing\ntouch {canary}",
    "../../{canary}",
]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def _hostile_design(canary: Path) -> str:
    return (
        CONTEXT_DESIGN_FIRST.replace("### inventory.stock", f"### warehouse.$(touch {canary})")
        .replace("### inventory.pricing", f"### warehouse.`touch {canary}`")
        .replace("### inventory.reorder", "### ../../etc.passwd")
        .replace("# Inventory", "# Warehouse", 1)
        + TEST_ASSERTIONS
    )


def _script(path: Path, canary: Path) -> Path:
    # The "model" writes a design whose components carry hostile module
    # names, first time and on every revision; the demo's edits otherwise.
    hostile = [
        {
            "match": {"session_type": "ContextDesign", "context": "Warehouse", "step": step},
            "edits": [{"path": "docs/design/warehouse.md", "write": _hostile_design(canary)}],
            "reply": "Designed the warehouse.",
        }
        for step in ("GenerateContextDesign", "ReviseDesign")
    ]
    path.write_text(json.dumps({"entries": [*hostile, *entries()]}))
    return path


async def _settled(client: Client, session_id: str) -> pb.Session:
    async with asyncio.timeout(90):
        while True:
            session = await client.get_session(session_id)
            if session.status != pb.SESSION_STATUS_ACTIVE:
                return session
            await asyncio.sleep(0.2)


async def test_hostile_names_become_safe_branches_and_paths_and_run_nothing(
    start_cluster: StartCluster, tmp_path: Path
) -> None:
    canary = tmp_path / "canary"
    project = tmp_path / "inventory"
    create_project(project, tmp_path / "origin.git")
    script = _script(tmp_path / "script.json", canary)
    async with start_cluster(["context_design", "coding"]) as c:
        agent = c.agent("box", project, script=script)
        await c.connected(agent)
        client = c.client()

        # Hostile context names: a sanitised branch, then a clear failure
        # (a context must be a module name to have a design document path).
        for template in TEMPLATES:
            name = template.format(canary=canary)
            started = await client.start_session("ContextDesign", {"context": name})
            session = await _settled(client, started.session.id)
            assert session.status == pb.SESSION_STATUS_FAILED, (name, session.status_reason)
            assert "is not a module name" in session.status_reason, session.status_reason
            branch = session.interactions[0].command.git.operations[0].add_worktree.branch
            assert BRANCH.match(branch), branch
            # The coding family refuses them before anything runs.
            with pytest.raises(InvalidArgument, match="is not a module name"):
                await client.start_session("ContextCoding", {"context": name})

        # A hostile branch prefix on a real context: the whole design runs,
        # on a sanitised branch, writing only inside the workspace.
        prefix = f"feat'; touch {canary} $(touch {canary}) `touch {canary}`;\n../x"
        started = await client.start_session(
            "ContextDesign", {"context": "Inventory", "branch_prefix": prefix}
        )
        session = await _settled(client, started.session.id)
        assert session.status == pb.SESSION_STATUS_COMPLETE, session.status_reason
        branch = str(struct_to_dict(session.state)["branch"])
        assert BRANCH.match(branch), branch
        # Long (the canary path is long): cut to what git can store.
        assert branch == session_branch(prefix, "Inventory", session.id)
        assert len(branch) <= MAX_BRANCH
        # It ran in its own worktree: the project's checkout never moved.
        assert _git(project, "branch", "--show-current").strip() == "main"
        assert _git(project, "ls-tree", "-r", "--name-only", branch, "docs/design").split() == [
            "docs/design/inventory.md"
        ]

        # Hostile component names written by the "model" into a design:
        # reported by validation, never spawned, never run.
        started = await client.start_session("ContextDesign", {"context": "Warehouse"})
        session = await _settled(client, started.session.id)
        assert session.status == pb.SESSION_STATUS_FAILED
        validated = [i for i in session.interactions if i.step == "ValidateDesign"]
        assert validated
        errors = validated[0].result.error_message
        # All three named and refused (the backticks are markdown: they vanish).
        assert errors.count("is not a module name") == 3, errors
        assert "../../etc.passwd" in errors
        assert not await client.children(session.id)

        # Every branch any of this made is a plain name; nothing ran.
        for ref in _git(project, "for-each-ref", "--format=%(refname:short)", "refs/heads").split():
            assert BRANCH.match(ref), ref
        assert not canary.exists()
        assert not list(tmp_path.glob("**/canary"))
        outside = {p.name for p in tmp_path.iterdir()}
        assert outside <= {"inventory", "origin.git", "script.json", "cluster"}, outside
