"""Workflow definitions as declared data.

A workflow reads like its table in DESIGN.md: an ordered tuple of
:class:`StepDef`, each naming its behaviour (a :class:`Step`: build the
command, judge the result) and where it goes on ``ok`` / ``warning`` /
``error``. Nothing here performs I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar, Protocol

from specloom.errors import FailedPrecondition, InvalidArgument
from specloom.profiles import PROFILES

if TYPE_CHECKING:
    from specloom.workflow._context import CommandPlan, Judgement, ReportedResult, StepContext

DONE = "done"
"""Transition target that completes the session."""

SAME = "same"
"""Transition target meaning "this step again" (a retry)."""

DEFAULT_MAX_ROUNDS = 3
"""Loop cap when neither the step nor the session's params set one."""


def max_rounds_of(params: Mapping[str, object]) -> int:
    """The session's loop cap: its ``max_rounds`` param, else :data:`DEFAULT_MAX_ROUNDS`.

    The one reading of the param: the kernel applies it, prompts quote it.
    """
    value = params.get("max_rounds")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return DEFAULT_MAX_ROUNDS


class Outcome(StrEnum):
    """A step's outcome, as reported or as the judge overrode it."""

    OK = "ok"
    WARNING = "warning"
    ERROR = "error"


class CommandKind(StrEnum):
    """What kind of command a step issues (for Describe and dispatch)."""

    SHELL = "shell"
    AGENT = "agent"
    GIT = "git"
    SPAWN_CHILDREN = "spawn_children"
    NOOP = "noop"


class Step(Protocol):
    """A step's behaviour: a small pair of pure functions.

    ``command`` builds what to run for this session; ``judge`` decides what
    the result means (it may override the reported status, update state,
    and give a fingerprint for stuck detection). Steps that decide from the
    children's state set ``needs_children``; the servicer then loads the
    children into the context.
    """

    kind: ClassVar[CommandKind]
    summary: ClassVar[str]
    needs_children: ClassVar[bool]

    def command(self, ctx: StepContext) -> CommandPlan: ...

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement: ...


@dataclass(frozen=True)
class StepDef:
    """One row of a workflow table."""

    name: str
    """Step name, recorded on every interaction (``"RunTests"``)."""
    step: Step
    """The behaviour."""
    on_ok: str
    """Next step on OK, or :data:`DONE`."""
    on_error: str = SAME
    """Next step on ERROR: a revise/fix step, or :data:`SAME` to retry."""
    on_warning: str = SAME
    """Next step on WARNING; the original's rule is to retry the same step."""
    max_rounds: int | None = None
    """Cap on ERROR transitions taken from this step between resumes;
    ``None`` uses the session's ``max_rounds`` param (default 3). Past the
    cap the session fails and a person may Resume it."""

    def target(self, name: str) -> str:
        """Resolve :data:`SAME` to this step's name."""
        return self.name if name == SAME else name


@dataclass(frozen=True)
class ParamSpec:
    """One parameter a workflow accepts at start."""

    description: str
    """One line, shown by Describe and ``specloom session start --help``."""
    required: bool = False
    """Whether StartSession must give it."""
    kind: type = str
    """Expected Python type after Struct conversion: str, int, bool, list or dict."""
    choices: tuple[str, ...] = ()
    """The values a string parameter may take; empty: any."""
    problem: Callable[[str], str | None] | None = None
    """For a string parameter: why a given value is unusable (None when it is
    fine), so a bad value is refused at start, not by the step that uses it."""


COMMON_PARAMS: Mapping[str, ParamSpec] = {
    "max_rounds": ParamSpec("Loop cap for revise/fix rounds (default 3).", kind=int),
    "profile": ParamSpec(
        "Project profile: 'python' (default) or 'elixir'.", kind=str, choices=tuple(PROFILES)
    ),
    "branch_prefix": ParamSpec("Overrides the workflow's branch name prefix.", kind=str),
    "project": ParamSpec("Project facts for prompts: {name, description}.", kind=dict),
    "model": ParamSpec("AI model for agent steps (backend default if unset).", kind=str),
    "pull_request": ParamSpec(
        "Open a pull request at finalize when a host is configured.", kind=bool
    ),
}
"""Parameters every workflow accepts."""


@dataclass(frozen=True)
class Workflow:
    """A workflow definition: one session type at one version."""

    type: str
    """Session type, e.g. ``"ComponentCoding"``."""
    version: int
    """Definition version; sessions record the version they started under."""
    steps: tuple[StepDef, ...]
    """The step table; the first row is the first step."""
    params: Mapping[str, ParamSpec] = field(default_factory=dict)
    """Workflow-specific parameters (the common ones are added)."""
    child_types: tuple[str, ...] = ()
    """Session types of the children its spawn steps create."""
    child_versions: Mapping[str, int] = field(default_factory=dict)
    """Definition version each child type is created at; unpinned types get the
    newest. A parent's spawn and judge read and write its children's state, so
    a definition pins the child definitions it was written against."""
    subject: Callable[[Mapping[str, object]], str] | None = None
    """Display name of a session from its params (default: context or component)."""
    summary: str = ""
    """One line on what the workflow does."""

    def __post_init__(self) -> None:
        names = [row.name for row in self.steps]
        if not names:
            raise ValueError(f"{self.type}: a workflow needs at least one step")
        if len(set(names)) != len(names):
            raise ValueError(f"{self.type}: step names must be unique: {names}")
        for row in self.steps:
            for label, target in (
                ("on_ok", row.on_ok),
                ("on_error", row.on_error),
                ("on_warning", row.on_warning),
            ):
                if target not in (DONE, SAME) and target not in names:
                    raise ValueError(f"{self.type}.{row.name}.{label}: unknown step {target!r}")
            if row.max_rounds is not None and row.max_rounds < 0:
                raise ValueError(f"{self.type}.{row.name}: max_rounds must be >= 0")
        unknown = sorted(set(self.child_versions) - set(self.child_types))
        if unknown:
            raise ValueError(f"{self.type}: child_versions names no child type: {unknown}")

    @property
    def first(self) -> str:
        """The first step's name."""
        return self.steps[0].name

    def step(self, name: str) -> StepDef:
        """Return the row named ``name`` (``InvalidArgument`` if there is none)."""
        for row in self.steps:
            if row.name == name:
                return row
        known = ", ".join(row.name for row in self.steps)
        raise InvalidArgument(f"{self.type} has no step {name!r}; its steps are: {known}")

    def has_step(self, name: str) -> bool:
        """Whether ``name`` is one of this workflow's steps."""
        return any(row.name == name for row in self.steps)

    def all_params(self) -> Mapping[str, ParamSpec]:
        """Workflow-specific and common parameters together."""
        return {**COMMON_PARAMS, **self.params}

    def cap(self, row: StepDef, params: Mapping[str, object]) -> int:
        """The loop cap for ERROR transitions from ``row`` in a session with ``params``."""
        if row.max_rounds is not None:
            return row.max_rounds
        return max_rounds_of(params)


class Registry:
    """The workflows one orchestrator serves, by type and version.

    Definitions are versioned so a deploy does not change the rules of
    sessions already running: a session keeps using the version it started
    under for as long as this registry still holds it.
    """

    def __init__(self, workflows: Iterable[Workflow]) -> None:
        self._by_key: dict[tuple[str, int], Workflow] = {}
        self._latest: dict[str, Workflow] = {}
        for workflow in workflows:
            key = (workflow.type, workflow.version)
            if key in self._by_key:
                raise ValueError(f"{workflow.type} v{workflow.version} is registered twice")
            self._by_key[key] = workflow
            current = self._latest.get(workflow.type)
            if current is None or workflow.version > current.version:
                self._latest[workflow.type] = workflow
        for workflow in self._by_key.values():
            for child in workflow.child_types:
                if child not in self._latest:
                    raise ValueError(
                        f"{workflow.type} spawns {child} children, "
                        "which this registry does not serve"
                    )
                pinned = workflow.child_versions.get(child)
                if pinned is not None and (child, pinned) not in self._by_key:
                    raise ValueError(
                        f"{workflow.type} v{workflow.version} spawns {child} v{pinned}, "
                        "which this registry does not serve"
                    )

    def types(self) -> list[str]:
        """Every session type served, sorted."""
        return sorted(self._latest)

    def serves(self, session_type: str) -> bool:
        """Whether ``session_type`` is served."""
        return session_type in self._latest

    def latest(self, session_type: str) -> Workflow:
        """The newest definition of ``session_type`` (``InvalidArgument`` if not served)."""
        workflow = self._latest.get(session_type)
        if workflow is None:
            known = ", ".join(self.types())
            raise InvalidArgument(
                f"unknown session type {session_type!r}; served types are: {known}"
            )
        return workflow

    def child(self, parent: Workflow, session_type: str) -> Workflow:
        """The definition a child of ``parent`` is created at (pinned, else the newest)."""
        pinned = parent.child_versions.get(session_type)
        return self.get(session_type, pinned) if pinned else self.latest(session_type)

    def get(self, session_type: str, version: int) -> Workflow:
        """The definition a session started under (``FailedPrecondition`` if gone)."""
        workflow = self._by_key.get((session_type, version))
        if workflow is None:
            self.latest(session_type)  # unknown type: InvalidArgument
            raise FailedPrecondition(
                f"{session_type} session started under definition v{version}, "
                "which this service no longer serves; run it on a release that does"
            )
        return workflow

    def workflows(self) -> list[Workflow]:
        """Newest definition of every type, sorted by type."""
        return [self._latest[name] for name in self.types()]

    @staticmethod
    def merged(*registries: Registry) -> Registry:
        """One registry serving everything the given ones serve (the all-in-one mode)."""
        return Registry(w for registry in registries for w in registry._by_key.values())
