"""The RunTests steps: run the component's tests, judge the report server-side.

The command is the profile's test invocation as argv (no shell) with the
report collected back; the judge parses the report itself. Two verdicts
share the mechanics:

* :class:`RunTests` (ComponentCoding): every test passes, or ERROR with the
  failures for the fix step;
* :class:`RunTestsFirst` (ComponentTest): the tests were written before the
  code, so failing tests are the expected outcome; tests that all pass, or
  no test at all, are errors, and so is a run that did not get as far as
  running tests (the tests do not compile).
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from specloom.workflow import (
    CommandKind,
    CommandPlan,
    Judgement,
    ReportedResult,
    StepContext,
    commands,
)
from specloom.workflow.steps import profile_of, step_metadata
from specloom_coding.state import REPORTS, CodingState, component_of, files_of
from specloom_coding.testruns import TestRun, failure_summary, fingerprint, read_test_run
from specloom_coding.testruns._text import clip

_EXTENSIONS = {"junit": "xml", "exunit-json": "json"}
_HEADLINE = 400


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def headline(run: TestRun) -> str:
    """One line on how ``run`` went wrong, for the history and the fix prompt."""
    if not run.reported:
        text = f"the tests did not run to a report: {run.problem}"
    elif run.load_errors:
        loads = [f for f in run.failures if f.kind == "load"]
        first = _first_line(loads[0].message) if loads else "see the report"
        text = f"{run.load_errors} test file(s) failed to load: {first}"
    elif run.ran == 0:
        text = "no test ran (0 passed, 0 failed): the runner found no tests"
    elif run.not_passing:
        failing = [f for f in run.failures if f.kind != "load"]
        first = (
            f"; first: {failing[0].title} — {_first_line(failing[0].message)}" if failing else ""
        )
        text = f"{run.not_passing} of {run.ran} tests fail{first}"
    else:
        text = f"all {run.passed} tests pass"
    return clip(text, _HEADLINE)


class RunTestsStep:
    """The mechanics every RunTests shares: the run's command, its report read, the verdicts.

    Subclasses give the verdict (``judge``) and may run other test files
    (``test_paths``): a context's RunTests runs its whole suite.
    """

    kind: ClassVar[CommandKind] = CommandKind.SHELL
    summary: ClassVar[str] = ""
    needs_children: ClassVar[bool] = False

    def test_paths(self, ctx: StepContext, state: CodingState) -> list[str]:
        """The test files this run runs: the component's own."""
        return [files_of(ctx).test]

    def command(self, ctx: StepContext) -> CommandPlan:
        state = CodingState.of(ctx)
        profile = profile_of(ctx)
        number = state.test_runs + 1
        ext = _EXTENSIONS.get(profile.report_format, "out")
        report = f"{REPORTS}/{ctx.session_id}/run-{number}.{ext}"
        invocation = profile.test_invocation(self.test_paths(ctx, state), report)
        command = commands.shell(
            ctx.step,
            invocation.argv,
            env=invocation.env,
            ok_exit_codes=invocation.ok_exit_codes,
            metadata=step_metadata(ctx),
            workdir=state.workdir,
            collect=[report],
        )
        after = replace(
            state,
            test_runs=number,
            test_report=report,
            test_format=invocation.report_format,
            test_command=tuple(invocation.shown()),
        )
        return CommandPlan(command, state=state.to(after))

    @staticmethod
    def read(state: CodingState, result: ReportedResult) -> TestRun:
        """The run as the collected report (or its absence) tells it."""
        report = result.file(state.test_report)
        return read_test_run(
            report.content if report is not None and report.exists else None,
            state.test_format or "junit",
            command=list(state.test_command),
            exit_code=result.exit_code,
            stdout=result.stdout,
            stderr=result.stderr,
            duration_ms=result.duration_ms,
            error_message=result.error_message,
            report_truncated=bool(report is not None and report.truncated),
        )

    @staticmethod
    def failed(
        state: CodingState, after: CodingState, run: TestRun, reason: str, mark: str
    ) -> Judgement:
        summary = failure_summary(run)
        after = replace(
            after, test_run=run.to_dict(), failure_reason=reason, failure_summary=summary
        )
        return Judgement.error(
            reason, fingerprint=mark, state=state.to(after), test_run=run.to_dict()
        )

    @staticmethod
    def passed(state: CodingState, after: CodingState, run: TestRun) -> Judgement:
        after = replace(after, test_run=run.to_dict(), failure_reason="", failure_summary="")
        return Judgement.ok(state.to(after), test_run=run.to_dict())


class RunTests(RunTestsStep):
    """ComponentCoding: OK only when every test passes."""

    summary: ClassVar[str] = "run the component's tests; OK when all pass"

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        state = CodingState.of(ctx)
        run = self.read(state, result)
        if run.all_passed:
            return self.passed(state, replace(state, tests_passed=True), run)
        after = replace(state, tests_passed=False)
        return self.failed(state, after, run, headline(run), fingerprint(run))


class RunTestsFirst(RunTestsStep):
    """ComponentTest: the tests must run, and fail, before any code exists."""

    summary: ClassVar[str] = "run the new tests; OK when they run and fail (no code yet)"

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        state = CodingState.of(ctx)
        run = self.read(state, result)
        module = component_of(ctx).module_name
        unverified = replace(state, tests_verified=False)
        if not run.reported or run.load_errors:
            reason = f"the tests do not compile or load: {headline(run)}"
            return self.failed(state, unverified, run, reason, fingerprint(run))
        if run.ran == 0:
            reason = (
                "0 passed and 0 failed: no test ran, so the tests cannot show anything; "
                f"{files_of(ctx).test} must define tests the runner finds"
            )
            return self.failed(state, unverified, run, reason, "tdd:no-tests")
        if run.not_passing == 0:
            passing = "the only test passes" if run.passed == 1 else f"all {run.passed} tests pass"
            reason = (
                f"{passing} before {module} is written: "
                "tests written first must fail until the code exists"
            )
            return self.failed(state, unverified, run, reason, f"tdd:all-pass:{run.passed}")
        return self.passed(state, replace(state, tests_verified=True), run)
