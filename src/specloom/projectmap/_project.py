"""The project file, ``specloom.toml`` at the repository root (optional).

It says what no design says yet: the profile, the line branch, and the
contexts the project is to have, each with its user stories and the
contexts it depends on::

    profile = "python"
    line = "specloom/main"

    [[contexts]]
    module = "ledger"
    stories = "docs/stories/ledger.md"
    depends_on = ["accounts"]

A stories file is markdown: each top-level bullet is one story; a file with
no bullets gives one story per H2/H3 heading (its text the description).
Every error names the file, the key and the problem.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from specloom.documents import DocumentRejected, parse
from specloom.errors import InvalidArgument
from specloom.profiles import PROFILES, module_segments
from specloom.protoconv import JsonValue

PROJECT_FILE = "specloom.toml"
"""The project file's name, at the repository root."""

_TOP_KEYS = frozenset({"profile", "line", "contexts"})
_CONTEXT_KEYS = frozenset({"module", "stories", "depends_on"})


@dataclass(frozen=True)
class ContextEntry:
    """One ``[[contexts]]`` table."""

    module: str
    """The context's module name, e.g. ``ledger``."""
    stories_path: str = ""
    """The stories file, relative to the repository root ("" when none)."""
    stories: tuple[JsonValue, ...] = ()
    """The user stories read from it: the ``user_stories`` a design session is given."""
    depends_on: tuple[str, ...] = ()
    """Contexts that must be done before this one is coded."""


@dataclass(frozen=True)
class ProjectFile:
    """What ``specloom.toml`` says."""

    profile: str = ""
    """Profile name ("" when not given: the default)."""
    line: str = ""
    """The line branch ("" when not given: ``specloom/<current branch>``)."""
    contexts: tuple[ContextEntry, ...] = ()

    def context(self, module: str) -> ContextEntry | None:
        """The entry for ``module`` (compared case-insensitively), if listed."""
        folded = module.casefold()
        return next((c for c in self.contexts if c.module.casefold() == folded), None)


def load_project(root: Path) -> ProjectFile | None:
    """``root/specloom.toml`` read and checked; ``None`` when there is none.

    ``InvalidArgument`` names the file, the key and what is wrong.
    """
    path = root / PROJECT_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InvalidArgument(f"{PROJECT_FILE}: cannot be read: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidArgument(f"{PROJECT_FILE}: not valid TOML: {exc}") from None
    return parse_project(data, root=root)


def parse_project(data: Mapping[str, Any], *, root: Path | None = None) -> ProjectFile:
    """The checked form of a parsed ``specloom.toml``; stories are read under ``root``."""
    _unknown(data, _TOP_KEYS, PROJECT_FILE)
    profile = _text(data, "profile", PROJECT_FILE)
    if profile and profile not in PROFILES:
        raise InvalidArgument(
            f"{PROJECT_FILE}: profile: unknown profile {profile!r}; known: {', '.join(PROFILES)}"
        )
    line = _text(data, "line", PROJECT_FILE)
    if line and (line.startswith("-") or any(c.isspace() for c in line) or ".." in line):
        raise InvalidArgument(f"{PROJECT_FILE}: line: {line!r} is not a branch name")
    tables = data.get("contexts", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise InvalidArgument(
            f"{PROJECT_FILE}: contexts: write each context as a [[contexts]] table"
        )
    contexts: list[ContextEntry] = []
    for number, table in enumerate(tables, start=1):
        contexts.append(_context(table, f"{PROJECT_FILE}: contexts[{number}]", root))
    seen: set[str] = set()
    for entry in contexts:
        if entry.module.casefold() in seen:
            raise InvalidArgument(f"{PROJECT_FILE}: contexts: {entry.module!r} is listed twice")
        seen.add(entry.module.casefold())
    for entry in contexts:
        for name in entry.depends_on:
            if name.casefold() not in seen:
                raise InvalidArgument(
                    f"{PROJECT_FILE}: contexts[{entry.module}].depends_on: {name!r} is not "
                    "a context of this file; list it as a [[contexts]] table too"
                )
    return ProjectFile(profile=profile, line=line, contexts=tuple(contexts))


def _context(table: Mapping[str, Any], where: str, root: Path | None) -> ContextEntry:
    _unknown(table, _CONTEXT_KEYS, where)
    module = _text(table, "module", where)
    if not module:
        raise InvalidArgument(f"{where}: module: required (the context's module name)")
    try:
        module_segments(module)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{where}: module: {exc}") from None
    where = f"{PROJECT_FILE}: contexts[{module}]"
    stories_path = _text(table, "stories", where)
    stories: tuple[JsonValue, ...] = ()
    if stories_path and root is not None:
        stories = read_stories(root, stories_path, where)
    depends = table.get("depends_on", [])
    if not isinstance(depends, list) or not all(isinstance(d, str) and d for d in depends):
        raise InvalidArgument(f"{where}.depends_on: a list of context module names")
    if any(d.casefold() == module.casefold() for d in depends):
        raise InvalidArgument(f"{where}.depends_on: a context cannot depend on itself")
    return ContextEntry(
        module=module,
        stories_path=stories_path,
        stories=stories,
        depends_on=tuple(dict.fromkeys(depends)),
    )


def read_stories(root: Path, relative: str, where: str) -> tuple[JsonValue, ...]:
    """The user stories in ``root/relative`` (bullets, else headings with their text)."""
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise InvalidArgument(f"{where}.stories: {relative!r} is outside the repository")
    try:
        document = parse(path.read_bytes())
    except OSError as exc:
        raise InvalidArgument(
            f"{where}.stories: {relative} cannot be read: {exc.strerror or exc}"
        ) from None
    except DocumentRejected as exc:
        raise InvalidArgument(f"{where}.stories: {relative}: {exc}") from None
    bullets = [*document.preamble.items]
    for section in document.sections:
        bullets += section.body.items
        for sub in section.subsections:
            bullets += sub.body.items
    if bullets:
        return tuple(" ".join(item.split()) for item in bullets if item.strip())
    stories: list[JsonValue] = []
    for section in document.sections:
        parts: Sequence[Any] = section.subsections or (section,)
        for part in parts:
            stories.append({"title": part.title, "description": part.body.prose})
    if not stories:
        raise InvalidArgument(
            f"{where}.stories: {relative} holds no stories; write one bullet per story"
        )
    return tuple(stories)


def _text(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        raise InvalidArgument(f"{where}: {key}: expected a string, got {type(value).__name__}")
    return value.strip()


def _unknown(table: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    extra = sorted(set(table) - known)
    if extra:
        raise InvalidArgument(
            f"{where}: unknown key {extra[0]!r}; known keys: {', '.join(sorted(known))}"
        )
