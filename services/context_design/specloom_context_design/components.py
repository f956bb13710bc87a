"""ContextComponentsDesign's fan-out: one ComponentDesign child per component, then a review.

Built on the library's spawn-and-join: the children start from this
session's branch, the judge checks each itself (complete, its design
recorded) and records every child in the one list ``state.children``; a
retried spawn reuses them and revives the failed ones. Finalize commits
every child's document, taken from its branch, pushes, and opens a pull
request when ``pull_request`` is true.
"""

from __future__ import annotations

from typing import ClassVar

from specloom.workflow import ChildSpec, StepContext
from specloom.workflow.steps import (
    CommitChildren,
    SessionState,
    Spawn,
    child_spec,
    context_of,
    profile_of,
)
from specloom_context_design.review import COMPONENT_DESIGNS, review_path
from specloom_context_design.state import (
    COMPONENT_DESIGN,
    COMPONENT_DESIGN_REVIEW,
    REVIEW_KEY,
    DesignRef,
    DesignState,
)


class SpawnComponentDesignSessions(Spawn):
    """One agentic ComponentDesign child per component of the context."""

    summary: ClassVar[str] = "Design every component in its own child session"

    def __init__(self) -> None:
        super().__init__(COMPONENT_DESIGN)

    def specs(self, ctx: StepContext, state: SessionState) -> list[ChildSpec]:
        context = context_of(ctx)
        return [
            child_spec(
                ctx,
                state,
                child_type=COMPONENT_DESIGN,
                key=component.module_name,
                name=component.module_name,
                component=component,
                params={"component": component.module_name, "context": context},
            )
            for component in state.components
        ]

    def expected_files(self, ctx: StepContext, spec: ChildSpec) -> list[str]:
        return [profile_of(ctx).design_path(spec.key)]


class SpawnReviewSession(Spawn):
    """An agentic ComponentDesignReview child over every component design."""

    summary: ClassVar[str] = "Review all component designs together in a child session"

    def __init__(self) -> None:
        super().__init__(COMPONENT_DESIGN_REVIEW)

    def specs(self, ctx: StepContext, state: SessionState) -> list[ChildSpec]:
        context = context_of(ctx)
        designs = tuple(
            DesignRef(child.key, path, child.branch)
            for child in state.children
            if child.type == COMPONENT_DESIGN
            for path in child.files
        )
        return [
            child_spec(
                ctx,
                state,
                child_type=COMPONENT_DESIGN_REVIEW,
                key=REVIEW_KEY,
                name=f"{context} review",
                params={"context": context},
                given=DesignState(designs=designs),
            )
        ]

    def expected_files(self, ctx: StepContext, spec: ChildSpec) -> list[str]:
        return [review_path(ctx, COMPONENT_DESIGNS)]


class FinalizeComponentsDesign(CommitChildren):
    """Every child's document in one commit on the session's branch; push; pull request."""

    summary: ClassVar[str] = "Commit all design documents, push, open a pull request if asked"

    def __init__(self) -> None:
        super().__init__(push=True)

    def headline(self, ctx: StepContext, state: SessionState) -> str:
        return f"Design the components of {context_of(ctx)}"

    def body(self, ctx: StepContext, state: SessionState) -> str:
        listed = [f"- `{path}`" for path in self.paths(ctx, state)]
        return "\n".join(
            [
                f"Component designs of `{context_of(ctx)}`, written and validated by specloom:",
                "",
                *listed,
            ]
        )
