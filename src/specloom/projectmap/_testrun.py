"""One run of a checkout's tests, its results told per component.

The profile's runner runs once over every test file present (one process,
not 500), and the report's test cases are attributed to the test file they
came from: by the file the runner names, else by pytest's dotted module
path (``tests/ledger/accounts_test.py`` is ``tests.ledger.accounts_test``).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from specloom.profiles import Profile
from specloom.testruns import CaseResult, TestRun, read_test_run

SCAN_SOURCE = "scan"
"""``TestEvidence.source`` of a run a scan made."""

MAX_FAILURES = 10
"""Failures kept per component, as ``TestEvidence.failures`` allows."""

TEST_TIMEOUT_SECONDS = 30 * 60
"""The whole run's time limit (the same as one agent step's)."""


@dataclass
class FileResult:
    """What the run said of one test file."""

    passed: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    cases: int = 0
    """Cases the report has from the file, skipped ones included (0: it did not run)."""


@dataclass(frozen=True)
class SuiteRun:
    """The run, and its results by test file."""

    run: TestRun
    by_file: Mapping[str, FileResult]
    problem: str = ""
    """Why the run says nothing (no report, an unreadable one, the runner missing)."""


def files_digest(code_digest: str, test_digest: str) -> str:
    """sha256 over a component's code and test digests: what a test run ran against."""
    return hashlib.sha256(f"{code_digest}\n{test_digest}".encode()).hexdigest()


def run_suite(root: Path, profile: Profile, test_paths: Sequence[str]) -> SuiteRun:
    """Run ``test_paths`` with the profile's runner in ``root`` and attribute the results."""
    with tempfile.TemporaryDirectory(prefix="specloom-scan-") as scratch:
        report_path = str(Path(scratch) / f"report.{profile.report_format}")
        invocation = profile.test_invocation(list(test_paths), report_path)
        env = {**os.environ, **invocation.env}
        started = time.monotonic()
        try:
            done = subprocess.run(
                list(invocation.argv),
                cwd=root,
                env=env,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=TEST_TIMEOUT_SECONDS,
                check=False,
            )
        except FileNotFoundError:
            problem = f"the test runner {invocation.argv[0]!r} is not installed (not on PATH)"
            return SuiteRun(_unrun(invocation.shown()), {}, problem)
        except subprocess.TimeoutExpired:
            problem = f"the test run took over {TEST_TIMEOUT_SECONDS} s and was stopped"
            return SuiteRun(_unrun(invocation.shown()), {}, problem)
        elapsed = round((time.monotonic() - started) * 1000)
        try:
            report: bytes | None = Path(report_path).read_bytes()
        except FileNotFoundError:
            report = None
    run = read_test_run(
        report,
        invocation.report_format,
        command=invocation.shown(),
        exit_code=done.returncode,
        stdout=done.stdout,
        stderr=done.stderr,
        duration_ms=elapsed,
    )
    if not run.reported:
        tail = run.output_tail.strip().splitlines()[-1:] or [""]
        return SuiteRun(run, {}, f"the test run gave no usable report: {run.problem} {tail[0]}")
    return SuiteRun(run, attribute(run, test_paths))


def attribute(run: TestRun, test_paths: Sequence[str]) -> dict[str, FileResult]:
    """The run's cases by the test file (of ``test_paths``) each came from."""
    messages = {failure.title: failure.message for failure in run.failures}
    dotted = {_dotted(path): path for path in test_paths}
    results: dict[str, FileResult] = {path: FileResult() for path in test_paths}
    for case in run.cases:
        path = _file_of(case, test_paths, dotted)
        if path is None:
            continue
        result = results[path]
        result.cases += 1
        if case.outcome == "skipped":
            continue
        if case.outcome == "passed":
            result.passed += 1
            continue
        result.failed += 1
        if len(result.failures) < MAX_FAILURES:
            message = " ".join(messages.get(case.title, case.outcome).split())
            result.failures.append(f"{case.title}: {message[:300]}")
    return results


def _dotted(path: str) -> str:
    return ".".join(PurePosixPath(path).with_suffix("").parts)


def _file_of(case: CaseResult, test_paths: Sequence[str], dotted: Mapping[str, str]) -> str | None:
    if case.file:
        name = case.file.replace("\\", "/")
        for path in test_paths:
            if name == path or name.endswith("/" + path):
                return path
    if case.classname:
        parts = case.classname.split(".")
        # The longest prefix that is a test module: a class inside it adds segments.
        for end in range(len(parts), 0, -1):
            found = dotted.get(".".join(parts[:end]))
            if found is not None:
                return found
    return None


def _unrun(command: Sequence[str]) -> TestRun:
    return read_test_run(None, "junit", command=command, exit_code=-1)
