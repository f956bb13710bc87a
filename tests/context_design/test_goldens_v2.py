"""Golden step sequences of every design workflow (definition v2), through the real engine.

Each test drives a workflow in the in-memory simulator with a scripted
executor and compares the trace with a committed file under ``goldens/v2/``.
A change in behaviour shows up as a diff to review
(``SPECLOOM_UPDATE_GOLDENS=1`` rewrites them). What v2 changed from v1:
every session works in its own worktree on a branch of its own (a
ContextDesignReview gained an Initialize for it), commits name the branch
they must land on, a pull request is opened only when ``pull_request`` is
true, children inherit the parent's rules, and the parent records every
child in one list.
"""

from __future__ import annotations

from pathlib import Path

from specloom.orchestration.simulate import Call, Simulation, assert_golden, report
from specloom.protoconv import struct_to_dict
from specloom.v1 import common_pb2 as pb
from specloom_context_design.state import DesignState
from specloom_context_design.workflows import REGISTRY
from tests.context_design.world import (
    GOOD_REVIEW,
    Answer,
    agent_ok,
    collected,
    initialized,
    scaffolded,
    script,
)
from tests.documents.samples import (
    VALID_COMPONENT,
    VALID_CONTEXT,
    VALID_SCHEMA,
    component,
    context_with_components,
)

GOLDENS = Path(__file__).parent / "goldens" / "v2"
ROOT = "00000000-0000-7000-8000-000000000001"

MISSING_TESTS = VALID_CONTEXT.split("## Test Strategies")[0]
NO_DOT = context_with_components(component("Stock"))


def bad(n: int) -> str:
    """A context design with a different problem for every ``n``."""
    return context_with_components(component(f"Stock{n}"))


def steps(sim: Simulation, key: str = "") -> list[str]:
    return [i.step for i in sim.history(key)]


def state_of(sim: Simulation, key: str = "") -> DesignState:
    return DesignState.read(struct_to_dict(sim.session(key).state))


# -- ContextDesign ----


async def test_context_design_happy_path_in_its_own_worktree() -> None:
    sim = Simulation(REGISTRY, script({}))
    sim.start("ContextDesign", {"context": "Inventory"})
    await sim.run()
    assert sim.status() == "complete"
    assert sim.session().definition_version == 2
    assert steps(sim) == [
        "Initialize",
        "GenerateContextDesign",
        "ValidateDesign",
        "Scaffold",
        "Finalize",
    ]
    state = state_of(sim)
    assert [c.module_name for c in state.components] == ["Inventory.Stock", "Inventory.Warehouses"]
    assert state.design_path == "docs/design/inventory.md"
    assert state.branch == "context-design-session-for-inventory-00000001"
    assert state.workdir == f".specloom/worktrees/{ROOT}"
    history = sim.history()
    assert history[0].command.git.operations[0].add_worktree.branch == state.branch
    assert {i.command.workdir for i in history[1:]} == {state.workdir}
    finalize = history[-1].command.git.operations
    assert [op.WhichOneof("op") for op in finalize] == ["commit"]
    assert finalize[0].commit.expect_branch == state.branch
    # The scaffolding is committed with the design.
    assert list(finalize[0].commit.paths) == [
        "docs/design/inventory.md",
        "src/inventory/__init__.py",
        "src/inventory/stock.py",
        "src/inventory/warehouses.py",
        "tests/inventory/warehouses_test.py",
    ]
    assert state.scaffolded == tuple(list(finalize[0].commit.paths)[1:])
    assert_golden(sim.trace, GOLDENS / "context_design_happy.json")


async def test_context_design_validation_failure_then_revise_then_pass() -> None:
    sim = Simulation(
        REGISTRY,
        script({("", "ValidateDesign"): [collected(MISSING_TESTS), collected(VALID_CONTEXT)]}),
    )
    sim.start("ContextDesign", {"context": "Inventory"})
    await sim.run()
    assert sim.status() == "complete"
    assert steps(sim) == [
        "Initialize",
        "GenerateContextDesign",
        "ValidateDesign",
        "ReviseDesign",
        "ValidateDesign",
        "Scaffold",
        "Finalize",
    ]
    (revise,) = [i for i in sim.history() if i.step == "ReviseDesign"]
    # The revise step continues the generating conversation and names the exact problem.
    assert revise.command.agent.resume_conversation_id == "conv-root-GenerateContextDesign-1"
    assert "- Missing required sections: test strategies, test assertions" in (
        revise.command.agent.prompt
    )
    assert "(revise round 1 of at most 3)" in revise.command.agent.prompt
    assert state_of(sim).validation_errors == ()
    assert_golden(sim.trace, GOLDENS / "context_design_revise_then_pass.json")


async def test_context_design_scaffold_conflict_is_fixed_then_scaffolded_again() -> None:
    conflict = scaffolded(conflicts=["src/inventory/stock.py"])
    sim = Simulation(REGISTRY, script({("", "Scaffold"): [conflict, scaffolded()]}))
    sim.start("ContextDesign", {"context": "Inventory"})
    await sim.run()
    assert sim.status() == "complete"
    assert steps(sim)[3:] == ["Scaffold", "FixScaffold", "Scaffold", "Finalize"]
    (fix,) = [i for i in sim.history() if i.step == "FixScaffold"]
    # The fix names the conflicting file in the runner's words, and its round.
    assert (
        "- conflict: src/inventory/stock.py already exists with different content; "
        "scaffolding never overwrites a file" in fix.command.agent.prompt
    )
    assert "(fix round 1 of at most 3)" in fix.command.agent.prompt
    assert not fix.command.agent.resume_conversation_id
    assert state_of(sim).scaffold_errors == ()
    assert_golden(sim.trace, GOLDENS / "context_design_scaffold_conflict_fixed.json")


async def test_context_design_scaffold_failing_past_the_cap_fails_the_session() -> None:
    def broken(n: int) -> Answer:
        return scaffolded(
            failed={
                "argv": ["python", "-c", "import inventory"],
                "exit_code": 1,
                "output": f"SyntaxError: invalid syntax (attempt {n})",
                "check": True,
            }
        )

    sim = Simulation(
        REGISTRY,
        script({("", "Scaffold"): [broken(n) for n in range(10)]}),
    )
    sim.start("ContextDesign", {"context": "Inventory", "max_rounds": 2})
    await sim.run()
    assert sim.status() == "failed"
    assert steps(sim).count("FixScaffold") == 2
    reason = sim.session().status_reason
    assert reason.startswith("Scaffold still failing after 2 rounds (the cap): check ")
    assert "SyntaxError: invalid syntax (attempt 2)" in reason
    assert_golden(sim.trace, GOLDENS / "context_design_scaffold_cap_reached.json")


async def test_context_design_cap_reached_fails_with_the_reason() -> None:
    answers = [collected(bad(n)) for n in range(10)]
    sim = Simulation(REGISTRY, script({("", "ValidateDesign"): answers}))
    sim.start("ContextDesign", {"context": "Inventory"})
    await sim.run()
    assert sim.status() == "failed"
    assert steps(sim).count("ReviseDesign") == 3
    reason = sim.session().status_reason
    assert reason.startswith("ValidateDesign still failing after 3 rounds (the cap): ")
    assert "Components.Stock3: module name must be fully qualified" in reason
    assert_golden(sim.trace, GOLDENS / "context_design_cap_reached.json")


async def test_context_design_same_failure_twice_is_stuck_and_resume_continues() -> None:
    validations = [collected(NO_DOT), collected(NO_DOT), collected(VALID_CONTEXT)]
    sim = Simulation(REGISTRY, script({("", "ValidateDesign"): validations}))
    sim.start("ContextDesign", {"context": "Inventory"})
    await sim.run()
    assert sim.status() == "failed"
    assert sim.session().status_reason.startswith(
        "stuck: ValidateDesign failed the same way twice in a row"
    )
    assert steps(sim).count("ReviseDesign") == 1
    await sim.steer("", pb.CONTROL_ACTION_RESUME, reason="edited the design by hand")
    await sim.run()
    assert sim.status() == "complete"
    after_resume = [i for i in sim.history() if i.step == "ReviseDesign"][-1]
    # One way of counting rounds for both families: 0 is the fix after a Resume.
    assert struct_to_dict(after_resume.command.metadata)["round"] == 0
    assert "(a revision after the session was resumed; then up to 3 more rounds)" in (
        after_resume.command.agent.prompt
    )
    assert_golden(sim.trace, GOLDENS / "context_design_stuck_then_resumed.json")


async def test_context_design_agent_failures_are_retried_then_capped() -> None:
    down = report("error", error="agent backend unavailable", data={"conversation_id": "c"})
    sim = Simulation(REGISTRY, script({("", "GenerateContextDesign"): [down]}))
    sim.start("ContextDesign", {"context": "Inventory", "max_rounds": 1})
    await sim.run()
    assert sim.status() == "failed"
    assert steps(sim) == ["Initialize", "GenerateContextDesign", "GenerateContextDesign"]
    assert "agent backend unavailable" in sim.session().status_reason


async def test_an_agent_that_writes_no_design_is_an_error_naming_the_path() -> None:
    def silent(call: Call) -> pb.Result:
        return report("ok", data={"conversation_id": "c"}, files={"docs/design/inventory.md": None})

    sim = Simulation(REGISTRY, script({("", "GenerateContextDesign"): [silent]}))
    sim.start("ContextDesign", {"context": "Inventory"})
    await sim.run()
    assert sim.status() == "failed"
    assert steps(sim) == ["Initialize", "GenerateContextDesign", "GenerateContextDesign"]
    assert sim.session().status_reason == (
        "stuck: GenerateContextDesign failed the same way twice in a row: GenerateContextDesign:"
        " the agent finished but wrote nothing at docs/design/inventory.md"
    )


# -- ComponentDesign ----


async def test_component_design_happy_path() -> None:
    sim = Simulation(REGISTRY, script({}))
    sim.start(
        "ComponentDesign",
        {"component": {"module_name": "Inventory.Stock", "type": "schema"}},
    )
    await sim.run()
    assert sim.status() == "complete"
    assert sim.session().name == "Inventory.Stock"
    assert steps(sim) == ["Initialize", "GenerateComponentDesign", "ValidateDesign", "Finalize"]
    assert state_of(sim).branch == "component-design-session-for-inventory-stock-00000001"
    assert_golden(sim.trace, GOLDENS / "component_design_happy.json")


async def test_component_design_revise_then_pass() -> None:
    thin = VALID_COMPONENT.split("## Test Assertions")[0]
    sim = Simulation(
        REGISTRY,
        script({("", "ValidateDesign"): [collected(thin), collected(VALID_COMPONENT)]}),
    )
    sim.start("ComponentDesign", {"component": "Inventory.Stock"})
    await sim.run()
    assert sim.status() == "complete"
    assert steps(sim).count("ReviseDesign") == 1
    assert_golden(sim.trace, GOLDENS / "component_design_revise_then_pass.json")


# -- ContextComponentsDesign ----


async def test_context_components_design_happy_path() -> None:
    sim = Simulation(REGISTRY, script({}))
    stories = [f"As a clerk I count shelf {n}" for n in range(120)]
    sim.start(
        "ContextComponentsDesign",
        {"context": "Inventory", "model": "opus", "pull_request": True, "user_stories": stories},
    )
    await sim.run()
    assert sim.status() == "complete"
    assert sim.session_keys() == ["", "Inventory.Stock", "Inventory.Warehouses", "review"]
    assert {sim.status(k) for k in sim.session_keys()} == {"complete"}
    assert steps(sim) == [
        "Initialize",
        "SpawnComponentDesignSessions",
        "SpawnReviewSession",
        "Finalize",
    ]
    stock = sim.session("Inventory.Stock")
    assert stock.component.type == "schema"
    assert stock.definition_version == 2
    params = struct_to_dict(stock.params)
    assert params["model"] == "opus"
    # A child gets what its prompt shows of the user stories, not the whole backlog.
    assert params["user_stories"] == [*stories[:49], "... and 71 more (see the project's backlog)"]
    parent_branch = state_of(sim).branch
    for key in ("Inventory.Stock", "Inventory.Warehouses", "review"):
        worktree = sim.history(key)[0].command.git.operations[0].add_worktree
        assert worktree.base == parent_branch
    finalize = sim.history()[-1].command
    assert finalize.workdir == f".specloom/worktrees/{ROOT}"
    operations = finalize.git.operations
    assert list(operations[0].commit.paths) == [
        "docs/design/inventory/stock.md",
        "docs/design/inventory/warehouses.md",
        "docs/review/inventory/component_designs.md",
    ]
    assert operations[0].commit.expect_branch == parent_branch
    assert [g.branch for g in operations[0].commit.gather] == [
        state_of(sim, "Inventory.Stock").branch,
        state_of(sim, "Inventory.Warehouses").branch,
        state_of(sim, "review").branch,
    ]
    assert [op.WhichOneof("op") for op in operations] == ["commit", "push", "pull_request"]
    review_init = sim.history("review")[0].command.git.operations[0].add_worktree
    assert [list(g.paths) for g in review_init.gather] == [
        ["docs/design/inventory/stock.md"],
        ["docs/design/inventory/warehouses.md"],
    ]
    # Every child, the review too, in the one list of children.
    assert [(c.key, c.type, c.status) for c in state_of(sim).children] == [
        ("Inventory.Stock", "ComponentDesign", "complete"),
        ("Inventory.Warehouses", "ComponentDesign", "complete"),
        ("review", "ComponentDesignReview", "complete"),
    ]
    assert_golden(sim.trace, GOLDENS / "context_components_design_happy.json")


async def test_a_failed_child_is_revived_by_the_retried_spawn_not_recreated() -> None:
    sim = Simulation(
        REGISTRY,
        script(
            {
                ("Inventory.Stock", "ValidateDesign"): [
                    collected("# Stock\n"),
                    collected("# Stock\n"),
                    collected(VALID_SCHEMA),  # Inventory.Stock is a schema
                ]
            }
        ),
    )
    sim.start("ContextComponentsDesign", {"context": "Inventory"})
    await sim.run()
    assert sim.status() == "complete"
    assert sim.session_keys() == ["", "Inventory.Stock", "Inventory.Warehouses", "review"]
    spawns = [i for i in sim.history() if i.step == "SpawnComponentDesignSessions"]
    assert len(spawns) == 2
    assert spawns[0].result.error_message.startswith(
        "1 of 2 ComponentDesign children not done: Inventory.Stock: failed (stuck: ValidateDesign"
    )
    assert list(spawns[1].command.spawn_children.child_session_ids) == list(
        spawns[0].command.spawn_children.child_session_ids
    )
    assert list(spawns[1].command.spawn_children.resumed_child_ids) == [
        sim.session("Inventory.Stock").id
    ]
    assert steps(sim, "Inventory.Stock")[-4:] == [
        "control:CONTROL_ACTION_RESUME",
        "ReviseDesign",
        "ValidateDesign",
        "Finalize",
    ]
    finalize = sim.history()[-1].command.git.operations
    assert [op.WhichOneof("op") for op in finalize] == ["commit", "push"]  # no PR unless asked
    assert_golden(sim.trace, GOLDENS / "context_components_design_child_fails_then_retry.json")


async def test_a_child_that_keeps_failing_fails_the_parent_at_the_cap() -> None:
    answers = [collected(f"# Stock {n}\n") for n in range(40)]
    sim = Simulation(REGISTRY, script({("Inventory.Stock", "ValidateDesign"): answers}))
    sim.start("ContextComponentsDesign", {"context": "Inventory", "max_rounds": 1})
    await sim.run()
    assert sim.status() == "failed"
    assert sim.status("Inventory.Stock") == "failed"
    assert sim.session_keys() == ["", "Inventory.Stock", "Inventory.Warehouses"]
    assert "Inventory.Stock: failed" in sim.session().status_reason
    # The finished child's work is recorded where it is.
    recorded = {c.key: c for c in state_of(sim).children}
    assert recorded["Inventory.Warehouses"].status == "complete"
    assert recorded["Inventory.Warehouses"].files == ("docs/design/inventory/warehouses.md",)
    assert recorded["Inventory.Stock"].status == "failed"


async def test_cancelling_the_parent_cancels_its_children() -> None:
    sim = Simulation(REGISTRY, script({}))
    sim.start("ContextComponentsDesign", {"context": "Inventory"})
    await sim.run(max_steps=4, settle=False)
    assert sim.session_keys() == ["", "Inventory.Stock", "Inventory.Warehouses"]
    sim.cancel("", reason="stop")
    assert {sim.status(k) for k in sim.session_keys()} == {"cancelled"}
    abandoned = [i for i in sim.history() if i.status == pb.INTERACTION_STATUS_ABANDONED]
    assert [i.step for i in abandoned] == ["SpawnComponentDesignSessions"]
    await sim.run()  # nothing moves any more
    assert {sim.status(k) for k in sim.session_keys()} == {"cancelled"}
    assert_golden(sim.trace, GOLDENS / "context_components_design_cancelled.json")


async def test_fan_out_without_a_context_design_fails_at_once_saying_what_to_do() -> None:
    sim = Simulation(REGISTRY, script({("", "Initialize"): [initialized(None)]}))
    sim.start("ContextComponentsDesign", {"context": "Inventory", "base": "design-branch"})
    await sim.run()
    assert sim.status() == "failed"
    assert sim.session().status_reason == (
        "Initialize failed: no context design at docs/design/inventory.md on design-branch: "
        "design the context first (a ContextDesign session) and start this session from its "
        "branch (the `base` parameter), then Resume"
    )
    assert sim.session_keys() == [""]


async def test_project_rules_are_read_once_and_reach_the_children_prompts() -> None:
    rule = "---\ncomponent_type: schema\nsession_type: design\nname: Money\n---\nUse decimals.\n"

    def root_init(call: Call) -> pb.Result:
        return initialized(rules={f".specloom/worktrees/{ROOT}/.specloom/rules/money.md": rule})(
            call
        )

    sim = Simulation(REGISTRY, script({("", "Initialize"): [root_init]}))
    sim.start("ContextComponentsDesign", {"context": "Inventory"})
    await sim.run()
    assert sim.status() == "complete"
    # Children collect no rule files: they inherit the parent's.
    assert not any("rules" in p for p in sim.history("Inventory.Stock")[0].command.collect_files)
    assert [r.name for r in state_of(sim, "Inventory.Stock").rules] == ["Money"]
    stock = sim.history("Inventory.Stock")[1].command.agent.prompt
    warehouses = sim.history("Inventory.Warehouses")[1].command.agent.prompt
    assert "### Money\n\nUse decimals." in stock  # a schema
    assert "### Money" not in warehouses  # a repository


# -- reviews ----


async def test_component_design_review_on_its_own() -> None:
    sim = Simulation(REGISTRY, script({}))
    sim.start("ComponentDesignReview", {"context": "Inventory"})
    await sim.run()
    assert sim.status() == "complete"
    assert steps(sim) == ["Initialize", "ExecuteReview", "Finalize"]
    prompt = sim.history()[1].command.agent.prompt
    assert "- `Inventory.Stock`: `docs/design/inventory/stock.md`" in prompt
    assert_golden(sim.trace, GOLDENS / "component_design_review_happy.json")


async def test_a_missing_review_is_asked_for_again_in_the_same_conversation() -> None:
    def nothing_written(call: Call) -> pb.Result:
        return report(
            "ok", data={"conversation_id": "c-review"}, files={call.command.collect_files[0]: None}
        )

    sim = Simulation(
        REGISTRY, script({("", "ExecuteReview"): [nothing_written, collected(GOOD_REVIEW)]})
    )
    sim.start("ContextDesignReview", {"context": "Inventory"})
    await sim.run()
    assert sim.status() == "complete"
    first, retry = [i for i in sim.history() if i.step == "ExecuteReview"]
    assert first.result.error_message == (
        "The review document docs/review/inventory/context_design.md was not written."
    )
    assert retry.command.agent.resume_conversation_id == "c-review"
    assert "was not written" in retry.command.agent.prompt
    assert_golden(sim.trace, GOLDENS / "context_design_review_missing_then_written.json")


DESIGNS = [
    "docs/design/inventory.md",
    "docs/design/inventory/stock.md",
    "docs/design/inventory/warehouses.md",
]


async def test_context_design_review_happy_path_in_its_own_worktree() -> None:
    sim = Simulation(REGISTRY, script({}))
    sim.start("ContextDesignReview", {"context": "Inventory", "user_stories": ["Count stock"]})
    await sim.run()
    assert sim.status() == "complete"
    assert steps(sim) == ["Initialize", "ExecuteReview", "Finalize"]
    initialize, review, finalize = (i.command for i in sim.history())
    # Initialize reads the context design (its components are the designs to review).
    context_design = f".specloom/worktrees/{ROOT}/docs/design/inventory.md"
    assert initialize.collect_files[0] == context_design
    assert review.workdir == f".specloom/worktrees/{ROOT}"
    # The reviewer may edit every design it reads; they come back to be validated.
    assert list(review.agent.output_paths) == ["docs/review/inventory/context_design.md", *DESIGNS]
    assert review.agent.system_prompt.startswith("You are a reviewer of context designs.")
    assert "fix the problems you find in the design documents themselves" in review.agent.prompt
    assert "- Count stock" in review.agent.prompt
    # Finalize commits the designs with the review (unchanged ones add nothing).
    commit = finalize.git.operations[0].commit
    assert list(commit.paths) == ["docs/review/inventory/context_design.md", *DESIGNS]
    assert_golden(sim.trace, GOLDENS / "context_design_review_happy.json")


async def test_a_review_that_breaks_a_design_fixes_it_in_the_same_conversation() -> None:
    def broke_stock(call: Call) -> pb.Result:
        files: dict[str, str | None] = {
            "docs/review/inventory/context_design.md": GOOD_REVIEW,
            "docs/design/inventory.md": VALID_CONTEXT,
            "docs/design/inventory/stock.md": VALID_COMPONENT,  # a schema without its Fields
            "docs/design/inventory/warehouses.md": None,  # not designed yet
        }
        return report("ok", data={"conversation_id": "c-fix"}, files=files)

    sim = Simulation(REGISTRY, script({("", "ExecuteReview"): [broke_stock, agent_ok]}))
    sim.start("ContextDesignReview", {"context": "Inventory"})
    await sim.run()
    assert sim.status() == "complete"
    first, retry = [i for i in sim.history() if i.step == "ExecuteReview"]
    assert first.result.error_message == (
        "docs/design/inventory/stock.md: Missing required sections: fields"
    )
    assert retry.command.agent.resume_conversation_id == "c-fix"
    assert "- docs/design/inventory/stock.md: Missing required sections: fields" in (
        retry.command.agent.prompt
    )
    commit = sim.history()[-1].command.git.operations[0].commit
    assert list(commit.paths) == ["docs/review/inventory/context_design.md", *DESIGNS]
