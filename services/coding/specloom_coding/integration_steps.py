"""The integration phase of the context workflows (ContextTesting, ContextCoding), definition v2.

After the spawn every child's work is on its own branch. The parent merges
them into its worktree (the library's :class:`IntegrateChildren`; conflicts
go to :class:`ResolveConflicts`), then runs the context's whole suite there —
a real run of every component's test file at once, parsed like any other —
and fixes what fails only together (:class:`FixIntegration`, capped, stuck
detection and resume as every loop) before Finalize commits.

- :class:`RunContextTests` (ContextCoding): every test passes.
- :class:`RunContextTestsFirst` (ContextTesting): the tests were written
  before the code, so together they must load, run, and fail — every test
  file with at least one failing test of its own, since no code exists yet.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from specloom.rules import TEST_WRITER, UNIT_CODER
from specloom.workflow import Judgement, ReportedResult, StepContext
from specloom.workflow.steps import AgentStep, loop_cap, profile_of
from specloom_coding import integration_prompts as prompts
from specloom_coding.state import RUN_TESTS, CodingState
from specloom_coding.test_steps import RunTests, RunTestsStep, headline
from specloom_coding.testruns import TestFailure, TestRun, fingerprint
from specloom_coding.testruns._text import clip

INTEGRATE = "IntegrateChildren"
"""The merge step ResolveConflicts rounds are counted on."""

MAX_QUIET_NAMED = 10
"""Test files without a failing test a reason names (the rest are counted)."""


def suite_of(ctx: StepContext, state: CodingState) -> list[str]:
    """The context's whole suite: every component's test file, in component order."""
    profile = profile_of(ctx)
    return [profile.files(c.module_name).test for c in state.components]


class RunContextTests(RunTests):
    """ContextCoding: the whole suite on the integrated branch; OK only when every test passes."""

    summary: ClassVar[str] = (
        "run the context's whole suite on the integrated branch; OK when all pass"
    )

    def test_paths(self, ctx: StepContext, state: CodingState) -> list[str]:
        return suite_of(ctx, state)


def failures_in(run: TestRun, test_path: str) -> list[TestFailure]:
    """The failures ``run`` reports for the tests of ``test_path``.

    A failure belongs to the file its runner names: pytest's JUnit titles
    start with the file's dotted path (``tests.ledger.accounts_test::…``),
    ExUnit's report the test's file.
    """
    dotted = test_path.rsplit(".", 1)[0].replace("/", ".")
    return [
        failure
        for failure in run.failures
        if failure.kind != "load"
        and (failure.file == test_path or failure.title.startswith((f"{dotted}::", f"{dotted}.")))
    ]


class RunContextTestsFirst(RunTestsStep):
    """ContextTesting: together, every test file loads and fails because no code exists yet."""

    summary: ClassVar[str] = (
        "run the context's whole suite on the integrated branch; OK when every test file "
        "loads and fails (no code yet)"
    )

    def test_paths(self, ctx: StepContext, state: CodingState) -> list[str]:
        return suite_of(ctx, state)

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        state = CodingState.of(ctx)
        run = self.read(state, result)
        unverified = replace(state, tests_verified=False)
        if not run.reported or run.load_errors:
            reason = f"the tests do not load together: {headline(run)}"
            return self.failed(state, unverified, run, reason, fingerprint(run))
        if run.ran == 0:
            reason = "0 passed and 0 failed: no test of the context ran together"
            return self.failed(state, unverified, run, reason, "tdd:no-tests")
        suite = self.test_paths(ctx, state)
        quiet = [path for path in suite if not failures_in(run, path)]
        if quiet:
            shown = ", ".join(quiet[:MAX_QUIET_NAMED])
            rest = len(quiet) - MAX_QUIET_NAMED
            more = f" and {rest} more" if rest > 0 else ""
            reason = clip(
                f"{len(quiet)} of {len(suite)} test files have no failing test when the "
                f"context's tests run together: {shown}{more}; tests written first must fail "
                f"until the code exists ({run.counts()})",
                1000,
            )
            mark = f"tdd:quiet:{fingerprint(run)}:{len(quiet)}"
            return self.failed(state, unverified, run, reason, mark)
        return self.passed(state, replace(state, tests_verified=True), run)


def _persona(kind: prompts.SessionKind) -> str:
    """The agent a context's integration works as: the family's test writer or coder."""
    return TEST_WRITER if kind == "test" else UNIT_CODER


class ResolveConflicts(AgentStep):
    """The parent's agent resolves the conflicts of a merge left in progress."""

    summary: ClassVar[str] = (
        "agent resolves the conflicts of a child's merge into the session's branch"
    )
    runs_tests: ClassVar[bool] = True
    loop: ClassVar[str] = INTEGRATE

    def __init__(self, kind: prompts.SessionKind) -> None:
        self.session_kind: prompts.SessionKind = kind

    def persona_of(self, ctx: StepContext) -> str:
        return _persona(self.session_kind)

    def outputs(self, ctx: StepContext) -> list[str]:
        return list(CodingState.of(ctx).conflicts)

    def required(self, ctx: StepContext) -> list[str]:
        # Deleting a file can resolve its conflict; the merge step judges
        # whether any marker is left.
        return []

    def prompt(self, ctx: StepContext) -> str:
        state = CodingState.of(ctx)
        facts = prompts.ContextFacts.of(ctx, self.session_kind)
        return prompts.resolve_conflicts(
            facts,
            self.session_kind,
            state.merging,
            state.conflicts,
            self.round(ctx),
            loop_cap(ctx),
        )


class FixIntegration(AgentStep):
    """The parent's agent fixes what fails only with every component integrated."""

    summary: ClassVar[str] = (
        "agent fixes the integrated branch until the context's whole suite behaves"
    )
    runs_tests: ClassVar[bool] = True
    loop: ClassVar[str] = RUN_TESTS
    continues: ClassVar[bool] = True

    def __init__(self, kind: prompts.SessionKind) -> None:
        self.session_kind: prompts.SessionKind = kind

    def persona_of(self, ctx: StepContext) -> str:
        return _persona(self.session_kind)

    def outputs(self, ctx: StepContext) -> list[str]:
        state = CodingState.of(ctx)
        profile = profile_of(ctx)
        files = [profile.files(c.module_name) for c in state.components]
        if self.session_kind == "code":
            return [f.code for f in files] + [f.test for f in files]
        return [f.test for f in files] + [f.fixtures for f in files]

    def required(self, ctx: StepContext) -> list[str]:
        # What the session must still hold afterwards: every component's
        # file of this kind (the children delivered them).
        state = CodingState.of(ctx)
        profile = profile_of(ctx)
        kind = "code" if self.session_kind == "code" else "test"
        return [getattr(profile.files(c.module_name), kind) for c in state.components]

    def prompt(self, ctx: StepContext) -> str:
        state = CodingState.of(ctx)
        facts = prompts.ContextFacts.of(ctx, self.session_kind)
        return prompts.fix_integration(
            facts,
            self.session_kind,
            state.failure_reason,
            state.failure_summary,
            self.round(ctx),
            loop_cap(ctx),
        )
