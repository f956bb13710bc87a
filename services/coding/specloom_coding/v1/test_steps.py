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

from typing import ClassVar

from specloom.protoconv import JsonObject
from specloom.workflow import (
    CommandKind,
    CommandPlan,
    Judgement,
    ReportedResult,
    StepContext,
    commands,
)
from specloom_coding.testruns import TestRun, failure_summary, fingerprint, read_test_run
from specloom_coding.testruns._text import clip
from specloom_coding.v1.common import (
    REPORTS,
    component_of,
    context_name,
    files_of,
    profile_of,
    text_state,
    workdir_of,
)

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


class _RunTestsStep:
    kind: ClassVar[CommandKind] = CommandKind.SHELL
    summary: ClassVar[str] = ""
    needs_children: ClassVar[bool] = False

    def command(self, ctx: StepContext) -> CommandPlan:
        profile = profile_of(ctx)
        files = files_of(ctx)
        runs = ctx.state.get("test_runs")
        number = (runs if isinstance(runs, int) else 0) + 1
        ext = _EXTENSIONS.get(profile.report_format, "out")
        report = f"{REPORTS}/{ctx.session_id}/run-{number}.{ext}"
        invocation = profile.test_invocation([files.test], report)
        metadata = {
            "session_type": ctx.session_type,
            "step": ctx.step,
            "component": component_of(ctx).module_name,
            "context": context_name(ctx),
        }
        command = commands.shell(
            ctx.step,
            invocation.argv,
            env=invocation.env,
            ok_exit_codes=invocation.ok_exit_codes,
            metadata=metadata,
            workdir=workdir_of(ctx),
            collect=[report],
        )
        state: JsonObject = {
            "test_runs": number,
            "test_report": report,
            "test_format": invocation.report_format,
            "test_command": list(invocation.shown()),
        }
        return CommandPlan(command, state=state)

    @staticmethod
    def read(ctx: StepContext, result: ReportedResult) -> TestRun:
        """The run as the collected report (or its absence) tells it."""
        report = result.file(text_state(ctx, "test_report"))
        shown = ctx.state.get("test_command")
        return read_test_run(
            report.content if report is not None and report.exists else None,
            text_state(ctx, "test_format") or "junit",
            command=[str(a) for a in shown] if isinstance(shown, list) else [],
            exit_code=result.exit_code,
            stdout=result.stdout,
            stderr=result.stderr,
            duration_ms=result.duration_ms,
            error_message=result.error_message,
            report_truncated=bool(report is not None and report.truncated),
        )

    @staticmethod
    def failed(run: TestRun, reason: str, fingerprint_: str, **state: bool) -> Judgement:
        summary = failure_summary(run)
        return Judgement.error(
            reason,
            fingerprint=fingerprint_,
            state={
                "test_run": run.to_dict(),
                "failure_reason": reason,
                "failure_summary": summary,
                **state,
            },
            test_run=run.to_dict(),
        )

    @staticmethod
    def passed(run: TestRun, **state: bool) -> Judgement:
        return Judgement.ok(
            state={
                "test_run": run.to_dict(),
                "failure_reason": None,
                "failure_summary": None,
                **state,
            },
            test_run=run.to_dict(),
        )


class RunTests(_RunTestsStep):
    """ComponentCoding: OK only when every test passes."""

    summary: ClassVar[str] = "run the component's tests; OK when all pass"

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        run = self.read(ctx, result)
        if run.all_passed:
            return self.passed(run, tests_passed=True)
        return self.failed(run, headline(run), fingerprint(run), tests_passed=False)


class RunTestsFirst(_RunTestsStep):
    """ComponentTest: the tests must run, and fail, before any code exists."""

    summary: ClassVar[str] = "run the new tests; OK when they run and fail (no code yet)"

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        run = self.read(ctx, result)
        module = component_of(ctx).module_name
        if not run.reported or run.load_errors:
            reason = f"the tests do not compile or load: {headline(run)}"
            return self.failed(run, reason, fingerprint(run), tests_verified=False)
        if run.ran == 0:
            reason = (
                "0 passed and 0 failed: no test ran, so the tests cannot show anything; "
                f"{files_of(ctx).test} must define tests the runner finds"
            )
            return self.failed(run, reason, "tdd:no-tests", tests_verified=False)
        if run.not_passing == 0:
            passing = "the only test passes" if run.passed == 1 else f"all {run.passed} tests pass"
            reason = (
                f"{passing} before {module} is written: "
                "tests written first must fail until the code exists"
            )
            return self.failed(run, reason, f"tdd:all-pass:{run.passed}", tests_verified=False)
        return self.passed(run, tests_verified=True)
