"""The state every session keeps, whatever its family: :class:`SessionState`.

Each family's state record subclasses it (``CodingState``, ``DesignState``)
and adds its own fields, so the library's steps and the family's steps read
one typed, frozen record from the same Struct. Keys, as stored:

``branch``, ``workdir``
    The session's own branch and worktree (Initialize, when it is issued).
``base``
    Start point of the branch: a child's parent branch, given at creation
    (a top-level session reads the ``base`` param instead).
``dependencies``
    Sibling children this child's worktree must contain, given at creation
    (dependency-gated fan-out).
``rules``
    The project rules of this session's kind (a top-level Initialize reads
    them; children inherit their parent's).
``context_design``, ``components``
    The context design a fan-out read, and its components.
``conversation_id``
    The agent conversation a fix or revise step continues.
``files``
    What the session produced so far (paths relative to its worktree);
    what its Finalize commits.
``children``
    Every child of the session's spawn steps, one list, each with its status,
    branch, files and the siblings it waited for.
``base_commit``
    The commit the session's own work starts from: its branch's head once
    Initialize made the worktree (a dependent child's after its
    dependencies' branches are merged). A parent's integrated result is
    squashed onto it.
``merging``, ``conflicts``
    An integration stopped on conflicts: the child whose branch was being
    merged, and the files that conflict (the merge is left in progress).
``commit``, ``committed_files``, ``pushed``, ``push_warning``, ``pull_request``
    What Finalize reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Self

from specloom.protoconv import JsonValue
from specloom.rules import Rule
from specloom.workflow._context import ComponentView, StepContext
from specloom.workflow._record import changes, decode

__all__ = ["ChildRecord", "DependencyRef", "PullRequestRef", "SessionState"]


@dataclass(frozen=True)
class ChildRecord:
    """A child as its parent records it after judging its spawn."""

    key: str
    """The child's key within the parent (a module name, or ``review``)."""
    id: str = ""
    type: str = ""
    status: str = ""
    """``complete``, ``failed``, ``cancelled``, ``active`` or ``paused`` when judged."""
    branch: str = ""
    """Where the child's work is committed."""
    files: tuple[str, ...] = ()
    """What the child produced (its ``files``)."""
    depends_on: tuple[str, ...] = ()
    """Keys of the siblings whose work it was built on (merged in this order)."""


@dataclass(frozen=True)
class DependencyRef:
    """A sibling whose work a child's worktree starts from (given at creation)."""

    key: str
    session_id: str = ""
    branch: str = ""


@dataclass(frozen=True)
class PullRequestRef:
    """The pull request Finalize opened, or the command that would open it."""

    url: str = ""
    command: str = ""
    opened: bool = False


@dataclass(frozen=True)
class SessionState:
    """What the step library reads and writes; families subclass it."""

    branch: str = ""
    workdir: str = ""
    base: str = ""
    dependencies: tuple[DependencyRef, ...] = ()
    rules: tuple[Rule, ...] = ()
    context_design: str = ""
    components: tuple[ComponentView, ...] = ()
    conversation_id: str = ""
    files: tuple[str, ...] = ()
    children: tuple[ChildRecord, ...] = ()
    base_commit: str = ""
    merging: str = ""
    conflicts: tuple[str, ...] = ()
    commit: str = ""
    committed_files: tuple[str, ...] = ()
    pushed: bool = False
    push_warning: str = ""
    pull_request: PullRequestRef | None = None

    @classmethod
    def of(cls, ctx: StepContext) -> Self:
        """The session's state as this record (``StateError`` naming a malformed field)."""
        return decode(cls, ctx.state)

    @classmethod
    def read(cls, state: Mapping[str, JsonValue], *, where: str = "state") -> Self:
        """Stored state (a child's, say) as this record."""
        return decode(cls, state, where=where)

    def to(self, after: Self) -> dict[str, JsonValue | None]:
        """The state keys that turn this record into ``after`` (for a Judgement or plan)."""
        return changes(self, after)

    def with_files(self, new: Iterable[str]) -> tuple[str, ...]:
        """``files`` with ``new`` added, sorted and unique."""
        return tuple(sorted({*self.files, *new}))
