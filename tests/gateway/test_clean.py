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
from specloom.demo.run import create_project, stage_params
from specloom.demo.script import write_script
from specloom.protoconv import struct_to_dict
from specloom.v1 import common_pb2 as pb
from specloom.workspaces import identify
from specloom_context_design.service import SERVICE as CONTEXT_DESIGN
from tests.gateway.conftest import StartStack, eventually, git

SPECLOOM = str(Path(sys.executable).parent / "specloom")


async def _run(
    client: Client, session_type: str, workspace: pb.WorkspaceRef, base: str = ""
) -> pb.Session:
    # Sessions never move the project's checkout: a stage finds the last
    # one's work by starting from its branch (as the demo's stages do).
    started = await client.start_session(
        session_type, stage_params(base), mode="agentic", workspace=workspace
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
    design = await _run(client, "ContextDesign", workspace)
    branch = struct_to_dict(design.state)["branch"]
    assert isinstance(branch, str)
    parent = await _run(client, "ContextComponentsDesign", workspace, base=branch)
    children = await client.children(parent.id)
    roots = [design, parent]
    worktrees = project / ".specloom" / "worktrees"
    # Every session, root and child, worked in a worktree of its own.
    assert {p.name for p in worktrees.iterdir()} == {s.id for s in [*roots, *children]}
    session_branches = {
        line.split()[-1].removeprefix("[").removesuffix("]")
        for line in git(project, "worktree", "list").splitlines()[1:]
    }
    assert len(session_branches) == len(roots) + len(children)

    # The review leaves the siblings' designs it read staged in its worktree:
    # uncommitted changes, which only --force removes.
    (review,) = [c for c in children if c.type == "ComponentDesignReview"]
    removable = [s for s in [*roots, *children] if s is not review]
    code, dry, err = await _clean(stack.address, token, project, "--dry-run")
    assert code == 0, err
    for session in removable:
        assert f"would remove worktree .specloom/worktrees/{session.id} and branch" in dry, dry
    assert f"keeping worktree .specloom/worktrees/{review.id} and branch " in dry
    assert "its worktree has uncommitted changes (--force removes them)" in dry
    assert {p.name for p in worktrees.iterdir()} == {s.id for s in [*roots, *children]}

    code, done, err = await _clean(stack.address, token, project)
    assert code == 0, err + done
    assert done.count("removing worktree .specloom/worktrees/") == len(removable)
    assert {p.name for p in worktrees.iterdir()} == {review.id}
    code, forced, err = await _clean(stack.address, token, project, "--force")
    assert code == 0, err + forced
    assert f"removing worktree .specloom/worktrees/{review.id}" in forced
    assert list(worktrees.iterdir()) == [], "no stale worktree is left"
    assert len(git(project, "worktree", "list").splitlines()) == 1
    heads = set(git(project, "for-each-ref", "--format=%(refname:short)", "refs/heads").split())
    assert not heads & session_branches
    # Nothing was lost: the pipeline's work is on the branch it pushed.
    pushed = struct_to_dict(parent.state)["branch"]
    assert isinstance(pushed, str)
    documents = git(project, "ls-tree", "-r", "--name-only", f"origin/{pushed}", "docs/design")
    designs = [c for c in children if c is not review]
    assert len(documents.split()) == len(designs) + 1  # the context and each component

    code, again, _ = await _clean(stack.address, token, project)
    assert code == 0
    assert "removing" not in again
