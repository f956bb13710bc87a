"""Initialize: branches and worktrees, rules, and the context design a fan-out needs."""

from __future__ import annotations

import pytest

from specloom.protoconv import JsonValue
from specloom.workflow import ComponentView, Outcome
from specloom_context_design.v1.workflows import (
    COMPONENT_DESIGN_REVIEW_V1,
    COMPONENT_DESIGN_V1,
    CONTEXT_COMPONENTS_DESIGN_V1,
    CONTEXT_DESIGN_V1,
)
from tests.context_design.world import context, result
from tests.documents.samples import VALID_CONTEXT

STOCK = ComponentView("Stock", "Inventory.Stock", "schema", "Stock of one product.")
SCHEMA_RULE = "---\ncomponent_type: schema\nsession_type: design\n---\nList every field.\n"
CONTEXT_RULE = "---\ncomponent_type: '*'\nsession_type: design\nname: House style\n---\nBe brief.\n"
CODE_RULE = "---\ncomponent_type: '*'\nsession_type: code\n---\nNot for design.\n"


def test_a_top_level_session_gets_its_branch_and_collects_rules() -> None:
    plan = CONTEXT_DESIGN_V1.step("Initialize").step.command(context())
    command = plan.command
    assert command.git.operations[0].create_branch.name == "context-design-session-for-inventory"
    assert list(command.collect_files) == [".specloom/rules/*.md", "docs/rules/*.md"]
    assert command.workdir == ""
    assert plan.state == {"branch": "context-design-session-for-inventory", "workdir": ""}


def test_branch_prefix_param_and_unsafe_names_are_sanitised() -> None:
    ctx = context(params={"context": "Inventory; rm -rf /", "branch_prefix": "My Team"})
    plan = CONTEXT_DESIGN_V1.step("Initialize").step.command(ctx)
    assert plan.command.git.operations[0].create_branch.name == (
        "my-team-session-for-inventory--rm--rf--"
    )


def test_a_child_gets_a_worktree_on_its_own_branch_from_the_parents() -> None:
    ctx = context(
        "ComponentDesign",
        params={"component": "Inventory.Stock", "context": "Inventory"},
        state={"parent_branch": "context-components-design-session-for-inventory"},
        component=STOCK,
        parent_id="parent-1",
        name="Inventory.Stock",
    )
    plan = COMPONENT_DESIGN_V1.step("Initialize").step.command(ctx)
    worktree = plan.command.git.operations[0].add_worktree
    assert worktree.path == ".specloom/worktrees/00000000-0000-7000-8000-00000000abcd"
    assert worktree.branch == "component-design-session-for-inventory-stock-0000abcd"
    assert worktree.base == "context-components-design-session-for-inventory"
    assert list(plan.command.collect_files) == [
        f"{worktree.path}/.specloom/rules/*.md",
        f"{worktree.path}/docs/rules/*.md",
    ]
    assert plan.state == {"branch": worktree.branch, "workdir": worktree.path}


def test_a_review_child_gathers_the_sibling_designs_into_its_worktree() -> None:
    designs: list[JsonValue] = [
        {"module": "Inventory.Stock", "path": "docs/design/inventory/stock.md", "branch": "b1"},
        {"module": "Inventory.Bins", "path": "docs/design/inventory/bins.md", "branch": "b2"},
    ]
    ctx = context(
        "ComponentDesignReview",
        state={"parent_branch": "p", "designs": designs},
        parent_id="parent-1",
    )
    plan = COMPONENT_DESIGN_REVIEW_V1.step("Initialize").step.command(ctx)
    worktree = plan.command.git.operations[0].add_worktree
    assert [(g.branch, list(g.paths)) for g in worktree.gather] == [
        ("b1", ["docs/design/inventory/stock.md"]),
        ("b2", ["docs/design/inventory/bins.md"]),
    ]
    # The parent named the designs, so the context design is not needed.
    assert not any(p.endswith("inventory.md") for p in plan.command.collect_files)


def test_initialize_keeps_the_rules_that_match_this_session() -> None:
    ctx = context(params={"context": "Inventory", "rules": [CONTEXT_RULE]})
    reported = result(
        files={
            ".specloom/rules/schema.md": SCHEMA_RULE,
            "docs/rules/code.md": CODE_RULE,
            "docs/design/inventory.md": "not a rule, not under a rules folder",
        }
    )
    verdict = CONTEXT_DESIGN_V1.step("Initialize").step.judge(ctx, reported)
    assert verdict.outcome is Outcome.OK
    rules = verdict.state["rules"]
    assert isinstance(rules, list)
    assert [r["name"] for r in rules if isinstance(r, dict)] == ["House style"]


def test_a_component_session_matches_rules_for_its_type() -> None:
    ctx = context("ComponentDesign", params={"component": "Inventory.Stock"}, component=STOCK)
    verdict = COMPONENT_DESIGN_V1.step("Initialize").step.judge(
        ctx, result(files={"docs/rules/schema.md": SCHEMA_RULE})
    )
    rules = verdict.state["rules"]
    assert isinstance(rules, list)
    assert len(rules) == 1


def test_a_malformed_rule_fails_the_session_with_the_reason() -> None:
    verdict = CONTEXT_DESIGN_V1.step("Initialize").step.judge(
        context(), result(files={".specloom/rules/bad.md": "---\nsession_type: design\n---\nx\n"})
    )
    assert verdict.outcome is Outcome.ERROR
    assert verdict.fail
    assert verdict.reason == (
        "Rules: .specloom/rules/bad.md: the front matter has no 'component_type' "
        "(use * for any). Fix the file, then resume."
    )
    bad_param = context(params={"context": "Inventory", "rules": [7]})
    verdict = CONTEXT_DESIGN_V1.step("Initialize").step.judge(bad_param, result())
    assert verdict.fail
    assert "params.rules[0] must be a markdown string" in verdict.reason


def test_a_failed_git_setup_is_retried_and_fingerprinted() -> None:
    ctx = context(state={"branch": "b"})
    verdict = CONTEXT_DESIGN_V1.step("Initialize").step.judge(
        ctx, result(Outcome.ERROR, error="not a git repository")
    )
    assert verdict.outcome is Outcome.ERROR
    assert not verdict.fail
    assert verdict.reason == "Setting up b failed: not a git repository"
    assert verdict.fingerprint


@pytest.mark.parametrize(
    ("design", "reason"),
    [
        (None, "The context design docs/design/inventory.md does not exist on this branch"),
        ("# Inventory\n", "The context design docs/design/inventory.md is not valid"),
    ],
)
def test_fan_out_needs_a_valid_context_design(design: str | None, reason: str) -> None:
    ctx = context("ContextComponentsDesign")
    verdict = CONTEXT_COMPONENTS_DESIGN_V1.step("Initialize").step.judge(
        ctx, result(files={"docs/design/inventory.md": design})
    )
    assert verdict.fail
    assert verdict.reason.startswith(reason)


def test_fan_out_records_the_context_components() -> None:
    ctx = context("ContextComponentsDesign")
    plan = CONTEXT_COMPONENTS_DESIGN_V1.step("Initialize").step.command(ctx)
    assert "docs/design/inventory.md" in plan.command.collect_files
    verdict = CONTEXT_COMPONENTS_DESIGN_V1.step("Initialize").step.judge(
        ctx, result(files={"docs/design/inventory.md": VALID_CONTEXT})
    )
    assert verdict.outcome is Outcome.OK
    components = verdict.state["components"]
    assert isinstance(components, list)
    assert [c["module_name"] for c in components if isinstance(c, dict)] == [
        "Inventory.Stock",
        "Inventory.Warehouses",
    ]
    assert verdict.state["context_design"] == "docs/design/inventory.md"
