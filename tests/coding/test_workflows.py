"""The coding workflows' judges and commands, beyond the golden sequences."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from specloom.errors import InvalidArgument
from specloom.orchestration.simulate import Call, Simulation, report
from specloom.protoconv import struct_to_dict
from specloom.v1 import common_pb2 as pb
from specloom.workflow._proto import describe
from specloom.workflow.commands import kind_of
from specloom_coding.service import SERVICE
from specloom_coding.workflows import REGISTRY
from tests.coding.executor_double import CONTEXT_DESIGN, ExecutorDouble, failing

SAMPLES = Path(__file__).parent / "fixtures" / "exunit"
BRANCH = re.compile(r"^[a-z0-9_-]+$")


def test_the_registry_serves_the_coding_family() -> None:
    assert REGISTRY.types() == [
        "ComponentCoding",
        "ComponentTest",
        "ContextCoding",
        "ContextTesting",
    ]
    assert SERVICE.name == "coding"
    assert SERVICE.workflows is REGISTRY
    coding = describe(REGISTRY.latest("ComponentCoding"))
    graph = {s.name: (s.kind, s.transition.on_ok, s.transition.on_error) for s in coding.steps}
    assert graph == {
        "Initialize": ("git", "GenerateImplementation", "Initialize"),
        "GenerateImplementation": ("agent", "RunTests", "GenerateImplementation"),
        "RunTests": ("shell", "Finalize", "FixTestFailures"),
        "FixTestFailures": ("agent", "RunTests", "FixTestFailures"),
        "Finalize": ("git", "done", "Finalize"),
    }
    assert list(describe(REGISTRY.latest("ContextCoding")).child_types) == ["ComponentCoding"]
    assert list(describe(REGISTRY.latest("ContextTesting")).child_types) == ["ComponentTest"]


def with_tests(
    answer: Callable[[Call], pb.Result], executor: ExecutorDouble
) -> Callable[[Call], pb.Result]:
    """``executor``, with the RunTests shell command answered by ``answer``."""

    def respond(call: Call) -> pb.Result:
        if kind_of(call.command) == "shell":
            return answer(call)
        return executor(call)

    return respond


def exunit_report(name: str, exit_code: int) -> Callable[[Call], pb.Result]:
    def answer(call: Call) -> pb.Result:
        (path,) = call.command.collect_files
        return report("ok", files={path: (SAMPLES / name).read_bytes()}, exit_code=exit_code)

    return answer


async def test_elixir_tests_first_with_a_real_exunit_report() -> None:
    executor = ExecutorDouble()
    sim = Simulation(REGISTRY, with_tests(exunit_report("tests_first.json", 2), executor))
    sim.start("ComponentTest", {"component": "Inventory.Stock", "profile": "elixir"})
    await sim.run()
    assert sim.status() == "complete"
    run = next(i for i in sim.history() if i.step == "RunTests")
    assert run.command.shell.argv[:2] == ["elixir", "-e"]
    assert run.command.collect_files[0].endswith("/run-1.json")
    assert list(run.command.shell.ok_exit_codes) == [0, 2]
    state = struct_to_dict(sim.session().state)
    # People and prompts see the runner's command, not the formatter's source.
    command, test_run = state["test_command"], state["test_run"]
    assert isinstance(command, list)
    assert isinstance(test_run, dict)
    assert command[:6] == [
        "elixir",
        "-e",
        "<inline program>",
        "-S",
        "mix",
        "test",
    ]
    assert test_run["failed"] == 3
    assert "test/inventory/stock_test.exs" in executor.prompts[0][2]


async def test_elixir_coding_failures_reach_the_fix_prompt() -> None:
    executor = ExecutorDouble()
    answers = iter([exunit_report("two_failing.json", 2), exunit_report("all_passing.json", 0)])

    def answer(call: Call) -> pb.Result:
        return next(answers)(call)

    sim = Simulation(REGISTRY, with_tests(answer, executor))
    sim.start("ComponentCoding", {"component": "Inventory.Stock", "profile": "elixir"})
    await sim.run()
    assert sim.status() == "complete"
    fix = next(p for _, step, p in executor.prompts if step == "FixTestFailures")
    assert "2 of 3 tests fail" in fix
    assert 'code:  assert Inventory.Stock.level(stock, "apple") == 5' in fix
    assert "(test/inventory/stock_test.exs:14)" in fix
    assert "Fix the implementation in lib/inventory/stock.ex" in fix


async def test_a_run_that_timed_out_is_judged_from_its_missing_report() -> None:
    def timed_out(call: Call) -> pb.Result:
        (path,) = call.command.collect_files
        return report(
            "error",
            files={path: None},
            exit_code=-9,
            stdout="collected 4 items\n",
            error="timed out after 600 s; process group killed",
        )

    executor = ExecutorDouble()
    sim = Simulation(REGISTRY, with_tests(timed_out, executor))
    sim.start("ComponentCoding", {"component": "inventory.stock"})
    await sim.run()
    assert sim.status() == "failed"
    first = next(i for i in sim.history() if i.step == "RunTests")
    assert first.result.error_message.startswith("the tests did not run to a report")
    assert "timed out after 600 s" in first.result.error_message
    fix = next(p for _, step, p in executor.prompts if step == "FixTestFailures")
    assert "Last lines of output:\ncollected 4 items" in fix
    # The same time-out twice is the same failure: stuck, not three more rounds.
    assert sim.session().status_reason.startswith("stuck:")


async def test_a_report_cut_by_the_executor_is_not_trusted() -> None:
    def cut(call: Call) -> pb.Result:
        result = report("ok", exit_code=0)
        (path,) = call.command.collect_files
        result.files.append(
            pb.FileContent(path=path, exists=True, content=b"<testsuites>", truncated=True)
        )
        return result

    sim = Simulation(REGISTRY, with_tests(cut, ExecutorDouble()))
    sim.start("ComponentCoding", {"component": "inventory.stock"})
    await sim.run()
    first = next(i for i in sim.history() if i.step == "RunTests")
    assert first.result.status == pb.RESULT_STATUS_ERROR
    assert "cut at the executor's file-collection limit" in first.result.error_message


async def test_missing_inputs_stop_the_session_with_what_to_do() -> None:
    no_design = ExecutorDouble()
    no_design._content = lambda path, call: None  # type: ignore[method-assign]
    sim = Simulation(REGISTRY, no_design)
    sim.start("ComponentCoding", {"component": "inventory.stock"})
    await sim.run()
    assert sim.status() == "failed"
    assert "no design document at docs/design/inventory/stock.md" in sim.session().status_reason

    design_only = ExecutorDouble()
    original = design_only._content
    design_only._content = (  # type: ignore[method-assign]
        lambda path, call: None if path.endswith("_test.py") else original(path, call)
    )
    sim = Simulation(REGISTRY, design_only)
    sim.start("ComponentCoding", {"component": "inventory.stock"})
    await sim.run()
    assert sim.status() == "failed"
    assert "no tests at tests/inventory/stock_test.py" in sim.session().status_reason


async def test_an_invalid_context_design_fails_with_the_validation_errors() -> None:
    executor = ExecutorDouble()
    broken = CONTEXT_DESIGN.replace("## Test Assertions", "## Notes").replace(
        "| type  | module |\n\nKeeps", "| type  | gadget |\n\nKeeps"
    )
    original = executor._content
    executor._content = (  # type: ignore[method-assign]
        lambda path, call: broken if path.endswith("inventory.md") else original(path, call)
    )
    sim = Simulation(REGISTRY, executor)
    sim.start("ContextCoding", {"context": "inventory"})
    await sim.run()
    assert sim.status() == "failed"
    reason = sim.session().status_reason
    assert "docs/design/inventory.md is not valid" in reason
    assert "Missing required section" in reason
    assert "test assertions" in reason.lower()
    assert "gadget" in reason
    assert sim.session_keys() == [""]  # no child was created


HOSTILE = [
    'inventory.stock"; rm -rf ~',
    "inventory.$(curl evil)",
    "inventory.`id`",
    "inventory.stock;reboot",
    "inventory.stock\ninjected",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_component_names_are_refused_at_open(name: str) -> None:
    sim = Simulation(REGISTRY, ExecutorDouble())
    with pytest.raises(InvalidArgument, match="not a module name"):
        sim.start("ComponentCoding", {"component": name})
    with pytest.raises(InvalidArgument, match="not a module name"):
        sim.start("ContextCoding", {"context": name})


async def test_a_design_naming_hostile_modules_never_spawns_them() -> None:
    executor = ExecutorDouble()
    hostile = CONTEXT_DESIGN.replace("### inventory.restock", "### inventory.$(rm -rf ~)")
    original = executor._content
    executor._content = (  # type: ignore[method-assign]
        lambda path, call: hostile if path.endswith("inventory.md") else original(path, call)
    )
    sim = Simulation(REGISTRY, executor)
    sim.start("ContextCoding", {"context": "inventory"})
    await sim.run()
    assert sim.status() == "failed"
    assert sim.session_keys() == [""]


async def test_every_name_reaching_git_or_a_process_is_structured_and_sanitised() -> None:
    executor = ExecutorDouble(default_runs=[failing({"test_x": "boom"})])
    sim = Simulation(REGISTRY, executor)
    sim.start(
        "ContextTesting",
        {"context": "Inventory", "branch_prefix": "feat; rm -rf / $(x) `y`\n'z'"},
    )
    await sim.run()
    assert sim.status() == "complete"
    assert executor.commands
    for _, command in executor.commands:
        kind = kind_of(command)
        assert kind in ("git", "agent", "shell")  # never a shell string
        for op in command.git.operations:
            which = op.WhichOneof("op")
            if which == "create_branch":
                assert BRANCH.match(op.create_branch.name), op.create_branch.name
            if which == "add_worktree":
                assert BRANCH.match(op.add_worktree.branch)
                assert op.add_worktree.base == "" or BRANCH.match(op.add_worktree.base)
            if which == "push":
                assert BRANCH.match(op.push.branch)
        if kind == "shell":
            assert all("$(" not in arg and "`" not in arg for arg in command.shell.argv)
    branch = struct_to_dict(sim.session().state)["branch"]
    assert branch == "feat--rm--rf-----x---y---z--session-for-inventory-00000001"


async def test_agent_commands_carry_the_metadata_executors_match_on() -> None:
    executor = ExecutorDouble()
    sim = Simulation(REGISTRY, executor)
    sim.start(
        "ComponentCoding",
        {
            "component": "inventory.stock",
            "context": "inventory",
            "model": "claude-x",
            "project": {"name": "Shop", "description": "sells fruit"},
        },
    )
    await sim.run()
    agent = next(c for _, c in executor.commands if kind_of(c) == "agent")
    assert struct_to_dict(agent.metadata) == {
        "session_type": "ComponentCoding",
        "step": "GenerateImplementation",
        "component": "inventory.stock",
        "context": "inventory",
        "round": 0,
    }
    assert agent.agent.model == "claude-x"
    assert list(agent.agent.allowed_commands) == ["python", "pytest"]
    # The test is named too: the agent may change one that contradicts the design.
    assert list(agent.agent.output_paths) == [
        "src/inventory/stock.py",
        "tests/inventory/stock_test.py",
    ]
    assert agent.agent.prompt.splitlines()[2] == "Project: Shop: sells fruit"
    # The original's unit coder persona is the system prompt.
    assert agent.agent.system_prompt.startswith("You are an expert software developer.")


async def test_rules_matching_the_component_reach_prompts_and_children() -> None:
    rule = "---\ncomponent_type: module\nsession_type: code\n---\nNo global state.\n"
    other = "---\ncomponent_type: schema\nsession_type: code\n---\nUse dataclasses.\n"
    tests_only = "---\ncomponent_type: '*'\nsession_type: test\n---\nName tests well.\n"
    persona = (
        "---\ncomponent_type: '*'\nsession_type: code\npersona: unit_coder\n"
        "name: House coder\n---\nYou write Python 3.12.\n"
    )
    rules = (("module", rule), ("schema", other), ("tests", tests_only), ("coder", persona))

    def with_rules(call: Call) -> pb.Result:
        result = executor(call)
        if call.step == "Initialize" and call.key == "":
            for name, text in rules:
                path = f".specloom/worktrees/{call.session.id}/docs/rules/{name}.md"
                result.files.append(pb.FileContent(path=path, exists=True, content=text.encode()))
        return result

    executor = ExecutorDouble()
    sim = Simulation(REGISTRY, with_rules)
    extra = "---\ncomponent_type: '*'\nsession_type: code\n---\nLog nothing secret.\n"
    sim.start("ContextCoding", {"context": "inventory", "rules": [extra]})
    await sim.run()
    assert sim.status() == "complete"
    prompts = [p for key, step, p in executor.prompts if step == "GenerateImplementation"]
    assert len(prompts) == 3  # every child got them, though only the parent collected
    for prompt in prompts:
        assert "### module\n\nNo global state." in prompt
        assert "Log nothing secret." in prompt
        assert "### Implement the design, make the tests pass" in prompt  # built-in
        assert "Use dataclasses" not in prompt
        assert "Name tests well" not in prompt
        assert "Python 3.12" not in prompt  # a persona rule is not task guidance
    systems = [
        c.agent.system_prompt
        for _, c in executor.commands
        if kind_of(c) == "agent" and struct_to_dict(c.metadata)["step"] == "GenerateImplementation"
    ]
    assert len(systems) == 3
    for system in systems:
        assert system.startswith("You are an expert software developer.")
        assert system.endswith(
            "## From the project's rules\n\n### House coder\n\nYou write Python 3.12."
        )


async def test_a_malformed_rule_stops_the_session_naming_the_file() -> None:
    executor = ExecutorDouble()

    def broken_rule(call: Call) -> pb.Result:
        result = executor(call)
        if call.step == "Initialize":
            path = f".specloom/worktrees/{call.session.id}/docs/rules/x.md"
            bad = pb.FileContent(path=path, exists=True, content=b"no front matter")
            result.files.append(bad)
        return result

    sim = Simulation(REGISTRY, broken_rule)
    sim.start("ComponentTest", {"component": "inventory.stock"})
    await sim.run()
    assert sim.status() == "failed"
    # Named as the project knows it: relative to its repository, not the worktree.
    assert sim.session().status_reason.startswith("Initialize failed: rules: docs/rules/x.md:")


async def test_a_git_failure_that_repeats_is_stuck_not_retried_to_the_cap() -> None:
    executor = ExecutorDouble()

    def refused(call: Call) -> pb.Result:
        if call.step == "Finalize":
            return report("error", error="nothing at src/inventory/stock.py to commit")
        return executor(call)

    sim = Simulation(REGISTRY, refused)
    sim.start("ComponentCoding", {"component": "inventory.stock"})
    await sim.run()
    assert sim.status() == "failed"
    assert [i.step for i in sim.history()].count("Finalize") == 2
    assert sim.session().status_reason == (
        "stuck: Finalize failed the same way twice in a row: "
        "Finalize: git failed: nothing at src/inventory/stock.py to commit"
    )
