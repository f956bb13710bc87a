"""ExUnit JSON reports, shaped like mocha's JSON reporter.

Two shapes are read:

* the document the elixir profile's formatter writes
  (``src/specloom/profiles/exunit_json_formatter.exs``)::

    {"stats": {"tests": 4, "passes": 2, "failures": 1, "invalid": 0,
               "pending": 1, "duration": 12.5, ...},
     "tests": [...], "passes": [...], "failures": [...], "pending": [...]}

  where each test is ``{"title", "fullTitle", "file", "line", "duration",
  "state", "err": {"message", "file", "line", "stack"}}`` (``err`` is ``{}``
  for a passing test, ``state`` is ``invalid`` when ``setup_all`` failed);

* the event stream of the ``exunit_json_formatter`` package: one JSON array
  per line, ``["pass", test]``, ``["fail", test]``, ``["pending", test]``,
  ending with ``["end", stats]``.

Anything else (truncated JSON, binary junk, the wrong shape) is a
:class:`ReportError` naming what is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from specloom.testruns._model import (
    CaseOutcome,
    CaseResult,
    FailureKind,
    ParsedReport,
    ReportError,
    TestFailure,
)
from specloom.testruns._text import best_location, clip, decode_report

MAX_MESSAGE = 2000
MAX_DETAILS = 4000


def _loads(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(
            f"the ExUnit JSON report is not valid JSON ({exc.msg} at {where}line {exc.lineno} "
            f"column {exc.colno}); it may be truncated"
        ) from None
    except RecursionError:
        raise ReportError("the ExUnit JSON report nests too deeply to be a test report") from None


def _str(value: object) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def _line(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _failure(test: Mapping[str, Any]) -> TestFailure:
    err = test.get("err")
    err = err if isinstance(err, Mapping) else {}
    title = _str(test.get("fullTitle")) or _str(test.get("title")) or "(unnamed test)"
    message = _str(err.get("message")).strip() or _str(err.get("stack")).strip() or "failed"
    stack = _str(err.get("stack"))
    file = _str(err.get("file")) or _str(test.get("file"))
    line = _line(err.get("line"))
    if line is None:
        found_file, found_line = best_location(stack, prefer=file)
        if found_line is not None:
            file, line = found_file, found_line
        else:
            line = _line(test.get("line"))
    kind: FailureKind = "error" if _str(test.get("state")) == "invalid" else "failure"
    return TestFailure(
        title=title,
        message=clip(message, MAX_MESSAGE),
        file=file,
        line=line,
        kind=kind,
        details=clip(stack, MAX_DETAILS),
    )


def _tests(document: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = document.get(key, [])
    if not isinstance(value, list) or not all(isinstance(t, Mapping) for t in value):
        raise ReportError(f"the ExUnit JSON report's {key!r} is not a list of tests")
    return value


def _duration_ms(stats: Mapping[str, Any]) -> int:
    value = stats.get("duration")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return round(value)
    return 0


def _from_lists(
    passes: list[Mapping[str, Any]],
    failures: list[Mapping[str, Any]],
    pending: list[Mapping[str, Any]],
    stats: Mapping[str, Any],
) -> ParsedReport:
    parsed = tuple(_failure(test) for test in failures)
    errors = sum(1 for failure in parsed if failure.kind == "error")
    cases = [_case(test, "passed") for test in passes]
    cases += [
        _case(test, "error" if failure.kind == "error" else "failed")
        for test, failure in zip(failures, parsed, strict=True)
    ]
    cases += [_case(test, "skipped") for test in pending]
    return ParsedReport(
        passed=len(passes),
        failed=len(parsed) - errors,
        errors=errors,
        skipped=len(pending),
        failures=parsed,
        duration_ms=_duration_ms(stats),
        cases=tuple(cases),
    )


def _case(test: Mapping[str, Any], outcome: CaseOutcome) -> CaseResult:
    title = _str(test.get("fullTitle")) or _str(test.get("title"))
    return CaseResult(title=title, outcome=outcome, file=_str(test.get("file")))


def _document(data: object) -> ParsedReport:
    if not isinstance(data, Mapping):
        raise ReportError("the ExUnit JSON report is not a JSON object")
    stats = data.get("stats")
    if not isinstance(stats, Mapping):
        raise ReportError("the ExUnit JSON report has no 'stats' object: not a test report")
    if not any(key in data for key in ("passes", "failures", "pending", "tests")):
        raise ReportError("the ExUnit JSON report lists no tests ('passes', 'failures' missing)")
    failures = _tests(data, "failures")
    if "passes" in data or "failures" in data:
        return _from_lists(_tests(data, "passes"), failures, _tests(data, "pending"), stats)
    # Only "tests": sort them by state (or by whether err is set, as mocha does).
    passes, failed, pending = [], [], []
    for test in _tests(data, "tests"):
        state = _str(test.get("state"))
        if state in ("skipped", "pending"):
            pending.append(test)
        elif state in ("failed", "invalid") or test.get("err"):
            failed.append(test)
        elif state != "excluded":
            passes.append(test)
    return _from_lists(passes, failed, pending, stats)


def _stream(text: str) -> ParsedReport:
    passes: list[Mapping[str, Any]] = []
    failures: list[Mapping[str, Any]] = []
    pending: list[Mapping[str, Any]] = []
    stats: Mapping[str, Any] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        event = _loads(line, f"event line {number}, ")
        if (
            not isinstance(event, list)
            or len(event) != 2
            or not isinstance(event[0], str)
            or not isinstance(event[1], Mapping)
        ):
            raise ReportError(
                f"the ExUnit JSON event on line {number} is not an [event, object] pair"
            )
        name, payload = event
        if name == "pass":
            passes.append(payload)
        elif name == "fail":
            failures.append(payload)
        elif name == "pending":
            pending.append(payload)
        elif name == "end":
            stats = payload
    if stats is None:
        raise ReportError(
            "the ExUnit JSON event stream has no 'end' event: the run stopped before finishing"
        )
    return _from_lists(passes, failures, pending, stats)


def parse_exunit_json(content: bytes) -> ParsedReport:
    """Parse an ExUnit JSON report; :class:`ReportError` when it is not one."""
    text = decode_report(content, "ExUnit JSON report").strip()
    if not text:
        raise ReportError("the ExUnit JSON report is empty")
    if text.startswith("{"):
        return _document(_loads(text, ""))
    if text.startswith("["):
        return _stream(text)
    raise ReportError(
        f"the ExUnit JSON report does not start with '{{' or '[' (starts with {text[:20]!r})"
    )
