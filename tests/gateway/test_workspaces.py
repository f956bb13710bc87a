"""Issue 12, finding 1: a session's steps run only in its own workspace.

Real gateway, real agents, real git repositories: two clones of one
repository are two workspaces. A session started without one is pinned to
the workspace of the first agent that claims its command; from then on its
commands — and its children's — go only to agents serving that clone, and
while none is connected it waits, saying so, rather than moving.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from specloom.v1 import common_pb2 as pb
from specloom.workspaces import identify, label
from tests.gateway.conftest import MAKEFILE, StartStack, eventually, make_repo

# `make test` waits while a `hold` file exists in the checkout.
HELD_TEST = MAKEFILE.replace(
    "test:\n\t@echo tested\n",
    "test:\n\t@while [ -f hold ]; do sleep 0.1; done; echo tested\n",
)


def clone(source: Path, target: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(source), str(target)], check=True)
    return target


async def test_a_step_never_moves_to_another_clone(start_stack: StartStack, tmp_path: Path) -> None:
    stack = await start_stack()
    token = await stack.token()
    client = stack.client(token)
    mine = make_repo(tmp_path / "shop", {"Makefile": HELD_TEST})
    theirs = clone(mine, tmp_path / "shop-clone")
    (mine / "hold").write_text("")
    first = await stack.agent(token, mine, "a")

    started = await client.start_session("Build", {}, mode="agentic")
    session_id = started.session.id
    # Its first command was leased to the only free executor as it was
    # created, which pinned it to that executor's workspace then and there.
    assert started.session.workspace.id == identify(mine).id

    async def testing() -> bool:
        session = await client.get_session(session_id)
        last = session.interactions[-1]
        return last.step == "Test" and last.HasField("lease")

    await eventually(testing, timeout=20)
    pinned = await client.get_session(session_id, view=pb.INTERACTION_VIEW_NONE)
    assert pinned.workspace.id == identify(mine).id, "pinned where its first command ran"

    # The clone's agent is connected; the session's own agent goes away mid-step.
    await stack.agent(token, theirs, "b")
    await stack.stop_agent(first)

    async def waiting() -> bool:
        session = await client.get_session(session_id, view=pb.INTERACTION_VIEW_NONE)
        return session.waiting_for == f"an executor of workspace {label(pinned.workspace)}"

    await eventually(waiting, timeout=20)
    await asyncio.sleep(1.5)  # several claim sweeps
    assert {agent for agent, _, a in stack.assignments() if a.session.id == session_id} == {"a"}

    # Its own workspace's agent comes back and finishes it there.
    (mine / "hold").unlink()
    await stack.agent(token, mine, "a-again")

    async def complete() -> bool:
        session = await client.get_session(session_id, view=pb.INTERACTION_VIEW_NONE)
        return session.status == pb.SESSION_STATUS_COMPLETE

    await eventually(complete, timeout=30)
    ran = {agent for agent, _, a in stack.assignments() if a.session.id == session_id}
    assert ran == {"a", "a-again"}


async def test_children_run_in_their_parents_workspace(
    start_stack: StartStack, tmp_path: Path
) -> None:
    stack = await start_stack()
    token = await stack.token()
    client = stack.client(token)
    mine = make_repo(tmp_path / "shop")
    theirs = clone(mine, tmp_path / "shop-clone")
    workspace = identify(mine)
    await stack.agent(token, theirs, "b", max_parallel=4)
    await stack.agent(token, mine, "a", max_parallel=4)

    started = await client.start_session(
        "Tree", {"parts": ["x", "y", "z"]}, mode="agentic", workspace=workspace
    )

    async def complete() -> bool:
        session = await client.get_session(started.session.id, view=pb.INTERACTION_VIEW_NONE)
        return session.status == pb.SESSION_STATUS_COMPLETE

    await eventually(complete, timeout=40)
    children = await client.children(started.session.id)
    assert len(children) == 3
    assert all(child.workspace == workspace for child in children)
    ran = {agent for agent, _, _ in stack.assignments()}
    assert ran == {"a"}, "nothing of the session or its children ran in the clone"


async def test_one_agent_serves_two_repositories_each_session_in_its_own(
    start_stack: StartStack, tmp_path: Path
) -> None:
    stack = await start_stack()
    token = await stack.token()
    client = stack.client(token)
    api = make_repo(tmp_path / "api", {"Makefile": MAKEFILE.replace("compiled", "compiled api")})
    web = make_repo(tmp_path / "web", {"Makefile": MAKEFILE.replace("compiled", "compiled web")})
    await stack.agent(token, api, "laptop", workspaces=[web], max_parallel=2)

    async def recorded() -> bool:
        # Presence is written just after the welcome, not before it.
        return len(await client.executors()) == 1

    await eventually(recorded, timeout=10)
    served = {w.id for w in (await client.executors())[0].workspaces}
    assert served == {identify(api).id, identify(web).id}

    ids = {}
    for repo in (api, web):
        started = await client.start_session("Build", {}, mode="agentic", workspace=identify(repo))
        ids[repo.name] = started.session.id

    async def complete() -> bool:
        for session_id in ids.values():
            session = await client.get_session(session_id, view=pb.INTERACTION_VIEW_NONE)
            if session.status != pb.SESSION_STATUS_COMPLETE:
                return False
        return True

    await eventually(complete, timeout=30)
    for name, session_id in ids.items():
        compiled = (await client.get_session(session_id)).interactions[0]
        assert compiled.result.stdout.strip() == f"compiled {name}"
