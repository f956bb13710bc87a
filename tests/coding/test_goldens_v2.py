"""Golden step sequences of the coding workflows (definition v2), through the simulator.

The simulator drives the same engine as the gRPC servicer; the executor is
:class:`ExecutorDouble`, answering as real git, agent and pytest runs report.
Each trace is pinned in ``goldens/v2/``; rerun with SPECLOOM_UPDATE_GOLDENS=1
after an intended change and review the diff. What v2 changed from v1: every
session works in its own worktree on a branch of its own (no step touches
the main checkout), commits name the branch they must land on, a pull
request is opened only when asked for, and children get the step library's
params and the parent's rules in their state.
"""

from __future__ import annotations

from pathlib import Path

from specloom.orchestration.simulate import Simulation, assert_golden, report
from specloom.protoconv import struct_to_dict
from specloom.v1 import common_pb2 as pb
from specloom_coding.state import CodingState
from specloom_coding.workflows import REGISTRY
from tests.coding.executor_double import (
    NO_TESTS,
    ExecutorDouble,
    crashing,
    failing,
    passing,
)

GOLDENS = Path(__file__).parent / "goldens" / "v2"
STOCK = {"component": "inventory.stock", "context": "inventory"}
ROOT = "00000000-0000-7000-8000-000000000001"
"""The simulator's first id: the root session's."""


def steps(sim: Simulation, key: str = "") -> list[str]:
    return [i.step for i in sim.history(key)]


async def test_coding_passes_first_time_in_its_own_worktree() -> None:
    sim = Simulation(REGISTRY, ExecutorDouble())
    sim.start("ComponentCoding", STOCK)
    await sim.run()
    assert sim.status() == "complete"
    assert sim.session().definition_version == 2
    assert steps(sim) == ["Initialize", "GenerateImplementation", "RunTests", "Finalize"]
    history = sim.history()
    branch = "component-coding-session-for-inventory-stock-00000001"
    worktree = history[0].command.git.operations[0].add_worktree
    assert (worktree.path, worktree.branch, worktree.base) == (
        f".specloom/worktrees/{ROOT}",
        branch,
        "",  # the workspace's HEAD: no base was given
    )
    # Everything after Initialize runs in the worktree; nothing in the main checkout.
    assert {i.command.workdir for i in history[1:]} == {worktree.path}
    commit = history[-1].command.git.operations[0].commit
    assert list(commit.paths) == ["src/inventory/stock.py", "tests/inventory/stock_test.py"]
    assert commit.expect_branch == branch
    assert commit.allow_empty  # unchanged paths pass; missing ones never do
    assert "Components:\n- inventory.stock" in commit.message
    assert len(history[-1].command.git.operations) == 1  # a component alone does not push
    state = struct_to_dict(sim.session().state)
    assert state["tests_passed"] is True
    assert state["branch"] == branch
    assert_golden(sim.trace, GOLDENS / "component_coding_pass_first_time.json")


async def test_coding_fails_is_fixed_and_passes() -> None:
    executor = ExecutorDouble(
        runs={"": [failing({"test_receive_adds": "AssertionError: assert 6 == 5"}), passing()]}
    )
    sim = Simulation(REGISTRY, executor)
    sim.start("ComponentCoding", {**STOCK, "base": "main", "model": "m-1", "max_turns": 7})
    await sim.run()
    assert sim.status() == "complete"
    assert steps(sim) == [
        "Initialize",
        "GenerateImplementation",
        "RunTests",
        "FixTestFailures",
        "RunTests",
        "Finalize",
    ]
    assert sim.history()[0].command.git.operations[0].add_worktree.base == "main"
    fix = sim.history()[3].command
    # The fix continues the implementation conversation, as round 1.
    assert fix.agent.resume_conversation_id == "conv-root"
    assert (fix.agent.model, fix.agent.max_turns, fix.timeout_seconds) == ("m-1", 7, 1800)
    assert struct_to_dict(fix.metadata) == {
        "session_type": "ComponentCoding",
        "step": "FixTestFailures",
        "component": "inventory.stock",
        "context": "inventory",
        "round": 1,
    }
    assert "tests.inventory.stock_test::test_receive_adds (tests/inventory/stock_test.py:7)" in (
        fix.agent.prompt
    )
    assert "AssertionError: assert 6 == 5" in fix.agent.prompt
    reports = [i.command.collect_files[0] for i in sim.history() if i.step == "RunTests"]
    assert reports[0] != reports[1]
    state = struct_to_dict(sim.session().state)
    assert state["failure_reason"] == ""  # the passing run cleared it
    assert_golden(sim.trace, GOLDENS / "component_coding_fail_fix_pass.json")


async def test_three_fix_rounds_that_all_fail_stop_at_the_cap_and_resume_counts_afresh() -> None:
    runs = [failing({"test_receive_adds": f"assert {n} == 5"}) for n in range(1, 5)]
    executor = ExecutorDouble(runs={"": [*runs, failing({"test_x": "other"}), passing()]})
    sim = Simulation(REGISTRY, executor)
    sim.start("ComponentCoding", STOCK)
    await sim.run()
    assert sim.status() == "failed"
    assert steps(sim).count("FixTestFailures") == 3
    assert sim.session().status_reason.startswith("RunTests still failing after 3 rounds (the cap)")
    assert_golden(sim.trace, GOLDENS / "component_coding_cap.json")

    await sim.steer("", pb.CONTROL_ACTION_RESUME, reason="looked at it")
    await sim.run()
    assert sim.status() == "complete"
    rounds = [
        struct_to_dict(i.command.metadata)["round"]
        for i in sim.history()
        if i.step == "FixTestFailures"
    ]
    assert rounds == [1, 2, 3, 0, 1]  # the resumed fix starts a fresh count


async def test_the_same_failure_twice_is_stuck() -> None:
    same = failing({"test_receive_adds": "AssertionError: assert 6 == 5"}, "test_level")
    sim = Simulation(REGISTRY, ExecutorDouble(runs={"": [same]}))
    sim.start("ComponentCoding", STOCK)
    await sim.run()
    assert sim.status() == "failed"
    assert steps(sim).count("RunTests") == 2
    assert sim.session().status_reason.startswith(
        "stuck: RunTests failed the same way twice in a row"
    )
    assert_golden(sim.trace, GOLDENS / "component_coding_stuck.json")


async def test_tests_first_failing_tests_are_the_expected_outcome() -> None:
    tdd = failing({"test_level_starts_at_zero": "ModuleNotFoundError: No module named 'x'"})
    executor = ExecutorDouble(runs={"": [tdd]})
    sim = Simulation(REGISTRY, executor)
    sim.start("ComponentTest", STOCK)
    await sim.run()
    assert sim.status() == "complete"
    assert steps(sim) == ["Initialize", "GenerateTestsAndFixtures", "RunTests", "Finalize"]
    commit = sim.history()[-1].command.git.operations[0].commit
    assert list(commit.paths) == [
        "tests/inventory/stock_fixtures.py",
        "tests/inventory/stock_test.py",
    ]
    assert struct_to_dict(sim.session().state)["tests_verified"] is True
    prompt = executor.prompts[0][2]
    assert "Write the tests to: tests/inventory/stock_test.py" in prompt
    assert "Do not create it." in prompt
    assert_golden(sim.trace, GOLDENS / "component_test_failing_is_ok.json")


async def test_tests_first_inversions_all_passing_no_tests_and_compile_errors() -> None:
    executor = ExecutorDouble(
        runs={
            "": [
                passing("test_level_starts_at_zero"),
                NO_TESTS,
                crashing("E   SyntaxError: invalid syntax (stock_test.py, line 3)"),
                failing({"test_level_starts_at_zero": "AttributeError: no attribute 'level'"}),
            ]
        }
    )
    sim = Simulation(REGISTRY, executor)
    sim.start("ComponentTest", {"component": "inventory.stock"})
    await sim.run()
    assert sim.status() == "complete"
    judged = [
        (i.result.status, i.result.error_message) for i in sim.history() if i.step == "RunTests"
    ]
    assert [status for status, _ in judged] == [pb.RESULT_STATUS_ERROR] * 3 + [pb.RESULT_STATUS_OK]
    assert judged[0][1].startswith("the only test passes before inventory.stock is written")
    assert judged[1][1].startswith("0 passed and 0 failed: no test ran")
    assert judged[2][1].startswith("the tests do not compile or load")
    fixes = [p for _, step, p in executor.prompts if step == "FixCompilationErrors"]
    assert len(fixes) == 3
    assert "SyntaxError: invalid syntax" in fixes[2]
    assert_golden(sim.trace, GOLDENS / "component_test_inversions.json")


async def test_a_context_with_one_failing_child_retries_integrates_and_finalizes() -> None:
    reservations = [failing({"test_reserve": f"OutOfStock not raised ({n})"}) for n in range(4)]
    executor = ExecutorDouble(runs={"inventory.reservations": [*reservations, passing()]})
    sim = Simulation(REGISTRY, executor)
    sim.start("ContextCoding", {"context": "inventory", "model": "m-2"})
    await sim.run()
    assert sim.status() == "complete"
    keys = ["", "inventory.stock", "inventory.reservations", "inventory.restock"]
    assert sim.session_keys() == keys  # the retry created no second child
    assert steps(sim) == [
        "Initialize",
        "SpawnComponentCodingSessions",
        "SpawnComponentCodingSessions",
        "IntegrateChildren",
        "RunTests",
        "Finalize",
    ]
    first_spawn = sim.history()[1]
    reason = first_spawn.result.error_message
    assert "inventory.reservations: failed (RunTests still failing after 3 rounds" in reason
    assert "not delivered: src/inventory/reservations.py" in reason
    # What finished is kept, and the reason says where.
    stock_branch = "component-coding-session-for-inventory-stock-00000003"
    assert f"kept, complete on their own branches (2): inventory.stock ({stock_branch})" in reason
    retry = sim.history()[2].command.spawn_children
    assert list(retry.resumed_child_ids) == [sim.session("inventory.reservations").id]
    # Completed children never ran again: one Initialize ... Finalize each.
    for key in ("inventory.stock", "inventory.restock"):
        assert steps(sim, key) == ["Initialize", "GenerateImplementation", "RunTests", "Finalize"]
    parent_branch = "context-coding-session-for-inventory-00000001"
    for key in keys[1:]:
        child = sim.session(key)
        assert child.definition_version == 2
        assert struct_to_dict(child.params) == {
            "component": struct_to_dict(child.params)["component"],
            "context": "inventory",
            "model": "m-2",
        }
        worktree = sim.history(key)[0].command.git.operations[0].add_worktree
        assert worktree.path == f".specloom/worktrees/{child.id}"
        assert worktree.base == parent_branch
        assert worktree.branch.endswith(child.id[-8:])
        # The design says reservations and restock depend on stock: they start
        # from its branch, merged into theirs.
        assert list(worktree.merge) == ([] if key == "inventory.stock" else [stock_branch])
        assert sim.history(key)[1].command.workdir == worktree.path
    # Every child, with its status and what it waited for, in the one list of children.
    state = CodingState.read(struct_to_dict(sim.session().state))
    assert [(c.key, c.status, c.depends_on) for c in state.children] == [
        ("inventory.stock", "complete", ()),
        ("inventory.reservations", "complete", ("inventory.stock",)),
        ("inventory.restock", "complete", ("inventory.stock",)),
    ]
    # Integration: every child's branch merged into the session's worktree,
    # dependencies first; then the whole suite on it.
    integrate, run = sim.history()[3].command, sim.history()[4].command
    assert integrate.workdir == f".specloom/worktrees/{ROOT}"
    assert list(integrate.git.operations[0].merge.branches) == [c.branch for c in state.children]
    assert list(run.shell.argv[-3:]) == [
        "tests/inventory/stock_test.py",
        "tests/inventory/reservations_test.py",
        "tests/inventory/restock_test.py",
    ]
    assert state.tests_passed is True
    # Finalize: one commit on the session's branch, squashed onto where it started.
    finalize = sim.history()[-1].command
    assert finalize.workdir == f".specloom/worktrees/{ROOT}"
    commit, push = finalize.git.operations[0].commit, finalize.git.operations[1].push
    assert commit.expect_branch == parent_branch
    assert commit.squash_onto == state.base_commit != ""
    assert list(commit.paths) == [
        "src/inventory/reservations.py",
        "src/inventory/restock.py",
        "src/inventory/stock.py",
        "tests/inventory/reservations_test.py",
        "tests/inventory/restock_test.py",
        "tests/inventory/stock_test.py",
    ]
    assert not commit.gather  # the integrated worktree holds it all
    assert "- inventory.stock\n- inventory.reservations\n- inventory.restock" in commit.message
    assert push.branch == parent_branch
    assert len(finalize.git.operations) == 2  # no pull request unless asked for
    assert_golden(sim.trace, GOLDENS / "context_coding_child_fails_then_retry.json")


async def test_context_testing_commits_every_childs_tests_and_opens_a_pull_request() -> None:
    tdd = failing({"test_level_starts_at_zero": "NameError: name 'x' is not defined"})
    sim = Simulation(REGISTRY, ExecutorDouble(default_runs=[tdd]))
    sim.start("ContextTesting", {"context": "inventory", "pull_request": True, "base": "main"})
    await sim.run()
    assert sim.status() == "complete"
    operations = sim.history()[-1].command.git.operations
    assert [op.WhichOneof("op") for op in operations] == ["commit", "push", "pull_request"]
    assert operations[2].pull_request.base == "main"
    assert operations[2].pull_request.head == "context-testing-session-for-inventory-00000001"
    assert all(p.startswith("tests/inventory/") for p in operations[0].commit.paths)
    assert operations[0].commit.squash_onto  # one commit on where the session started
    assert steps(sim) == [
        "Initialize",
        "SpawnComponentTestSessions",
        "IntegrateChildren",
        "RunTests",
        "Finalize",
    ]
    # Together, every test file loads and fails (no code yet): verified.
    assert struct_to_dict(sim.session().state)["tests_verified"] is True
    # Dependent test children start from their dependency's tests.
    stock = sim.history("inventory.stock")[0].command.git.operations[0].add_worktree.branch
    for key in ("inventory.reservations", "inventory.restock"):
        assert list(sim.history(key)[0].command.git.operations[0].add_worktree.merge) == [stock]
    # Children never push or open pull requests: the parent delivers.
    for key in ("inventory.stock", "inventory.reservations", "inventory.restock"):
        finalize = sim.history(key)[-1].command.git.operations
        assert [op.WhichOneof("op") for op in finalize] == ["commit"]
    assert_golden(sim.trace, GOLDENS / "context_testing.json")


async def test_a_context_whose_children_are_cancelled_is_stuck_not_looping() -> None:
    sim = Simulation(REGISTRY, ExecutorDouble())
    sim.start("ContextTesting", {"context": "inventory"})
    await sim.run(max_steps=3, settle=False)
    sim.cancel("inventory.stock")
    await sim.run()
    assert sim.status() == "failed"
    assert "inventory.stock: cancelled" in sim.session().status_reason
    assert sim.session().status_reason.startswith("stuck:")


async def test_an_agent_that_writes_nothing_is_an_error_naming_the_path_then_stuck() -> None:
    def silent(call: object) -> pb.Result:
        return report("ok", files={"src/inventory/stock.py": None})

    executor = ExecutorDouble(agents={("", "GenerateImplementation"): silent})
    sim = Simulation(REGISTRY, executor)
    sim.start("ComponentCoding", STOCK)
    await sim.run()
    assert sim.status() == "failed"
    assert steps(sim) == ["Initialize", "GenerateImplementation", "GenerateImplementation"]
    assert "wrote nothing at src/inventory/stock.py" in sim.session().status_reason
