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
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib.resources import files

from specloom.naming import safe_relative_path
from specloom.profiles._base import (
    ComponentFiles,
    ReportFormat,
    TestInvocation,
    module_segments,
    underscore,
)

FORMATTER_MODULE = "Specloom.ExUnitJSONFormatter"
REPORT_ENV = "EXUNIT_JSON_OUTPUT"
"""Environment variable naming the file the formatter writes."""


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
