"""The ``elixir`` profile: a Phoenix project, as in the original system.

``MyApp.Inventory.Stock`` -> ``docs/design/my_app/inventory/stock.md``,
``lib/my_app/inventory/stock.ex``, ``test/my_app/inventory/stock_test.exs``,
fixtures in ``test/support/fixtures/my_app/inventory/stock_fixtures.ex``
(module segments underscored the way ``Macro.underscore`` does).

Tests run with ``mix test`` and report through the JSON formatter shipped
next to this module (``exunit_json_formatter.exs``). Its source is handed to
``elixir -e`` ahead of ``-S mix test``, so the project needs no extra
dependency: Hex may be out of reach, and Elixir before 1.18 has no JSON
encoder of its own.

Scaffolding runs Phoenix's generators as the design calls for them: the
context's first schema with ``mix phx.gen.context`` (the context module,
the schema and its migration), every further schema with ``mix
phx.gen.schema`` (schema and migration), fields from the schema's design
where it has a Fields table. Components that are not schemas get a module
skeleton, and those with tests of their own a test skeleton; a context
without schemas gets its module skeleton too (an existing test file is kept;
an existing module with other content is a conflict). The check is ``mix
compile``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib.resources import files

from specloom.errors import InvalidArgument
from specloom.naming import safe_relative_path
from specloom.profiles._base import (
    ComponentFiles,
    ReportFormat,
    TestInvocation,
    module_segments,
    underscore,
)
from specloom.profiles._scaffold import (
    SCAFFOLD_MARKER,
    PlannedCommand,
    PlannedFile,
    ScaffoldComponent,
    ScaffoldPlan,
    SchemaField,
)

FORMATTER_MODULE = "Specloom.ExUnitJSONFormatter"
REPORT_ENV = "EXUNIT_JSON_OUTPUT"
"""Environment variable naming the file the formatter writes."""


UNTESTED_TYPES = frozenset({"schema", "context"})
"""Component types with no test file of their own (as in the original system)."""

ECTO_TYPES = frozenset(
    {
        "integer", "float", "decimal", "boolean", "map", "string", "array", "references",
        "text", "date", "time", "time_usec", "naive_datetime", "naive_datetime_usec",
        "utc_datetime", "utc_datetime_usec", "uuid", "binary", "enum", "datetime",
    }
)  # fmt: skip
"""The attribute types ``mix phx.gen.schema`` accepts."""

_TYPE_ALIASES = {
    "int": "integer",
    "bigint": "integer",
    "bool": "boolean",
    "str": "string",
    "varchar": "string",
    "datetime": "utc_datetime",
    "timestamp": "utc_datetime",
    "number": "decimal",
    "money": "decimal",
    "json": "map",
    "jsonb": "map",
}

GENERATED_FIELDS = frozenset({"id", "inserted_at", "updated_at"})
"""Fields the generators add on their own (listing them would add them twice)."""


def ecto_type(declared: str) -> str:
    """The generator type for a design's Type cell: its first word, lower-cased, with
    common synonyms mapped (``int`` -> ``integer``); anything else is ``string``."""
    word = declared.strip().split()[0].strip("`,;:()") if declared.strip() else ""
    word = word.lower()
    word = _TYPE_ALIASES.get(word, word)
    return word if word in ECTO_TYPES else "string"


def attribute(field: SchemaField) -> str | None:
    """``sku:string`` for the generator's argv; ``None`` for a field it adds itself.

    Raises ``InvalidArgument`` for a field name that is not an identifier.
    """
    segments = module_segments(field.name)
    if len(segments) != 1:
        raise InvalidArgument(f"Fields.{field.name}: a field name is one identifier, e.g. 'sku'")
    name = underscore(segments[0])
    if name in GENERATED_FIELDS:
        return None
    return f"{name}:{ecto_type(field.type)}"


def table_name(schema: str) -> str:
    """``Stock`` -> ``stocks``, ``Category`` -> ``categories`` (a name already plural is kept)."""
    word = underscore(schema)
    if word.endswith("s"):
        return word
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("x", "ch", "sh")):
        return word + "es"
    return word + "s"


def _moduledoc(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("#{", "\\#{")


@cache
def formatter_source() -> str:
    """The Elixir source of the JSON formatter."""
    return (files("specloom.profiles") / "exunit_json_formatter.exs").read_text(encoding="utf-8")


class ElixirProfile:
    """Elixir/Phoenix with ExUnit, reports as mocha-like JSON."""

    name = "elixir"
    language = "Elixir"
    report_format: ReportFormat = "exunit-json"
    agent_commands: tuple[str, ...] = ("mix", "elixir")
    test_guidance = (
        "The module under test does not exist yet; call it by its full name in the "
        "tests. Calls to an undefined module compile with a warning and fail each "
        "test at run time, which is the expected outcome before the code exists."
    )

    def module_path(self, module_name: str) -> str:
        return safe_relative_path("/".join(underscore(p) for p in module_segments(module_name)))

    def files(self, module_name: str) -> ComponentFiles:
        stem = self.module_path(module_name)
        return ComponentFiles(
            design=f"docs/design/{stem}.md",
            code=f"lib/{stem}.ex",
            test=f"test/{stem}_test.exs",
            fixtures=f"test/support/fixtures/{stem}_fixtures.ex",
        )

    def design_path(self, module_name: str) -> str:
        return f"docs/design/{self.module_path(module_name)}.md"

    def test_invocation(self, test_paths: Sequence[str], report_path: str) -> TestInvocation:
        return TestInvocation(
            argv=(
                "elixir",
                "-e",
                formatter_source(),
                "-S",
                "mix",
                "test",
                *test_paths,
                "--formatter",
                "ExUnit.CLIFormatter",
                "--formatter",
                FORMATTER_MODULE,
            ),
            env={"MIX_ENV": "test", REPORT_ENV: report_path},
            report_path=report_path,
            report_format=self.report_format,
            # mix test exits 2 when tests failed; 1 is a compile error or crash.
            ok_exit_codes=(0, 2),
        )

    def scaffold(self, context: str, components: Sequence[ScaffoldComponent]) -> ScaffoldPlan:
        context_parts = module_segments(context)
        # Phoenix names a context relative to the application module (MyApp).
        base = context_parts[0] if len(context_parts) > 1 else ""
        relative = ".".join(context_parts[1:]) if base else context
        files: dict[str, str] = {}
        keep: set[str] = set()
        generators: list[PlannedCommand] = []
        schemas = [c for c in components if c.type == "schema"]
        for number, schema in enumerate(schemas):
            parts = module_segments(schema.module_name)
            if parts[: len(context_parts)] != context_parts or len(parts) == len(context_parts):
                raise InvalidArgument(
                    f"schema {schema.module_name!r} is not inside context {context!r}; "
                    "Phoenix generates a context's schemas under its module"
                )
            name = ".".join(parts[len(context_parts) :])
            attrs = [a for a in (attribute(f) for f in schema.fields) if a is not None]
            table = table_name(parts[-1])
            if number == 0:
                argv = ("mix", "phx.gen.context", relative, name, table, *attrs)
            else:
                argv = ("mix", "phx.gen.schema", f"{relative}.{name}", table, *attrs)
            generators.append(PlannedCommand(argv, creates=self.files(schema.module_name).code))
        if not schemas:
            files[self.files(context).code] = self._module(context, "")
        for component in components:
            if component.type == "schema":
                continue
            paths = self.files(component.module_name)
            files[paths.code] = self._module(component.module_name, component.description)
            if component.type not in UNTESTED_TYPES:
                keep.add(paths.test)
                files[paths.test] = (
                    f"defmodule {component.module_name}Test do\n"
                    f"  # {SCAFFOLD_MARKER}: written from the design's Test Assertions\n"
                    "  use ExUnit.Case, async: true\n"
                    "end\n"
                )
        return ScaffoldPlan(
            files=tuple(PlannedFile(path, files[path], path in keep) for path in sorted(files)),
            generators=tuple(generators),
            checks=(("mix", "compile"),),
        )

    def _module(self, module_name: str, description: str) -> str:
        line = description.strip().splitlines()[0].strip() if description.strip() else ""
        doc = _moduledoc(f"{module_name}{': ' + line if line else ''}")
        return (
            f"defmodule {module_name} do\n"
            f'  @moduledoc """\n  {doc}\n\n'
            f"  Designed in {self.design_path(module_name)}; not implemented yet.\n"
            '  """\n'
            f"  # {SCAFFOLD_MARKER}\n"
            "end\n"
        )
