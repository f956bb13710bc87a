"""JUnit XML reports: pytest ``--junitxml``, mix's JUnit formatters, most runners.

Parsed with :mod:`defusedxml` and DTDs forbidden: a test report never needs
one, and a report is text written by code under test, so an entity bomb or
an external entity in it must be refused, not expanded.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from specloom.testruns._model import (
    CaseOutcome,
    CaseResult,
    FailureKind,
    ParsedReport,
    ReportError,
    TestFailure,
)
from specloom.testruns._text import best_location, clip, clip_lines, decode_report

MAX_MESSAGE = 2000
MAX_DETAILS = 4000

# pytest reports a test module that failed to import as an error on a
# pseudo test case with this message; none of that file's tests ran.
_PYTEST_COLLECTION = "collection failure"


def _tag(element: Element) -> str:
    # Some runners put the report in a namespace; the local name is what counts.
    return element.tag.rsplit("}", 1)[-1] if isinstance(element.tag, str) else ""


def _seconds(value: str | None) -> float:
    if not value:
        return 0.0
    try:
        return float(value.replace(",", ""))
    except ValueError:
        return 0.0


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _title(case: Element) -> str:
    name = (case.get("name") or "").strip() or "(unnamed test)"
    classname = (case.get("classname") or "").strip().removeprefix("Elixir.")
    return f"{classname}::{name}" if classname else name


def _message(outcome: Element) -> str:
    message = (outcome.get("message") or "").strip()
    if message:
        return clip(message, MAX_MESSAGE)
    text = (outcome.text or "").strip()
    # pytest marks the exception lines of a traceback with "E   ".
    marked = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
    if marked:
        return clip("\n".join(marked), MAX_MESSAGE)
    if text:
        return clip_lines(text, 8, 300)
    return (outcome.get("type") or "").strip() or "failed"


def _failure(case: Element, outcome: Element, kind: FailureKind) -> TestFailure:
    text = (outcome.text or "").strip()
    own_file = (case.get("file") or "").strip()
    file, line = best_location(text, prefer=own_file)
    if not file:
        file, line = own_file, _int(case.get("line"))
    message = _message(outcome)
    pseudo_case = not (case.get("classname") or "").strip()
    if kind == "error" and pseudo_case and message == _PYTEST_COLLECTION:
        # The useful message is the import error in the text, not the label.
        kind = "load"
        marked = [ln[1:].strip() for ln in text.splitlines() if ln.startswith("E ")]
        message = clip("\n".join(marked) or clip_lines(text, 8, 300), MAX_MESSAGE)
    return TestFailure(
        title=_title(case),
        message=message,
        file=file,
        line=line,
        kind=kind,
        details=clip(text, MAX_DETAILS),
    )


def _duration_ms(root: Element, cases: list[Element]) -> int:
    if _tag(root) == "testsuites" and root.get("time"):
        return round(_seconds(root.get("time")) * 1000)
    if _tag(root) == "testsuite":
        return round(_seconds(root.get("time")) * 1000)
    suites = [child for child in root if _tag(child) == "testsuite"]
    if suites:
        return round(sum(_seconds(s.get("time")) for s in suites) * 1000)
    return round(sum(_seconds(c.get("time")) for c in cases) * 1000)


def parse_junit(content: bytes) -> ParsedReport:
    """Parse a JUnit XML report; :class:`ReportError` when it is not one."""
    decode_report(content, "JUnit report")  # size, NUL and encoding checks
    if not content.strip():
        raise ReportError("the JUnit report is empty")
    try:
        root = fromstring(content, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise ReportError(
            "the JUnit report declares a DTD or entities, which a test report never needs; "
            f"refused (possible XML bomb): {type(exc).__name__}"
        ) from None
    except ParseError as exc:
        raise ReportError(f"the JUnit report is not well-formed XML (truncated?): {exc}") from None
    if _tag(root) not in ("testsuites", "testsuite"):
        raise ReportError(
            f"not a JUnit report: the root element is <{_tag(root)}>, "
            "expected <testsuites> or <testsuite>"
        )
    cases = [element for element in root.iter() if _tag(element) == "testcase"]
    passed = failed = errors = skipped = load_errors = 0
    failures: list[TestFailure] = []
    results: list[CaseResult] = []
    for case in cases:
        outcomes = {_tag(child): child for child in case}
        outcome: CaseOutcome
        if "failure" in outcomes:
            failed += 1
            outcome = "failed"
            failures.append(_failure(case, outcomes["failure"], "failure"))
        elif "error" in outcomes:
            failure = _failure(case, outcomes["error"], "error")
            if failure.kind == "load":
                load_errors += 1
                outcome = "load"
            else:
                errors += 1
                outcome = "error"
            failures.append(failure)
        elif "skipped" in outcomes:
            skipped += 1
            outcome = "skipped"
        else:
            passed += 1
            outcome = "passed"
        results.append(_case(case, outcome))
    return ParsedReport(
        passed=passed,
        failed=failed,
        errors=errors,
        skipped=skipped,
        load_errors=load_errors,
        failures=tuple(failures),
        duration_ms=_duration_ms(root, cases),
        cases=tuple(results),
    )


def _case(case: Element, outcome: CaseOutcome) -> CaseResult:
    classname = (case.get("classname") or "").strip()
    if outcome == "load" and not classname:
        # pytest names the module that did not load in the pseudo case's name.
        classname = (case.get("name") or "").strip()
    return CaseResult(
        title=_title(case),
        outcome=outcome,
        file=(case.get("file") or "").strip(),
        classname=classname,
    )
