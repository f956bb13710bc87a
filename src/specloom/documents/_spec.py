"""What a design document must contain, per component type (edition 2 of the rules).

This is the single source for both sides of the loop: the document spec an
agent is told to follow (:func:`document_spec`) and the rules the validator
enforces (:func:`required_sections`, :func:`optional_sections`) are read
from the same table, :data:`DESIGN_SPECS`, so they cannot drift apart.

As in the original system, a design's required sections depend on its
type: a context has ten, a schema has Purpose, Fields (a table, one row per
field) and Test Assertions, with Associations, Validation Rules and
Database Constraints when they apply; every other type has Purpose, Public
API, Execution Flow and Test Assertions. Edition 1 (:mod:`._spec_v1`, every
non-context type the same four sections) stays frozen for the sessions of
the v1 workflow definitions, which pass ``edition=1``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from specloom.documents._spec_v1 import (
    COMPONENT_EXAMPLE,
    document_spec_v1,
    required_sections_v1,
)
from specloom.documents._types import (
    COMPONENT_SECTIONS,
    COMPONENT_TYPES,
    CONTEXT,
    CONTEXT_SECTIONS,
    MAX_DESCRIPTION,
    section_title,
)

EDITION = 2
"""The current edition of the document rules (definition v2 onwards)."""

EDITIONS: tuple[int, ...] = (1, 2)
"""Every edition still in force: 1 for v1 sessions, 2 for the rest."""

SCHEMA_SECTIONS: tuple[str, ...] = ("purpose", "fields", "test assertions")
"""Required H2 sections of a schema's design."""

FIELD_COLUMNS: tuple[str, ...] = ("field", "type", "required")
"""Columns a schema's Fields table must have (Description and Constraints may follow)."""


@dataclass(frozen=True)
class DesignSpec:
    """The document rules of one component type."""

    component_type: str
    overview: str
    """What a component of this type is, as the agent is told."""
    required: tuple[str, ...]
    """Required H2 sections, in the order the spec lists them."""
    optional: tuple[str, ...] = ()
    """Sections to write when they apply; present, they must have content."""
    note: str = ""
    """A type-specific instruction on what the sections must cover."""
    guidance: Mapping[str, str] = field(default_factory=dict)
    """What this type's sections hold, where it differs from the common guidance."""

    def says(self, key: str) -> str:
        """What section ``key`` of this type holds, as the agent is told."""
        return self.guidance.get(key) or _GUIDANCE[key]


_GUIDANCE: Mapping[str, str] = {
    "purpose": (
        "One to four sentences: what this is responsible for, and what it is not. One "
        "distinct responsibility, small enough to test with unit tests."
    ),
    "entity ownership": (
        "Bullets: the entities and data this context owns (and so is the only one to write)."
    ),
    "access patterns": (
        "How callers reach the data: scoping (account, project, user), who may read and "
        "write what, and the queries that must be fast."
    ),
    "public api": (
        "Every function or endpoint other code calls, with its signature and a line on "
        "what it returns and how it fails."
    ),
    "state management strategy": (
        "Where state lives (database, process, cache), how it is kept consistent, and "
        "what survives a restart."
    ),
    "execution flow": "Numbered steps of the main operations, including the failure paths.",
    "dependencies": (
        "A bullet list of the modules this depends on, one fully qualified module name "
        "per bullet (`- Accounts.Users`), optionally followed by ': why'. "
        "Write `None` if there are none."
    ),
    "components": (
        "One H3 per component: the fully qualified module name as the heading, then a "
        "`| field | value |` table with a `type` row (and optionally a `dependencies` row "
        "listing module names separated by commas), then a description of 1 to "
        f"{MAX_DESCRIPTION} characters. A dependency on another component of this "
        "context is written exactly as that component's heading; the components' "
        "dependencies must not form a cycle. Modules outside the context's namespace "
        "(another context's) may be named too."
    ),
    "test strategies": (
        "How this is tested: unit versus integration, fixtures, what is faked and why."
    ),
    "test assertions": (
        "A bullet list of concrete test cases, ordered from the normal case to the "
        "failures and edge cases, each one behaviour that must hold "
        "(`- returns an error when the stock is negative`). The tests are written from "
        "this list, one test per bullet and no others, so list every case worth a test; "
        "H3 headings may group the bullets (per function, for example)."
    ),
    "fields": (
        "A table with the columns `Field`, `Type`, `Required`, `Description` and "
        "`Constraints`, one row per field: its name, its type, whether it is required "
        "(yes or no), what it holds, and its constraints (length, format, allowed values, "
        "default, uniqueness)."
    ),
    "associations": (
        "Bullets, one per association (belongs to, has many, has one, many to many): the "
        "other entity, the key that links them, and what happens on delete."
    ),
    "validation rules": (
        "What makes a value valid, per field or group of fields: required fields, lengths, "
        "formats, custom checks, and the error each failure gives."
    ),
    "database constraints": (
        "Indexes, unique constraints (single and composite) and foreign keys, each with "
        "the query or rule it serves."
    ),
}

FIELDS_EXAMPLE = """\
| Field    | Type    | Required | Description                | Constraints                      |
|----------|---------|----------|----------------------------|----------------------------------|
| sku      | string  | yes      | The stock-keeping unit     | 1–64 characters, unique          |
| quantity | integer | yes      | Units on hand              | never negative, default 0        |
| note     | string  | no       | Why the level last changed | at most 500 characters           |
"""


def _component(component_type: str, overview: str, note: str = "") -> DesignSpec:
    return DesignSpec(component_type, overview, COMPONENT_SECTIONS, note=note)


DESIGN_SPECS: Mapping[str, DesignSpec] = {
    CONTEXT: DesignSpec(
        CONTEXT,
        "A context is a bounded area of the application: it owns its entities, offers "
        "one public API to the rest of the application, and is made of components that "
        "each hold one responsibility.",
        CONTEXT_SECTIONS,
        guidance={
            "purpose": (
                "One to four sentences on the business area this context covers and where "
                "its boundary lies; the domain, not how it is built."
            )
        },
    ),
    "schema": DesignSpec(
        "schema",
        "A schema defines one entity: its fields, its associations with other entities, "
        "the rules a valid value follows, and the database constraints behind them.",
        SCHEMA_SECTIONS,
        optional=("associations", "validation rules", "database constraints"),
        guidance={
            "purpose": (
                "One to three sentences: the entity this represents and its role in the "
                "domain, not only its structure."
            )
        },
    ),
    "repository": _component(
        "repository",
        "A repository is the data access of one aggregate: its queries and writes.",
        "In Public API, list each query and write, and the scope it filters by.",
    ),
    "genserver": _component(
        "genserver",
        "A genserver is a long-lived process that holds state and handles messages.",
        "In Execution Flow, cover start-up, each message handled, and crash recovery.",
    ),
    "controller": _component(
        "controller",
        "A controller is an entry point (HTTP or RPC) that turns requests into calls of "
        "the context's public API and the results into responses.",
        "In Public API, list each route or RPC with its request and response.",
    ),
    "liveview": _component(
        "liveview",
        "A liveview is an interactive server-rendered view.",
        "In Execution Flow, cover mount, each event handled, and what is rendered.",
    ),
    "task": _component(
        "task",
        "A task is a job run once or on a schedule (a background job, a CLI command, a migration).",
        "In Execution Flow, say what triggers the task and how a failed run is retried.",
    ),
    "module": _component(
        "module",
        "A module is a plain set of functions with no process or storage of its own.",
    ),
    "other": _component(
        "other",
        "A component of a type the others do not cover; its purpose says what it is.",
    ),
}
"""Edition 2's rules for every component type in :data:`COMPONENT_TYPES`."""

if set(DESIGN_SPECS) != set(COMPONENT_TYPES):
    raise RuntimeError("every component type needs its document rules in DESIGN_SPECS")


def design_spec(component_type: str) -> DesignSpec:
    """The rules of ``component_type`` (an unknown type gets those of ``other``)."""
    return DESIGN_SPECS.get(component_type) or DESIGN_SPECS["other"]


def _edition(edition: int) -> int:
    if edition not in EDITIONS:
        raise ValueError(f"edition {edition} of the document rules does not exist ({EDITIONS})")
    return edition


def required_sections(component_type: str, *, edition: int = EDITION) -> tuple[str, ...]:
    """Required H2 section keys for ``component_type``."""
    if _edition(edition) == 1:
        return required_sections_v1(component_type)
    return design_spec(component_type).required


def optional_sections(component_type: str, *, edition: int = EDITION) -> tuple[str, ...]:
    """Sections written when they apply (edition 1 had none)."""
    if _edition(edition) == 1:
        return ()
    return design_spec(component_type).optional


def document_spec(component_type: str, *, edition: int = EDITION) -> str:
    """What an agent is told a design document of ``component_type`` must look like."""
    if _edition(edition) == 1:
        return document_spec_v1(component_type)
    spec = design_spec(component_type)
    kind = "context" if component_type == CONTEXT else f"{component_type} component"
    lines = [
        f"A {kind} design is a markdown document. {spec.overview}",
        "",
        "- It starts with an H1 (`# Name`) naming the module.",
        "- It has these H2 sections (`## Title`), in this order; titles are matched "
        "case-insensitively and every one must have content:",
        "",
    ]
    lines += [f"  - `## {section_title(key)}` — {spec.says(key)}" for key in spec.required]
    if spec.optional:
        lines += [
            "",
            "- Add each of these H2 sections that applies (leave out the others; one that "
            "is there must have content):",
            "",
        ]
        lines += [f"  - `## {section_title(key)}` — {spec.says(key)}" for key in spec.optional]
    lines += ["", "- Other sections may follow; use H3 and deeper headings inside sections."]
    if component_type == CONTEXT:
        lines += [
            "",
            "Components section format (each component exactly like this):",
            "",
            COMPONENT_EXAMPLE,
            f"The `type` must be one of: {', '.join(COMPONENT_TYPES)}. What each means:",
            "",
        ]
        lines += [f"- `{name}`: {meaning}" for name, meaning in COMPONENT_TYPES.items()]
        lines += [
            "",
            "Module names are fully qualified (they contain a '.'), e.g. `Inventory.Stock`.",
        ]
    elif "fields" in spec.required:
        lines += ["", "Fields section format (one row per field, like this):", "", FIELDS_EXAMPLE]
    if spec.note:
        lines += ["", spec.note]
    return "\n".join(lines).rstrip("\n")


REVIEW_SECTIONS: tuple[str, ...] = ("summary", "findings", "recommendations")
"""Sections a review document is asked for (only non-triviality is enforced)."""

MIN_REVIEW_CHARS = 200
"""A review document with less prose than this is not a review."""


def review_spec(subject: str, *, fixes: bool = False) -> str:
    """What a review document of ``subject`` must look like.

    ``fixes``: the reviewer also fixes the designs, so each finding says
    whether (and where) it was fixed, and Recommendations hold what is left.
    """
    if fixes:
        findings = (
            "- `## Findings` — one bullet per problem found, naming the documents and modules "
            "involved (inconsistencies between designs, dependencies used but not declared "
            "or declared but not designed, integration gaps, user stories the design does "
            "not serve, missing test assertions) and how it was fixed, in which file."
        )
        recommendations = (
            "- `## Recommendations` — what is left for a person to decide, each naming the "
            "file to change; `None.` when everything found was fixed."
        )
    else:
        findings = (
            "- `## Findings` — one bullet per problem, naming the documents and modules "
            "involved: inconsistencies between designs, dependencies used but not declared "
            "(or declared but not designed), integration gaps (an API one side calls that "
            "the other does not offer), and missing test assertions."
        )
        recommendations = (
            "- `## Recommendations` — concrete changes, each naming the file to change."
        )
    return "\n".join(
        [
            f"The review of {subject} is a markdown document:",
            "",
            "- It starts with an H1 (`# Review: <name>`).",
            "- `## Summary` — overall verdict in a few sentences.",
            findings,
            recommendations,
            "",
            "Write `None found.` under Findings when there are no problems; the review "
            f"must still have at least {MIN_REVIEW_CHARS} characters of text.",
        ]
    )
