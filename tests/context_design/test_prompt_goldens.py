"""Golden prompts of the design family: every agent step's system prompt and prompt, pinned.

One fixed sample — the ``Inventory`` context of a shop, a project
description, two user stories, a task rule and a persona rule in the
project — runs through each session type with agent steps, each taking its
loop once: ContextDesign and ComponentDesign (a schema) revise once,
ComponentDesignReview writes no review at first, ContextDesignReview
leaves a design invalid at first. Every agent command is rendered into
``goldens/prompts/``; a prompt that changes fails here with a diff. Rerun
with ``SPECLOOM_UPDATE_GOLDENS=1`` after an intended change and review the
diff. (ContextComponentsDesign has no agent step of its own; its children
are these sessions.)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from specloom.orchestration.simulate import Call, Simulation, report
from specloom.protoconv import JsonValue
from specloom.v1 import common_pb2 as pb
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
from tests.documents.samples import VALID_COMPONENT, VALID_CONTEXT, VALID_SCHEMA
from tests.fixtures.prompt_goldens import agent_prompts, assert_prompt_goldens

GOLDENS = Path(__file__).parent / "goldens" / "prompts"
ROOT = "00000000-0000-7000-8000-000000000001"

RULES = {
    "docs/rules/money.md": (
        "---\nname: Money in cents\ncomponent_type: '*'\nsession_type: design\n---\n"
        "Amounts of money are integers in cents, never floats.\n"
    ),
    "docs/rules/designers.md": (
        "---\nname: House designers\ncomponent_type: '*'\nsession_type: design\n"
        "persona: '*'\n---\nThis team builds Phoenix applications in Elixir.\n"
    ),
}

COMMON: dict[str, JsonValue] = {
    "project": {"name": "Shop", "description": "A small shop that sells fruit by the unit."},
    "user_stories": [
        "As a clerk I see how many units of a product are in a warehouse",
        {"title": "Restock", "description": "As a clerk I add received units to the stock"},
    ],
}


def with_rules(call: Call) -> pb.Result:
    """Initialize, finding the project's rule files in the session's worktree."""
    found = {f".specloom/worktrees/{ROOT}/{path}": text for path, text in RULES.items()}
    return initialized(rules=found)(call)


def thin(document: str) -> str:
    """``document`` without its Test Assertions: what a first attempt forgot."""
    return document.split("## Test Assertions")[0]


async def run(
    session_type: str,
    params: dict[str, JsonValue],
    table: dict[tuple[str, str], Sequence[Answer]],
) -> Simulation:
    sim = Simulation(REGISTRY, script({("", "Initialize"): [with_rules], **table}))
    sim.start(session_type, {**COMMON, **params})
    await sim.run()
    assert sim.status() == "complete", sim.session().status_reason
    return sim


async def test_every_design_agent_prompt_matches_its_golden() -> None:
    rendered: dict[str, str] = {}

    context = await run(
        "ContextDesign",
        {"context": "Inventory"},
        {
            ("", "ValidateDesign"): [collected(thin(VALID_CONTEXT)), collected(VALID_CONTEXT)],
            ("", "Scaffold"): [scaffolded(conflicts=["src/inventory/stock.py"]), scaffolded()],
        },
    )
    rendered.update(agent_prompts(context, "ContextDesign"))

    stock = {
        "module_name": "Inventory.Stock",
        "type": "schema",
        "description": "The quantity of one product in one warehouse; never negative.",
        "dependencies": ["Catalog.Products"],
    }
    component = await run(
        "ComponentDesign",
        {"component": stock, "context": "Inventory"},
        {("", "ValidateDesign"): [collected(thin(VALID_SCHEMA)), collected(VALID_SCHEMA)]},
    )
    rendered.update(agent_prompts(component, "ComponentDesign"))

    def no_review(call: Call) -> pb.Result:
        return report("ok", data={"conversation_id": "c-review"}, files={})

    components_review = await run(
        "ComponentDesignReview",
        {"context": "Inventory"},
        {("", "ExecuteReview"): [no_review, collected(GOOD_REVIEW)]},
    )
    rendered.update(agent_prompts(components_review, "ComponentDesignReview"))

    def broke_stock(call: Call) -> pb.Result:
        files: dict[str, str | None] = {
            "docs/review/inventory/context_design.md": GOOD_REVIEW,
            "docs/design/inventory.md": VALID_CONTEXT,
            "docs/design/inventory/stock.md": VALID_COMPONENT,  # a schema without its Fields
            "docs/design/inventory/warehouses.md": VALID_COMPONENT,
        }
        return report("ok", data={"conversation_id": "c-review"}, files=files)

    context_review = await run(
        "ContextDesignReview",
        {"context": "Inventory"},
        {("", "ExecuteReview"): [broke_stock, agent_ok]},
    )
    rendered.update(agent_prompts(context_review, "ContextDesignReview"))

    assert sorted(rendered) == [
        "ComponentDesign-1-GenerateComponentDesign.prompt.txt",
        "ComponentDesign-2-ReviseDesign.prompt.txt",
        "ComponentDesignReview-1-ExecuteReview.prompt.txt",
        "ComponentDesignReview-2-ExecuteReview.prompt.txt",
        "ContextDesign-1-GenerateContextDesign.prompt.txt",
        "ContextDesign-2-ReviseDesign.prompt.txt",
        "ContextDesign-3-FixScaffold.prompt.txt",
        "ContextDesignReview-1-ExecuteReview.prompt.txt",
        "ContextDesignReview-2-ExecuteReview.prompt.txt",
    ]
    assert_prompt_goldens(rendered, GOLDENS)
