"""One model of a test run, whatever runner produced it.

A run either produced a report the parsers could read (``REPORTED``), ended
before writing one (``NO_REPORT``: a compile error, a crash, a time-out), or
wrote something that is not a report (``BAD_REPORT``: truncated JSON, binary
junk, an XML bomb). The last two keep the tail of the output, which is the
only evidence of what went wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from specloom.protoconv import JsonObject

FailureKind = Literal["failure", "error", "load"]
"""``failure``: an assertion failed; ``error``: the test crashed (or its
setup did); ``load``: a test file could not be loaded at all (pytest's
collection errors), so none of its tests ran."""


class ReportError(ValueError):
    """The report cannot be read: it is malformed, truncated or refused."""


class RunOutcome(StrEnum):
    """Whether the run produced a readable report."""

    REPORTED = "reported"
    NO_REPORT = "no_report"
    BAD_REPORT = "bad_report"


@dataclass(frozen=True)
class TestFailure:
    """One test that did not pass (or one file that did not load)."""

    __test__ = False  # not a pytest test class, despite the name

    title: str
    """The test's full name: ``tests.inventory.stock_test::test_reserve`` or
    ``Inventory.StockTest: test reserve``."""
    message: str
    """The failure message: the assertion and its values, or the exception."""
    file: str = ""
    """File of the failing line, relative to the project, when known."""
    line: int | None = None
    """Line of the failing assertion (or of the test) when known."""
    kind: FailureKind = "failure"
    details: str = ""
    """The longer text (traceback, stack), capped."""

    @property
    def location(self) -> str:
        """``file:line``, ``file``, or ""."""
        if self.file and self.line is not None:
            return f"{self.file}:{self.line}"
        return self.file

    def to_dict(self) -> JsonObject:
        """Plain form (details left out: they are long and in the stored report)."""
        data: JsonObject = {"title": self.title, "message": self.message, "kind": self.kind}
        if self.file:
            data["file"] = self.file
        if self.line is not None:
            data["line"] = self.line
        return data


CaseOutcome = Literal["passed", "failed", "error", "load", "skipped"]
"""How one test case ended (``load``: its file did not load)."""


@dataclass(frozen=True)
class CaseResult:
    """One test case of a report, with what says which test file it came from.

    The project map attributes a whole-suite run to components by test file:
    ``file`` when the runner names it (ExUnit, JUnit with ``file``), else
    ``classname`` (pytest's dotted path of the test module, e.g.
    ``tests.inventory.stock_test`` or ``tests.inventory.stock_test.TestAdd``).
    """

    title: str
    outcome: CaseOutcome
    file: str = ""
    classname: str = ""


@dataclass(frozen=True)
class ParsedReport:
    """What a runner's report says, before it is joined with the process facts."""

    passed: int = 0
    failed: int = 0
    errors: int = 0
    """Tests that crashed or whose setup failed (not assertion failures)."""
    skipped: int = 0
    load_errors: int = 0
    """Test files that did not load; their tests are not counted anywhere else."""
    failures: tuple[TestFailure, ...] = ()
    """Every failure, error and load error, in report order."""
    duration_ms: int = 0
    cases: tuple[CaseResult, ...] = ()
    """Every test case in report order (load errors included), for attribution by file."""


@dataclass(frozen=True)
class TestRun:
    """A test run: the command, how it ended, and what the report said."""

    __test__ = False  # not a pytest test class, despite the name

    command: tuple[str, ...]
    """The argv that ran."""
    exit_code: int
    outcome: RunOutcome
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    load_errors: int = 0
    failures: tuple[TestFailure, ...] = ()
    duration_ms: int = 0
    """The report's duration when it has one, else the command's wall time."""
    problem: str = ""
    """Why there is no usable report (empty when ``REPORTED``)."""
    output_tail: str = ""
    """The end of the command's output, kept when there is no usable report."""
    report_format: str = ""
    cases: tuple[CaseResult, ...] = ()
    """Every test case of the report (left out of the plain form: the map reads them)."""

    @property
    def reported(self) -> bool:
        """Whether a report was read."""
        return self.outcome is RunOutcome.REPORTED

    @property
    def ran(self) -> int:
        """Tests that ran to a verdict (passed, failed or errored)."""
        return self.passed + self.failed + self.errors

    @property
    def not_passing(self) -> int:
        """Tests that failed or errored."""
        return self.failed + self.errors

    @property
    def all_passed(self) -> bool:
        """A report was read, at least one test passed, and nothing failed or failed to load."""
        return self.reported and self.passed > 0 and self.not_passing == 0 and self.load_errors == 0

    def counts(self) -> str:
        """``2 failed, 1 error, 3 passed, 1 skipped`` (zeros left out, except passed)."""
        parts = []
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.errors:
            parts.append(f"{self.errors} error{'s' if self.errors != 1 else ''}")
        if self.load_errors:
            noun = "file" if self.load_errors == 1 else "files"
            parts.append(f"{self.load_errors} test {noun} failed to load")
        parts.append(f"{self.passed} passed")
        if self.skipped:
            parts.append(f"{self.skipped} skipped")
        return ", ".join(parts)

    def to_dict(self) -> JsonObject:
        """Plain form for session state and judged-result facts (failures capped)."""
        data: JsonObject = {
            "command": list(self.command),
            "outcome": self.outcome.value,
            "exit_code": self.exit_code,
            "passed": self.passed,
            "failed": self.failed,
            "errors": self.errors,
            "skipped": self.skipped,
            "load_errors": self.load_errors,
            "duration_ms": self.duration_ms,
            "failures": [f.to_dict() for f in self.failures[:MAX_FAILURES_KEPT]],
        }
        if len(self.failures) > MAX_FAILURES_KEPT:
            data["failures_not_kept"] = len(self.failures) - MAX_FAILURES_KEPT
        if self.problem:
            data["problem"] = self.problem
        if self.report_format:
            data["report_format"] = self.report_format
        return data


MAX_FAILURES_KEPT = 20
"""Failures kept in the plain form; the whole report stays in the history."""
