"""The demo's sample project: a tiny Python package with its tests written first.

The ``inventory`` context has three components, one of which builds on
another: ``inventory.reorder`` works out how many of a sku to order from a
``Stock``, so it depends on ``inventory.stock``. Their tests are part of the
project (the team wrote them first); the demo's sessions design the context
and its components, then implement each component until its tests pass —
``reorder`` once ``stock`` is done, starting from its work — and run the
whole suite on the integrated result before committing it.
"""

from __future__ import annotations

from collections.abc import Mapping

CONTEXT = "Inventory"
COMPONENTS = ("inventory.stock", "inventory.pricing", "inventory.reorder")

FILES: Mapping[str, str] = {
    "README.md": """\
# inventory

A small stock-keeping package, used by `specloom demo`. The tests under
`tests/` were written first; specloom's sessions design the `Inventory`
context and its components, then implement each component until its tests
pass.
""",
    "pyproject.toml": """\
[project]
name = "inventory"
version = "0.1.0"
requires-python = ">=3.10"

[tool.pytest.ini_options]
pythonpath = ["src"]
""",
    ".gitignore": "__pycache__/\n*.pyc\n.pytest_cache/\n",
    "src/inventory/__init__.py": '"""Stock keeping: quantities, prices, reordering."""\n',
    ".specloom/rules/house-style.md": """\
---
name: house style
component_type: "*"
session_type: "*"
---
Keep modules small and dependency-free. Prefer plain functions and small
classes; name errors after what went wrong (`OutOfStock`, not `Error2`).
""",
    "tests/inventory/stock_test.py": """\
import pytest

from inventory.stock import OutOfStock, Stock


def test_new_stock_is_empty():
    assert Stock().quantity("apple") == 0


def test_add_then_remove():
    stock = Stock()
    stock.add("apple", 5)
    stock.remove("apple", 2)
    assert stock.quantity("apple") == 3


def test_removing_more_than_there_is_raises():
    stock = Stock()
    stock.add("apple", 1)
    with pytest.raises(OutOfStock):
        stock.remove("apple", 2)
    assert stock.quantity("apple") == 1


def test_negative_quantities_are_refused():
    with pytest.raises(ValueError):
        Stock().add("apple", -1)
""",
    "tests/inventory/pricing_test.py": """\
from decimal import Decimal

from inventory.pricing import price_for


def test_single_item():
    assert price_for(1, Decimal("2.50")) == Decimal("2.50")


def test_bulk_discount_from_ten_items():
    assert price_for(10, Decimal("1.00")) == Decimal("9.00")


def test_rounds_to_cents():
    assert price_for(3, Decimal("0.333")) == Decimal("1.00")
""",
    "tests/inventory/reorder_test.py": """\
from inventory.reorder import needs_reorder, reorder_for, reorder_quantity
from inventory.stock import Stock


def test_below_the_threshold_needs_a_reorder():
    assert needs_reorder(level=2, threshold=5)


def test_at_the_threshold_is_fine():
    assert not needs_reorder(level=5, threshold=5)


def test_reorder_fills_up_to_the_target():
    assert reorder_quantity(level=2, target=10) == 8


def test_never_a_negative_reorder():
    assert reorder_quantity(level=12, target=10) == 0


def test_reorder_for_a_sku_reads_the_stock():
    stock = Stock()
    stock.add("apple", 2)
    assert reorder_for(stock, "apple", threshold=5, target=10) == 8
    stock.add("apple", 6)
    assert reorder_for(stock, "apple", threshold=5, target=10) == 0
""",
}
"""The project's files, by path."""
