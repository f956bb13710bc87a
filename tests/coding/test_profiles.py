"""Profiles: layout from module names, runner commands, and names that must never pass."""

from __future__ import annotations

import pytest

from specloom.errors import InvalidArgument
from specloom.profiles import PROFILES, get_profile, module_segments
from specloom.profiles.elixir import FORMATTER_MODULE, REPORT_ENV, formatter_source


def test_python_layout() -> None:
    files = get_profile("python").files("inventory.stock")
    assert files.all() == (
        "docs/design/inventory/stock.md",
        "src/inventory/stock.py",
        "tests/inventory/stock_test.py",
        "tests/inventory/stock_fixtures.py",
    )
    assert get_profile(None).name == "python"
    assert get_profile("python").module_path("MyApp.HTTPClient") == "my_app/http_client"


def test_elixir_layout_as_in_the_seeds() -> None:
    files = get_profile("elixir").files("MyApp.Inventory.Stock")
    assert files.all() == (
        "docs/design/my_app/inventory/stock.md",
        "lib/my_app/inventory/stock.ex",
        "test/my_app/inventory/stock_test.exs",
        "test/support/fixtures/my_app/inventory/stock_fixtures.ex",
    )
    assert get_profile("elixir").design_path("MyApp.Inventory") == "docs/design/my_app/inventory.md"


def test_python_runs_pytest_with_a_junit_report() -> None:
    invocation = get_profile("python").test_invocation(["tests/a_test.py"], "r/run-1.xml")
    assert invocation.argv[:3] == ("python", "-m", "pytest")
    assert "--junitxml=r/run-1.xml" in invocation.argv
    assert invocation.argv[-2:] == ("--", "tests/a_test.py")
    assert invocation.report_format == "junit"
    assert set(invocation.ok_exit_codes) == {0, 1, 5}


def test_elixir_runs_mix_test_with_the_shipped_json_formatter() -> None:
    invocation = get_profile("elixir").test_invocation(["test/a_test.exs"], "r/run-1.json")
    assert invocation.argv[0:2] == ("elixir", "-e")
    assert invocation.argv[2] == formatter_source()
    assert invocation.argv[3:7] == ("-S", "mix", "test", "test/a_test.exs")
    assert invocation.argv[-1] == FORMATTER_MODULE
    assert invocation.env == {"MIX_ENV": "test", REPORT_ENV: "r/run-1.json"}
    assert f"defmodule {FORMATTER_MODULE} do" in formatter_source()
    assert invocation.report_format == "exunit-json"


@pytest.mark.parametrize(
    "name",
    [
        'inventory.stock"; rm -rf /',
        "inventory.$(reboot)",
        "inventory.`id`",
        "inventory.stock;ls",
        "inventory.stock\nmalicious",
        "inventory/../../etc",
        "inventory..stock",
        "../inventory",
        "-rf.stock",
        "inventory stock",
        "",
        ".",
    ],
)
def test_names_that_are_not_module_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidArgument, match="not a module name"):
        module_segments(name)
    for profile in PROFILES.values():
        with pytest.raises(InvalidArgument):
            profile.files(name)
        with pytest.raises(InvalidArgument):
            profile.design_path(name)


def test_unknown_profiles_are_invalid_arguments() -> None:
    with pytest.raises(InvalidArgument, match="known profiles: python, elixir"):
        get_profile("cobol")
