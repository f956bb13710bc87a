"""A test run as a table: every test with its outcome, failures with message and place.

The coding judge records its reading of a run under
``result.data.judgement.facts.test_run`` (counts and each failure with its
message, file and line). That names only the failures; the passing tests are
in the runner's own report, which the step collected (``Result.files``). So
the table lists the report's test cases when a JUnit report came back, and
takes each failure's message and location from the judge's facts, which are
what the fix prompt was told.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from xml.etree.ElementTree import Element

from defusedxml import ElementTree as SafeTree

from specloom.protoconv import JsonValue, struct_to_dict
from specloom.v1 import common_pb2 as pb

MAX_CASES = 2000
"""Rows shown; a larger run says how many more there are."""


@dataclass(frozen=True)
class CaseResult:
    """One test of a run."""

    name: str
    outcome: str
    """passed, failed, error or skipped."""
    message: str = ""
    location: str = ""
    seconds: str = ""


@dataclass(frozen=True)
class RunTable:
    """A run's summary and its tests."""

    passed: int
    failed: int
    errors: int
    skipped: int
    outcome: str
    """The judge's word for the run (``reported``, ``no_report``, ``load_error``...)."""
    command: str
    cases: tuple[CaseResult, ...]
    more: int
    """Tests not listed (past :data:`MAX_CASES`)."""
    listed_all: bool
    """True when the runner's report listed every test, passing ones included."""


def _int(value: JsonValue) -> int:
    return value if isinstance(value, int) else 0


def _str(value: JsonValue) -> str:
    return value if isinstance(value, str) else ""


def _facts(interaction: pb.Interaction) -> Mapping[str, JsonValue] | None:
    judgement = struct_to_dict(interaction.result.data).get("judgement")
    if not isinstance(judgement, dict):
        return None
    facts = judgement.get("facts")
    if not isinstance(facts, dict):
        return None
    run = facts.get("test_run")
    return run if isinstance(run, dict) else None


def _location(failure: Mapping[str, JsonValue]) -> str:
    file = _str(failure.get("file"))
    line = _int(failure.get("line"))
    return f"{file}:{line}" if file and line else file


def _junit_cases(content: bytes) -> list[tuple[str, str, str, str]] | None:
    """(title, outcome, message, seconds) per test case; None when not JUnit XML."""
    try:
        root: Element = SafeTree.fromstring(content)
    except Exception:  # any unreadable report: fall back to the judge's facts
        return None
    if root.tag not in ("testsuites", "testsuite"):
        return None
    cases: list[tuple[str, str, str, str]] = []
    for case in root.iter("testcase"):
        classname = case.get("classname", "")
        name = case.get("name", "")
        title = f"{classname}::{name}" if classname else name
        outcome, message = "passed", ""
        for tag, word in (("failure", "failed"), ("error", "error"), ("skipped", "skipped")):
            found = case.find(tag)
            if found is not None:
                outcome = word
                message = found.get("message", "") or (found.text or "").strip()
                break
        cases.append((title, outcome, message, case.get("time", "")))
    return cases


def run_table(interaction: pb.Interaction) -> RunTable | None:
    """The test table of a step that ran tests, or None for any other step."""
    if not interaction.HasField("result"):
        return None
    run = _facts(interaction)
    if run is None:
        return None
    failures = [f for f in run.get("failures") or [] if isinstance(f, dict)]  # type: ignore[union-attr]
    by_title = {_str(f.get("title")): f for f in failures}
    listed: list[CaseResult] = []
    listed_all = False
    for file in interaction.result.files:
        if not file.exists or not file.path.endswith(".xml"):
            continue
        cases = _junit_cases(file.content)
        if cases is None:
            continue
        listed_all = not file.truncated
        for title, outcome, message, seconds in cases:
            fact = by_title.pop(title, None)
            if fact is not None:
                message = _str(fact.get("message")) or message
            location = _location(fact) if fact is not None else ""
            listed.append(CaseResult(title, outcome, message, location, seconds))
        break
    # Failures the report did not list (or no report at all): the judge's own.
    for title, fact in by_title.items():
        kind = _str(fact.get("kind"))
        listed.append(
            CaseResult(
                title or "(no test name)",
                "error" if kind == "error" else "failed",
                _str(fact.get("message")),
                _location(fact),
            )
        )
    order = {"failed": 0, "error": 0, "passed": 1, "skipped": 2}
    listed.sort(key=lambda case: order.get(case.outcome, 3))
    command = run.get("command")
    return RunTable(
        passed=_int(run.get("passed")),
        failed=_int(run.get("failed")),
        errors=_int(run.get("errors")) + _int(run.get("load_errors")),
        skipped=_int(run.get("skipped")),
        outcome=_str(run.get("outcome")),
        command=" ".join(map(str, command)) if isinstance(command, list) else "",
        cases=tuple(listed[:MAX_CASES]),
        more=max(0, len(listed) - MAX_CASES),
        listed_all=listed_all,
    )
