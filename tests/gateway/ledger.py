"""A Python project whose context has components that depend on each other, for end-to-end tests.

The ``ledger`` context: each component ``ledger.<name>`` has a constant of
its own (``OWN``) and a ``value()`` that adds its dependencies' values, so a
component's tests pass only when the code of everything it depends on is in
its worktree. Tests are written first: they import the component inside a
fixture, so before the code exists each test fails on its own (pytest
reports an error per test), and the file still loads.

:data:`TWELVE`: a chain (accounts → postings → balances), a diamond
(currency → rates, rounding → money) and five independent components,
listed dependents before what they depend on (the order is the graph's
business, not the document's).
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.gateway.conftest import git, make_repo

Graph = Sequence[tuple[str, Sequence[str]]]
"""Components (short names) in design order, each with the short names it depends on."""

TWELVE: Graph = (
    ("balances", ("postings",)),
    ("postings", ("accounts",)),
    ("accounts", ()),
    ("money", ("rates", "rounding")),
    ("rates", ("currency",)),
    ("rounding", ("currency",)),
    ("currency", ()),
    ("ids", ()),
    ("clock", ()),
    ("text", ()),
    ("codes", ()),
    ("limits", ()),
)

CONTEXT_DESIGN = """\
# ledger

## Purpose
Keeps a small double-entry ledger: accounts, postings, balances, and the money they hold.

## Entity Ownership
- Accounts, postings and balances
- Currencies and their rates

## Access Patterns
- Every read is by account; writes append postings.

## Public API
- `ledger.<component>.value() -> int` for every component.

## State Management Strategy
Nothing is stored between calls; each component computes from its dependencies.

## Execution Flow
1. A component asks the components it depends on for their values.
2. It adds its own part.

## Dependencies
- None

## Components

{components}
## Test Strategies
One pytest file per component; the component is imported inside a fixture.

## Test Assertions
- every component's value is its own part plus its dependencies' values
"""

COMPONENT_DESIGN = """\
# {module}

## Purpose
The {name} part of the ledger.

## Public API
- `OWN: int`: this component's own part ({own}).
- `value() -> int`: `OWN` plus the values of {deps}.

## Execution Flow
1. Ask each dependency for its value.
2. Add `OWN`.

## Test Assertions
- `OWN` is {own}
- `value()` is {value}
"""


@dataclass(frozen=True)
class Ledger:
    """The project's components, their files, and what a correct implementation gives."""

    graph: Graph

    def modules(self) -> list[str]:
        return [module(name) for name, _ in self.graph]

    def dependencies(self, name: str) -> Sequence[str]:
        return dict(self.graph)[name]

    def own(self, name: str) -> int:
        return 1 + [n for n, _ in self.graph].index(name)

    def value(self, name: str, seen: frozenset[str] = frozenset()) -> int:
        # A design with a cycle or an unknown name is refused before any code
        # is written; its documents still need a number.
        known = [d for d in self.dependencies(name) if d in dict(self.graph) and d not in seen]
        return self.own(name) + sum(self.value(d, seen | {name}) for d in known)

    def design(self) -> str:
        blocks = []
        for name, deps in self.graph:
            row = f"| dependencies | {', '.join(module(d) for d in deps)} |\n" if deps else ""
            blocks.append(
                f"### {module(name)}\n\n| field | value |\n|---|---|\n| type | module |\n{row}\n"
                f"The {name} part of the ledger.\n"
            )
        return CONTEXT_DESIGN.format(components="\n".join(blocks))

    def component_design(self, name: str) -> str:
        deps = ", ".join(module(d) for d in self.dependencies(name)) or "nothing"
        return COMPONENT_DESIGN.format(
            module=module(name), name=name, own=self.own(name), deps=deps, value=self.value(name)
        )

    def code(self, name: str, *, own: int | None = None) -> str:
        deps = self.dependencies(name)
        imports = f"from ledger import {', '.join(deps)}\n\n" if deps else ""
        total = " + ".join(["OWN", *(f"{d}.value()" for d in deps)])
        return (
            f'"""{module(name)}: its own part plus its dependencies\' values."""\n\n'
            f"{imports}OWN = {self.own(name) if own is None else own}\n\n\n"
            f"def value() -> int:\n    return {total}\n"
        )

    def tests(self, name: str) -> str:
        return (
            "import importlib\n\nimport pytest\n\n\n"
            "@pytest.fixture\n"
            "def component():\n"
            f'    return importlib.import_module("{module(name)}")\n\n\n'
            "def test_its_own_part(component):\n"
            f"    assert component.OWN == {self.own(name)}\n\n\n"
            "def test_its_value_includes_its_dependencies(component):\n"
            f"    assert component.value() == {self.value(name)}\n"
        )

    def files(self, *, with_tests: bool) -> dict[str, str]:
        """The project: the designs (and the tests, when written by hand first)."""
        files = {"docs/design/ledger.md": self.design()}
        for name, _ in self.graph:
            files[f"docs/design/ledger/{name}.md"] = self.component_design(name)
            if with_tests:
                files[path_of_tests(name)] = self.tests(name)
        return files

    def script(
        self, *, tests: bool, code: bool, extra: Sequence[Mapping[str, Any]] = ()
    ) -> dict[str, Any]:
        """Scripted agent entries writing every component's tests and/or code."""
        entries: list[Mapping[str, Any]] = list(extra)
        for name, _ in self.graph:
            if tests:
                entries.append(
                    {
                        "match": {
                            "session_type": "ComponentTest",
                            "step": "GenerateTestsAndFixtures",
                            "component": module(name),
                        },
                        "edits": [{"path": path_of_tests(name), "write": self.tests(name)}],
                        "reply": f"Wrote the tests of {module(name)} from its design.",
                    }
                )
            if code:
                entries.append(
                    {
                        "match": {
                            "session_type": "ComponentCoding",
                            "step": "GenerateImplementation",
                            "component": module(name),
                        },
                        "edits": [{"path": code_of(name), "write": self.code(name)}],
                        "reply": f"Implemented {module(name)}.",
                    }
                )
        return {"entries": entries}


def module(name: str) -> str:
    return f"ledger.{name}"


def code_of(name: str) -> str:
    return f"src/ledger/{name}.py"


def path_of_tests(name: str) -> str:
    return f"tests/ledger/{name}_test.py"


def ledger_repo(root: Path, ledger: Ledger, *, with_tests: bool) -> Path:
    """The project as a git repository on ``main``, pushed to a bare ``origin`` beside it."""
    repo = make_repo(root / "ledger", ledger.files(with_tests=with_tests))
    origin = root / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "push", "-q", "origin", "main")
    return repo
