"""What a step sees and what it returns.

Steps are pure: they get a :class:`StepContext` (the session as plain
values, plus its children when the step asks for them) and return a
:class:`CommandPlan` or a :class:`Judgement`. The orchestrator servicer turns
those into one Sessions write.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from specloom.protoconv import JsonValue
from specloom.v1 import common_pb2 as pb
from specloom.workflow._model import Outcome


@dataclass(frozen=True)
class ComponentView:
    """A component as recorded by a valid context design."""

    name: str
    module_name: str
    type: str
    description: str = ""
    dependencies: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, JsonValue]:
        """Plain form, as kept in session state."""
        return {
            "name": self.name,
            "module_name": self.module_name,
            "type": self.type,
            "description": self.description,
            "dependencies": list(self.dependencies),
        }

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> ComponentView:
        """Read the plain form."""
        return ComponentView(
            name=str(data.get("name", "")),
            module_name=str(data.get("module_name", "")),
            type=str(data.get("type", "")),
            description=str(data.get("description", "")),
            dependencies=tuple(str(d) for d in data.get("dependencies") or ()),
        )


@dataclass(frozen=True)
class ChildView:
    """A child session as its parent's judge sees it."""

    id: str
    type: str
    key: str
    """The child's key within the parent (its component's module name)."""
    status: str
    """"active", "paused", "complete", "failed" or "cancelled"."""
    status_reason: str = ""
    state: Mapping[str, JsonValue] = field(default_factory=dict)
    component: ComponentView | None = None

    @property
    def terminal(self) -> bool:
        """Whether the child will not run again without a person (or a retry)."""
        return self.status in ("complete", "failed", "cancelled")

    @property
    def dependencies(self) -> tuple[Dependency, ...]:
        """The siblings it was created to wait for (see :attr:`ChildSpec.depends_on`)."""
        return dependencies_of(self.state)


@dataclass(frozen=True)
class StepContext:
    """The session as a step sees it."""

    session_id: str
    session_type: str
    account_id: str
    project_id: str
    user_id: str
    params: Mapping[str, JsonValue]
    """Inputs given at start; never change."""
    state: Mapping[str, JsonValue]
    """Workflow state written by judges."""
    execution_mode: str = "manual"
    """"manual", "auto" or "agentic"."""
    parent_id: str = ""
    component: ComponentView | None = None
    name: str = ""
    """The session's display name (context or component)."""
    step: str = ""
    """The step being built or judged."""
    rounds: Mapping[str, int] = field(default_factory=dict)
    """ERROR rounds taken from each step since the last resume (a fix step
    reads ``rounds["RunTests"]`` to know which fix round it is)."""
    children: tuple[ChildView, ...] = ()
    """Loaded only for steps with ``needs_children``."""
    definition_version: int = 1


BRANCH_STATE_KEY = "branch"
"""State key holding a session's branch (set by its first step's plan in both families);
a dependent child learns its dependencies' branches from it."""

DEPENDENCIES_STATE_KEY = "dependencies"
"""State key the kernel fills in a dependent child's initial state (see :class:`Dependency`)."""


@dataclass(frozen=True)
class Dependency:
    """A sibling whose work a child builds on, as written into the child's initial state."""

    key: str
    """The sibling's key (its component's module name)."""
    session_id: str
    branch: str
    """The sibling's branch, read from its own initial state ("" if it records none)."""

    def to_dict(self) -> dict[str, JsonValue]:
        """Plain form, as kept in session state."""
        return {"key": self.key, "session_id": self.session_id, "branch": self.branch}


def dependencies_of(state: Mapping[str, JsonValue]) -> tuple[Dependency, ...]:
    """The dependencies the kernel recorded in a child's state, in merge order."""
    found = state.get(DEPENDENCIES_STATE_KEY)
    if not isinstance(found, list):
        return ()
    return tuple(
        Dependency(
            key=str(item.get("key", "")),
            session_id=str(item.get("session_id", "")),
            branch=str(item.get("branch", "")),
        )
        for item in found
        if isinstance(item, dict)
    )


@dataclass(frozen=True)
class ChildSpec:
    """A child session a spawn step wants to exist."""

    type: str
    key: str
    """Unique among the parent's children; a retried spawn reuses the child with this key."""
    name: str = ""
    component: ComponentView | None = None
    params: Mapping[str, JsonValue] = field(default_factory=dict)
    state: Mapping[str, JsonValue] = field(default_factory=dict)
    """The child's initial state (its base branch, inherited rules, ...)."""
    depends_on: tuple[str, ...] = ()
    """Keys of siblings (children of this spawn, or made by an earlier attempt)
    whose work this child builds on, in the order their branches are merged.
    The kernel creates it after them, puts ``dependencies``
    (:class:`Dependency`, with their branches) into its initial state before
    its first command is built, and Sessions keeps its commands unclaimable
    until every one of them (and theirs) is complete."""


@dataclass(frozen=True)
class CommandPlan:
    """A step's command, and what must be written with it."""

    command: pb.Command
    state: Mapping[str, JsonValue | None] = field(default_factory=dict)
    """Keys to set in the session state when the command is issued (None deletes)."""
    create_children: tuple[ChildSpec, ...] = ()
    """Children to create in the same write (ids chosen by the servicer)."""
    revive_children: tuple[str, ...] = ()
    """Ids of failed children to resume in the same write."""


@dataclass(frozen=True)
class Judgement:
    """A judge's verdict on a result."""

    outcome: Outcome
    reason: str = ""
    """Why, for WARNING and ERROR; it goes into the history and the next prompt."""
    state: Mapping[str, JsonValue | None] = field(default_factory=dict)
    """Keys to set in the session state (None deletes)."""
    fingerprint: str = ""
    """Identifies the failure; the same fingerprint twice in a row means stuck."""
    fail: bool = False
    """End the session now: no revise or retry can fix this."""
    facts: Mapping[str, JsonValue] = field(default_factory=dict)
    """Extra facts recorded with the result (e.g. a parsed test summary)."""

    @staticmethod
    def ok(state: Mapping[str, JsonValue | None] | None = None, **facts: JsonValue) -> Judgement:
        """An OK verdict."""
        return Judgement(Outcome.OK, state=dict(state or {}), facts=facts)

    @staticmethod
    def error(
        reason: str,
        *,
        fingerprint: str = "",
        state: Mapping[str, JsonValue | None] | None = None,
        fail: bool = False,
        **facts: JsonValue,
    ) -> Judgement:
        """An ERROR verdict."""
        return Judgement(
            Outcome.ERROR,
            reason=reason,
            fingerprint=fingerprint,
            state=dict(state or {}),
            fail=fail,
            facts=facts,
        )

    @staticmethod
    def warning(reason: str, state: Mapping[str, JsonValue | None] | None = None) -> Judgement:
        """A WARNING verdict (the step is tried again)."""
        return Judgement(Outcome.WARNING, reason=reason, state=dict(state or {}))


@dataclass(frozen=True)
class CollectedFile:
    """A file the executor read back after the command."""

    path: str
    exists: bool
    content: bytes = b""
    truncated: bool = False

    def text(self) -> str:
        """Content decoded as UTF-8, undecodable bytes replaced."""
        return self.content.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class ReportedResult:
    """A result as the executor reported it, in plain values."""

    outcome: Outcome
    exit_code: int = 0
    stdout: str = ""
    stderr: str = ""
    data: Mapping[str, JsonValue] = field(default_factory=dict)
    error_message: str = ""
    duration_ms: int = 0
    files: tuple[CollectedFile, ...] = ()

    def file(self, path: str) -> CollectedFile | None:
        """The collected file at ``path`` (exactly as requested), if any."""
        for item in self.files:
            if item.path == path:
                return item
        return None

    def existing_files(self) -> list[CollectedFile]:
        """Collected files that exist."""
        return [item for item in self.files if item.exists]
