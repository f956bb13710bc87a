"""What a fix prompt is told about a run, and how two runs are recognised as the same.

The summary is for an AI agent with a limited context: test names,
messages and ``file:line``, most important first, capped in size. The
fingerprint is for stuck detection: the same failing tests with the same
messages give the same fingerprint; anything else differs.
"""

from __future__ import annotations

import hashlib
import json

from specloom.testruns._model import TestFailure, TestRun
from specloom.testruns._text import clip, clip_lines, normalize

SUMMARY_LIMIT = 4000
"""Default cap on a failure summary, in characters."""

_MESSAGE_LINES = 8
_LINE_LIMIT = 240

_KIND_ORDER = {"load": 0, "error": 1, "failure": 2}


def fingerprint(run: TestRun) -> str:
    """A stable identifier of how ``run`` failed ("" for a run where all passed)."""
    if run.all_passed:
        return ""
    if not run.reported:
        # Without a report the output's last lines are the failure; masked,
        # so timings and temporary paths do not make each crash unique.
        basis: object = [run.outcome.value, normalize(run.output_tail[-1500:])]
    else:
        basis = sorted(
            (failure.kind, failure.title, normalize(failure.message)) for failure in run.failures
        )
        if not basis:
            basis = ["no-failures", run.passed, run.failed, run.errors]
    digest = hashlib.sha256(json.dumps(basis, ensure_ascii=False).encode()).hexdigest()
    return f"tests:{digest[:20]}"


def _entry(number: int, failure: TestFailure) -> str:
    label = {"load": "did not load", "error": "error", "failure": "failed"}[failure.kind]
    where = f" ({failure.location})" if failure.location else ""
    lines = [line for line in failure.message.splitlines() if line.strip()]
    message = clip_lines("\n".join(lines), _MESSAGE_LINES, _LINE_LIMIT)
    indented = "\n".join("   " + line for line in message.splitlines())
    return f"{number}. [{label}] {failure.title}{where}\n{indented}"


def failure_summary(run: TestRun, limit: int = SUMMARY_LIMIT) -> str:
    """A compact account of what failed, at most ``limit`` characters."""
    command = clip(" ".join(run.command), 300)
    if not run.reported:
        head = f"The tests did not run to a report: {run.problem}\nCommand: {command}\n"
        output = run.output_tail or "(no output)"
        room = max(limit - len(head) - len("Last lines of output:\n"), 200)
        text = head + "Last lines of output:\n" + output[-room:]
        return clip(text, limit)
    lines = [
        f"Test run: {run.counts()} (exit code {run.exit_code}).",
        f"Command: {command}",
    ]
    if not run.failures:
        if run.ran == 0:
            lines.append("No test ran: the runner found no tests in the given files.")
        return clip("\n".join(lines), limit)
    ordered = sorted(run.failures, key=lambda f: _KIND_ORDER.get(f.kind, 3))
    text = "\n".join(lines)
    shown = 0
    for failure in ordered:
        entry = _entry(shown + 1, failure)
        remaining = len(ordered) - shown - 1
        reserve = len(f"\n({remaining} more not shown)") if remaining else 0
        if len(text) + 1 + len(entry) + reserve > limit:
            if shown == 0:
                text = clip(text + "\n" + entry, limit - reserve)
                shown = 1
            break
        text += "\n" + entry
        shown += 1
    if shown < len(ordered):
        text += f"\n({len(ordered) - shown} more not shown)"
    return text
