"""Edition 1 of the document rules, frozen: what definition-v1 sessions were told and checked.

Every non-context type needed the same four sections. Sessions started
under the v1 workflow definitions finish under these rules, word for word
(their prompts quote this text), so nothing here changes; edition 2
(:mod:`._spec`) is where the rules grow.
"""

from __future__ import annotations

from collections.abc import Mapping

from specloom.documents._types import (
    COMPONENT_SECTIONS,
    COMPONENT_TYPES,
    CONTEXT,
    CONTEXT_SECTIONS,
    MAX_DESCRIPTION,
    section_title,
)

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

COMPONENT_EXAMPLE = """\
### Inventory.Stock

| field | value |
|-------|-------|
| type  | schema |
| dependencies | Catalog.Products |

Tracks the quantity of one product in one warehouse and refuses negative stock.
"""


def required_sections_v1(component_type: str) -> tuple[str, ...]:
    """Edition 1's required H2 section keys for ``component_type``."""
    return CONTEXT_SECTIONS if component_type == CONTEXT else COMPONENT_SECTIONS


def document_spec_v1(component_type: str) -> str:
    """What an edition-1 agent was told a design document of ``component_type`` looks like."""
    kind = "context" if component_type == CONTEXT else f"{component_type} component"
    sections = required_sections_v1(component_type)
    lines = [
        f"A {kind} design is a markdown document:",
        "",
        "- It starts with an H1 (`# Name`) naming the module.",
        "- It has these H2 sections (`## Title`), in this order; titles are matched "
        "case-insensitively and every one must have content:",
        "",
    ]
    for key in sections:
        lines.append(f"  - `## {section_title(key)}` — {_GUIDANCE[key]}")
    lines.append("")
    lines.append("- Other sections may follow; use H3 and deeper headings inside sections.")
    if component_type == CONTEXT:
        types = ", ".join(COMPONENT_TYPES)
        lines += [
            "",
            "Components section format (each component exactly like this):",
            "",
            COMPONENT_EXAMPLE,
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
