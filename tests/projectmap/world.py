"""Real projects on disk for the project map's tests: designs, tests and code in git repos."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from specloom.profiles.python import PythonProfile
from specloom.v1 import projectmap_pb2 as pb
from specloom.v1 import sessions_pb2 as spb


@dataclass(frozen=True)
class Part:
    """One component as a context design lists it."""

    module: str
    type: str = "module"
    depends_on: Sequence[str] = ()


@dataclass
class Project:
    """A python-profile project in a git repository."""

    root: Path
    profile: PythonProfile = field(default_factory=PythonProfile)

    def write(self, path: str, text: str) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")

    def delete(self, path: str) -> None:
        (self.root / path).unlink()

    def context(self, module: str, parts: Sequence[Part], depends_on: Sequence[str] = ()) -> None:
        """Write a valid context design listing ``parts``."""
        self.write(self.profile.design_path(module), context_design(module, parts, depends_on))

    def designs(self, parts: Sequence[Part]) -> None:
        for part in parts:
            self.write(self.profile.files(part.module).design, component_design(part))

    def tests(self, parts: Sequence[Part], *, failing: Sequence[str] = ()) -> None:
        for part in parts:
            self.write(
                self.profile.files(part.module).test, suite_source(part, part.module in failing)
            )

    def code(self, parts: Sequence[Part]) -> None:
        for part in parts:
            self.write(self.profile.files(part.module).code, code_source(part))

    def commit(self, message: str = "work") -> None:
        git(self.root, "add", "-A")
        git(self.root, "commit", "-q", "-m", message)

    def age(self, seconds: int = 60) -> None:
        """Date every file back, as files written before the scan (the cache trusts them)."""
        then = time.time_ns() - seconds * 1_000_000_000
        for path in self.root.rglob("*"):
            if ".git" not in path.parts and path.is_file():
                os.utime(path, ns=(then, then))


def new_project(root: Path) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "map@example.com")
    git(root, "config", "user.name", "Map Test")
    project = Project(root)
    project.write("README.md", "# a project\n")
    # importlib mode: test modules of different contexts may share a basename.
    project.write(
        "pyproject.toml",
        '[tool.pytest.ini_options]\npythonpath = ["src"]\naddopts = "--import-mode=importlib"\n',
    )
    project.commit("start")
    return project


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def context_design(module: str, parts: Sequence[Part], depends_on: Sequence[str] = ()) -> str:
    dependencies = "\n".join(f"- **{d}**: what it needs from {d}" for d in depends_on) or "- None"
    blocks = []
    for part in parts:
        rows = f"| type | {part.type} |\n"
        if part.depends_on:
            rows += f"| dependencies | {', '.join(part.depends_on)} |\n"
        blocks.append(
            f"### {part.module}\n\n| field | value |\n|---|---|\n{rows}\n"
            f"What {part.module} does, in one sentence.\n"
        )
    components = "\n".join(blocks)
    return f"""\
# {module}

## Purpose
Keeps the {module} part of the application.

## Entity Ownership
- The {module} records

## Access Patterns
- Callers hold their own objects; nothing is shared.

## Public API
- `make()` returns a new record.

## State Management Strategy
In memory only.

## Execution Flow
1. A caller makes a record.
2. The caller uses it.

## Dependencies
{dependencies}

## Components

{components}
## Test Strategies
Unit tests per component.

## Test Assertions
- a new record is empty
"""


def component_design(part: Part) -> str:
    if part.type == "schema":
        return f"""\
# {part.module}

## Purpose
The record {part.module} holds, which is never negative.

## Fields

| Field | Type | Required | Description | Constraints |
|-------|------|----------|-------------|-------------|
| quantity | integer | yes | Units | >= 0 |

## Test Assertions
- a negative quantity is invalid
"""
    return f"""\
# {part.module}

## Purpose
What {part.module} does.

## Public API
- `value()` returns 1.

## Execution Flow
1. Return the value.

## Test Assertions
- value is 1
"""


def _python_module(module: str) -> str:
    return module.lower()


def suite_source(part: Part, failing: bool = False) -> str:
    expected = 2 if failing else 1
    return f"""\
from {_python_module(part.module)} import value


def test_value_is_one():
    assert value() == {expected}


def test_value_is_an_int():
    assert isinstance(value(), int)
"""


def code_source(part: Part) -> str:
    return "def value():\n    return 1\n"


def recorded(
    scan: pb.ProjectScan,
    *,
    unfinished: Sequence[pb.SessionTouch] = (),
) -> spb.FetchProjectFactsResponse:
    """The facts the Sessions service would hand back after recording ``scan``."""
    header = pb.ProjectScan()
    header.CopyFrom(scan)
    del header.components[:]
    return spb.FetchProjectFactsResponse(
        scanned=True,
        last_scan=header,
        components=[
            spb.StoredComponent(facts=facts, observed_at=scan.scanned_at)
            for facts in scan.components
        ],
        unfinished=unfinished,
    )
