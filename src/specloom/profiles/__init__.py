"""Project profiles: file layout and test runner per kind of project.

Adding one is one small module with a class that satisfies :class:`Profile`,
plus a line in :data:`PROFILES`.
"""

from __future__ import annotations

from collections.abc import Mapping

from specloom.errors import InvalidArgument
from specloom.profiles._base import (
    ComponentFiles,
    Profile,
    ReportFormat,
    TestInvocation,
    module_segments,
    underscore,
)
from specloom.profiles._scaffold import (
    SCAFFOLD_MARKER,
    Failure,
    PlannedCommand,
    PlannedFile,
    ScaffoldComponent,
    ScaffoldPlan,
    ScaffoldReport,
    SchemaField,
)
from specloom.profiles.elixir import ElixirProfile
from specloom.profiles.python import PythonProfile

DEFAULT_PROFILE = "python"

PROFILES: Mapping[str, Profile] = {
    "python": PythonProfile(),
    "elixir": ElixirProfile(),
}


def get_profile(name: str | None) -> Profile:
    """The profile called ``name`` (default ``python``); INVALID_ARGUMENT if unknown."""
    key = name or DEFAULT_PROFILE
    profile = PROFILES.get(key)
    if profile is None:
        raise InvalidArgument(f"unknown profile {key!r}; known profiles: {', '.join(PROFILES)}")
    return profile


__all__ = [
    "DEFAULT_PROFILE",
    "PROFILES",
    "SCAFFOLD_MARKER",
    "ComponentFiles",
    "Failure",
    "PlannedCommand",
    "PlannedFile",
    "Profile",
    "ReportFormat",
    "ScaffoldComponent",
    "ScaffoldPlan",
    "ScaffoldReport",
    "SchemaField",
    "TestInvocation",
    "get_profile",
    "module_segments",
    "underscore",
]
