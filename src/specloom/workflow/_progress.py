"""The decision: a pure fold of a session's history.

``fold(workflow, params, records)`` gives the :class:`Progress` after those
records, and :meth:`Progress.decision` says what happens next. The same
history always gives the same decision. Because the fold is incremental
(``apply`` one record at a time), the orchestrator stores the latest
Progress on the session and applies only the newest record per step: the
cost of a step does not grow with the length of the history, and replaying
the whole history rebuilds exactly what is stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

from specloom.workflow._model import DONE, Outcome, Workflow

PROGRESS_FORMAT = 1
"""Version of the stored Progress layout."""

MAX_REASON = 2000
"""Longest reason kept in Progress (the full text stays in the history)."""


class Control(StrEnum):
    """A person's decision recorded in the history."""

    PAUSE = "pause"
    RESUME = "resume"
    RETRY_FROM = "retry_from"


@dataclass(frozen=True)
class Record:
    """What the fold sees of one completed interaction (or control record)."""

    step: str
    """Step name (for control records, the step they name, or "")."""
    outcome: Outcome | None = None
    """Judged outcome; ``None`` for control records."""
    reason: str = ""
    """Why, for non-OK outcomes."""
    fingerprint: str = ""
    """Judge's fingerprint of the failure; equal fingerprints twice in a row = stuck."""
    fail: bool = False
    """The judge ended the session at once (a failure no loop can fix)."""
    control: Control | None = None
    """Set for control records."""


Status = Literal["running", "paused", "complete", "failed"]


@dataclass(frozen=True)
class Decision:
    """What the orchestrator should do next."""

    action: Literal["run", "wait", "complete", "fail"]
    """run ``step``; wait (paused); complete; fail with ``reason``."""
    step: str = ""
    reason: str = ""


@dataclass(frozen=True)
class Progress:
    """The fold of a session's history so far."""

    next_step: str
    """Step to run next (kept while paused; where a Resume continues)."""
    status: Status = "running"
    reason: str = ""
    """Why the session is failed or paused."""
    rounds: Mapping[str, int] = field(default_factory=dict)
    """ERROR transitions taken from each step since the last resume."""
    warnings: int = 0
    """Consecutive WARNING outcomes of the step being retried."""
    fingerprints: Mapping[str, str] = field(default_factory=dict)
    """Fingerprint of each step's last ERROR, for stuck detection."""
    records: int = 0
    """How many records were folded (equals the history length)."""

    def decision(self) -> Decision:
        """What comes next according to this progress."""
        if self.status == "running":
            return Decision("run", step=self.next_step)
        if self.status == "paused":
            return Decision("wait", step=self.next_step, reason=self.reason)
        if self.status == "complete":
            return Decision("complete")
        return Decision("fail", step=self.next_step, reason=self.reason)

    def to_dict(self) -> dict[str, Any]:
        """Stored form (a JSON object)."""
        return {
            "format": PROGRESS_FORMAT,
            "next_step": self.next_step,
            "status": self.status,
            "reason": self.reason,
            "rounds": dict(self.rounds),
            "warnings": self.warnings,
            "fingerprints": dict(self.fingerprints),
            "records": self.records,
        }

    @staticmethod
    def from_dict(data: Mapping[str, Any], workflow: Workflow) -> Progress:
        """Read the stored form; an empty mapping is the initial progress."""
        if not data:
            return initial(workflow)
        status = data.get("status", "running")
        if status not in ("running", "paused", "complete", "failed"):
            raise ValueError(f"stored progress has unknown status {status!r}")
        return Progress(
            next_step=str(data.get("next_step") or workflow.first),
            status=status,
            reason=str(data.get("reason", "")),
            rounds={str(k): int(v) for k, v in dict(data.get("rounds") or {}).items()},
            warnings=int(data.get("warnings", 0)),
            fingerprints={str(k): str(v) for k, v in dict(data.get("fingerprints") or {}).items()},
            records=int(data.get("records", 0)),
        )


def initial(workflow: Workflow) -> Progress:
    """Progress of a session with no history: run the first step."""
    return Progress(next_step=workflow.first)


def _restart(progress: Progress, next_step: str) -> Progress:
    # A person's decision restarts every loop counter: the cap measures
    # rounds since someone last looked, not over the session's whole life.
    return replace(
        progress,
        next_step=next_step,
        status="running",
        reason="",
        rounds={},
        warnings=0,
        fingerprints={},
    )


def _apply_control(workflow: Workflow, progress: Progress, record: Record) -> Progress:
    if record.control is Control.PAUSE:
        if progress.status == "running":
            return replace(progress, status="paused", reason=record.reason or "paused")
        return progress
    if record.control is Control.RESUME:
        if progress.status in ("paused", "failed"):
            return _restart(progress, progress.next_step)
        return progress
    # RETRY_FROM: an unknown step cannot be recorded (the servicer refuses
    # it first), but the fold stays total over any history.
    if progress.status == "complete" or not workflow.has_step(record.step):
        return progress
    return _restart(progress, record.step)


def _clip(reason: str) -> str:
    return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 1] + "…"


def _apply_step(
    workflow: Workflow, params: Mapping[str, object], progress: Progress, record: Record
) -> Progress:
    row = workflow.step(record.step)
    paused = progress.status == "paused"

    def go(target: str, **changes: Any) -> Progress:
        if target == DONE:
            return replace(progress, status="complete", reason="", next_step=DONE, **changes)
        status: Status = "paused" if paused else "running"
        return replace(progress, status=status, next_step=target, **changes)

    def fail(reason: str, resume_at: str) -> Progress:
        # A failed session keeps in next_step where a Resume continues.
        return replace(progress, status="failed", reason=_clip(reason), next_step=resume_at)

    if record.outcome is Outcome.OK:
        fingerprints = {k: v for k, v in progress.fingerprints.items() if k != row.name}
        return go(row.target(row.on_ok), warnings=0, fingerprints=fingerprints)

    if record.outcome is Outcome.WARNING:
        warnings = progress.warnings + 1
        cap = workflow.cap(row, params)
        if warnings > cap:
            return fail(
                f"{row.name} warned {warnings} times in a row (cap {cap}): {record.reason}",
                row.name,
            )
        return go(row.target(row.on_warning), warnings=warnings)

    # ERROR
    reason = record.reason or f"{row.name} failed"
    if record.fail:
        return fail(f"{row.name} failed: {reason}", row.name)
    target = row.target(row.on_error)
    if record.fingerprint and progress.fingerprints.get(row.name) == record.fingerprint:
        return fail(f"stuck: {row.name} failed the same way twice in a row: {reason}", target)
    rounds = dict(progress.rounds)
    rounds[row.name] = rounds.get(row.name, 0) + 1
    cap = workflow.cap(row, params)
    if rounds[row.name] > cap:
        return fail(
            f"{row.name} still failing after {cap} rounds (the cap): {reason}",
            target,
        )
    fingerprints = dict(progress.fingerprints)
    if record.fingerprint:
        fingerprints[row.name] = record.fingerprint
    return go(target, rounds=rounds, warnings=0, fingerprints=fingerprints)


def apply(
    workflow: Workflow, params: Mapping[str, object], progress: Progress, record: Record
) -> Progress:
    """Progress after one more record."""
    if record.control is not None:
        after = _apply_control(workflow, progress, record)
    elif progress.status == "complete":
        after = progress  # nothing runs after completion; a stray record changes nothing
    else:
        after = _apply_step(workflow, params, progress, record)
    return replace(after, records=progress.records + 1)


def fold(workflow: Workflow, params: Mapping[str, object], records: Iterable[Record]) -> Progress:
    """Progress after a whole history, from the start."""
    progress = initial(workflow)
    for record in records:
        progress = apply(workflow, params, progress, record)
    return progress
