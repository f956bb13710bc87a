"""The kernel's step library: one behaviour for both families, checked on its own.

A tiny workflow family built only from the library (a root that spawns
children, each writing one file) exercises the shared rules: worktrees and
branches per session, what passes to children, pull requests only when
asked, the join's one children list and fingerprint rule, the loop cap's one
reading, and typed state with clear errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

from specloom.errors import InvalidArgument
from specloom.orchestration.simulate import Call, Script, Simulation, report
from specloom.protoconv import JsonObject, dict_to_struct, struct_to_dict
from specloom.rules import UNIT_CODER, persona
from specloom.v1 import common_pb2 as pb
from specloom.workflow import (
    DONE,
    ChildSpec,
    ParamSpec,
    Registry,
    StepContext,
    StepDef,
    Workflow,
    max_rounds_of,
)
from specloom.workflow.commands import kind_of
from specloom.workflow.steps import (
    CHILD_PARAMS,
    MAX_STORIES,
    STEP_PARAMS,
    AgentStep,
    Commit,
    CommitChildren,
    Initialize,
    SessionState,
    Spawn,
    child_params,
    child_spec,
    story_lines,
)

PARTS = ("a.one", "a.two")


@dataclass(frozen=True)
class PartState(SessionState):
    """A family's record: the library's fields and one of its own."""

    parts: tuple[str, ...] = ()


class Setup(Initialize):
    def inputs(self, ctx: StepContext, state: SessionState) -> list[str]:
        return ["plan.md"]


class Write(AgentStep):
    summary: ClassVar[str] = "write the part"

    def outputs(self, ctx: StepContext) -> list[str]:
        return [f"parts/{ctx.name}.txt"]

    def prompt(self, ctx: StepContext) -> str:
        return f"write {ctx.name}"


class Deliver(Commit):
    def headline(self, ctx: StepContext, state: SessionState) -> str:
        return f"Part {ctx.name}"


class Fan(Spawn):
    def specs(self, ctx: StepContext, state: SessionState) -> list[ChildSpec]:
        return [
            child_spec(ctx, state, child_type="Part", key=key, name=key, params={"part": key})
            for key in PARTS
        ]

    def expected_files(self, ctx: StepContext, spec: ChildSpec) -> list[str]:
        return [f"parts/{spec.key}.txt"]


class DeliverAll(CommitChildren):
    def headline(self, ctx: StepContext, state: SessionState) -> str:
        return "All parts"


PARAMS = {
    **STEP_PARAMS,
    "part": ParamSpec("the part"),
    "user_stories": ParamSpec("stories", kind=list),
}
PART = Workflow(
    type="Part",
    version=1,
    params=PARAMS,
    steps=(
        StepDef("Initialize", Setup("part", session_kind="code"), on_ok="Write"),
        StepDef("Write", Write(), on_ok="Finalize"),
        StepDef("Finalize", Deliver(push=True), on_ok=DONE),
    ),
)
WHOLE = Workflow(
    type="Whole",
    version=1,
    params=PARAMS,
    child_types=("Part",),
    child_versions={"Part": 1},
    steps=(
        StepDef("Initialize", Setup("whole", session_kind="code"), on_ok="Spawn"),
        StepDef("Spawn", Fan("Part"), on_ok="Finalize"),
        StepDef("Finalize", DeliverAll(push=True), on_ok=DONE),
    ),
)
REGISTRY = Registry([PART, WHOLE])


def executor(call: Call) -> pb.Result:
    kind = kind_of(call.command)
    if kind == "agent":
        written = {path: f"part {call.key}\n" for path in call.command.collect_files}
        return report("ok", files=written, data={"conversation_id": f"c-{call.key}"})
    if kind == "git":
        files = {path: "plan\n" for path in call.command.collect_files if "*" not in path}
        return report("ok", files=files, data={"commit": f"sha-{call.key}", "pushed": True})
    return report("ok")


async def test_a_root_and_its_children_each_work_in_their_own_worktree_and_branch() -> None:
    sim = Simulation(REGISTRY, executor)
    sim.start("Whole", {"rules": ["---\ncomponent_type: '*'\nsession_type: code\n---\nBe kind.\n"]})
    await sim.run()
    assert sim.status() == "complete"
    root = sim.session()
    root_state = PartState.read(struct_to_dict(root.state))
    assert root_state.workdir == f".specloom/worktrees/{root.id}"
    assert root_state.branch == f"whole-session-for-whole-{root.id[-8:]}"
    # The rules were read once, by the root, and handed to every child.
    assert [r.body for r in root_state.rules] == ["Be kind."]
    for key in PARTS:
        child = sim.session(key)
        state = PartState.read(struct_to_dict(child.state))
        assert state.base == root_state.branch
        assert state.rules == root_state.rules
        assert not any("rules" in p for p in sim.history(key)[0].command.collect_files)
        init = sim.history(key)[0].command.git.operations[0].add_worktree
        assert (init.path, init.base) == (f".specloom/worktrees/{child.id}", root_state.branch)
        # A child commits on its own branch and never pushes: its parent delivers.
        finalize = sim.history(key)[-1].command.git.operations
        assert [op.WhichOneof("op") for op in finalize] == ["commit"]
        assert finalize[0].commit.expect_branch == state.branch
    # One list of children, each with its status, branch and files.
    assert [(c.key, c.status, c.files) for c in root_state.children] == [
        (key, "complete", (f"parts/{key}.txt",)) for key in PARTS
    ]
    finalize = sim.history()[-1].command.git.operations
    assert [op.WhichOneof("op") for op in finalize] == ["commit", "push"]  # no PR unless asked
    assert list(finalize[0].commit.paths) == ["parts/a.one.txt", "parts/a.two.txt"]


async def test_a_pull_request_is_opened_only_when_asked_for() -> None:
    for asked, ops in ((True, ["commit", "push", "pull_request"]), (False, ["commit", "push"])):
        sim = Simulation(REGISTRY, executor)
        sim.start("Part", {"part": "x", "pull_request": asked, "base": "main"})
        await sim.run()
        finalize = sim.history()[-1].command.git.operations
        assert [op.WhichOneof("op") for op in finalize] == ops
        if asked:
            pull = finalize[2].pull_request
            assert (pull.base, pull.head, pull.title) == (
                "main",
                finalize[1].push.branch,
                "Part Part",
            )


async def test_land_on_makes_the_root_s_final_commit_land_and_no_child_s() -> None:
    sim = Simulation(REGISTRY, executor)
    sim.start("Whole", {"land_on": "specloom/main", "profile": "elixir"})
    await sim.run()
    assert sim.status() == "complete"
    finalize = sim.history()[-1].command
    assert finalize.git.operations[0].commit.land_on == "specloom/main"
    # The executor scans the line after landing, with the session's profile.
    assert struct_to_dict(finalize.metadata)["profile"] == "elixir"
    for key in PARTS:
        assert "land_on" not in struct_to_dict(sim.session(key).params)
        child_finalize = sim.history(key)[-1].command
        assert child_finalize.git.operations[0].commit.land_on == ""
        assert "profile" not in struct_to_dict(child_finalize.metadata)
    # Without the param nothing lands, and the command is as before.
    plain = Simulation(REGISTRY, executor)
    plain.start("Part", {"part": "x"})
    await plain.run()
    commit = plain.history()[-1].command
    assert commit.git.operations[0].commit.land_on == ""
    assert "profile" not in struct_to_dict(commit.metadata)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("spec loom", "contains ' '"),
        ("-line", "starts with '-'"),
        ("a..b", "contains '..'"),
        ("line.lock", "ends with '.lock'"),
        ("x~1", "contains '~'"),
    ],
)
def test_a_land_on_that_is_no_branch_name_is_refused_at_start(name: str, problem: str) -> None:
    sim = Simulation(REGISTRY, executor)
    with pytest.raises(InvalidArgument) as refused:
        sim.start("Part", {"part": "x", "land_on": name})
    message = str(refused.value)
    assert f"parameter 'land_on' of Part is {name!r}" in message
    assert problem in message


def test_one_list_of_params_passes_to_children_and_user_stories_only_as_shown() -> None:
    stories: list[object] = [{"title": f"story {n}", "description": "x" * 900} for n in range(400)]
    ctx = StepContext(
        session_id="s",
        session_type="Whole",
        account_id="a",
        project_id="p",
        user_id="u",
        params={
            "profile": "python",
            "model": "m",
            "max_rounds": 2,
            "max_turns": 9,
            "project": {"name": "Shop"},
            "rules": ["---\n..."],
            "base": "main",
            "pull_request": True,
            "branch_prefix": "mine",
            "land_on": "specloom/main",
            "user_stories": stories,  # type: ignore[dict-item]
        },
        state={},
    )
    passed = child_params(ctx, part="a.one")
    assert set(passed) == {*CHILD_PARAMS, "part"}
    lines = passed["user_stories"]
    assert isinstance(lines, list)
    assert len(lines) == MAX_STORIES
    assert lines[-1] == "... and 351 more (see the project's backlog)"
    assert story_lines(lines) == lines  # a child shows the same
    # 400 stories of ~900 characters: the child gets a bounded share.
    assert sum(len(str(line)) for line in lines) < 60_000


def test_the_loop_cap_is_read_one_way() -> None:
    assert max_rounds_of({}) == 3
    assert max_rounds_of({"max_rounds": 0}) == 0
    assert max_rounds_of({"max_rounds": 5}) == 5
    assert max_rounds_of({"max_rounds": True}) == 3
    assert max_rounds_of({"max_rounds": -1}) == 3
    assert WHOLE.cap(WHOLE.step("Spawn"), {"max_rounds": 5}) == 5


async def test_a_join_reported_while_children_still_run_carries_no_fingerprint() -> None:
    sim = Simulation(REGISTRY, Script({}, default=executor))
    sim.start("Whole", {}, mode=pb.EXECUTION_MODE_MANUAL)
    await sim.run(max_steps=3, settle=False)  # Initialize, then the spawn is pending
    head = sim.session()
    pending = [i for i in sim.history() if i.status == pb.INTERACTION_STATUS_PENDING]
    assert [i.step for i in pending] == ["Spawn"]
    write = await sim.engine.result(
        head,
        pending[0],
        report("ok"),
        lease_epoch=0,
        reported_digest=b"early",
        advance=False,
        load_children=sim._loader(sim._sessions[head.id]),
    )
    assert write.complete is not None
    judged = struct_to_dict(write.complete.result.data)["judgement"]
    assert isinstance(judged, dict)
    assert "fingerprint" not in judged  # a person's early report is not "the same failure"
    assert write.complete.result.error_message.startswith("2 of 2 Part children not done")


async def test_state_of_the_wrong_shape_fails_the_session_naming_the_field() -> None:
    sim = Simulation(REGISTRY, executor)
    sim.start("Part", {"part": "x"})
    await sim.run(max_steps=1, settle=False)
    stored = sim._sessions[sim.session().id].session
    state: JsonObject = struct_to_dict(stored.state)
    state["files"] = "parts/x.txt"  # a string where a list belongs
    dict_to_struct(state, stored.state)
    await sim.run()
    assert sim.status() == "failed"
    assert sim.session().status_reason == (
        "Write failed: Write: unreadable session state: state.files must be a list, "
        "found 'parts/x.txt'"
    )


@pytest.mark.parametrize("name", ["", "  "])
def test_a_session_without_a_subject_is_named_for_its_type(name: str) -> None:
    ctx = StepContext(
        session_id="0190d7c8-aaaa-7bbb-8ccc-1234abcd5678",
        session_type="Whole",
        account_id="a",
        project_id="p",
        user_id="u",
        params={},
        state={},
        name=name.strip(),
    )
    plan = Setup("whole", session_kind="code").command(ctx)
    worktree = plan.command.git.operations[0].add_worktree
    assert worktree.branch == "whole-session-for-whole-abcd5678"


class WriteAsCoder(Write):
    persona: ClassVar[str] = UNIT_CODER


async def test_an_agent_step_sends_its_persona_as_changed_by_the_inherited_rules() -> None:
    part = Workflow(
        type="Part",
        version=1,
        params=PARAMS,
        steps=(
            StepDef("Initialize", Setup("part", session_kind="code"), on_ok="Write"),
            StepDef("Write", WriteAsCoder(), on_ok="Finalize"),
            StepDef("Finalize", Deliver(push=True), on_ok=DONE),
        ),
    )
    sim = Simulation(Registry([part, WHOLE]), executor)
    persona_rule = (
        "---\ncomponent_type: '*'\nsession_type: code\npersona: unit_coder\nname: House\n---\n"
        "Prefer the standard library.\n"
    )
    task_rule = "---\ncomponent_type: '*'\nsession_type: code\n---\nBe kind.\n"
    sim.start("Whole", {"rules": [persona_rule, task_rule]})
    await sim.run()
    assert sim.status() == "complete"
    for key in PARTS:
        write = sim.history(key)[1].command.agent
        # Read by the root, inherited by the child, sent as the system prompt.
        assert write.system_prompt == (
            f"{persona(UNIT_CODER).text}\n\n## From the project's rules\n\n"
            "### House\n\nPrefer the standard library."
        )
        assert write.prompt == f"write {key}"
    # A step that names no persona sends no system prompt.
    plain = Simulation(REGISTRY, executor)
    plain.start("Whole", {})
    await plain.run()
    assert plain.history(PARTS[0])[1].command.agent.system_prompt == ""
