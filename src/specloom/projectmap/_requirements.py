"""What each component type must have before it is done, as declared data.

Read like the workflow tables: one row per requirement, in the order a
project meets them, each naming the session type that satisfies it (or
none) and the requirements that must be met before it can be worked on.
The judge (:mod:`._evaluate`) reads the facts against these rows; the
planner (:mod:`._next`) turns unmet rows into sessions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from specloom.documents import CONTEXT

Scope = Literal["context", "component"]
"""Whether the satisfying session works on the whole context or on one component."""

CONTEXT_DESIGN = "ContextDesign"
CONTEXT_COMPONENTS_DESIGN = "ContextComponentsDesign"
CONTEXT_DESIGN_REVIEW = "ContextDesignReview"
COMPONENT_DESIGN = "ComponentDesign"
CONTEXT_TESTING = "ContextTesting"
COMPONENT_TEST = "ComponentTest"
CONTEXT_CODING = "ContextCoding"
COMPONENT_CODING = "ComponentCoding"

SCHEMA = "schema"
"""The component type whose tests are its context's: it needs no test file of its own."""


@dataclass(frozen=True)
class Requirement:
    """One thing a component must have."""

    key: str
    """Stable key, e.g. ``design``, ``tests_pass``."""
    title: str
    """For people, e.g. ``design document``."""
    satisfied_by: str | None
    """The session type that gives it; ``None`` when no session does (it follows from others)."""
    scope: Scope
    """The satisfying session's subject: the context, or the component itself."""
    needs: tuple[str, ...] = ()
    """Keys of this component's requirements that must be met first."""


CONTEXT_REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement("design", "context design", CONTEXT_DESIGN, "context"),
    Requirement(
        "components_designed",
        "every component designed",
        CONTEXT_COMPONENTS_DESIGN,
        "context",
        needs=("design",),
    ),
    Requirement(
        "reviewed",
        "design review",
        CONTEXT_DESIGN_REVIEW,
        "context",
        needs=("components_designed",),
    ),
    Requirement(
        "tests",
        "every component's tests written",
        CONTEXT_TESTING,
        "context",
        needs=("reviewed",),
    ),
    Requirement(
        "implemented",
        "every component implemented, tests passing",
        CONTEXT_CODING,
        "context",
        needs=("tests", "dependencies"),
    ),
    Requirement("dependencies", "contexts it depends on done", None, "context"),
)
"""A context's requirements, in the order they are met."""

COMPONENT_REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement("design", "design document", COMPONENT_DESIGN, "component"),
    Requirement("tests", "test file", COMPONENT_TEST, "component", needs=("design",)),
    Requirement(
        "implementation", "implementation", COMPONENT_CODING, "component", needs=("tests",)
    ),
    Requirement(
        "tests_pass", "tests passing", COMPONENT_CODING, "component", needs=("implementation",)
    ),
)
"""Every other type's requirements (a schema needs neither ``tests`` nor ``tests_pass``)."""

REQUIREMENTS: Mapping[str, tuple[Requirement, ...]] = {CONTEXT: CONTEXT_REQUIREMENTS}
"""Requirements by component type; a type not listed has :data:`COMPONENT_REQUIREMENTS`."""

NOT_NEEDED: Mapping[str, frozenset[str]] = {SCHEMA: frozenset({"tests", "tests_pass"})}
"""Requirements a type does without: a schema has no test file of its own; its
context's tests that use it are what test it."""

CONTEXT_SESSION_OF: Mapping[str, str] = {
    COMPONENT_DESIGN: CONTEXT_COMPONENTS_DESIGN,
    COMPONENT_TEST: CONTEXT_TESTING,
    COMPONENT_CODING: CONTEXT_CODING,
}
"""The context-scope session that does a component-scope session's work for all at once."""


def requirements_of(component_type: str) -> tuple[Requirement, ...]:
    """The declared requirements of ``component_type`` ("" or unknown: a component's)."""
    return REQUIREMENTS.get(component_type, COMPONENT_REQUIREMENTS)


def not_needed(component_type: str, key: str) -> bool:
    """Whether ``component_type`` does without requirement ``key``."""
    return key in NOT_NEEDED.get(component_type, frozenset())
