"""A wide fan-out does not copy a large backlog into every child (issue 16).

20 components and 0.9 MiB of user stories: v1 handed every child the whole
list, so the spawn's one write carried 18 MiB and exceeded the 16 MiB
internal message limit. The step library passes children only what their
prompts show (:func:`specloom.workflow.steps.story_lines`).
"""

from __future__ import annotations

from specloom.orchestration.simulate import Simulation
from specloom.protoconv import struct_to_dict
from specloom.workflow.steps import MAX_STORIES
from specloom_context_design.workflows import REGISTRY
from tests.context_design.world import initialized, script
from tests.documents.samples import component, context_with_components

WIDE = context_with_components("".join(component(f"Inventory.Part{n}") for n in range(20)))


async def test_twenty_children_get_a_bounded_share_of_a_large_backlog() -> None:
    stories = [{"title": f"Story {n}", "description": "word " * 300} for n in range(600)]
    total = sum(len(s["title"]) + len(s["description"]) for s in stories)
    assert total > 900_000
    sim = Simulation(REGISTRY, script({("", "Initialize"): [initialized(WIDE)]}))
    sim.start("ContextComponentsDesign", {"context": "Inventory", "user_stories": stories})
    await sim.run()
    assert sim.status() == "complete", sim.session().status_reason
    children = [key for key in sim.session_keys() if key.startswith("Inventory.")]
    assert len(children) == 20
    sizes = [sim.session(key).params.ByteSize() for key in children]
    assert max(sizes) < 64 * 1024
    assert sum(sizes) < 2 * 1024 * 1024  # far below the 16 MiB of one write
    shown = struct_to_dict(sim.session(children[0]).params)["user_stories"]
    assert isinstance(shown, list)
    assert len(shown) == MAX_STORIES
    assert shown[-1] == "... and 551 more (see the project's backlog)"
    # What a child shows its agent is what its parent would have shown.
    prompt = sim.history(children[0])[1].command.agent.prompt
    assert "- Story 0: word word" in prompt
    assert "... and 551 more" in prompt
