"""A whole context with dependent components, tested then coded, end to end (issue 13).

Real everything: Sessions, the coding orchestrator and the gateway on
loopback gRPC; a real executor agent (four slots) on a real git repository
with a bare ``origin`` beside it; real pytest runs; the scripted agent
backend replays recorded edits (and says so in every result). The project
is :mod:`tests.gateway.ledger`: components whose tests pass only with the
code of what they depend on, so a child that did not start from its
dependencies' work fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from specloom.agent.backends.scripted import ScriptedBackend
from specloom.agent.executor import Executor
from specloom.agent.workspace import Workspace
from specloom.client import Client
from specloom.protoconv import struct_to_dict
from specloom.v1 import common_pb2 as pb
from specloom.workflow import dependencies_of
from specloom_coding.service import SERVICE as CODING
from specloom_coding.state import CodingState
from tests.gateway.conftest import StartStack, eventually, git
from tests.gateway.ledger import TWELVE, Ledger, code_of, ledger_repo, module, path_of_tests

FINISHED = (pb.SESSION_STATUS_COMPLETE, pb.SESSION_STATUS_FAILED, pb.SESSION_STATUS_CANCELLED)


@pytest.fixture(autouse=True)
def _python_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # The profile's `python -m pytest` must be this interpreter (it has
    # pytest), without this environment's plugins.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


async def settled(client: Client, session_id: str, timeout: float = 240) -> pb.Session:
    """The session once it is complete, failed or cancelled."""

    async def done() -> bool:
        session = await client.get_session(session_id, view=pb.INTERACTION_VIEW_NONE)
        return session.status in FINISHED

    await eventually(done, timeout=timeout, every=0.25)
    return await client.get_session(session_id)


def steps(session: pb.Session) -> list[str]:
    return [i.step for i in session.interactions if i.command.WhichOneof("kind") != "control"]


def run_suite(origin: Path, branch: str, where: Path) -> str:
    """The project's whole suite, run on a fresh clone of ``origin``'s ``branch``."""
    subprocess.run(["git", "clone", "-q", "--branch", branch, str(origin), str(where)], check=True)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=where,
        env={**os.environ, "PYTHONPATH": "src", "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    return done.stdout


async def start_agent(
    start_stack: StartStack, repo: Path, script: Path, slots: int = 4
) -> tuple[Client, Any]:
    stack = await start_stack(specs=[CODING])
    token = await stack.token()
    await stack.agent(
        token, repo, "ex-1", backends=["scripted"], scripted_file=script, max_parallel=slots
    )
    return stack.client(token), stack


def write_script(path: Path, script: dict[str, Any]) -> Path:
    path.write_text(json.dumps(script))
    return path


def children_by_key(children: Sequence[pb.Session]) -> dict[str, pb.Session]:
    return {c.idempotency_key: c for c in children}


async def check_dependencies_came_first(
    client: Client, repo: Path, ledger: Ledger, children: dict[str, pb.Session]
) -> None:
    """Each dependent child started from its dependencies' finished work, merged in order."""
    full = {key: await client.get_session(child.id) for key, child in children.items()}
    for name, deps in ledger.graph:
        child = full[module(name)]
        told = [d.key for d in dependencies_of(struct_to_dict(child.state))]
        assert told == [module(d) for d in deps]
        if not deps:
            continue
        merged = struct_to_dict(child.interactions[0].result.data).get("merged")
        branches = [str(struct_to_dict(full[module(d)].state)["branch"]) for d in deps]
        assert merged == branches, (name, merged)
        mine = str(struct_to_dict(child.state)["branch"])
        for dependency in deps:
            # The dependency's last commit (its Finalize) is in the child's
            # history: it started once that work was done.
            done = str(struct_to_dict(full[module(dependency)].state)["commit"])
            assert git_ok(repo, "merge-base", "--is-ancestor", done, mine), (name, dependency)


def git_ok(repo: Path, *args: str) -> bool:
    return subprocess.run(["git", "-C", str(repo), *args], check=False).returncode == 0


async def test_a_twelve_component_context_is_tested_then_coded_and_delivered_as_one_commit(
    start_stack: StartStack, tmp_path: Path
) -> None:
    ledger = Ledger(TWELVE)
    repo = ledger_repo(tmp_path, ledger, with_tests=False)
    origin = tmp_path / "origin.git"
    main = git(repo, "rev-parse", "main").strip()
    script = write_script(tmp_path / "script.json", ledger.script(tests=True, code=True))
    client, _ = await start_agent(start_stack, repo, script)

    # Tests first: every component's tests, written by its own child, checked
    # together on the integrated branch, delivered as one commit and pushed.
    started = await client.start_session("ContextTesting", {"context": "ledger"}, mode="agentic")
    tested = await settled(client, started.session.id)
    assert tested.status == pb.SESSION_STATUS_COMPLETE, tested.status_reason
    assert steps(tested) == [
        "Initialize",
        "SpawnComponentTestSessions",
        "IntegrateChildren",
        "RunTests",
        "Finalize",
    ]
    state = CodingState.read(struct_to_dict(tested.state))
    together = state.test_run or {}
    # 24 tests in 12 files, each erroring on its missing module, none passing.
    assert (together["passed"], together["errors"], together["load_errors"]) == (0, 24, 0)
    assert state.tests_verified is True
    tests_branch = state.branch
    assert git(repo, "rev-parse", f"{tests_branch}~1").strip() == main
    assert sorted(git(repo, "show", "--name-only", "--format=", tests_branch).split()) == sorted(
        path_of_tests(name) for name, _ in ledger.graph
    )
    assert git(repo, "--git-dir", str(origin), "rev-parse", tests_branch).strip() == state.commit
    await check_dependencies_came_first(
        client, repo, ledger, children_by_key(await client.children(tested.id))
    )

    # Then the code, from the tests' branch: each child from its dependencies'
    # work, the whole suite on the integrated branch, one commit, pushed.
    started = await client.start_session(
        "ContextCoding", {"context": "ledger", "base": tests_branch}, mode="agentic"
    )
    coded = await settled(client, started.session.id)
    assert coded.status == pb.SESSION_STATUS_COMPLETE, coded.status_reason
    assert steps(coded) == [
        "Initialize",
        "SpawnComponentCodingSessions",
        "IntegrateChildren",
        "RunTests",
        "Finalize",
    ]
    state = CodingState.read(struct_to_dict(coded.state))
    together = state.test_run or {}
    assert (together["passed"], together["failed"], together["errors"]) == (24, 0, 0)
    branch = state.branch
    assert git(repo, "rev-parse", branch).strip() == state.commit
    # One commit on the session's branch holds every component, right on
    # top of the tests' commit: the children's merges are not in it.
    assert (
        git(repo, "rev-parse", f"{branch}~1").strip()
        == git(repo, "rev-parse", tests_branch).strip()
    )
    assert sorted(git(repo, "show", "--name-only", "--format=", branch).split()) == sorted(
        code_of(name) for name, _ in ledger.graph
    )
    assert git(repo, "log", "--format=%s", f"main..{branch}").splitlines() == [
        "Implement for ledger",
        "Add tests for ledger",
    ]
    assert state.pushed
    assert git(repo, "--git-dir", str(origin), "rev-parse", branch).strip() == state.commit
    children = children_by_key(await client.children(coded.id))
    assert all(c.status == pb.SESSION_STATUS_COMPLETE for c in children.values())
    await check_dependencies_came_first(client, repo, ledger, children)
    # The whole suite passes on what was pushed, run here from a fresh clone.
    assert "24 passed" in run_suite(origin, branch, tmp_path / "clone")
    # The person's checkout was never touched.
    assert git(repo, "branch", "--show-current").strip() == "main"
    assert git(repo, "status", "--porcelain") == ""


FOUR: Sequence[tuple[str, Sequence[str]]] = (
    ("accounts", ()),
    ("postings", ("accounts",)),
    ("ids", ()),
    ("clock", ()),
)


async def test_one_child_failing_keeps_the_others_and_resume_runs_only_what_did_not_finish(
    start_stack: StartStack, tmp_path: Path
) -> None:
    ledger = Ledger(FOUR)
    repo = ledger_repo(tmp_path, ledger, with_tests=True)

    # accounts' agent gets its own part wrong, and its fix repeats the mistake.
    def accounts(step: str, code: str) -> dict[str, Any]:
        return {
            "match": {"step": step, "component": "ledger.accounts"},
            "edits": [{"path": code_of("accounts"), "write": code}],
        }

    wrong = ledger.code("accounts", own=7)
    generate = accounts("GenerateImplementation", wrong)
    script = tmp_path / "script.json"
    extra = [generate, accounts("FixTestFailures", wrong)]
    write_script(script, ledger.script(tests=False, code=True, extra=extra))
    client, _ = await start_agent(start_stack, repo, script)
    started = await client.start_session(
        "ContextCoding", {"context": "ledger", "max_rounds": 1}, mode="agentic"
    )
    parent = await settled(client, started.session.id)

    # The parent stopped, saying what failed, what waits for it, and what is kept where.
    assert parent.status == pb.SESSION_STATUS_FAILED
    reason = parent.status_reason
    assert reason.startswith("stuck: SpawnComponentCodingSessions failed the same way twice")
    assert "2 of 4 ComponentCoding children not done: ledger.accounts: failed (" in reason
    assert "not delivered: src/ledger/accounts.py" in reason
    assert "ledger.postings: waits for ledger.accounts (failed)" in reason
    children = children_by_key(await client.children(parent.id))
    kept = {
        key: str(struct_to_dict(children[key].state)["branch"])
        for key in ("ledger.ids", "ledger.clock")
    }
    assert (
        f"kept, complete on their own branches (2): ledger.ids ({kept['ledger.ids']}), "
        f"ledger.clock ({kept['ledger.clock']})"
    ) in reason
    # The finished work is where the state says, committed on those branches.
    records = {c.key: c for c in CodingState.read(struct_to_dict(parent.state)).children}
    for key, branch in kept.items():
        name = key.removeprefix("ledger.")
        assert records[key].status == "complete"
        assert records[key].branch == branch
        assert code_of(name) in records[key].files
        assert git(repo, "show", f"{branch}:{code_of(name)}") == ledger.code(name)
    assert records["ledger.accounts"].status == "failed"
    assert records["ledger.postings"].status == "active"
    # postings never ran: its first command still waits for accounts.
    postings = await client.get_session(children["ledger.postings"].id)
    assert [i.status for i in postings.interactions] == [pb.INTERACTION_STATUS_PENDING]
    before = {
        key: (await client.get_session(c.id)).interaction_count for key, c in children.items()
    }

    # Someone fixes what the agent does; Resume runs accounts again, then postings.
    extra = [generate, accounts("FixTestFailures", ledger.code("accounts"))]
    write_script(script, ledger.script(tests=False, code=True, extra=extra))
    await client.resume(parent.id, reason="the fix is right now")
    parent = await settled(client, parent.id)
    assert parent.status == pb.SESSION_STATUS_COMPLETE, parent.status_reason
    after = {key: (await client.get_session(c.id)) for key, c in children.items()}
    # No completed child ran again.
    for key in kept:
        assert after[key].interaction_count == before[key]
    assert after["ledger.accounts"].status == pb.SESSION_STATUS_COMPLETE
    assert steps(after["ledger.accounts"])[-3:] == ["FixTestFailures", "RunTests", "Finalize"]
    assert steps(after["ledger.postings"]) == [
        "Initialize",
        "GenerateImplementation",
        "RunTests",
        "Finalize",
    ]
    assert len(await client.children(parent.id)) == 4  # revived, not recreated
    branch = CodingState.read(struct_to_dict(parent.state)).branch
    assert sorted(git(repo, "show", "--name-only", "--format=", branch).split()) == sorted(
        code_of(name) for name, _ in FOUR
    )
    assert "8 passed" in run_suite(tmp_path / "origin.git", branch, tmp_path / "clone")


@pytest.mark.parametrize("session_type", ["ContextTesting", "ContextCoding"])
@pytest.mark.parametrize(
    ("graph", "problem"),
    [
        (
            (("accounts", ("balances",)), ("postings", ("accounts",)), ("balances", ("postings",))),
            "Components: dependency cycle ledger.accounts -> ledger.balances -> "
            "ledger.postings -> ledger.accounts",
        ),
        (
            (("accounts", ()), ("postings", ("accounts", "journal"))),
            "Components.ledger.postings: dependency 'ledger.journal' names no component of "
            "this context",
        ),
    ],
    ids=["cycle", "missing"],
)
async def test_a_design_whose_dependencies_cannot_be_ordered_is_refused_naming_them(
    start_stack: StartStack,
    tmp_path: Path,
    session_type: str,
    graph: Sequence[tuple[str, Sequence[str]]],
    problem: str,
) -> None:
    ledger = Ledger(graph)
    repo = ledger_repo(tmp_path, ledger, with_tests=True)
    script = write_script(tmp_path / "script.json", ledger.script(tests=True, code=True))
    client, _ = await start_agent(start_stack, repo, script, slots=1)
    started = await client.start_session(session_type, {"context": "ledger"}, mode="agentic")
    session = await settled(client, started.session.id)
    assert session.status == pb.SESSION_STATUS_FAILED
    assert steps(session) == ["Initialize"]
    assert session.status_reason.startswith("Initialize failed: ")
    assert problem in session.status_reason
    assert await client.children(session.id) == []  # nothing was fanned out


async def drive(
    client: Client, executor: Executor, session_id: str, *, until: str = ""
) -> pb.Interaction | None:
    """Carry out a manual session's commands here, as a person does with `session drive`.

    A spawn is the gateway's to report, once the children (which the agent
    runs) have finished. Returns the pending interaction of step ``until``
    without running it, or None once the session is done.
    """
    while True:
        pending = await client.next_command(session_id)
        if not isinstance(pending, pb.Interaction):
            return None
        if pending.command.WhichOneof("kind") == "spawn_children":
            await eventually(_moved_on(client, session_id, pending.id), timeout=120, every=0.2)
            continue
        if pending.step == until:
            return pending
        result = await executor.execute(pending.command, execution_mode=pb.EXECUTION_MODE_MANUAL)
        await client.submit_result(session_id, pending.id, result)


def _moved_on(
    client: Client, session_id: str, interaction_id: str
) -> Callable[[], Awaitable[bool]]:
    """A check: the session is past ``interaction_id`` (the join was reported), or finished."""

    async def check() -> bool:
        session = await client.get_session(session_id)
        return session.interactions[-1].id != interaction_id or session.status in FINISHED

    return check


TWO: Sequence[tuple[str, Sequence[str]]] = (("accounts", ()), ("ids", ()))


async def test_children_whose_branches_conflict_are_merged_once_resolve_conflicts_has_run(
    start_stack: StartStack, tmp_path: Path
) -> None:
    ledger = Ledger(TWO)
    repo = ledger_repo(tmp_path, ledger, with_tests=True)
    resolved = ledger.code("accounts")
    resolve = {
        "match": {"session_type": "ContextCoding", "step": "ResolveConflicts"},
        "edits": [{"path": code_of("accounts"), "write": resolved}],
        "reply": "Kept accounts' own version; ids' copy of it was a stray.",
    }
    script = write_script(
        tmp_path / "script.json", ledger.script(tests=False, code=True, extra=[resolve])
    )
    client, _ = await start_agent(start_stack, repo, script)
    workspace = Workspace(repo)
    workspace.prepare()
    person = Executor(workspace, backends={"scripted": ScriptedBackend(script)})
    # A manual parent: a person carries out its steps here; the agent runs the children.
    started = await client.start_session("ContextCoding", {"context": "ledger"}, mode="manual")
    parent_id = started.session.id
    integrate = await drive(client, person, parent_id, until="IntegrateChildren")
    assert integrate is not None

    # Before the parent integrates, ids' branch gets its own copy of accounts'
    # module (an agent that strayed, a person's edit): the two children's
    # branches now add the same file with different contents.
    ids = children_by_key(await client.children(parent_id))["ledger.ids"]
    ids_tree = repo / ".specloom" / "worktrees" / ids.id
    (ids_tree / code_of("accounts")).write_text("OWN = 99\n\n\ndef value() -> int:\n    return 0\n")
    git(ids_tree, "add", code_of("accounts"))
    git(ids_tree, "commit", "-q", "-m", "a stray copy of ledger.accounts")

    conflict = await person.execute(integrate.command, execution_mode=pb.EXECUTION_MODE_MANUAL)
    judged = (await client.submit_result(parent_id, integrate.id, conflict)).completed.result
    ids_branch = str(struct_to_dict(ids.state)["branch"])
    assert judged.status == pb.RESULT_STATUS_ERROR
    assert judged.error_message == (
        f"merging ledger.ids ({ids_branch}) into {struct_to_dict(started.session.state)['branch']}"
        " conflicts in 1 file(s): src/ledger/accounts.py; the merge is left in progress for the "
        "conflicts to be resolved"
    )
    parent_tree = repo / ".specloom" / "worktrees" / parent_id
    assert "<<<<<<<" in (parent_tree / code_of("accounts")).read_text()  # left in progress

    resolve_step = await drive(client, person, parent_id, until="ResolveConflicts")
    assert resolve_step is not None
    assert list(resolve_step.command.agent.output_paths) == [code_of("accounts")]
    assert "- src/ledger/accounts.py" in resolve_step.command.agent.prompt
    assert await drive(client, person, parent_id) is None

    parent = await client.get_session(parent_id)
    assert parent.status == pb.SESSION_STATUS_COMPLETE, parent.status_reason
    assert steps(parent) == [
        "Initialize",
        "SpawnComponentCodingSessions",
        "IntegrateChildren",
        "ResolveConflicts",
        "IntegrateChildren",
        "RunTests",
        "Finalize",
    ]
    concluded = struct_to_dict(parent.interactions[4].result.data)
    assert concluded["merged"] == [ids_branch]
    branch = CodingState.read(struct_to_dict(parent.state)).branch
    assert git(repo, "show", f"{branch}:{code_of('accounts')}") == resolved
    assert "4 passed" in run_suite(tmp_path / "origin.git", branch, tmp_path / "clone")


LEAKY = (("clock", ()), ("stamps", ()))

CLOCK_LEAKS = '''\
"""ledger.clock: a fixed clock, for reproducible ledgers."""

import time

FIXED = 1_700_000_000.0
time.time = lambda: FIXED  # every caller of time.time now sees the fixed clock


def now() -> float:
    return time.time()
'''

CLOCK_FIXED = '''\
"""ledger.clock: a fixed clock, for reproducible ledgers."""

FIXED = 1_700_000_000.0


def now() -> float:
    return FIXED
'''

STAMPS = '''\
"""ledger.stamps: the time of each posting."""

import time


def stamp() -> float:
    return time.time()
'''

LEAKY_TESTS = {
    "clock": """\
import importlib


def test_the_clock_is_fixed():
    clock = importlib.import_module("ledger.clock")
    assert clock.now() == 1_700_000_000.0
""",
    "stamps": """\
import importlib
import time


def test_stamps_move_forward():
    stamps = importlib.import_module("ledger.stamps")
    first = stamps.stamp()
    time.sleep(0.01)
    assert stamps.stamp() > first
""",
}


async def test_a_suite_that_fails_only_integrated_is_fixed_by_fix_integration(
    start_stack: StartStack, tmp_path: Path
) -> None:
    ledger = Ledger(LEAKY)
    repo = ledger_repo(tmp_path, ledger, with_tests=False)
    for name, text in LEAKY_TESTS.items():
        (repo / path_of_tests(name)).parent.mkdir(parents=True, exist_ok=True)
        (repo / path_of_tests(name)).write_text(text)
    git(repo, "add", "tests")
    git(repo, "commit", "-q", "-m", "tests first")
    entries = [
        {
            "match": {"step": "GenerateImplementation", "component": "ledger.clock"},
            "edits": [{"path": code_of("clock"), "write": CLOCK_LEAKS}],
        },
        {
            "match": {"step": "GenerateImplementation", "component": "ledger.stamps"},
            "edits": [{"path": code_of("stamps"), "write": STAMPS}],
        },
        {
            "match": {"session_type": "ContextCoding", "step": "FixIntegration", "round": 1},
            "edits": [{"path": code_of("clock"), "write": CLOCK_FIXED}],
            "reply": "clock replaced time.time for everyone; now it keeps its time to itself.",
        },
    ]
    script = write_script(tmp_path / "script.json", {"entries": entries})
    client, _ = await start_agent(start_stack, repo, script)
    started = await client.start_session("ContextCoding", {"context": "ledger"}, mode="agentic")
    parent = await settled(client, started.session.id)
    assert parent.status == pb.SESSION_STATUS_COMPLETE, parent.status_reason
    # Each child passed its own tests; only together did stamps see clock's fixed time.
    for child in await client.children(parent.id):
        assert child.status == pb.SESSION_STATUS_COMPLETE
    assert steps(parent) == [
        "Initialize",
        "SpawnComponentCodingSessions",
        "IntegrateChildren",
        "RunTests",
        "FixIntegration",
        "RunTests",
        "Finalize",
    ]
    failed, fix, passed = parent.interactions[3:6]
    assert failed.result.status == pb.RESULT_STATUS_ERROR
    assert failed.result.error_message.startswith(
        "1 of 2 tests fail; first: tests.ledger.stamps_test::test_stamps_move_forward"
    )
    assert "tests/ledger/stamps_test.py" in fix.command.agent.prompt
    assert "(fix round 1 of 3)" in fix.command.agent.prompt
    assert passed.result.status == pb.RESULT_STATUS_OK
    branch = CodingState.read(struct_to_dict(parent.state)).branch
    assert git(repo, "show", f"{branch}:{code_of('clock')}") == CLOCK_FIXED
    assert "2 passed" in run_suite(tmp_path / "origin.git", branch, tmp_path / "clone")
