"""The design family's names and session state, as one typed, frozen record.

:class:`DesignState` is the step library's :class:`SessionState` (branch,
worktree, rules, components, files, children, commit, ...) plus what the
design steps keep: the validation errors a revise works from, the validated
document, the designs a review reads, the review's problems, and the
scaffolding's errors and files.
"""

from __future__ import annotations

from dataclasses import dataclass

from specloom.profiles import SchemaField
from specloom.workflow import ParamSpec
from specloom.workflow.steps import SessionState

CONTEXT_DESIGN = "ContextDesign"
COMPONENT_DESIGN = "ComponentDesign"
CONTEXT_COMPONENTS_DESIGN = "ContextComponentsDesign"
COMPONENT_DESIGN_REVIEW = "ComponentDesignReview"
CONTEXT_DESIGN_REVIEW = "ContextDesignReview"

SESSION_KIND = "design"
"""How rules name this family's sessions (their ``session_type``)."""

REVIEW_KEY = "review"
"""Child key of the review session (module names always contain a '.', so no clash)."""

VALIDATE = "ValidateDesign"
"""The step whose ERROR rounds a revise belongs to."""

SCAFFOLD = "Scaffold"
"""The step whose ERROR rounds FixScaffold belongs to."""

USER_STORIES = ParamSpec(
    "User stories the design must serve: strings or {title, description}.", kind=list
)
CONTEXT_PARAM = ParamSpec("The context's module name, e.g. 'Inventory'.", required=True)


@dataclass(frozen=True)
class DesignRef:
    """A component design a review reads: where it is, and on which branch."""

    module: str
    path: str = ""
    branch: str = ""
    """"" when it is already on the session's base."""


@dataclass(frozen=True)
class SchemaDesign:
    """A schema component's fields, as its design (already in the worktree) lists them."""

    module: str
    fields: tuple[SchemaField, ...] = ()


@dataclass(frozen=True)
class DesignState(SessionState):
    """A design-family session's state."""

    validation_errors: tuple[str, ...] = ()
    """The last validation's errors: the revise prompt's input."""
    design_path: str = ""
    """The validated design document."""
    designs: tuple[DesignRef, ...] = ()
    """The designs a review reads (given by its parent, or read from the context design)."""
    review_problems: tuple[str, ...] = ()
    """Why the last review document was not accepted."""
    review_path: str = ""
    """The accepted review document."""
    scaffold_errors: tuple[str, ...] = ()
    """The last Scaffold's conflicts and failures, in the tools' words: FixScaffold's input."""
    schemas: tuple[SchemaDesign, ...] = ()
    """Fields of the context's schemas whose designs exist: the generators' attributes."""
    scaffolded: tuple[str, ...] = ()
    """The files the scaffolding created or found already scaffolded (Finalize commits them)."""
