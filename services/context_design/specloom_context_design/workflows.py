"""The design family, declared as data (DESIGN.md section 4).

- ContextDesign: Initialize → GenerateContextDesign → ValidateDesign ⇄ ReviseDesign
  → Scaffold ⇄ FixScaffold → Finalize
- ComponentDesign: Initialize → GenerateComponentDesign → ValidateDesign ⇄
  ReviseDesign → Finalize
- ContextComponentsDesign: Initialize → SpawnComponentDesignSessions →
  SpawnReviewSession → Finalize (commit, push, pull request if asked)
- ComponentDesignReview: Initialize → ExecuteReview → Finalize
- ContextDesignReview: Initialize → ExecuteReview → Finalize

Definition v2 is built on the kernel's step library: every session works in
its own worktree on its own branch, commits only there, and a step that must
produce a document and finds none is an error. ContextDesignReview gained
an Initialize that reads the context design and its components and loads
the project's rules; its reviewer fixes the designs, as the original's did,
each design is validated again, and Finalize commits them with the review.
A pull request is opened only when ``pull_request`` is true. ContextDesign
scaffolds its components once the design validates (the seed's Component
Creation, :mod:`specloom_context_design.scaffold`) and commits the
scaffolding with the design. The v1
definitions (``specloom_context_design.v1``, frozen) stay registered so
sessions started under them finish under them.

Every ERROR without a named target retries its own step; the kernel caps
every loop (``max_rounds``, default 3) and fails a session whose step fails
the same way twice in a row.
"""

from __future__ import annotations

from collections.abc import Mapping

from specloom.documents import CONTEXT
from specloom.workflow import DONE, ParamSpec, Registry, StepDef, Workflow
from specloom.workflow.steps import STEP_PARAMS, ContextInitialize, Initialize
from specloom_context_design.components import (
    FinalizeComponentsDesign,
    SpawnComponentDesignSessions,
    SpawnReviewSession,
)
from specloom_context_design.design import (
    CommitDesign,
    GenerateDesign,
    ReviseDesign,
    ValidateDesign,
)
from specloom_context_design.initialize import InitializeReview
from specloom_context_design.review import COMPONENT_DESIGNS, CommitReview, ExecuteReview
from specloom_context_design.review import CONTEXT_DESIGN as REVIEW_OF_CONTEXT
from specloom_context_design.scaffold import FixScaffold, Scaffold
from specloom_context_design.state import (
    COMPONENT_DESIGN,
    COMPONENT_DESIGN_REVIEW,
    CONTEXT_COMPONENTS_DESIGN,
    CONTEXT_DESIGN,
    CONTEXT_DESIGN_REVIEW,
    CONTEXT_PARAM,
    SESSION_KIND,
    USER_STORIES,
)
from specloom_context_design.v1 import workflows as v1
from specloom_context_design.v1.workflows import (
    COMPONENT_DESIGN_REVIEW_V1,
    COMPONENT_DESIGN_V1,
    CONTEXT_COMPONENTS_DESIGN_V1,
    CONTEXT_DESIGN_REVIEW_V1,
    CONTEXT_DESIGN_V1,
)


def _component_subject(params: Mapping[str, object]) -> str:
    value = params.get("component")
    if isinstance(value, dict):
        return str(value.get("module_name", "")) or COMPONENT_DESIGN
    return str(value or COMPONENT_DESIGN)


_PARAMS = {"user_stories": USER_STORIES, **STEP_PARAMS}

CONTEXT_DESIGN_V2 = Workflow(
    type=CONTEXT_DESIGN,
    version=2,
    summary=(
        "Design a context: write, validate and revise its design document, scaffold its "
        "components and check they build."
    ),
    steps=(
        StepDef(
            "Initialize",
            Initialize("context-design", session_kind=SESSION_KIND),
            on_ok="GenerateContextDesign",
        ),
        StepDef("GenerateContextDesign", GenerateDesign(CONTEXT), on_ok="ValidateDesign"),
        StepDef(
            "ValidateDesign", ValidateDesign(CONTEXT), on_ok="Scaffold", on_error="ReviseDesign"
        ),
        StepDef("ReviseDesign", ReviseDesign(CONTEXT), on_ok="ValidateDesign"),
        StepDef("Scaffold", Scaffold(), on_ok="Finalize", on_error="FixScaffold"),
        StepDef("FixScaffold", FixScaffold(), on_ok="Scaffold"),
        StepDef("Finalize", CommitDesign(CONTEXT), on_ok=DONE),
    ),
    params={"context": CONTEXT_PARAM, **_PARAMS},
)

COMPONENT_DESIGN_V2 = Workflow(
    type=COMPONENT_DESIGN,
    version=2,
    summary="Design one component: write, validate and revise its design document.",
    steps=(
        StepDef(
            "Initialize",
            Initialize("component-design", session_kind=SESSION_KIND),
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
        **_PARAMS,
    },
    subject=_component_subject,
)

CONTEXT_COMPONENTS_DESIGN_V2 = Workflow(
    type=CONTEXT_COMPONENTS_DESIGN,
    version=2,
    summary=(
        "Design every component of a context in parallel child sessions, review them "
        "together, and deliver them in one commit (a pull request if asked)."
    ),
    steps=(
        StepDef(
            "Initialize",
            ContextInitialize("context-components-design", session_kind=SESSION_KIND),
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
    params={"context": CONTEXT_PARAM, **_PARAMS},
    child_types=(COMPONENT_DESIGN, COMPONENT_DESIGN_REVIEW),
    child_versions={COMPONENT_DESIGN: 2, COMPONENT_DESIGN_REVIEW: 2},
)

COMPONENT_DESIGN_REVIEW_V2 = Workflow(
    type=COMPONENT_DESIGN_REVIEW,
    version=2,
    summary=(
        "Review all component designs of a context for consistency, missing dependencies "
        "and integration issues."
    ),
    steps=(
        StepDef("Initialize", InitializeReview("component-design-review"), on_ok="ExecuteReview"),
        StepDef("ExecuteReview", ExecuteReview(COMPONENT_DESIGNS), on_ok="Finalize"),
        StepDef("Finalize", CommitReview(COMPONENT_DESIGNS), on_ok=DONE),
    ),
    params={"context": CONTEXT_PARAM, **_PARAMS},
)

CONTEXT_DESIGN_REVIEW_V2 = Workflow(
    type=CONTEXT_DESIGN_REVIEW,
    version=2,
    summary=(
        "Review a context's design with its component designs against the user stories; "
        "fix what is wrong in the designs and write a review document."
    ),
    steps=(
        StepDef("Initialize", InitializeReview("context-design-review"), on_ok="ExecuteReview"),
        StepDef("ExecuteReview", ExecuteReview(REVIEW_OF_CONTEXT), on_ok="Finalize"),
        StepDef("Finalize", CommitReview(REVIEW_OF_CONTEXT), on_ok=DONE),
    ),
    params={"context": CONTEXT_PARAM, **_PARAMS},
)

WORKFLOWS = (
    CONTEXT_DESIGN_V2,
    COMPONENT_DESIGN_V2,
    CONTEXT_COMPONENTS_DESIGN_V2,
    COMPONENT_DESIGN_REVIEW_V2,
    CONTEXT_DESIGN_REVIEW_V2,
)
"""The current (v2) definitions."""

REGISTRY = Registry([*v1.WORKFLOWS, *WORKFLOWS])
"""Every design-family workflow this service serves: v2 for new sessions, v1 for running ones."""

__all__ = [
    "COMPONENT_DESIGN_REVIEW_V1",
    "COMPONENT_DESIGN_REVIEW_V2",
    "COMPONENT_DESIGN_V1",
    "COMPONENT_DESIGN_V2",
    "CONTEXT_COMPONENTS_DESIGN_V1",
    "CONTEXT_COMPONENTS_DESIGN_V2",
    "CONTEXT_DESIGN_REVIEW_V1",
    "CONTEXT_DESIGN_REVIEW_V2",
    "CONTEXT_DESIGN_V1",
    "CONTEXT_DESIGN_V2",
    "REGISTRY",
    "WORKFLOWS",
]
