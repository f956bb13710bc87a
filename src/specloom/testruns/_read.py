"""From a finished command and its (maybe missing) report to one TestRun."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from specloom.testruns._model import ParsedReport, ReportError, RunOutcome, TestRun
from specloom.testruns._text import tail
from specloom.testruns.exunit_json import parse_exunit_json
from specloom.testruns.junit import parse_junit

PARSERS: Mapping[str, Callable[[bytes], ParsedReport]] = {
    "junit": parse_junit,
    "exunit-json": parse_exunit_json,
}
"""Report format (a profile's ``report_format``) -> parser."""

TAIL_LINES = 60
TAIL_CHARS = 4000


def output_tail(stdout: str, stderr: str) -> str:
    """The end of a command's output: stderr last, since that is where crashes go."""
    parts = []
    if stdout.strip():
        parts.append(tail(stdout, TAIL_LINES, TAIL_CHARS))
    if stderr.strip():
        parts.append(tail(stderr, TAIL_LINES, TAIL_CHARS))
    return tail("\n".join(parts), TAIL_LINES, TAIL_CHARS)


def read_test_run(
    report: bytes | None,
    report_format: str,
    *,
    command: Sequence[str],
    exit_code: int,
    stdout: str = "",
    stderr: str = "",
    duration_ms: int = 0,
    error_message: str = "",
    report_truncated: bool = False,
) -> TestRun:
    """One :class:`TestRun` from the report (``None`` when none was written).

    Never raises for bad input: a missing report is ``NO_REPORT`` and an
    unreadable one ``BAD_REPORT``, both with the reason and the output tail.
    """
    parser = PARSERS.get(report_format)
    if parser is None:
        raise ValueError(f"unknown report format {report_format!r}; known: {', '.join(PARSERS)}")
    unread = TestRun(
        command=tuple(command),
        exit_code=exit_code,
        outcome=RunOutcome.NO_REPORT,
        duration_ms=duration_ms,
        output_tail=output_tail(stdout, stderr),
        report_format=report_format,
    )
    if report is None:
        why = f"the test run ended (exit code {exit_code}) before writing a report"
        if error_message:
            why += f": {error_message}"
        return replace(unread, problem=why)
    try:
        if report_truncated:
            raise ReportError(
                "the report was cut at the executor's file-collection limit, "
                "so it cannot be read whole"
            )
        parsed = parser(report)
    except ReportError as exc:
        return replace(unread, outcome=RunOutcome.BAD_REPORT, problem=str(exc))
    return TestRun(
        command=tuple(command),
        exit_code=exit_code,
        outcome=RunOutcome.REPORTED,
        passed=parsed.passed,
        failed=parsed.failed,
        errors=parsed.errors,
        skipped=parsed.skipped,
        load_errors=parsed.load_errors,
        failures=parsed.failures,
        duration_ms=parsed.duration_ms or duration_ms,
        report_format=report_format,
        cases=parsed.cases,
    )
