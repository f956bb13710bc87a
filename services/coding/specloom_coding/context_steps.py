"""Steps of the context workflows (ContextTesting, ContextCoding), definition v2.

A context session reads its components from the context design document
(the library's :class:`ContextInitialize`, which refuses a dependency cycle
or a dependency on no component of the context), spawns one component
child per component — each waiting for the children of the components it
depends on, and starting from their work (``depends_on``, from the design's
dependency graph) — and checks the children itself (complete, files
recorded, tests in the expected state). The integration phase
(:mod:`specloom_coding.integration_steps`) then brings their branches
together on the session's branch, and :class:`FinalizeContext` commits the
integrated result as one commit and pushes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from specloom.documents import DependencyError, dependency_graph
from specloom.errors import InvalidArgument
from specloom.workflow import ChildSpec, ChildView, ComponentView, StepContext
from specloom.workflow.steps import (
    ContextInitialize,
    SessionState,
    Spawn,
    SquashIntegrated,
    child_spec,
    context_of,
    profile_of,
)
from specloom_coding.state import CodingState


class InitializeContext(ContextInitialize):
    """The session's own worktree; the components from the context design."""

    def usable(self, ctx: StepContext, components: Sequence[ComponentView]) -> list[str]:
        profile = profile_of(ctx)
        problems = []
        for component in components:
            try:
                profile.files(component.module_name)
            except InvalidArgument as exc:
                problems.append(f"component {component.module_name!r}: {exc.message}")
        return problems


@dataclass(frozen=True)
class ChildCheck:
    """What a context requires of each finished child."""

    verdict: Callable[[CodingState], bool | None]
    """The child's verdict flag its RunTests judge sets (must be True)."""
    verdict_text: str
    """What a missing verdict means, for error messages."""
    file_kinds: tuple[str, ...]
    """Which of the component's files must be recorded (``code``, ``test``)."""


class SpawnComponents(Spawn):
    """One child per component; OK when the children prove they are done."""

    summary: ClassVar[str] = "one child session per component; check every child"

    def __init__(self, child_type: str, check: ChildCheck) -> None:
        super().__init__(child_type)
        self.check = check

    def specs(self, ctx: StepContext, state: SessionState) -> list[ChildSpec]:
        context = context_of(ctx)
        try:
            graph = dependency_graph(state.components)
        except DependencyError as exc:
            # Initialize validated the design; only state written by hand gets here.
            raise InvalidArgument(f"the components' dependencies: {exc}") from None
        return [
            child_spec(
                ctx,
                state,
                child_type=self.child_type,
                key=component.module_name,
                name=component.name,
                component=component,
                params={"component": component.to_dict(), "context": context},
                depends_on=graph.direct[component.module_name],
            )
            for component in state.components
        ]

    def expected_files(self, ctx: StepContext, spec: ChildSpec) -> list[str]:
        files = profile_of(ctx).files(spec.key)
        return [getattr(files, kind) for kind in self.check.file_kinds]

    def problem(self, ctx: StepContext, spec: ChildSpec, child: ChildView) -> str:
        recorded = CodingState.read(child.state, where=f"{spec.key}.state")
        if self.check.verdict(recorded) is not True:
            return f"{spec.key}: {self.check.verdict_text}"
        return ""


class FinalizeContext(SquashIntegrated):
    """One commit of the integrated components on the session's branch; push; pull request."""

    def __init__(self, verb: str) -> None:
        super().__init__()
        self.verb = verb

    def headline(self, ctx: StepContext, state: SessionState) -> str:
        return f"{self.verb} for {context_of(ctx)}"

    def body(self, ctx: StepContext, state: SessionState) -> str:
        listing = "\n".join(f"- {c.module_name}" for c in state.components)
        return f"Components:\n{listing}"
