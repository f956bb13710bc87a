"""Golden step sequences of every design workflow at definition v1, through the real engine.

v1 is kept so sessions started under it finish under it; these goldens pin
that it still behaves exactly as it did (v2: ``test_goldens_v2.py``).

Each test drives a workflow in the in-memory simulator with a scripted
executor and compares the trace with a committed file under ``goldens/``.
A change in behaviour shows up as a diff to review
(``SPECLOOM_UPDATE_GOLDENS=1`` rewrites them).
"""

from __future__ import annotations

from pathlib import Path

from specloom.orchestration.simulate import Call, Simulation, assert_golden, report
from specloom.protoconv import struct_to_dict
from specloom.v1 import common_pb2 as pb
from specloom_context_design.workflows import REGISTRY
from tests.context_design.world import GOOD_REVIEW, collected, initialized, script
from tests.documents.samples import (
    VALID_COMPONENT,
    VALID_CONTEXT,
    component,
    context_with_components,
)

GOLDENS = Path(__file__).parent / "goldens"

MISSING_TESTS = VALID_CONTEXT.split("## Test Strategies")[0]
NO_DOT = context_with_components(component("Stock"))


def bad(n: int) -> str:
    """A context design with a different problem for every ``n``."""
    return context_with_components(component(f"Stock{n}"))


def steps(sim: Simulation, key: str = "") -> list[str]:
    return [i.step for i in sim.history(key)]


# -- ContextDesign ----


async def test_context_design_happy_path() -> None:
    sim = Simulation(REGISTRY, script({}))
    sim.start("ContextDesign", {"context": "Inventory"}, version=1)
    await sim.run()
    assert sim.status() == "complete"
    assert steps(sim) == ["Initialize", "GenerateContextDesign", "ValidateDesign", "Finalize"]
    state = struct_to_dict(sim.session().state)
    components = state["components"]
    assert isinstance(components, list)
    assert [c["module_name"] for c in components if isinstance(c, dict)] == [
        "Inventory.Stock",
        "Inventory.Warehouses",
    ]
    assert state["design_path"] == "docs/design/inventory.md"
    assert_golden(sim.trace, GOLDENS / "context_design_happy.json")


async def test_context_design_validation_failure_then_revise_then_pass() -> None:
    sim = Simulation(
        REGISTRY,
        script({("", "ValidateDesign"): [collected(MISSING_TESTS), collected(VALID_CONTEXT)]}),
    )
    sim.start("ContextDesign", {"context": "Inventory"}, version=1)
    await sim.run()
    assert sim.status() == "complete"
    assert steps(sim) == [
        "Initialize",
        "GenerateContextDesign",
        "ValidateDesign",
        "ReviseDesign",
        "ValidateDesign",
        "Finalize",
    ]
    (revise,) = [i for i in sim.history() if i.step == "ReviseDesign"]
    # The revise step continues the generating conversation and names the exact problem.
    assert revise.command.agent.resume_conversation_id == "conv-root-GenerateContextDesign-1"
    assert "- Missing required sections: test strategies, test assertions" in (
        revise.command.agent.prompt
    )
    assert "validation_errors" not in sim.session().state
    assert_golden(sim.trace, GOLDENS / "context_design_revise_then_pass.json")


async def test_context_design_cap_reached_fails_with_the_reason() -> None:
    answers = [collected(bad(n)) for n in range(10)]
    sim = Simulation(REGISTRY, script({("", "ValidateDesign"): answers}))
    sim.start("ContextDesign", {"context": "Inventory"}, version=1)
    await sim.run()
    assert sim.status() == "failed"
    assert steps(sim).count("ReviseDesign") == 3
    reason = sim.session().status_reason
    assert reason.startswith("ValidateDesign still failing after 3 rounds (the cap): ")
    assert "Components.Stock3: module name must be fully qualified" in reason
    assert_golden(sim.trace, GOLDENS / "context_design_cap_reached.json")


async def test_context_design_same_failure_twice_is_stuck_and_resume_continues() -> None:
    sim = Simulation(
        REGISTRY,
        script(
            {
                ("", "ValidateDesign"): [
                    collected(NO_DOT),
                    collected(NO_DOT),
                    collected(VALID_CONTEXT),
                ]
            }
        ),
    )
    sim.start("ContextDesign", {"context": "Inventory"}, version=1)
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
    assert "(revise round 1 of at most 3)" in after_resume.command.agent.prompt
    assert_golden(sim.trace, GOLDENS / "context_design_stuck_then_resumed.json")


async def test_context_design_agent_failures_are_retried_then_capped() -> None:
    down = report("error", error="agent backend unavailable", data={"conversation_id": "c"})
    sim = Simulation(REGISTRY, script({("", "GenerateContextDesign"): [down]}))
    sim.start("ContextDesign", {"context": "Inventory", "max_rounds": 1}, version=1)
    await sim.run()
    assert sim.status() == "failed"
    assert steps(sim) == ["Initialize", "GenerateContextDesign", "GenerateContextDesign"]
    assert "agent backend unavailable" in sim.session().status_reason


# -- ComponentDesign ----


async def test_component_design_happy_path() -> None:
    sim = Simulation(REGISTRY, script({}))
    sim.start(
        "ComponentDesign",
        {"component": {"module_name": "Inventory.Stock", "type": "schema"}},
        version=1,
    )
    await sim.run()
    assert sim.status() == "complete"
    assert sim.session().name == "Inventory.Stock"
    assert steps(sim) == ["Initialize", "GenerateComponentDesign", "ValidateDesign", "Finalize"]
    assert_golden(sim.trace, GOLDENS / "component_design_happy.json")


async def test_component_design_revise_then_pass() -> None:
    thin = VALID_COMPONENT.split("## Test Assertions")[0]
    sim = Simulation(
        REGISTRY,
        script({("", "ValidateDesign"): [collected(thin), collected(VALID_COMPONENT)]}),
    )
    sim.start("ComponentDesign", {"component": "Inventory.Stock"}, version=1)
    await sim.run()
    assert sim.status() == "complete"
    assert steps(sim).count("ReviseDesign") == 1
    assert_golden(sim.trace, GOLDENS / "component_design_revise_then_pass.json")


# -- ContextComponentsDesign ----


async def test_context_components_design_happy_path() -> None:
    sim = Simulation(REGISTRY, script({}))
    sim.start("ContextComponentsDesign", {"context": "Inventory", "model": "opus"}, version=1)
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
    assert stock.params["model"] == "opus"
    finalize = sim.history()[-1].command.git.operations
    assert list(finalize[0].commit.paths) == [
        "docs/design/inventory/stock.md",
        "docs/design/inventory/warehouses.md",
        "docs/review/inventory/component_designs.md",
    ]
    assert [g.branch for g in finalize[0].commit.gather] == [
        sim.session("Inventory.Stock").state["branch"],
        sim.session("Inventory.Warehouses").state["branch"],
        sim.session("review").state["branch"],
    ]
    assert [op.WhichOneof("op") for op in finalize] == ["commit", "push", "pull_request"]
    review_init = sim.history("review")[0].command.git.operations[0].add_worktree
    assert [list(g.paths) for g in review_init.gather] == [
        ["docs/design/inventory/stock.md"],
        ["docs/design/inventory/warehouses.md"],
    ]
    assert_golden(sim.trace, GOLDENS / "context_components_design_happy.json")


async def test_a_failed_child_is_revived_by_the_retried_spawn_not_recreated() -> None:
    # Inventory.Stock writes the same bad design twice (stuck, so it fails);
    # the parent's judge names it, the retried spawn revives it, and its
    # next revision passes.
    sim = Simulation(
        REGISTRY,
        script(
            {
                ("Inventory.Stock", "ValidateDesign"): [
                    collected("# Stock\n"),
                    collected("# Stock\n"),
                    collected(VALID_COMPONENT),
                ]
            }
        ),
    )
    sim.start("ContextComponentsDesign", {"context": "Inventory"}, version=1)
    await sim.run()
    assert sim.status() == "complete"
    assert sim.session_keys() == ["", "Inventory.Stock", "Inventory.Warehouses", "review"]
    spawns = [i for i in sim.history() if i.step == "SpawnComponentDesignSessions"]
    assert len(spawns) == 2
    assert spawns[0].result.error_message.startswith(
        "Component design sessions not done: Inventory.Stock: failed (stuck: ValidateDesign"
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
    assert_golden(sim.trace, GOLDENS / "context_components_design_child_fails_then_retry.json")


async def test_a_child_that_keeps_failing_fails_the_parent_at_the_cap() -> None:
    sim = Simulation(
        REGISTRY,
        script(
            {
                ("Inventory.Stock", "ValidateDesign"): [
                    collected(f"# Stock {n}\n") for n in range(40)
                ]
            }
        ),
    )
    sim.start("ContextComponentsDesign", {"context": "Inventory", "max_rounds": 1}, version=1)
    await sim.run()
    assert sim.status() == "failed"
    assert sim.status("Inventory.Stock") == "failed"
    assert sim.session_keys() == ["", "Inventory.Stock", "Inventory.Warehouses"]
    assert "Inventory.Stock: failed" in sim.session().status_reason


async def test_cancelling_the_parent_cancels_its_children() -> None:
    sim = Simulation(REGISTRY, script({}))
    sim.start("ContextComponentsDesign", {"context": "Inventory"}, version=1)
    await sim.run(max_steps=4, settle=False)
    assert sim.session_keys() == ["", "Inventory.Stock", "Inventory.Warehouses"]
    sim.cancel("", reason="stop")
    assert {sim.status(k) for k in sim.session_keys()} == {"cancelled"}
    abandoned = [i for i in sim.history() if i.status == pb.INTERACTION_STATUS_ABANDONED]
    assert [i.step for i in abandoned] == ["SpawnComponentDesignSessions"]
    await sim.run()  # nothing moves any more
    assert {sim.status(k) for k in sim.session_keys()} == {"cancelled"}
    assert_golden(sim.trace, GOLDENS / "context_components_design_cancelled.json")


async def test_fan_out_without_a_context_design_fails_at_once() -> None:
    sim = Simulation(REGISTRY, script({("", "Initialize"): [initialized(None)]}))
    sim.start("ContextComponentsDesign", {"context": "Inventory"}, version=1)
    await sim.run()
    assert sim.status() == "failed"
    assert "does not exist on this branch; run a ContextDesign session" in (
        sim.session().status_reason
    )
    assert sim.session_keys() == [""]


async def test_project_rules_reach_the_children_prompts() -> None:
    rule = "---\ncomponent_type: schema\nsession_type: design\nname: Money\n---\nUse decimals.\n"
    rules = {".specloom/rules/money.md": rule}

    def child_init(call: Call) -> pb.Result:
        workdir = call.state["workdir"]
        return initialized(rules={f"{workdir}/{p}": t for p, t in rules.items()})(call)

    sim = Simulation(
        REGISTRY,
        script(
            {
                ("Inventory.Stock", "Initialize"): [child_init],
                ("Inventory.Warehouses", "Initialize"): [child_init],
            }
        ),
    )
    sim.start("ContextComponentsDesign", {"context": "Inventory"}, version=1)
    await sim.run()
    assert sim.status() == "complete"
    stock = sim.history("Inventory.Stock")[1].command.agent.prompt
    warehouses = sim.history("Inventory.Warehouses")[1].command.agent.prompt
    assert "### Money\n\nUse decimals." in stock  # a schema
    assert "### Money" not in warehouses  # a repository


# -- reviews ----


async def test_component_design_review_on_its_own() -> None:
    sim = Simulation(REGISTRY, script({}))
    sim.start("ComponentDesignReview", {"context": "Inventory"}, version=1)
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
    sim.start("ContextDesignReview", {"context": "Inventory"}, version=1)
    await sim.run()
    assert sim.status() == "complete"
    retry = sim.history()[1].command.agent
    assert retry.resume_conversation_id == "c-review"
    assert "was not written" in retry.prompt
    assert_golden(sim.trace, GOLDENS / "context_design_review_missing_then_written.json")


async def test_context_design_review_happy_path() -> None:
    sim = Simulation(REGISTRY, script({}))
    sim.start("ContextDesignReview", {"context": "Inventory"}, version=1)
    await sim.run()
    assert sim.status() == "complete"
    assert steps(sim) == ["ExecuteReview", "Finalize"]
    assert_golden(sim.trace, GOLDENS / "context_design_review_happy.json")
