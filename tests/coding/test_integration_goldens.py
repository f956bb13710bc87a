"""Golden step sequences of a context's integration phase (definition v2), through the simulator.

After the children, ContextCoding and ContextTesting bring every child's
branch onto the session's branch (IntegrateChildren ⇄ ResolveConflicts),
run the whole suite there (RunTests ⇄ FixIntegration) and squash it into one
commit. The executor is :class:`ExecutorDouble`, answering as real git
(including a merge that stops on conflicts, with ``data.conflicts``) and
real pytest runs report. Real git and real runs of the same loops are in
``tests/gateway/test_context_integration.py``.
"""

from __future__ import annotations

from pathlib import Path

from specloom.orchestration.simulate import Call, Simulation, assert_golden, report
from specloom.protoconv import struct_to_dict
from specloom.v1 import common_pb2 as pb
from specloom_coding.state import CodingState
from specloom_coding.workflows import REGISTRY
from tests.coding.executor_double import ExecutorDouble, failing, junit, passing, suite_files_of
from tests.fixtures.prompt_goldens import agent_prompts, assert_prompt_goldens

GOLDENS = Path(__file__).parent / "goldens" / "v2"
PROMPTS = Path(__file__).parent / "goldens" / "prompts" / "integration"
CONFLICTED = ["src/inventory/stock.py"]


def steps(sim: Simulation, key: str = "") -> list[str]:
    return [i.step for i in sim.history(key)]


class Conflicting(ExecutorDouble):
    """The first merge of the integration stops on conflicts; the rest go through."""

    def __call__(self, call: Call) -> pb.Result:
        if call.key == "" and call.step == "IntegrateChildren":
            self.commands.append((call.key, call.command))
            branches = list(call.command.git.operations[0].merge.branches)
            if call.attempt == 1:
                return report(
                    "error",
                    error=(
                        f"merging {branches[1]} into the session's branch conflicts in 1 file: "
                        "src/inventory/stock.py; the merge is left in progress"
                    ),
                    data={
                        "branch": "context-coding-session-for-inventory-00000001",
                        "merging": branches[1],
                        "conflicts": CONFLICTED,
                        "merged": branches[:1],
                        "already_merged": [],
                        "pending": branches[2:],
                    },
                )
            return report("ok", data={"merged": branches[1:], "already_merged": branches[:1]})
        return super().__call__(call)


async def test_a_merge_conflict_goes_to_resolve_conflicts_then_the_merge_concludes() -> None:
    executor = Conflicting()
    sim = Simulation(REGISTRY, executor)
    sim.start("ContextCoding", {"context": "inventory", "max_rounds": 2})
    await sim.run()
    assert sim.status() == "complete", sim.session().status_reason
    assert steps(sim) == [
        "Initialize",
        "SpawnComponentCodingSessions",
        "IntegrateChildren",
        "ResolveConflicts",
        "IntegrateChildren",
        "RunTests",
        "Finalize",
    ]
    conflict = sim.history()[2].result
    assert conflict.status == pb.RESULT_STATUS_ERROR
    reservations = "component-coding-session-for-inventory-reservations-00000004"
    assert conflict.error_message == (
        f"merging inventory.reservations ({reservations}) into "
        "context-coding-session-for-inventory-00000001 conflicts in 1 file(s): "
        "src/inventory/stock.py; the merge is left in progress for the conflicts to be resolved"
    )
    resolve = sim.history()[3].command
    assert list(resolve.agent.output_paths) == CONFLICTED
    assert struct_to_dict(resolve.metadata)["round"] == 1
    prompt = resolve.agent.prompt
    assert "Resolve the merge conflicts in the context inventory (fix round 1 of 2)" in prompt
    assert "Merging the work of inventory.reservations into " in prompt
    assert "- src/inventory/stock.py" in prompt
    assert "Do not run git" in prompt
    # Resolved: the state forgets the conflict; what the agent wrote is committed too.
    state = CodingState.read(struct_to_dict(sim.session().state))
    assert (state.merging, state.conflicts) == ("", ())
    assert "src/inventory/stock.py" in sim.history()[-1].command.git.operations[0].commit.paths
    assert_golden(sim.trace, GOLDENS / "context_coding_conflict_resolved.json")


async def test_a_conflict_left_unresolved_twice_is_stuck_and_names_the_files() -> None:
    class Unresolved(Conflicting):
        def __call__(self, call: Call) -> pb.Result:
            if call.key == "" and call.step == "IntegrateChildren":
                return super().__call__(Call(call.key, call.session, call.interaction, attempt=1))
            return super().__call__(call)

    sim = Simulation(REGISTRY, Unresolved())
    sim.start("ContextCoding", {"context": "inventory"})
    await sim.run()
    assert sim.status() == "failed"
    assert steps(sim)[2:] == ["IntegrateChildren", "ResolveConflicts", "IntegrateChildren"]
    reason = sim.session().status_reason
    assert reason.startswith("stuck: IntegrateChildren failed the same way twice in a row: ")
    assert "conflicts in 1 file(s): src/inventory/stock.py" in reason


async def test_the_integrated_suite_fails_then_fix_integration_makes_it_pass() -> None:
    leak = failing({"test_reserve": "assert 2 == 1 (a level left over from another test)"})
    executor = ExecutorDouble(runs={"": [leak, passing()]})
    sim = Simulation(REGISTRY, executor)
    sim.start("ContextCoding", {"context": "inventory", "project": {"name": "shop"}})
    await sim.run()
    assert sim.status() == "complete", sim.session().status_reason
    assert steps(sim) == [
        "Initialize",
        "SpawnComponentCodingSessions",
        "IntegrateChildren",
        "RunTests",
        "FixIntegration",
        "RunTests",
        "Finalize",
    ]
    failed = sim.history()[3].result
    assert failed.status == pb.RESULT_STATUS_ERROR
    assert failed.error_message.startswith("3 of 3 tests fail; first: ")
    fix = sim.history()[4].command
    assert fix.workdir == f".specloom/worktrees/{sim.session().id}"
    assert list(fix.agent.output_paths) == [
        "src/inventory/stock.py",
        "src/inventory/reservations.py",
        "src/inventory/restock.py",
        "tests/inventory/stock_test.py",
        "tests/inventory/reservations_test.py",
        "tests/inventory/restock_test.py",
    ]
    prompt = fix.agent.prompt
    assert prompt.startswith(
        "The tests of the context inventory fail with every component integrated "
        "(fix round 1 of 3)."
    )
    assert "Project: shop" in prompt
    assert (
        "- inventory.reservations (module): code src/inventory/reservations.py, tests "
        "tests/inventory/reservations_test.py; design docs/design/inventory/reservations.md; "
        "depends on inventory.stock"
    ) in prompt
    assert "a level left over from another test" in prompt
    assert "tests.inventory.reservations_test::test_reserve" in prompt
    assert set(fix.agent.allowed_commands) == {"python", "pytest"}
    assert CodingState.read(struct_to_dict(sim.session().state)).tests_passed is True
    assert_golden(sim.trace, GOLDENS / "context_coding_integration_fixed.json")


async def test_an_integration_that_never_passes_stops_at_the_cap() -> None:
    runs = [failing({"test_reserve": f"assert {n} == 1"}) for n in range(5)]
    sim = Simulation(REGISTRY, ExecutorDouble(runs={"": runs}))
    sim.start("ContextCoding", {"context": "inventory", "max_rounds": 2})
    await sim.run()
    assert sim.status() == "failed"
    assert steps(sim).count("FixIntegration") == 2
    assert sim.session().status_reason.startswith(
        "RunTests still failing after 2 rounds (the cap): "
    )
    # Resume: the fix loop runs again on the integrated branch; no child runs again.
    children_before = {key: steps(sim, key) for key in sim.session_keys()[1:]}
    await sim.steer("", pb.CONTROL_ACTION_RESUME, reason="look again")
    await sim.run()
    assert steps(sim)[-2:] == ["FixIntegration", "RunTests"]
    assert {key: steps(sim, key) for key in sim.session_keys()[1:]} == children_before


class QuietFile(ExecutorDouble):
    """The context's first run together: restock's tests all pass (no code exists yet)."""

    def _tests(self, call: Call) -> pb.Result:
        if call.key != "" or call.attempt > 1:
            return super()._tests(call)
        (report_path,) = call.command.collect_files
        files = suite_files_of(call.command)
        fail = failing({"test_level_starts_at_zero": "ModuleNotFoundError: No module named 'x'"})
        cases = [(path.rsplit(".", 1)[0].replace("/", "."), path) for path in files]
        failing_part = junit(fail, *cases[0], *cases[1:2])
        passing_part = junit(passing("test_level_starts_at_zero"), *cases[2])
        # Two reports' test cases in one document, as one run would write them.
        body = failing_part.split(b'hostname="sim">', 1)[1].split(b"</testsuite>")[0]
        document = passing_part.replace(b'hostname="sim">', b'hostname="sim">' + body, 1)
        return report("ok", files={report_path: document}, exit_code=1)


async def test_context_tests_that_do_not_all_fail_together_go_to_fix_integration() -> None:
    sim = Simulation(REGISTRY, QuietFile(default_runs=[failing({"test_x": "No module 'x'"})]))
    sim.start("ContextTesting", {"context": "inventory"})
    await sim.run()
    assert sim.status() == "complete", sim.session().status_reason
    assert steps(sim)[2:] == [
        "IntegrateChildren",
        "RunTests",
        "FixIntegration",
        "RunTests",
        "Finalize",
    ]
    quiet = sim.history()[3].result.error_message
    assert quiet.startswith(
        "1 of 3 test files have no failing test when the context's tests run together: "
        "tests/inventory/restock_test.py; tests written first must fail until the code exists"
    )
    fix = sim.history()[4].command
    assert fix.agent.prompt.startswith(
        "The tests of the context inventory do not behave together as tests written before "
        "the code should (fix round 1 of 3)."
    )
    assert "Do not write any code file (src/inventory/stock.py" in fix.agent.prompt
    assert "tests/inventory/restock_fixtures.py" in fix.agent.output_paths
    assert CodingState.read(struct_to_dict(sim.session().state)).tests_verified is True
    assert_golden(sim.trace, GOLDENS / "context_testing_integration_fixed.json")


async def test_a_child_whose_dependencies_conflict_fails_naming_the_files() -> None:
    def conflicted(call: Call) -> pb.Result:
        return report(
            "error",
            error="merging b into c conflicts in 1 file: src/inventory/stock.py; ...",
            data={"conflicts": ["src/inventory/stock.py"], "merging": "b"},
        )

    class DependencyConflict(ExecutorDouble):
        def _git(self, call: Call) -> pb.Result:
            if call.key == "inventory.restock" and call.step == "Initialize":
                return conflicted(call)
            return super()._git(call)

    sim = Simulation(REGISTRY, DependencyConflict())
    sim.start("ContextCoding", {"context": "inventory"})
    await sim.run()
    assert sim.status("inventory.restock") == "failed"
    child = sim.session("inventory.restock").status_reason
    assert child.startswith(
        "Initialize failed: Initialize: the dependencies' branches conflict in 1 file(s): "
        "src/inventory/stock.py; merging b into c conflicts"
    )
    assert "resolve the conflicts there (remove every conflict marker), then Resume" in child
    # The parent keeps the others' work and names the one that could not start.
    assert sim.status() == "failed"
    reason = sim.session().status_reason
    assert "inventory.restock: failed (Initialize failed: " in reason
    assert "kept, complete on their own branches (2): inventory.stock (" in reason


async def test_the_integration_prompts_match_their_goldens() -> None:
    """ResolveConflicts and FixIntegration, rendered whole (system prompt and prompt)."""
    rendered: dict[str, str] = {}
    conflicted = Simulation(REGISTRY, Conflicting())
    conflicted.start("ContextCoding", {"context": "inventory", "max_rounds": 2})
    await conflicted.run()
    rendered.update(agent_prompts(conflicted, "ContextCoding-conflict"))
    leak = failing({"test_reserve": "assert 2 == 1 (a level left over from another test)"})
    fixed = Simulation(REGISTRY, ExecutorDouble(runs={"": [leak, passing()]}))
    fixed.start("ContextCoding", {"context": "inventory", "project": {"name": "shop"}})
    await fixed.run()
    rendered.update(agent_prompts(fixed, "ContextCoding-integration"))
    assert sorted(rendered) == [
        "ContextCoding-conflict-1-ResolveConflicts.prompt.txt",
        "ContextCoding-integration-1-FixIntegration.prompt.txt",
    ]
    # The parent's agent works as the family's coder, like its children.
    coder = "======== system prompt ========\nYou are an expert software developer."
    assert all(coder in text for text in rendered.values())
    assert_prompt_goldens(rendered, PROMPTS)
