"""Golden prompts of the coding family: every agent step's system prompt and prompt, pinned.

One fixed sample — a shop's ``inventory.stock``, a project description, a
task rule and a persona rule in the project — runs through ComponentTest
(the first tests do not load, so FixCompilationErrors runs) and
ComponentCoding (the first run fails, so FixTestFailures runs) in the
simulator. Every agent command is rendered into ``goldens/prompts/``; a
prompt that changes fails here with a diff. Rerun with
``SPECLOOM_UPDATE_GOLDENS=1`` after an intended change and review the diff.
(ContextTesting and ContextCoding have no agent steps of their own; their
children are these sessions.)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from specloom.orchestration.simulate import Call, Simulation
from specloom.protoconv import JsonValue
from specloom.v1 import common_pb2 as pb
from specloom_coding.workflows import REGISTRY
from tests.coding.executor_double import ExecutorDouble, crashing, failing, passing
from tests.fixtures.prompt_goldens import agent_prompts, assert_prompt_goldens

GOLDENS = Path(__file__).parent / "goldens" / "prompts"

RULES = {
    "docs/rules/money.md": (
        "---\nname: Money in cents\ncomponent_type: '*'\nsession_type: test, code\n---\n"
        "Amounts of money are integers in cents, never floats.\n"
    ),
    "docs/rules/coder.md": (
        "---\nname: House style\ncomponent_type: '*'\nsession_type: test, code\n"
        "persona: test_writer, unit_coder\n---\n"
        "This team writes Python 3.12 with type hints everywhere.\n"
    ),
}

PARAMS: dict[str, JsonValue] = {
    "component": {
        "name": "Stock",
        "module_name": "inventory.stock",
        "type": "module",
        "description": "Keeps the units on hand per product and refuses to go below zero.",
        "dependencies": [],
    },
    "context": "inventory",
    "project": {"name": "Shop", "description": "A small shop that sells fruit by the unit."},
}


def with_rules(executor: ExecutorDouble) -> Callable[[Call], pb.Result]:
    """The executor, with the project's rule files found by the root's Initialize."""

    def answer(call: Call) -> pb.Result:
        result = executor(call)
        if call.step == "Initialize" and call.key == "":
            for path, text in RULES.items():
                found = f".specloom/worktrees/{call.session.id}/{path}"
                result.files.append(pb.FileContent(path=found, exists=True, content=text.encode()))
        return result

    return answer


async def test_every_coding_agent_prompt_matches_its_golden() -> None:
    rendered: dict[str, str] = {}

    not_loading = crashing("ImportError while importing test module: No module named 'inventory'")
    tdd = failing({"test_a_new_product_has_level_0": "ModuleNotFoundError: inventory.stock"})
    tested = Simulation(REGISTRY, with_rules(ExecutorDouble(runs={"": [not_loading, tdd]})))
    tested.start("ComponentTest", PARAMS)
    await tested.run()
    assert tested.status() == "complete"
    rendered.update(agent_prompts(tested, "ComponentTest"))

    wrong = failing({"test_a_new_product_has_level_0": "AssertionError: assert 1 == 0"})
    coded = Simulation(REGISTRY, with_rules(ExecutorDouble(runs={"": [wrong, passing()]})))
    coded.start("ComponentCoding", PARAMS)
    await coded.run()
    assert coded.status() == "complete"
    rendered.update(agent_prompts(coded, "ComponentCoding"))

    assert sorted(rendered) == [
        "ComponentCoding-1-GenerateImplementation.prompt.txt",
        "ComponentCoding-2-FixTestFailures.prompt.txt",
        "ComponentTest-1-GenerateTestsAndFixtures.prompt.txt",
        "ComponentTest-2-FixCompilationErrors.prompt.txt",
    ]
    assert_prompt_goldens(rendered, GOLDENS)
