"""Fingerprints and the verdicts every family gives the same way.

A fingerprint identifies a failure so the kernel can tell "the same failure
twice in a row" (stuck) from progress. One form for both families:
``<kind>:<16 hex of sha256(detail)>``.
"""

from __future__ import annotations

import hashlib

from specloom.protoconv import JsonValue
from specloom.workflow._context import Judgement, ReportedResult
from specloom.workflow._model import Outcome

__all__ = ["agent_failed", "clip", "conflicts_of", "fingerprint", "git_failed", "said"]

_SAID = 2000


def fingerprint(kind: str, detail: str) -> str:
    """A short stable fingerprint of a failure of ``kind`` described by ``detail``."""
    return f"{kind}:{hashlib.sha256(detail.encode()).hexdigest()[:16]}"


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, marked when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def said(result: ReportedResult) -> str:
    """What the executor said about a failure: its message, else the end of stderr."""
    return result.error_message.strip() or result.stderr.strip()[-_SAID:]


def conflicts_of(result: ReportedResult) -> list[str]:
    """The files a git merge stopped on (``data.conflicts``; empty for any other failure)."""
    found = result.data.get("conflicts")
    if not isinstance(found, list):
        return []
    return sorted({str(path) for path in found if isinstance(path, str) and path})


def git_failed(result: ReportedResult, step: str) -> Judgement:
    """ERROR for a git command that failed; the same failure twice is stuck."""
    problem = f"{step}: git failed: {said(result) or 'no reason given'}"
    return Judgement.error(problem, fingerprint=fingerprint("git", problem))


def agent_failed(
    result: ReportedResult, step: str, state: dict[str, JsonValue | None]
) -> Judgement:
    """ERROR (or WARNING, retried as is) for an agent that did not finish its work."""
    reason = said(result)
    problem = f"{step}: the agent did not finish" + (f": {reason}" if reason else "")
    if result.outcome is Outcome.WARNING:
        return Judgement.warning(problem, state)
    return Judgement.error(problem, fingerprint=fingerprint("agent", problem), state=state)
