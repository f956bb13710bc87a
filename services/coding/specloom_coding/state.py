"""The coding family's session state, as one typed, frozen record.

:class:`CodingState` is the step library's :class:`SessionState` (branch,
worktree, rules, files, children, commit, ...) plus what the coding steps
keep: the test runs and their verdict. Every coding step reads it with
``CodingState.of(ctx)`` and writes what changed with ``state.to(after)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from specloom.profiles import ComponentFiles
from specloom.protoconv import JsonObject
from specloom.workflow import ComponentView, StepContext
from specloom.workflow.steps import SessionState, profile_of

RUN_TESTS = "RunTests"
"""The loop step both component workflows share; fix rounds are counted on it."""

REPORTS = ".specloom/reports"
"""Test reports land in ``<REPORTS>/<session_id>/run-<n>.<ext>`` (in the
session's worktree), one file per run, so a run that dies before writing its
report is never judged by the report an earlier run left behind."""


@dataclass(frozen=True)
class CodingState(SessionState):
    """A coding-family session's state."""

    test_runs: int = 0
    """Runs so far (numbers the report files)."""
    test_report: str = ""
    """The report the pending or last run writes."""
    test_format: str = ""
    """How to parse it (``junit``, ``exunit-json``)."""
    test_command: tuple[str, ...] = ()
    """The run's argv, as people and prompts see it."""
    test_run: JsonObject | None = None
    """The last run, parsed (``TestRun.to_dict()``)."""
    failure_reason: str = ""
    """One line on how the last run went wrong ("" once it passed)."""
    failure_summary: str = ""
    """The failures, for the fix prompt."""
    tests_passed: bool | None = None
    """ComponentCoding: the last run passed (what its parent checks)."""
    tests_verified: bool | None = None
    """ComponentTest: the tests ran and failed before the code exists."""


def component_of(ctx: StepContext) -> ComponentView:
    """The component a component session works on."""
    if ctx.component is None or not ctx.component.module_name:
        # The workflow's params make `component` required, so only a
        # session written by hand can get here.
        raise ValueError(f"{ctx.session_type} session {ctx.session_id} has no component")
    return ctx.component


def files_of(ctx: StepContext) -> ComponentFiles:
    """The component's design, code, test and fixtures paths (in the session's worktree)."""
    return profile_of(ctx).files(component_of(ctx).module_name)
