"""Children that build on siblings: creation order, their initial state, gating, partial failure.

Through the in-memory simulator (the real engine), and once through a real
orchestrator process on the Sessions fixture, so ``NewChild.depends_on``
is seen doing its job in the database.
"""

from __future__ import annotations

import pytest

from specloom.orchestration import orchestrator_service
from specloom.orchestration.conformance import OrchestratorUnderTest
from specloom.orchestration.simulate import Script, Simulation, report
from specloom.orchestration.writes import Write
from specloom.protoconv import JsonValue, dict_to_struct, struct_to_dict
from specloom.v1 import common_pb2 as pb
from specloom.v1 import orchestrator_pb2 as opb
from specloom.v1 import sessions_pb2 as spb
from specloom.workflow import ChildSpec, CommandPlan, commands, dependencies_of
from tests.fixtures.orchestrators import StartOrchestrator
from tests.orchestration.toy import REGISTRY

# A chain a -> b -> c, a diamond d -> (e, f) -> g, and a free part; listed
# dependents first, so only the engine's ordering can put them right.
GRAPH: dict[str, list[str]] = {
    "c": ["b"],
    "b": ["a"],
    "a": [],
    "g": ["e", "f"],
    "e": ["d"],
    "f": ["d"],
    "d": [],
    "free": [],
}


def graph(nodes: dict[str, list[str]]) -> dict[str, JsonValue]:
    """The Graph workflow's params for ``nodes`` (in their order)."""
    return {"graph": [[name, list(deps)] for name, deps in nodes.items()]}


def _runs(sim: Simulation) -> list[tuple[str, str]]:
    """(session key, step) of every command a simulated executor ran, in order."""
    return [(e["session"], e["step"]) for e in sim.trace if "step" in e]


async def test_children_are_created_dependencies_first_knowing_their_branches() -> None:
    sim = Simulation(REGISTRY, Script({}))
    sim.start("Graph", graph(GRAPH))
    await sim.run(max_steps=1, settle=False)  # Prepare: the spawn is written
    (created,) = [e["created"] for e in sim.trace if "created" in e]
    # Longest chain of dependents first (claims go oldest first, so the
    # critical path claims executors first), listed order among equals.
    assert created == ["toy.a", "toy.d", "toy.b", "toy.e", "toy.f", "toy.c", "toy.g", "toy.free"]
    g = sim.session("toy.g")
    dependencies = dependencies_of(struct_to_dict(g.state))
    assert [(d.key, d.branch) for d in dependencies] == [
        ("toy.e", "toy-toy.e"),
        ("toy.f", "toy-toy.f"),
    ]
    assert [d.session_id for d in dependencies] == [
        sim.session("toy.e").id,
        sim.session("toy.f").id,
    ]
    # Its first command, built at creation, merges them in order.
    (checkout,) = sim.history("toy.g")
    worktree = checkout.command.git.operations[0].add_worktree
    assert list(worktree.merge) == ["toy-toy.e", "toy-toy.f"]
    assert dependencies_of(struct_to_dict(sim.session("toy.a").state)) == ()
    # The spawn lists the children as the step asked for them.
    spawn = next(i for i in sim.history() if i.step == "Spawn")
    keys = {sim.session(k).id: k for k in sim.session_keys() if k}
    assert [keys[i] for i in spawn.command.spawn_children.child_session_ids] == [
        f"toy.{name}" for name in GRAPH
    ]


async def test_a_child_runs_only_after_its_dependencies_complete() -> None:
    sim = Simulation(REGISTRY, Script({}))
    sim.start("Graph", graph(GRAPH))
    await sim.run()
    assert sim.status() == "complete"
    finished: dict[str, int] = {}
    started: dict[str, int] = {}
    for index, (key, step) in enumerate(_runs(sim)):
        if step == "Checkout":
            started.setdefault(key, index)
        if step == "Work":
            finished[key] = index
    for name, deps in GRAPH.items():
        for dep in deps:
            assert finished[f"toy.{dep}"] < started[f"toy.{name}"], (name, dep)


async def test_a_failed_child_keeps_the_others_and_a_retry_runs_only_what_did_not_finish() -> None:
    # toy.b fails once: c (after b) waits; the independent parts finish.
    sim = Simulation(
        REGISTRY,
        Script({("toy.b", "Work"): [report("error", data={"fatal": True}), report("ok")]}),
    )
    sim.start("Graph", graph(GRAPH))
    await sim.run()
    assert sim.status() == "complete"
    runs = _runs(sim)
    # The parent judged while c could not move, said why, and retried.
    spawns = [e for e in sim.trace if e.get("step") == "Spawn"]
    assert spawns[0]["judged"] == "error"
    assert spawns[0]["reason"] == "toy.b: failed; toy.c: waiting for toy.b"
    # Nothing that completed ran again; b ran twice, c once (after b's second run).
    for key in ("toy.a", "toy.d", "toy.e", "toy.f", "toy.g", "toy.free"):
        assert runs.count((key, "Work")) == 1, key
    assert runs.count(("toy.b", "Work")) == 2
    assert runs.count(("toy.c", "Work")) == 1
    assert runs.index(("toy.c", "Checkout")) > max(
        i for i, run in enumerate(runs) if run == ("toy.b", "Work")
    )


@pytest.mark.parametrize(
    ("nodes", "reason"),
    [
        ({"a": ["a"]}, "Spawn cannot start: step Spawn: child 'toy.a' depends on itself"),
        (
            {"a": ["nope"]},
            "Spawn cannot start: step Spawn: child 'toy.a' depends on 'toy.nope', which is no "
            "child of this spawn",
        ),
        (
            {"a": ["c"], "b": ["a"], "c": ["b"], "d": []},
            "Spawn cannot start: step Spawn: children wait for each other: "
            "toy.a -> toy.c -> toy.b -> toy.a",
        ),
    ],
)
async def test_a_spawn_that_cannot_be_ordered_fails_saying_why(
    nodes: dict[str, list[str]], reason: str
) -> None:
    sim = Simulation(REGISTRY, Script({}))
    sim.start("Graph", graph(nodes))
    await sim.run()
    assert sim.status() == "failed"
    assert sim.session().status_reason == reason
    assert sim.session_keys() == [""]  # no child was created


async def test_a_retried_spawn_may_add_children_that_wait_on_existing_ones() -> None:
    sim = Simulation(REGISTRY, Script({}))
    sim.start("Graph", graph({"a": []}))
    await sim.run()
    head = sim.session()
    # The planning of a spawn attempt that finds toy.a made by an earlier one.
    plan_specs = (
        ChildSpec(type="Part", key="toy.a", params={"component": "toy.a"}),
        ChildSpec(type="Part", key="toy.z", params={"component": "toy.z"}, depends_on=("toy.a",)),
    )
    write = Write()
    sim.engine._plan_children(
        head,
        CommandPlan(commands.spawn_children("Spawn", []), create_children=plan_specs),
        sim._children(head.id),
        commands.spawn_children("Spawn", []),
        write,
    )
    (planned,) = write.children
    assert planned.session.idempotency_key == "toy.z"
    assert planned.depends_on == (sim.session("toy.a").id,)
    (dependency,) = dependencies_of(struct_to_dict(planned.session.state))
    assert (dependency.key, dependency.branch) == ("toy.a", "toy-toy.a")


# -- through a real orchestrator and Sessions --------------------------------------------------

TOY = orchestrator_service("toy", "toy workflows", REGISTRY)
SCOPE = pb.Scope(account_id="acct-deps", project_id="p", user_id="u")


async def _claim(orchestrator: OrchestratorUnderTest) -> list[spb.Assignment]:
    response = await orchestrator.sessions.ClaimCommands(
        spb.ClaimCommandsRequest(
            scope=SCOPE,
            executor_id="exec",
            capabilities=["shell", "git"],
            max_commands=20,
            lease_ttl_seconds=60,
        ),
        metadata=orchestrator.metadata,
    )
    return list(response.assignments)


async def _report(orchestrator: OrchestratorUnderTest, done: spb.Assignment) -> pb.Session:
    response = await orchestrator.stub.ReportAndAdvance(
        opb.ReportAndAdvanceRequest(
            scope=SCOPE,
            session_id=done.session.id,
            interaction_id=done.interaction.id,
            result=report("ok"),
            lease_epoch=done.interaction.lease.epoch,
        ),
        metadata=orchestrator.metadata,
    )
    return response.session


async def test_depends_on_reaches_sessions_and_gates_the_claim(
    start_orchestrator: StartOrchestrator,
) -> None:
    orchestrator = await start_orchestrator(TOY)
    opened = await orchestrator.stub.OpenSession(
        opb.OpenSessionRequest(
            scope=SCOPE,
            type="Graph",
            params=dict_to_struct(graph({"b": ["a"], "a": [], "free": []})),
            execution_mode=pb.EXECUTION_MODE_AGENTIC,
        ),
        metadata=orchestrator.metadata,
    )
    (prepare,) = await _claim(orchestrator)
    assert prepare.session.id == opened.session.id
    await _report(orchestrator, prepare)
    checkouts = await _claim(orchestrator)
    assert [a.session.idempotency_key for a in checkouts] == ["toy.a", "toy.free"]
    await _report(orchestrator, checkouts[0])
    (work,) = await _claim(orchestrator)  # toy.a's Work; toy.b still waits
    assert (work.session.idempotency_key, work.interaction.step) == ("toy.a", "Work")
    assert (await _report(orchestrator, work)).status == pb.SESSION_STATUS_COMPLETE
    (b,) = await _claim(orchestrator)
    assert b.session.idempotency_key == "toy.b"
    merge = b.interaction.command.git.operations[0].add_worktree.merge
    assert list(merge) == ["toy-toy.a"]
