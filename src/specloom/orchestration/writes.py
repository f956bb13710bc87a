"""What one orchestrator decision writes, as plain data, and the small helpers around it.

The engine (:mod:`.engine`) produces a :class:`Write`; the servicer sends it
as one AdvanceSession; the simulator applies it to a dict. Nothing here does
I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from specloom.protoconv import JsonObject, JsonValue
from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb
from specloom.workflow import Control, Progress, Record
from specloom.workflow._proto import EXECUTOR_DRIVEN
from specloom.workflow.commands import kind_of, required_capability

TERMINAL = (pb.SESSION_STATUS_COMPLETE, pb.SESSION_STATUS_CANCELLED)
MAX_CHILDREN_PER_STEP = 2000
"""More children than this from one spawn step is refused (RESOURCE_EXHAUSTED
comes from Sessions for raw requests; this guards a step gone wrong)."""
MAX_WRITE_BYTES = 10 * 1024 * 1024
"""Largest AdvanceSession this orchestrator sends (RESOURCE_EXHAUSTED above,
without sending it). Sessions answers a write with the write itself, the
session head and the completed interaction's command: all of that has to
fit in one 16 MiB message too, so the write gets well under that."""


@dataclass(frozen=True)
class LeaseOffer:
    """Hand the next command straight to the executor that reported the last one."""

    executor_id: str
    capabilities: frozenset[str]
    ttl_seconds: int


@dataclass(frozen=True)
class NewStep:
    """An interaction to append."""

    step: str
    command: pb.Command
    dispatch: int
    required_capability: str
    lease: tuple[str, int] | None = None
    immediate_result: pb.Result | None = None


@dataclass(frozen=True)
class PlannedChild:
    """A child session to create, with its first interaction."""

    session: pb.Session
    first: NewStep
    progress: Progress
    depends_on: tuple[str, ...] = ()
    """Ids of the siblings it waits for (``NewChild.depends_on``)."""


@dataclass(frozen=True)
class Revival:
    """A failed child to resume."""

    child_id: str
    record: pb.ControlRecord
    progress: Progress


@dataclass(frozen=True)
class Completion:
    """The pending interaction's judged result."""

    interaction_id: str
    result: pb.Result
    lease_epoch: int
    reported_digest: bytes


@dataclass
class Write:
    """One step's write: becomes one AdvanceSession (one transaction)."""

    complete: Completion | None = None
    state: JsonObject | None = None
    progress: Progress | None = None
    append: list[NewStep] = field(default_factory=list)
    finish: tuple[int, str] | None = None
    children: list[PlannedChild] = field(default_factory=list)
    revive: list[Revival] = field(default_factory=list)


@dataclass(frozen=True)
class Decoded:
    """A head's params, state and progress as plain values.

    Decoding Structs is a visible share of a step's CPU; the servicer keeps
    the values it wrote beside the cached head, so a step decodes nothing.
    """

    version: int
    params: JsonObject
    state: JsonObject
    progress: Progress


@dataclass(frozen=True)
class Done:
    """Nothing more to do for now."""

    status: int
    reason: str = ""


def pending_of(head: pb.Session) -> pb.Interaction | None:
    """The head's pending interaction, if any."""
    for interaction in head.interactions:
        if interaction.status == pb.INTERACTION_STATUS_PENDING:
            return interaction
    return None


def merge_state(
    state: Mapping[str, JsonValue], changes: Mapping[str, JsonValue | None]
) -> JsonObject:
    """``state`` with ``changes`` applied (a None value deletes the key)."""
    merged: JsonObject = dict(state)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def dispatch_of(execution_mode: int, command: pb.Command) -> tuple[int, str]:
    """Who may carry out ``command`` in a session of ``execution_mode``."""
    kind = kind_of(command)
    if kind == "spawn_children":
        # Executors always run children; the gateway reports the join even
        # for a manual parent, once no child can make progress.
        return spb.DISPATCH_JOIN, ""
    if kind == "control":
        return spb.DISPATCH_UNSPECIFIED, ""
    if execution_mode in EXECUTOR_DRIVEN:
        # AUTO and AGENTIC both go to executors; how freely the agent may
        # act is the executor's business (the session's mode travels with
        # each assignment).
        return spb.DISPATCH_EXECUTOR, required_capability(command)
    return spb.DISPATCH_UNSPECIFIED, required_capability(command)


def new_step(
    step: str, command: pb.Command, execution_mode: int, lease: LeaseOffer | None
) -> NewStep:
    if not command.step:
        command.step = step
    elif command.step != step:
        raise ValueError(f"step {step} built a command labelled {command.step!r}")
    dispatch, capability = dispatch_of(execution_mode, command)
    grant = None
    if (
        lease is not None
        and dispatch == spb.DISPATCH_EXECUTOR
        and (not capability or capability in lease.capabilities)
    ):
        grant = (lease.executor_id, lease.ttl_seconds)
    return NewStep(step, command, dispatch, capability, lease=grant)


def control_step(record: pb.ControlRecord) -> NewStep:
    """A control record as an interaction completed on insert."""
    command = pb.Command(step=f"control:{pb.ControlAction.Name(record.action)}")
    command.control.CopyFrom(record)
    return NewStep(
        step=command.step,
        command=command,
        dispatch=spb.DISPATCH_UNSPECIFIED,
        required_capability="",
        immediate_result=pb.Result(status=pb.RESULT_STATUS_OK),
    )


def record_of_control(record: pb.ControlRecord) -> Record:
    control = {
        pb.CONTROL_ACTION_PAUSE: Control.PAUSE,
        pb.CONTROL_ACTION_RESUME: Control.RESUME,
        pb.CONTROL_ACTION_RETRY_FROM: Control.RETRY_FROM,
    }[record.action]
    return Record(step=record.step, control=control, reason=record.reason)


def finish_of(progress: Progress) -> tuple[int, str] | None:
    decision = progress.decision()
    if decision.action == "complete":
        return pb.SESSION_STATUS_COMPLETE, ""
    if decision.action == "fail":
        return pb.SESSION_STATUS_FAILED, decision.reason
    return None


def stopped_before(write: Write, step: str, reason: str) -> Write:
    """``write`` cut down to recording its result, the session stopping FAILED.

    For a next step that cannot be written (more children than allowed, a
    write larger than a message): the result is kept, the session says why
    it stopped, and a resume plans the step again.
    """
    return Write(
        complete=write.complete,
        state=write.state,
        progress=write.progress,
        finish=(pb.SESSION_STATUS_FAILED, f"{step} cannot start: {reason}"),
    )


def without_next_step(write: Write, reason: str) -> Write | None:
    """:func:`stopped_before` the step ``write`` plans; None when it plans none."""
    planned = [step.step for step in write.append if step.immediate_result is None]
    if not (planned or write.children or write.revive):
        return None
    return stopped_before(write, planned[-1] if planned else "the next step", reason)
