"""The test-run model: the failure summary a fix prompt gets, and stuck fingerprints."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from specloom_coding.testruns import (
    RunOutcome,
    TestFailure,
    TestRun,
    failure_summary,
    fingerprint,
    output_tail,
    read_test_run,
)


def run_with(*failures: TestFailure, passed: int = 3) -> TestRun:
    failed = sum(1 for f in failures if f.kind == "failure")
    errors = sum(1 for f in failures if f.kind == "error")
    loads = sum(1 for f in failures if f.kind == "load")
    return TestRun(
        command=("python", "-m", "pytest", "tests/inventory/stock_test.py"),
        exit_code=1,
        outcome=RunOutcome.REPORTED,
        passed=passed,
        failed=failed,
        errors=errors,
        load_errors=loads,
        failures=failures,
    )


RESERVE = TestFailure(
    "tests.inventory.stock_test::test_reserve",
    "AssertionError: assert 3 == 4",
    "tests/inventory/stock_test.py",
    12,
)
RECEIVE = TestFailure(
    "tests.inventory.stock_test::test_receive",
    "TypeError: receive() missing 1 required positional argument: 'units'",
    "src/inventory/stock.py",
    8,
    kind="error",
)


def test_the_summary_names_tests_messages_and_locations() -> None:
    summary = failure_summary(run_with(RESERVE, RECEIVE))
    assert summary.splitlines()[0] == "Test run: 1 failed, 1 error, 3 passed (exit code 1)."
    assert "Command: python -m pytest tests/inventory/stock_test.py" in summary
    # Errors (a crash in the code) before assertion failures.
    assert summary.index("test_receive") < summary.index("test_reserve")
    assert "1. [error] tests.inventory.stock_test::test_receive (src/inventory/stock.py:8)" in (
        summary
    )
    assert "   AssertionError: assert 3 == 4" in summary


def test_the_summary_is_capped_and_says_how_many_were_left_out() -> None:
    many = tuple(
        replace(RESERVE, title=f"tests.x::test_{n}", message=f"assert {n} == -1\n" * 20)
        for n in range(200)
    )
    summary = failure_summary(run_with(*many), limit=2000)
    assert len(summary) <= 2000
    assert summary.endswith("more not shown)")
    assert "tests.x::test_0" in summary
    # Long messages are cut per failure, so several failures fit.
    assert summary.count("[failed]") >= 5
    assert "more lines)" in summary


def test_one_enormous_message_still_fits() -> None:
    huge = replace(RESERVE, message="x" * 50_000)
    summary = failure_summary(run_with(huge, RECEIVE), limit=1500)
    assert len(summary) <= 1500
    assert "test_receive" in summary


def test_a_run_without_report_keeps_the_reason_and_the_end_of_the_output() -> None:
    output = "compiling 3 files\n" * 500 + "== Compilation error in file lib/stock.ex ==\n"
    run = read_test_run(
        None,
        "exunit-json",
        command=["mix", "test"],
        exit_code=1,
        stderr=output,
        error_message="exit code 1",
    )
    assert run.outcome is RunOutcome.NO_REPORT
    assert run.problem == "the test run ended (exit code 1) before writing a report: exit code 1"
    summary = failure_summary(run)
    assert summary.startswith("The tests did not run to a report:")
    assert summary.rstrip().endswith("== Compilation error in file lib/stock.ex ==")
    assert len(summary) <= 4000


def test_output_tail_puts_stderr_last() -> None:
    assert output_tail("out 1\nout 2\n", "err\n") == "out 1\nout 2\nerr"
    assert len(output_tail("x" * 100_000, "")) <= 4000


def test_fingerprints_are_the_failing_set_and_its_messages() -> None:
    base = fingerprint(run_with(RESERVE, RECEIVE))
    assert base.startswith("tests:")
    assert fingerprint(run_with(RECEIVE, RESERVE)) == base  # order does not matter
    assert fingerprint(run_with(RESERVE, RECEIVE, passed=9)) == base  # passes do not count
    changed = replace(RESERVE, message="AssertionError: assert 2 == 4")
    assert fingerprint(run_with(changed, RECEIVE)) != base
    assert fingerprint(run_with(RESERVE)) != base
    assert fingerprint(run_with(passed=4)) == ""  # nothing failed


def test_fingerprints_ignore_run_to_run_noise() -> None:
    one = replace(RESERVE, message="assert <Stock at 0x7f2bc4574900> == 1 (took 0.31s)")
    two = replace(RESERVE, message="assert <Stock at 0x7f00aa112233> == 1 (took 0.05s)")
    assert fingerprint(run_with(one)) == fingerprint(run_with(two))
    pid1 = replace(RESERVE, message="exited: #PID<0.123.0> /tmp/pytest-of-root/pytest-17/a")
    pid2 = replace(RESERVE, message="exited: #PID<0.991.0> /tmp/pytest-of-root/pytest-18/a")
    assert fingerprint(run_with(pid1)) == fingerprint(run_with(pid2))


def test_crash_fingerprints_follow_the_output() -> None:
    def crash(text: str) -> TestRun:
        return read_test_run(None, "junit", command=["pytest"], exit_code=1, stderr=text)

    first = crash("SyntaxError: invalid syntax (stock_test.py, line 3)\nin 0.12s")
    again = crash("SyntaxError: invalid syntax (stock_test.py, line 3)\nin 0.40s")
    other = crash("SyntaxError: invalid syntax (stock_test.py, line 9)\nin 0.12s")
    assert fingerprint(first) == fingerprint(again)
    assert fingerprint(first) != fingerprint(other)


def test_the_plain_form_keeps_at_most_twenty_failures() -> None:
    many = tuple(replace(RESERVE, title=f"t{n}") for n in range(30))
    data = run_with(*many).to_dict()
    assert len(data["failures"]) == 20  # type: ignore[arg-type]
    assert data["failures_not_kept"] == 10
    assert data["command"] == ["python", "-m", "pytest", "tests/inventory/stock_test.py"]


def test_unknown_report_formats_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown report format"):
        read_test_run(b"", "tap", command=[], exit_code=0)


failures = st.builds(
    TestFailure,
    title=st.text(min_size=1, max_size=80),
    message=st.text(max_size=3000),
    file=st.text(max_size=40),
    line=st.none() | st.integers(min_value=0, max_value=10_000),
    kind=st.sampled_from(["failure", "error", "load"]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(failures, max_size=40), st.integers(min_value=300, max_value=6000), st.randoms())
def test_summary_never_exceeds_its_cap_and_fingerprints_ignore_order(
    items: list[TestFailure], limit: int, rnd: object
) -> None:
    run = run_with(*items)
    assert len(failure_summary(run, limit=limit)) <= limit
    shuffled = list(items)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert fingerprint(run_with(*shuffled)) == fingerprint(run)
