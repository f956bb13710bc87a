"""The design family at definition v1 (frozen; see ``specloom_context_design.v1``).

- ContextDesign: Initialize → GenerateContextDesign → ValidateDesign ⇄ ReviseDesign
  → Finalize
- ComponentDesign: Initialize → GenerateComponentDesign → ValidateDesign ⇄
  ReviseDesign → Finalize
- ContextComponentsDesign: Initialize → SpawnComponentDesignSessions →
  SpawnReviewSession → Finalize (commit, push, pull request)
- ComponentDesignReview: Initialize → ExecuteReview → Finalize
- ContextDesignReview: ExecuteReview → Finalize

Every ERROR without a named target retries its own step; the kernel caps
every loop (``max_rounds``, default 3) and fails a session whose step fails
the same way twice in a row.
"""

from __future__ import annotations

from collections.abc import Mapping

from specloom.documents import CONTEXT
from specloom.workflow import DONE, ParamSpec, StepContext, StepDef, Workflow
from specloom_context_design.v1._common import (
    COMPONENT_DESIGN,
    COMPONENT_DESIGN_REVIEW,
    CONTEXT_COMPONENTS_DESIGN,
    CONTEXT_DESIGN,
    CONTEXT_DESIGN_REVIEW,
    CONTEXT_PARAM,
    MAX_TURNS,
    RULES,
    USER_STORIES,
    component_of,
)
from specloom_context_design.v1.components import (
    FinalizeComponentsDesign,
    SpawnComponentDesignSessions,
    SpawnReviewSession,
)
from specloom_context_design.v1.design import (
    CommitDesign,
    GenerateDesign,
    ReviseDesign,
    ValidateDesign,
)
from specloom_context_design.v1.initialize import Initialize
from specloom_context_design.v1.review import COMPONENT_DESIGNS, CommitReview, ExecuteReview
from specloom_context_design.v1.review import CONTEXT_DESIGN as REVIEW_OF_CONTEXT


def _context_type(ctx: StepContext) -> str:
    return CONTEXT


def _component_type(ctx: StepContext) -> str:
    return component_of(ctx).type or "other"


def _component_subject(params: Mapping[str, object]) -> str:
    value = params.get("component")
    if isinstance(value, dict):
        return str(value.get("module_name", "")) or COMPONENT_DESIGN
    return str(value or COMPONENT_DESIGN)


_COMMON = {"user_stories": USER_STORIES, "rules": RULES, "max_turns": MAX_TURNS}

CONTEXT_DESIGN_V1 = Workflow(
    type=CONTEXT_DESIGN,
    version=1,
    summary="Design a context: write, validate and revise its design document.",
    steps=(
        StepDef(
            "Initialize", Initialize("context-design", _context_type), on_ok="GenerateContextDesign"
        ),
        StepDef("GenerateContextDesign", GenerateDesign(CONTEXT), on_ok="ValidateDesign"),
        StepDef(
            "ValidateDesign", ValidateDesign(CONTEXT), on_ok="Finalize", on_error="ReviseDesign"
        ),
        StepDef("ReviseDesign", ReviseDesign(CONTEXT), on_ok="ValidateDesign"),
        StepDef("Finalize", CommitDesign(CONTEXT), on_ok=DONE),
    ),
    params={"context": CONTEXT_PARAM, **_COMMON},
)

COMPONENT_DESIGN_V1 = Workflow(
    type=COMPONENT_DESIGN,
    version=1,
    summary="Design one component: write, validate and revise its design document.",
    steps=(
        StepDef(
            "Initialize",
            Initialize("component-design", _component_type),
            on_ok="GenerateComponentDesign",
        ),
        StepDef("GenerateComponentDesign", GenerateDesign("component"), on_ok="ValidateDesign"),
        StepDef(
            "ValidateDesign", ValidateDesign("component"), on_ok="Finalize", on_error="ReviseDesign"
        ),
        StepDef("ReviseDesign", ReviseDesign("component"), on_ok="ValidateDesign"),
        StepDef("Finalize", CommitDesign("component"), on_ok=DONE),
    ),
    params={
        "component": ParamSpec(
            "The component: a fully qualified module name, or "
            "{module_name, type, description, dependencies}.",
            required=True,
        ),
        "context": ParamSpec("The context it belongs to (default: the module's parent)."),
        **_COMMON,
    },
    subject=_component_subject,
)

CONTEXT_COMPONENTS_DESIGN_V1 = Workflow(
    type=CONTEXT_COMPONENTS_DESIGN,
    version=1,
    summary=(
        "Design every component of a context in parallel child sessions, review them "
        "together, and open a pull request."
    ),
    steps=(
        StepDef(
            "Initialize",
            Initialize("context-components-design", _context_type, read_context_design=True),
            on_ok="SpawnComponentDesignSessions",
        ),
        StepDef(
            "SpawnComponentDesignSessions",
            SpawnComponentDesignSessions(),
            on_ok="SpawnReviewSession",
        ),
        StepDef("SpawnReviewSession", SpawnReviewSession(), on_ok="Finalize"),
        StepDef("Finalize", FinalizeComponentsDesign(), on_ok=DONE),
    ),
    params={"context": CONTEXT_PARAM, **_COMMON},
    child_types=(COMPONENT_DESIGN, COMPONENT_DESIGN_REVIEW),
    child_versions={COMPONENT_DESIGN: 1, COMPONENT_DESIGN_REVIEW: 1},
)

COMPONENT_DESIGN_REVIEW_V1 = Workflow(
    type=COMPONENT_DESIGN_REVIEW,
    version=1,
    summary=(
        "Review all component designs of a context for consistency, missing dependencies "
        "and integration issues."
    ),
    steps=(
        StepDef(
            "Initialize",
            Initialize("component-design-review", _context_type, designs_from_context=True),
            on_ok="ExecuteReview",
        ),
        StepDef("ExecuteReview", ExecuteReview(COMPONENT_DESIGNS), on_ok="Finalize"),
        StepDef("Finalize", CommitReview(COMPONENT_DESIGNS), on_ok=DONE),
    ),
    params={"context": CONTEXT_PARAM, **_COMMON},
)

CONTEXT_DESIGN_REVIEW_V1 = Workflow(
    type=CONTEXT_DESIGN_REVIEW,
    version=1,
    summary="Review a context's design and its component designs; write a review document.",
    steps=(
        StepDef("ExecuteReview", ExecuteReview(REVIEW_OF_CONTEXT), on_ok="Finalize"),
        StepDef("Finalize", CommitReview(REVIEW_OF_CONTEXT), on_ok=DONE),
    ),
    params={"context": CONTEXT_PARAM, **_COMMON},
)

WORKFLOWS = (
    CONTEXT_DESIGN_V1,
    COMPONENT_DESIGN_V1,
    CONTEXT_COMPONENTS_DESIGN_V1,
    COMPONENT_DESIGN_REVIEW_V1,
    CONTEXT_DESIGN_REVIEW_V1,
)
