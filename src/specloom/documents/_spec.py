"""What a design document must contain, per component type.

This is the single source for both sides of the loop: the document spec an
agent is told to follow (:func:`document_spec`) and the rules the validator
enforces are built from the same tables, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping

CONTEXT = "context"
"""The component type of a context (a bounded area of the application)."""

COMPONENT_TYPES: Mapping[str, str] = {
    "context": "a nested context: a boundary with its own public API and components",
    "schema": "a data structure / entity definition with its fields and validation",
    "repository": "data access for one aggregate: queries and persistence",
    "genserver": "a long-lived stateful process (a GenServer, an actor, a worker loop)",
    "controller": "an HTTP or RPC entry point that translates requests into calls",
    "liveview": "an interactive server-rendered UI view",
    "task": "a one-off or scheduled job (background task, CLI command, migration)",
    "module": "a plain module of functions with no process or storage of its own",
    "other": "anything that fits none of the above (say what it is in the description)",
}
"""The known component types and what each is for."""

MAX_DESCRIPTION = 1500
"""Longest component description in a context's Components section."""

CONTEXT_SECTIONS: tuple[str, ...] = (
    "purpose",
    "entity ownership",
    "access patterns",
    "public api",
    "state management strategy",
    "execution flow",
    "dependencies",
    "components",
    "test strategies",
    "test assertions",
)
"""Required H2 sections of a context design, in the order the spec asks for them."""

COMPONENT_SECTIONS: tuple[str, ...] = (
    "purpose",
    "public api",
    "execution flow",
    "test assertions",
)
"""Required H2 sections of any other component's design."""

_GUIDANCE: Mapping[str, str] = {
    "purpose": "One or two paragraphs: what this is responsible for, and what it is not.",
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
        "A bullet list of concrete test cases, each a behaviour that must hold "
        "(`- returns an error when the stock is negative`)."
    ),
}

_TYPE_NOTES: Mapping[str, str] = {
    "schema": "In Public API, list the fields with their types and validation rules.",
    "repository": "In Public API, list each query and write, and the scope it filters by.",
    "genserver": "In Execution Flow, cover start-up, each message handled, and crash recovery.",
    "controller": "In Public API, list each route or RPC with its request and response.",
    "liveview": "In Execution Flow, cover mount, each event handled, and what is rendered.",
    "task": "In Execution Flow, say what triggers the task and how a failed run is retried.",
}

_COMPONENT_EXAMPLE = """\
### Inventory.Stock

| field | value |
|-------|-------|
| type  | schema |
| dependencies | Catalog.Products |

Tracks the quantity of one product in one warehouse and refuses negative stock.
"""


def required_sections(component_type: str) -> tuple[str, ...]:
    """Required H2 section keys for ``component_type`` (unknown types: the component set)."""
    return CONTEXT_SECTIONS if component_type == CONTEXT else COMPONENT_SECTIONS


def _title(key: str) -> str:
    return " ".join("API" if word == "api" else word.capitalize() for word in key.split())


def document_spec(component_type: str) -> str:
    """What an agent is told a design document of ``component_type`` must look like."""
    kind = "context" if component_type == CONTEXT else f"{component_type} component"
    sections = required_sections(component_type)
    lines = [
        f"A {kind} design is a markdown document:",
        "",
        "- It starts with an H1 (`# Name`) naming the module.",
        "- It has these H2 sections (`## Title`), in this order; titles are matched "
        "case-insensitively and every one must have content:",
        "",
    ]
    for key in sections:
        lines.append(f"  - `## {_title(key)}` — {_GUIDANCE[key]}")
    lines.append("")
    lines.append("- Other sections may follow; use H3 and deeper headings inside sections.")
    if component_type == CONTEXT:
        types = ", ".join(COMPONENT_TYPES)
        lines += [
            "",
            "Components section format (each component exactly like this):",
            "",
            _COMPONENT_EXAMPLE,
            f"The `type` must be one of: {types}. What each means:",
            "",
        ]
        lines += [f"- `{name}`: {meaning}" for name, meaning in COMPONENT_TYPES.items()]
        lines += [
            "",
            "Module names are fully qualified (they contain a '.'), e.g. `Inventory.Stock`.",
        ]
    elif component_type in _TYPE_NOTES:
        lines += ["", _TYPE_NOTES[component_type]]
    return "\n".join(lines)


REVIEW_SECTIONS: tuple[str, ...] = ("summary", "findings", "recommendations")
"""Sections a review document is asked for (only non-triviality is enforced)."""

MIN_REVIEW_CHARS = 200
"""A review document with less prose than this is not a review."""


def review_spec(subject: str) -> str:
    """What a review document of ``subject`` must look like."""
    return "\n".join(
        [
            f"The review of {subject} is a markdown document:",
            "",
            "- It starts with an H1 (`# Review: <name>`).",
            "- `## Summary` — overall verdict in a few sentences.",
            "- `## Findings` — one bullet per problem, naming the documents and modules "
            "involved: inconsistencies between designs, dependencies used but not declared "
            "(or declared but not designed), integration gaps (an API one side calls that "
            "the other does not offer), and missing test assertions.",
            "- `## Recommendations` — concrete changes, each naming the file to change.",
            "",
            "Write `None found.` under Findings when there are no problems; the review "
            f"must still have at least {MIN_REVIEW_CHARS} characters of text.",
        ]
    )
