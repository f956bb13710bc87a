"""The component types and the section sets every edition of the document rules shares."""

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
"""Required H2 sections of a component design whose type has no sections of its own."""


def section_title(key: str) -> str:
    """``public api`` -> ``Public API``: a section key as a heading shows it."""
    return " ".join("API" if word == "api" else word.capitalize() for word in key.split())
