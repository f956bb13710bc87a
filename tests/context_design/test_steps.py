"""Each design-family step on its own: the command it builds, the verdict it gives."""

from __future__ import annotations

from collections.abc import Mapping

from specloom.protoconv import JsonValue, struct_to_dict
from specloom.workflow import (
    ChildView,
    ComponentView,
    Outcome,
    StepContext,
)
from specloom_context_design.v1.components import (
    FinalizeComponentsDesign,
    SpawnComponentDesignSessions,
    SpawnReviewSession,
)
from specloom_context_design.v1.design import GenerateDesign, ReviseDesign, ValidateDesign
from specloom_context_design.v1.review import ExecuteReview
from specloom_context_design.v1.workflows import (
    COMPONENT_DESIGN_V1,
    CONTEXT_COMPONENTS_DESIGN_V1,
    CONTEXT_DESIGN_V1,
)
from specloom_context_design.workflows import REGISTRY
from tests.context_design.world import GOOD_REVIEW, context, result
from tests.documents.samples import VALID_COMPONENT, VALID_CONTEXT

STOCK = ComponentView("Stock", "Inventory.Stock", "schema", "Stock of one product.")


# -- the design loop ----


def test_the_generate_prompt_carries_everything_the_agent_needs() -> None:
    ctx = context(
        step="GenerateContextDesign",
        params={
            "context": "Inventory",
            "project": {"name": "Shop", "description": "sells things"},
            "user_stories": ["As a clerk I see stock", {"title": "Refill", "description": "x"}],
            "model": "opus",
            "max_turns": 12,
        },
        state={
            "workdir": "",
            "rules": [
                {
                    "name": "House style",
                    "source": "docs/rules/h.md",
                    "component_type": ["*"],
                    "session_type": ["design"],
                    "body": "Be brief.",
                }
            ],
        },
    )
    command = GenerateDesign("context").command(ctx).command
    prompt = command.agent.prompt
    for expected in (
        "Design the context `Inventory`",
        "## Project\n\nShop: sells things",
        "- As a clerk I see stock",
        "- Refill: x",
        "## Document specification",
        "`## Test Assertions`",
        "The `type` must be one of: context, schema",
        "### House style\n\nBe brief.",
        "### Contexts have clear boundaries",  # built-in rule for contexts
        "Write the document to exactly `docs/design/inventory.md`",
    ):
        assert expected in prompt, expected
    assert list(command.agent.output_paths) == ["docs/design/inventory.md"]
    assert (command.agent.model, command.agent.max_turns) == ("opus", 12)
    assert command.agent.resume_conversation_id == ""
    assert struct_to_dict(command.metadata) == {
        "session_type": "ContextDesign",
        "step": "GenerateContextDesign",
        "component": "",
        "context": "Inventory",
        "round": 0,
        "output_path": "docs/design/inventory.md",
    }


def test_a_component_prompt_points_at_the_context_design() -> None:
    ctx = context(
        "ComponentDesign",
        "GenerateComponentDesign",
        params={"component": "Inventory.Stock", "context": "Inventory", "profile": "elixir"},
        state={"workdir": ".specloom/worktrees/x"},
        component=STOCK,
    )
    command = GenerateDesign("component").command(ctx).command
    assert "Read the context design at `docs/design/inventory.md` first" in command.agent.prompt
    assert "Type: `schema`" in command.agent.prompt
    assert "list the fields with their types" in command.agent.prompt
    assert command.workdir == ".specloom/worktrees/x"
    assert struct_to_dict(command.metadata)["component"] == "Inventory.Stock"


def test_agent_judges_remember_the_conversation() -> None:
    verdict = GenerateDesign("context").judge(context(), result(data={"conversation_id": "c-1"}))
    assert verdict.outcome is Outcome.OK
    assert verdict.state == {"conversation_id": "c-1"}
    failed = GenerateDesign("context").judge(
        context(), result(Outcome.ERROR, error="agent timed out", data={"conversation_id": "c-2"})
    )
    assert (failed.outcome, failed.reason, failed.state) == (
        Outcome.ERROR,
        "agent timed out",
        {"conversation_id": "c-2"},
    )


def test_validate_collects_the_document_and_judges_it_here() -> None:
    ctx = context(step="ValidateDesign", state={"workdir": ""})
    command = ValidateDesign("context").command(ctx).command
    assert command.WhichOneof("kind") == "noop"
    assert list(command.collect_files) == ["docs/design/inventory.md"]

    ok = ValidateDesign("context").judge(
        ctx, result(files={"docs/design/inventory.md": VALID_CONTEXT})
    )
    assert ok.outcome is Outcome.OK
    assert ok.state["design_path"] == "docs/design/inventory.md"
    assert ok.state["validation_errors"] is None
    components = ok.state["components"]
    assert isinstance(components, list)
    assert len(components) == 2

    bad = ValidateDesign("context").judge(
        ctx, result(files={"docs/design/inventory.md": "# Inventory\n## Purpose\nx\n"})
    )
    assert bad.outcome is Outcome.ERROR
    assert bad.reason.startswith("The design document docs/design/inventory.md is not valid")
    assert bad.state["validation_errors"] == [
        "Missing required sections: entity ownership, access patterns, public api, "
        "state management strategy, execution flow, dependencies, components, "
        "test strategies, test assertions"
    ]
    assert bad.fingerprint.startswith("design:")

    missing = ValidateDesign("context").judge(ctx, result(files={"docs/design/inventory.md": None}))
    assert missing.reason == "The design document docs/design/inventory.md was not written."

    lost = ValidateDesign("context").judge(ctx, result(Outcome.ERROR, error="executor gone"))
    assert lost.outcome is Outcome.WARNING


def test_a_component_design_is_validated_against_its_type() -> None:
    ctx = context(
        "ComponentDesign",
        "ValidateDesign",
        params={"component": "Inventory.Stock"},
        component=STOCK,
    )
    verdict = ValidateDesign("component").judge(
        ctx, result(files={"docs/design/inventory/stock.md": VALID_COMPONENT})
    )
    assert verdict.outcome is Outcome.OK
    assert "components" not in verdict.state


def test_revise_resumes_the_conversation_with_the_exact_errors() -> None:
    ctx = context(
        step="ReviseDesign",
        params={"context": "Inventory", "max_rounds": 5},
        state={
            "workdir": "",
            "conversation_id": "c-9",
            "validation_errors": ["Components.Stock: module name must be fully qualified"],
        },
        rounds={"ValidateDesign": 2},
    )
    command = ReviseDesign("context").command(ctx).command
    assert command.agent.resume_conversation_id == "c-9"
    assert "(revise round 2 of at most 5)" in command.agent.prompt
    assert "- Components.Stock: module name must be fully qualified" in command.agent.prompt
    assert "## Document specification" in command.agent.prompt
    assert struct_to_dict(command.metadata)["round"] == 2


# -- fan-out ----

COMPONENTS: list[JsonValue] = [
    STOCK.to_dict(),
    ComponentView("Bins", "Inventory.Bins", "repository", "Bins.").to_dict(),
]


def child(key: str, status: str, **state: JsonValue) -> ChildView:
    return ChildView(
        id=f"id-{key}",
        type="ComponentDesign",
        key=key,
        status=status,
        status_reason="",
        state=state,
    )


def fan_out_context(
    step: str,
    children: tuple[ChildView, ...] = (),
    state: Mapping[str, JsonValue] | None = None,
) -> StepContext:
    return context(
        "ContextComponentsDesign",
        step,
        params={"context": "Inventory", "model": "opus", "user_stories": ["s"]},
        state={"branch": "ccd-branch", "workdir": "", "components": COMPONENTS, **(state or {})},
        children=children,
    )


def test_spawn_asks_for_one_child_per_component_and_revives_failed_ones() -> None:
    ctx = fan_out_context(
        "SpawnComponentDesignSessions",
        (child("Inventory.Stock", "failed"), child("Inventory.Bins", "complete")),
    )
    plan = SpawnComponentDesignSessions().command(ctx)
    assert [spec.key for spec in plan.create_children] == ["Inventory.Stock", "Inventory.Bins"]
    spec = plan.create_children[0]
    assert spec.type == "ComponentDesign"
    assert spec.component == STOCK
    assert spec.params == {
        "model": "opus",
        "user_stories": ["s"],
        "component": "Inventory.Stock",
        "context": "Inventory",
    }
    assert spec.state == {"parent_branch": "ccd-branch"}
    assert plan.revive_children == ("id-Inventory.Stock",)
    assert plan.command.WhichOneof("kind") == "spawn_children"


def test_spawn_judges_the_children_not_the_report() -> None:
    done = (
        child(
            "Inventory.Stock", "complete", design_path="docs/design/inventory/stock.md", branch="b1"
        ),
        child(
            "Inventory.Bins", "complete", design_path="docs/design/inventory/bins.md", branch="b2"
        ),
    )
    verdict = SpawnComponentDesignSessions().judge(
        fan_out_context("SpawnComponentDesignSessions", done), result()
    )
    assert verdict.outcome is Outcome.OK
    assert verdict.state["children"] == {
        "Inventory.Stock": {
            "id": "id-Inventory.Stock",
            "branch": "b1",
            "design_path": "docs/design/inventory/stock.md",
        },
        "Inventory.Bins": {
            "id": "id-Inventory.Bins",
            "branch": "b2",
            "design_path": "docs/design/inventory/bins.md",
        },
    }

    mixed = (
        ChildView("x", "ComponentDesign", "Inventory.Stock", "failed", "stuck: ValidateDesign"),
        child("Inventory.Bins", "complete"),
    )
    verdict = SpawnComponentDesignSessions().judge(
        fan_out_context("SpawnComponentDesignSessions", mixed), result()
    )
    assert verdict.outcome is Outcome.ERROR
    assert verdict.reason == (
        "Component design sessions not done: Inventory.Stock: failed (stuck: ValidateDesign); "
        "Inventory.Bins: complete but recorded no design path"
    )
    assert verdict.fingerprint

    early = (child("Inventory.Stock", "active"), child("Inventory.Bins", "cancelled"))
    verdict = SpawnComponentDesignSessions().judge(
        fan_out_context("SpawnComponentDesignSessions", early), result()
    )
    assert verdict.reason == (
        "Component design sessions not done: Inventory.Stock: active; Inventory.Bins: cancelled"
    )
    assert verdict.fingerprint == ""  # a child still runs: the report came early


def test_the_review_child_gets_every_design_and_is_judged_itself() -> None:
    recorded: JsonValue = {"Inventory.Stock": {"id": "1", "branch": "b1", "design_path": "s.md"}}
    ctx = fan_out_context("SpawnReviewSession", state={"children": recorded})
    plan = SpawnReviewSession().command(ctx)
    (spec,) = plan.create_children
    assert (spec.type, spec.key) == ("ComponentDesignReview", "review")
    assert spec.state == {
        "parent_branch": "ccd-branch",
        "designs": [{"module": "Inventory.Stock", "path": "s.md", "branch": "b1"}],
    }
    review = ChildView(
        "r",
        "ComponentDesignReview",
        "review",
        "complete",
        state={"review_path": "r.md", "branch": "rb"},
    )
    verdict = SpawnReviewSession().judge(fan_out_context("SpawnReviewSession", (review,)), result())
    assert verdict.state == {"review": {"id": "r", "branch": "rb", "review_path": "r.md"}}
    verdict = SpawnReviewSession().judge(fan_out_context("SpawnReviewSession", ()), result())
    assert verdict.reason == "Component design review not done: review: no session"


def test_finalize_gathers_the_children_commits_pushes_and_opens_a_pull_request() -> None:
    state: dict[str, JsonValue] = {
        "children": {"Inventory.Stock": {"id": "1", "branch": "b1", "design_path": "s.md"}},
        "review": {"id": "r", "branch": "rb", "review_path": "r.md"},
    }
    command = FinalizeComponentsDesign().command(fan_out_context("Finalize", state=state)).command
    commit, push, pull = command.git.operations
    assert list(commit.commit.paths) == ["s.md", "r.md"]
    assert [(g.branch, list(g.paths)) for g in commit.commit.gather] == [
        ("b1", ["s.md"]),
        ("rb", ["r.md"]),
    ]
    assert push.push.branch == "ccd-branch"
    assert pull.pull_request.head == "ccd-branch"
    assert "- `s.md`" in pull.pull_request.body
    ctx = context(
        "ContextComponentsDesign",
        "Finalize",
        params={"context": "Inventory", "pull_request": False},
        state={"branch": "ccd-branch", **state},
    )
    ops = FinalizeComponentsDesign().command(ctx).command.git.operations
    assert [op.WhichOneof("op") for op in ops] == ["commit", "push"]


# -- reviews ----


def test_a_review_must_be_written_and_say_something() -> None:
    step = ExecuteReview("component_designs")
    ctx = context(
        "ComponentDesignReview",
        "ExecuteReview",
        state={"designs": [{"module": "Inventory.Stock", "path": "s.md", "branch": "b"}]},
    )
    command = step.command(ctx).command
    assert list(command.collect_files) == ["docs/review/inventory/component_designs.md"]
    assert "- `Inventory.Stock`: `s.md`" in command.agent.prompt
    assert "missing dependencies" in command.agent.prompt
    path = "docs/review/inventory/component_designs.md"
    assert step.judge(ctx, result(files={path: GOOD_REVIEW})).state["review_path"] == path
    missing = step.judge(ctx, result(files={path: None}, data={"conversation_id": "c"}))
    assert missing.reason == f"The review document {path} was not written."
    assert missing.state["conversation_id"] == "c"
    thin = step.judge(ctx, result(files={path: "# Review\n## Summary\nOK\n"}))
    assert thin.reason.startswith("The review has only 2 characters of text")

    retry_ctx = context(
        "ComponentDesignReview",
        "ExecuteReview",
        state={"review_problems": [thin.reason], "conversation_id": "c"},
    )
    retry = step.command(retry_ctx).command
    assert retry.agent.resume_conversation_id == "c"
    assert thin.reason in retry.agent.prompt


# -- the registry ----


def test_the_registry_serves_the_design_family() -> None:
    assert REGISTRY.types() == [
        "ComponentDesign",
        "ComponentDesignReview",
        "ContextComponentsDesign",
        "ContextDesign",
        "ContextDesignReview",
    ]
    assert CONTEXT_COMPONENTS_DESIGN_V1.child_types == ("ComponentDesign", "ComponentDesignReview")
    assert CONTEXT_DESIGN_V1.all_params()["context"].required
    assert COMPONENT_DESIGN_V1.all_params()["component"].required
    assert [row.name for row in CONTEXT_DESIGN_V1.steps] == [
        "Initialize",
        "GenerateContextDesign",
        "ValidateDesign",
        "ReviseDesign",
        "Finalize",
    ]
    assert CONTEXT_DESIGN_V1.step("ValidateDesign").on_error == "ReviseDesign"
