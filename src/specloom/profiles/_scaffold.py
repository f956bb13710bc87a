"""What scaffolding a design means for a project: a plan of files, generators and checks.

A profile turns the components of a validated context design into a
:class:`ScaffoldPlan` (``Profile.scaffold``): the files to create (package
modules, test skeletons), the project's own generator commands (Phoenix's
``mix phx.gen.*``), and the commands that check the result builds
(``python -c "import ..."``, ``mix compile``). The plan is carried out on the
executor by ``scaffold_runner.py``, shipped next to this module and run as
``python3 -c <source> <plan as JSON>`` in the session's worktree: it never
overwrites a file (an existing file with other content is a conflict, an
identical one is already scaffolded, and where the layout only needs a file
to exist, a package's ``__init__.py`` or tests written first, any existing
one is kept), skips a generator whose output already exists, and prints
one JSON report (:class:`ScaffoldReport`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files

from specloom.errors import InvalidArgument

SCAFFOLD_MARKER = "specloom:scaffold"
"""Written into every skeleton file, so a later scan can tell a skeleton from an implementation."""

RUNNER_PROGRAM = "python3"
"""The interpreter that runs the plan on the executor (specloom's executor needs Python anyway)."""

MAX_PLAN_BYTES = 100_000
"""Largest plan passed as one argument (Linux refuses a single argument over 128 KiB)."""


@dataclass(frozen=True)
class SchemaField:
    """One row of a schema design's Fields table."""

    name: str
    type: str
    required: bool = True


@dataclass(frozen=True)
class ScaffoldComponent:
    """A component as scaffolding sees it (from the validated context design)."""

    module_name: str
    type: str
    description: str = ""
    fields: tuple[SchemaField, ...] = ()
    """A schema's fields, where its design has a Fields table."""


@dataclass(frozen=True)
class PlannedFile:
    """A file to create, unless it already exists."""

    path: str
    content: str
    keep_existing: bool = False
    """Any existing file here is kept as it is (``kept``): the layout only needs it to
    exist (a package's ``__init__.py``, tests written first). Otherwise an existing
    file with other content is a conflict."""


@dataclass(frozen=True)
class PlannedCommand:
    """A generator to run, unless what it creates is already there."""

    argv: tuple[str, ...]
    creates: str = ""
    """A file the generator writes; when it exists the generator already ran and is skipped."""


@dataclass(frozen=True)
class ScaffoldPlan:
    """Everything one scaffolding run does, in order: files, generators, checks."""

    files: tuple[PlannedFile, ...] = ()
    generators: tuple[PlannedCommand, ...] = ()
    checks: tuple[tuple[str, ...], ...] = ()
    """Commands that must all exit 0 afterwards (import, compile)."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment for generators and checks."""

    def to_json(self) -> str:
        """The plan as the runner reads it (``InvalidArgument`` when too large for argv)."""
        text = json.dumps(
            {
                "files": [
                    {"path": f.path, "content": f.content, "keep_existing": f.keep_existing}
                    for f in self.files
                ],
                "generators": [
                    {"argv": list(g.argv), "creates": g.creates} for g in self.generators
                ],
                "checks": [list(c) for c in self.checks],
                "env": dict(self.env),
            },
            sort_keys=True,
        )
        if len(text.encode()) > MAX_PLAN_BYTES:
            raise InvalidArgument(
                f"the scaffolding plan is {len(text.encode())} bytes, over the "
                f"{MAX_PLAN_BYTES}-byte limit of one command argument; split the context"
            )
        return text

    def argv(self) -> tuple[str, ...]:
        """The executor command that carries the plan out."""
        return (RUNNER_PROGRAM, "-c", runner_source(), self.to_json())


@cache
def runner_source() -> str:
    """The Python source of the runner (stdlib only, so any ``python3`` runs it)."""
    return (files("specloom.profiles") / "scaffold_runner.py").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Failure:
    """A generator or check that failed, with the tool's own words."""

    argv: tuple[str, ...]
    exit_code: int
    output: str
    check: bool = False


@dataclass(frozen=True)
class ScaffoldReport:
    """What the runner did (its one line of JSON on stdout)."""

    created: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    """Files that already existed with exactly the planned content (scaffolded before)."""
    kept: tuple[str, ...] = ()
    """Files that existed with other content where any content will do (not committed)."""
    conflicts: tuple[str, ...] = ()
    """Files that exist with other content; nothing is written when there are any."""
    generated: tuple[str, ...] = ()
    """Files the generators created or changed."""
    skipped: tuple[str, ...] = ()
    """Generators skipped because what they create exists (shown as their argv)."""
    failed: Failure | None = None

    @property
    def ok(self) -> bool:
        """No conflict and nothing failed."""
        return not self.conflicts and self.failed is None

    def files(self) -> tuple[str, ...]:
        """Every file the scaffolding stands for, sorted: what Finalize commits."""
        return tuple(sorted({*self.created, *self.unchanged, *self.generated}))

    def errors(self) -> tuple[str, ...]:
        """The problems, one per line, in the tools' own words."""
        found = [
            f"conflict: {path} already exists with different content; scaffolding never "
            "overwrites a file"
            for path in self.conflicts
        ]
        if self.failed is not None:
            what = "check" if self.failed.check else "generator"
            found.append(
                f"{what} `{' '.join(self.failed.argv)}` exited with code "
                f"{self.failed.exit_code}:\n{self.failed.output.strip()}"
            )
        return tuple(found)

    @staticmethod
    def parse(stdout: str) -> ScaffoldReport:
        """The report from the runner's stdout (its last line); ``ValueError`` if none."""
        lines = [line for line in stdout.splitlines() if line.strip()]
        if not lines:
            raise ValueError("the scaffolding runner printed no report")
        data = json.loads(lines[-1])
        if not isinstance(data, dict):
            raise ValueError("the scaffolding report is not a JSON object")

        def strings(key: str) -> tuple[str, ...]:
            value = data.get(key) or []
            return tuple(str(v) for v in value) if isinstance(value, list) else ()

        failed = data.get("failed")
        return ScaffoldReport(
            created=strings("created"),
            unchanged=strings("unchanged"),
            kept=strings("kept"),
            conflicts=strings("conflicts"),
            generated=strings("generated"),
            skipped=strings("skipped"),
            failed=(
                Failure(
                    argv=tuple(str(a) for a in failed.get("argv") or ()),
                    exit_code=int(failed.get("exit_code") or 0),
                    output=str(failed.get("output") or ""),
                    check=failed.get("check") is True,
                )
                if isinstance(failed, dict)
                else None
            ),
        )
