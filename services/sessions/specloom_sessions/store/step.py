"""A step's write as the store sees it: what it asks for and what it did."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from google.protobuf import struct_pb2

from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb
from specloom.workflow._proto import result_digest
from specloom_sessions.rows import FINISHED
from specloom_sessions.store._common import is_pending

ALLOWED_FROM: Mapping[int, frozenset[int]] = {
    pb.SESSION_STATUS_ACTIVE: frozenset(
        {pb.SESSION_STATUS_ACTIVE, pb.SESSION_STATUS_PAUSED, pb.SESSION_STATUS_FAILED}
    ),
    pb.SESSION_STATUS_PAUSED: frozenset({pb.SESSION_STATUS_ACTIVE, pb.SESSION_STATUS_PAUSED}),
    pb.SESSION_STATUS_COMPLETE: frozenset({pb.SESSION_STATUS_ACTIVE, pb.SESSION_STATUS_PAUSED}),
    pb.SESSION_STATUS_FAILED: frozenset({pb.SESSION_STATUS_ACTIVE, pb.SESSION_STATUS_PAUSED}),
}
"""Status changes a step may make: target -> statuses it may come from."""


def status_name(status: int) -> str:
    """``complete`` for SESSION_STATUS_COMPLETE."""
    return (
        pb.SessionStatus.Name(pb.SessionStatus.ValueType(status))
        .removeprefix("SESSION_STATUS_")
        .lower()
    )


@dataclass(frozen=True)
class Completion:
    """The result for the pending interaction."""

    interaction_id: str
    result: pb.Result
    lease_epoch: int
    reported_digest: bytes
    """Digest of the result as reported (before a judge's override); never empty here."""


@dataclass(frozen=True)
class Step:
    """Everything one step writes (validated by the servicer)."""

    scope: pb.Scope
    session_id: str
    expected_version: int
    """0: no version check (the other rules still hold)."""
    complete: Completion | None = None
    state: struct_pb2.Struct | None = None
    progress: struct_pb2.Struct | None = None
    append: Sequence[spb.NewInteraction] = ()
    finish: spb.Finish | None = None
    create_children: Sequence[spb.NewChild] = ()
    revive_children: Sequence[spb.RevivedChild] = ()

    @property
    def appends_pending(self) -> bool:
        return bool(self.append) and is_pending(self.append[-1])

    @property
    def finishes(self) -> bool:
        """True when the step ends the session (COMPLETE or FAILED)."""
        return self.finish is not None and self.finish.status in FINISHED


@dataclass
class Advanced:
    """What the step wrote (or, for a replay, what had been written)."""

    session: pb.Session
    completed: pb.Interaction | None = None
    appended: list[pb.Interaction] = field(default_factory=list)
    children: list[pb.Session] | None = None
    replayed: bool = False


def completion(
    interaction_id: str, result: pb.Result, lease_epoch: int, reported_digest: bytes
) -> Completion:
    """A completion, its digest computed from ``result`` when not given."""
    return Completion(
        interaction_id=interaction_id,
        result=result,
        lease_epoch=lease_epoch,
        reported_digest=reported_digest or result_digest(result),
    )
