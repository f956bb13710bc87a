"""Test runs: one model from any runner's report, or from a run that wrote none.

``read_test_run`` joins a finished command (argv, exit code, output) with
its report (JUnit XML or ExUnit JSON) into a :class:`TestRun`;
``failure_summary`` is what a fix prompt is told; ``fingerprint`` names the
failing set for stuck detection.
"""

from specloom.testruns._model import (
    CaseOutcome,
    CaseResult,
    FailureKind,
    ParsedReport,
    ReportError,
    RunOutcome,
    TestFailure,
    TestRun,
)
from specloom.testruns._read import PARSERS, output_tail, read_test_run
from specloom.testruns._summary import SUMMARY_LIMIT, failure_summary, fingerprint
from specloom.testruns.exunit_json import parse_exunit_json
from specloom.testruns.junit import parse_junit

__all__ = [
    "PARSERS",
    "SUMMARY_LIMIT",
    "CaseOutcome",
    "CaseResult",
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
