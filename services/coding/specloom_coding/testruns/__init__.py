"""Test runs, as the coding family reads them: the kernel's :mod:`specloom.testruns`.

The parsers moved into the kernel so the project map's scanner can read a
test report without importing a service; this package keeps the coding
family's imports as they were.
"""

from specloom.testruns import (
    PARSERS,
    SUMMARY_LIMIT,
    FailureKind,
    ParsedReport,
    ReportError,
    RunOutcome,
    TestFailure,
    TestRun,
    failure_summary,
    fingerprint,
    output_tail,
    parse_exunit_json,
    parse_junit,
    read_test_run,
)

__all__ = [
    "PARSERS",
    "SUMMARY_LIMIT",
    "FailureKind",
    "ParsedReport",
    "ReportError",
    "RunOutcome",
    "TestFailure",
    "TestRun",
    "failure_summary",
    "fingerprint",
    "output_tail",
    "parse_exunit_json",
    "parse_junit",
    "read_test_run",
]
