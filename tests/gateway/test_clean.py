"""``specloom clean`` after a real pipeline: finished sessions leave no stale worktree.

Issue 12, finding 5's second half: after a few runs a repository held a
dozen stale session branches and worktrees and nothing cleaned them. Here
the design pipeline runs for real (gateway, design orchestrator, an agent
with the scripted backend on a real repository), then the ``specloom``
executable cleans up in the repository, as a person would run it.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from specloom.client import Client
from specloom.demo.run import create_project
from specloom.demo.sample import CONTEXT
from specloom.demo.script import write_script
from specloom.v1 import common_pb2 as pb
from specloom.workspaces import identify
from specloom_context_design.service import SERVICE as CONTEXT_DESIGN
from tests.gateway.conftest import StartStack, eventually, git

SPECLOOM = str(Path(sys.executable).parent / "specloom")


async def _run(client: Client, session_type: str, workspace: pb.WorkspaceRef) -> pb.Session:
    started = await client.start_session(
        session_type, {"context": CONTEXT}, mode="agentic", workspace=workspace
    )

    async def finished() -> bool:
        head = await client.get_session(started.session.id, view=pb.INTERACTION_VIEW_NONE)
        return head.status != pb.SESSION_STATUS_ACTIVE

    await eventually(finished, timeout=90, every=0.2)
    session = await client.get_session(started.session.id, view=pb.INTERACTION_VIEW_NONE)
    assert session.status == pb.SESSION_STATUS_COMPLETE, session.status_reason
    return session


async def _clean(address: str, token: str, project: Path, *args: str) -> tuple[int, str, str]:
    """``specloom clean`` in ``project`` (run beside this loop, which serves the gateway)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPECLOOM_")}
    env["SPECLOOM_TOKEN"] = token
    process = await asyncio.create_subprocess_exec(
        SPECLOOM,
        "--gateway",
        address,
        "clean",
        *args,
        cwd=project,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_clean_removes_what_finished_sessions_left_and_says_so(
    start_stack: StartStack, tmp_path: Path
) -> None:
    stack = await start_stack(specs=[CONTEXT_DESIGN])
    token = await stack.token()
    project = tmp_path / "inventory"
    create_project(project, tmp_path / "origin.git")
    script = write_script(tmp_path / "script.json")
    await stack.agent(
        token, project, "laptop", backends=["scripted"], scripted_file=script, max_parallel=3
    )
    client = stack.client(token)
    workspace = identify(project)
    await _run(client, "ContextDesign", workspace)
    parent = await _run(client, "ContextComponentsDesign", workspace)
    children = await client.children(parent.id)
    worktrees = project / ".specloom" / "worktrees"
    assert {p.name for p in worktrees.iterdir()} == {c.id for c in children}
    child_branches = {
        line.split()[-1].removeprefix("[").removesuffix("]")
        for line in git(project, "worktree", "list").splitlines()[1:]
    }
    assert len(child_branches) == len(children)

    # The review leaves the siblings' designs it read staged in its worktree:
    # uncommitted changes, which only --force removes.
    (review,) = [c for c in children if c.type == "ComponentDesignReview"]
    designs = [c for c in children if c is not review]
    code, dry, err = await _clean(stack.address, token, project, "--dry-run")
    assert code == 0, err
    for child in designs:
        assert f"would remove worktree .specloom/worktrees/{child.id} and branch" in dry
    assert f"keeping worktree .specloom/worktrees/{review.id} and branch " in dry
    assert "its worktree has uncommitted changes (--force removes them)" in dry
    assert {p.name for p in worktrees.iterdir()} == {c.id for c in children}, "dry run"

    code, done, err = await _clean(stack.address, token, project)
    assert code == 0, err + done
    assert done.count("removing worktree .specloom/worktrees/") == len(designs)
    assert {p.name for p in worktrees.iterdir()} == {review.id}
    code, forced, err = await _clean(stack.address, token, project, "--force")
    assert code == 0, err + forced
    assert f"removing worktree .specloom/worktrees/{review.id}" in forced
    assert list(worktrees.iterdir()) == [], "no stale worktree is left"
    assert len(git(project, "worktree", "list").splitlines()) == 1
    heads = set(git(project, "for-each-ref", "--format=%(refname:short)", "refs/heads").split())
    assert not heads & child_branches
    # The design work itself is on the session's branch, which the checkout is on.
    current = git(project, "symbolic-ref", "--short", "HEAD").strip()
    assert current in heads
    assert f"keeping branch {current}: it is the branch your checkout is on" in forced
    documents = git(project, "ls-tree", "-r", "--name-only", current, "docs/design").split()
    assert len(documents) == len(designs) + 1  # the context and each component

    code, again, _ = await _clean(stack.address, token, project)
    assert code == 0
    assert "removing" not in again
