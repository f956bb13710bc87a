"""Every session in its own worktree, commits that tell the truth, names that cannot collide.

Issue 12's isolation rules, end to end: the real gateway, Sessions and
orchestrators on loopback, real executor agents on real git repositories,
the scripted agent backend (which says in every result that it replays).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from rich.console import Console

from specloom.client import Client
from specloom.demo.run import checkout_fingerprint, run_demo
from specloom.demo.sample import FILES
from specloom.protoconv import struct_to_dict
from specloom.v1 import common_pb2 as pb
from specloom_coding.service import SERVICE as CODING
from specloom_context_design.service import SERVICE as DESIGN
from tests.documents.samples import VALID_CONTEXT, component, context_with_components
from tests.gateway.conftest import StartStack, eventually, git, make_repo

CONTEXTS = ("Inventory", "Billing", "Shipping", "Orders")
FINISHED = (pb.SESSION_STATUS_COMPLETE, pb.SESSION_STATUS_FAILED, pb.SESSION_STATUS_CANCELLED)


def design_of(context: str) -> str:
    """A valid context design for ``context``."""
    return VALID_CONTEXT.replace("Inventory", context)


async def finished(client: Client, session_id: str, timeout: float = 60) -> pb.Session:
    async def done() -> bool:
        session = await client.get_session(session_id, view=pb.INTERACTION_VIEW_NONE)
        return session.status in FINISHED

    await eventually(done, timeout=timeout, every=0.2)
    return await client.get_session(session_id)


async def test_four_root_sessions_started_together_each_commit_only_their_own_files(
    start_stack: StartStack, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "shop", {"README.md": "# shop\n"})
    (repo / "notes.txt").write_text("the person's work in progress\n")
    before = checkout_fingerprint(repo)
    main = git(repo, "rev-parse", "HEAD").strip()
    script = tmp_path / "script.json"
    entries = [
        {
            "match": {"session_type": "ContextDesign", "context": name, "step": step},
            "edits": [{"path": f"docs/design/{name.lower()}.md", "write": design_of(name)}],
        }
        for name in CONTEXTS
        for step in ("GenerateContextDesign", "ReviseDesign")
    ]
    script.write_text(json.dumps({"entries": entries}))
    stack = await start_stack(specs=[DESIGN])
    token = await stack.token()
    # One agent, four slots: the issue's `--max-parallel 4` on one checkout.
    await stack.agent(
        token, repo, "ex-1", backends=["scripted"], scripted_file=script, max_parallel=4
    )
    client = stack.client(token)
    started = [
        (await client.start_session("ContextDesign", {"context": name}, mode="agentic")).session
        for name in CONTEXTS
    ]
    sessions = [await finished(client, s.id) for s in started]
    branches = set()
    for name, session in zip(CONTEXTS, sessions, strict=True):
        assert session.status == pb.SESSION_STATUS_COMPLETE, session.status_reason
        state = struct_to_dict(session.state)
        branch = f"context-design-session-for-{name.lower()}-{session.id[-8:]}"
        assert state["branch"] == branch
        branches.add(branch)
        # Its own branch holds exactly its own document and its scaffolding, on top of main.
        assert git(repo, "rev-parse", f"{branch}~1").strip() == main
        committed = git(repo, "show", "--name-only", "--format=", branch).split()
        assert committed[0] == f"docs/design/{name.lower()}.md"
        assert committed[1:] == state["scaffolded"]
        assert {path.split("/")[1] for path in committed[1:]} == {name.lower()}
        assert state["commit"] == git(repo, "rev-parse", branch).strip()
        assert f"# {name}" in git(repo, "show", f"{branch}:docs/design/{name.lower()}.md")
        # Every command after Initialize ran in its own worktree.
        workdirs = {i.command.workdir for i in session.interactions if i.step != "Initialize"}
        assert workdirs == {f".specloom/worktrees/{session.id}"}
    assert len(branches) == 4
    # They ran at the same time: four slots, four sessions' commands in flight together.
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    for seen in stack.seen:
        kind = seen.message.WhichOneof("message")
        if kind == "assignment":
            starts[seen.message.assignment.interaction.id] = seen.at
        elif kind == "ack" and seen.message.ack.interaction_id in starts:
            ends[seen.message.ack.interaction_id] = seen.at
    edges = sorted([(t, 1) for t in starts.values()] + [(t, -1) for t in ends.values()])
    running = peak = 0
    for _, delta in edges:
        running += delta
        peak = max(peak, running)
    assert peak >= 2
    # The person's checkout: HEAD, index and files exactly as they were.
    assert git(repo, "branch", "--show-current").strip() == "main"
    assert checkout_fingerprint(repo) == before
    assert git(repo, "status", "--porcelain").splitlines() == ["?? notes.txt"]


async def test_names_that_collide_after_folding_are_refused_naming_both(
    start_stack: StartStack, tmp_path: Path
) -> None:
    colliding = context_with_components(
        component("inventory.stock", "module") + component("Inventory.Stock", "module")
    ).replace("# Inventory", "# inventory", 1)
    repo = make_repo(tmp_path / "shop", {"docs/design/inventory.md": colliding})
    stack = await start_stack(specs=[CODING])
    token = await stack.token()
    await stack.agent(token, repo, "ex-1")
    client = stack.client(token)
    started = await client.start_session("ContextCoding", {"context": "inventory"}, mode="agentic")
    session = await finished(client, started.session.id)
    assert session.status == pb.SESSION_STATUS_FAILED
    assert "Components.Inventory.Stock: collides with Components.inventory.stock" in (
        session.status_reason
    )
    assert await client.children(session.id) == []  # nothing was fanned out


async def test_a_producing_step_that_finds_nothing_is_an_error_naming_the_paths(
    start_stack: StartStack, tmp_path: Path
) -> None:
    design = "# inventory.stock\n\n## Purpose\nKeeps stock.\n\n## Public API\n- `level()`\n\n"
    design += "## Execution Flow\n1. Look.\n\n## Test Assertions\n- level is 0\n"
    repo = make_repo(
        tmp_path / "shop",
        {
            "docs/design/inventory/stock.md": design,
            "tests/inventory/stock_test.py": "def test_level():\n    assert False\n",
        },
    )
    script = tmp_path / "script.json"
    # The agent "finishes" without writing the implementation.
    script.write_text(json.dumps({"entries": [{"match": {}, "edits": [], "reply": "Done!"}]}))
    stack = await start_stack(specs=[CODING])
    token = await stack.token()
    await stack.agent(token, repo, "ex-1", backends=["scripted"], scripted_file=script)
    client = stack.client(token)
    started = await client.start_session(
        "ComponentCoding", {"component": "inventory.stock"}, mode="agentic"
    )
    session = await finished(client, started.session.id)
    assert session.status == pb.SESSION_STATUS_FAILED
    generate = [i for i in session.interactions if i.step == "GenerateImplementation"]
    assert [i.result.status for i in generate] == [pb.RESULT_STATUS_ERROR] * 2
    assert generate[0].result.error_message == (
        "GenerateImplementation: the agent finished but wrote nothing at src/inventory/stock.py"
    )
    assert "wrote nothing at src/inventory/stock.py" in session.status_reason
    assert not any(i.step == "Finalize" for i in session.interactions)
    branch = str(struct_to_dict(session.state)["branch"])
    assert git(repo, "rev-parse", branch) == git(repo, "rev-parse", "main")  # nothing committed


@pytest.mark.slow
async def test_the_demo_pipeline_leaves_the_projects_checkout_exactly_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # run_demo puts this interpreter on PATH for the sample's pytest runs.
    monkeypatch.setenv("PATH", os.environ["PATH"])
    output = io.StringIO()
    outcome = await run_demo(tmp_path / "demo", console=Console(file=output, width=120))
    assert outcome.ok, output.getvalue()[-4000:]
    assert [status for _, _, status in outcome.sessions] == ["complete"] * 3
    assert outcome.checkout_before == outcome.checkout_after
    # And independently of the demo's own check: HEAD is main at what was
    # pushed first, the index and files are the sample's, nothing else.
    project = outcome.project
    assert git(project, "branch", "--show-current").strip() == "main"
    assert git(project, "rev-parse", "HEAD") == git(project, "rev-parse", "origin/main")
    assert git(project, "status", "--porcelain", "--untracked-files=all") == ""
    assert git(project, "diff", "--cached", "--name-only") == ""
    assert sorted(git(project, "ls-files").split()) == sorted(FILES)
    for relative, text in FILES.items():
        assert (project / relative).read_text() == text
    # The work is on the sessions' branches: the coding branch holds the code.
    assert sorted(git(project, "show", "--name-only", "--format=", outcome.branch).split()) == [
        "src/inventory/pricing.py",
        "src/inventory/reorder.py",
        "src/inventory/stock.py",
    ]
