"""Whole-suite reports told per test file: pytest JUnit and ExUnit JSON, as runners write them."""

from __future__ import annotations

import json
from pathlib import Path

from specloom.profiles import get_profile
from specloom.projectmap import scan_checkout
from specloom.projectmap._testrun import attribute
from specloom.testruns import read_test_run
from tests.projectmap.world import git

JUNIT = b"""<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="5">
<testcase classname="tests.shop.cart_test" name="test_empty" time="0.01"/>
<testcase classname="tests.shop.cart_test.TestAdd" name="test_one" time="0.01">
  <failure message="assert 0 == 1">E   assert 0 == 1</failure>
</testcase>
<testcase classname="tests.shop.cart_test" name="test_later" time="0"><skipped/></testcase>
<testcase classname="tests.shop.pay_test" name="test_pay" time="0.01"/>
<testcase classname="tests.elsewhere_test" name="test_other" time="0.01"/>
</testsuite></testsuites>
"""


def test_pytest_cases_go_to_their_module_even_inside_a_class() -> None:
    run = read_test_run(JUNIT, "junit", command=["pytest"], exit_code=1)
    paths = ["tests/shop/cart_test.py", "tests/shop/pay_test.py", "tests/shop/none_test.py"]
    results = attribute(run, paths)
    cart = results["tests/shop/cart_test.py"]
    assert (cart.passed, cart.failed, cart.cases) == (1, 1, 3)
    assert cart.failures == ["tests.shop.cart_test.TestAdd::test_one: assert 0 == 1"]
    assert (results["tests/shop/pay_test.py"].passed, results["tests/shop/pay_test.py"].failed) == (
        1,
        0,
    )
    assert results["tests/shop/none_test.py"].cases == 0


def test_exunit_cases_go_to_the_file_the_runner_names() -> None:
    report = {
        "stats": {"tests": 3, "passes": 2, "failures": 1, "duration": 5},
        "passes": [
            {"fullTitle": "Shop.CartTest: test empty", "file": "/w/test/shop/cart_test.exs"},
            {"fullTitle": "Shop.PayTest: test pay", "file": "/w/test/shop/pay_test.exs"},
        ],
        "failures": [
            {
                "fullTitle": "Shop.PayTest: test refund",
                "file": "/w/test/shop/pay_test.exs",
                "err": {"message": "Assertion with == failed"},
            }
        ],
        "pending": [],
    }
    run = read_test_run(json.dumps(report).encode(), "exunit-json", command=["mix"], exit_code=2)
    results = attribute(run, ["test/shop/cart_test.exs", "test/shop/pay_test.exs"])
    assert results["test/shop/cart_test.exs"].passed == 1
    pay = results["test/shop/pay_test.exs"]
    assert (pay.passed, pay.failed) == (1, 1)
    assert pay.failures == ["Shop.PayTest: test refund: Assertion with == failed"]


def test_the_elixir_layout_finds_nested_contexts_by_their_components_section(
    tmp_path: Path,
) -> None:
    root = tmp_path / "app"
    design = root / "docs/design/my_app/inventory.md"
    design.parent.mkdir(parents=True)
    design.write_text(
        "# MyApp.Inventory\n\n## Purpose\nStock.\n\n## Components\n\n"
        "### MyApp.Inventory.Stock\n\n| field | value |\n|---|---|\n| type | schema |\n\nStock.\n"
    )
    (root / "lib/my_app/inventory").mkdir(parents=True)
    (root / "lib/my_app/inventory/stock.ex").write_text("defmodule MyApp.Inventory.Stock do\nend\n")
    git(tmp_path, "init", "-q", "app")
    scan = scan_checkout(root, get_profile("elixir"), cache_path=None)
    context, stock = scan.components
    assert (context.module, context.type) == ("MyApp.Inventory", "context")
    assert context.design_errors  # sections missing: the design is shown invalid, not dropped
    assert (stock.module, stock.context, stock.type) == (
        "MyApp.Inventory.Stock",
        "MyApp.Inventory",
        "schema",
    )
    assert stock.code.path == "lib/my_app/inventory/stock.ex"
    assert stock.code.present
    assert stock.test.path == "test/my_app/inventory/stock_test.exs"
    assert context.review.path == "docs/review/my_app/inventory/context_design.md"
    assert scan.revision == ""  # a repository with no commit yet
