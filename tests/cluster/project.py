"""The project the cluster codes: a four-component ``inventory`` context, tests first.

A real git repository: the context design lists the components, each
component has its design and its (failing) tests committed, and the
scripted agent backend replays recorded implementation edits. One
component's first implementation is wrong, so a fix round runs too. Every
test sleeps a little, so test runs are still going when processes are
killed.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

CONTEXT = "inventory"

CONTEXT_DESIGN = """\
# Inventory

## Purpose

Tracks how much of each product is in stock, reserves stock for orders
and prices what is sold.

## Entity Ownership

- Stock levels per product
- Reservations

## Access Patterns

- Every query is scoped by account and project.

## Public API

- `inventory.stock.level(levels, product) -> int`
- `inventory.reservations.reserve(level, units) -> int`
- `inventory.restock.restock(level, units) -> int`
- `inventory.pricing.total(units, unit_cents) -> int`

## State Management Strategy

Callers hold the levels; every function is pure.

## Execution Flow

1. An order reserves units.
2. Restock adds received units.
3. Pricing totals a sale.

## Dependencies

- None

## Components

### inventory.stock

| field | value |
|-------|-------|
| type  | module |

Keeps the units on hand per product.

### inventory.reservations

| field | value |
|-------|-------|
| type  | module |

Reserves units of a product for an order, refusing when out of stock.

### inventory.restock

| field | value |
|-------|-------|
| type  | module |

Adds received units to a product's stock level.

### inventory.pricing

| field | value |
|-------|-------|
| type  | module |

Totals the price of a number of units, with a bulk discount.

## Test Strategies

Unit tests per module with plain values.

## Test Assertions

- an unknown product has level 0
- reserving more than the level raises
- receiving units raises the level by that many
- ten units or more cost ten percent less
"""

COMPONENT_DESIGN = """\
# {module}

## Purpose
{purpose}

## Public API
{api}

## Execution Flow
1. Validate the arguments.
2. Compute the answer.

## Test Assertions
{assertions}
"""

# Each test sleeps: test runs take long enough that a kill lands mid-command.
COMPONENTS: dict[str, dict[str, str]] = {
    "stock": {
        "purpose": "Keeps the units on hand per product.",
        "api": "- `level(levels, product) -> int`",
        "assertions": "- an unknown product has level 0",
        "tests": """\
import importlib
import time


def test_an_unknown_product_has_level_zero():
    time.sleep(1.5)
    stock = importlib.import_module("inventory.stock")
    assert stock.level({}, "apple") == 0
    assert stock.level({"apple": 3}, "apple") == 3
""",
        "code": """\
def level(levels: dict[str, int], product: str) -> int:
    return levels.get(product, 0)
""",
    },
    "reservations": {
        "purpose": "Reserves units of a product for an order.",
        "api": "- `reserve(level, units) -> int`: raises ValueError when out of stock",
        "assertions": "- reserving more than the level raises",
        "tests": """\
import importlib
import time

import pytest


def test_reserving_lowers_the_level():
    time.sleep(1.5)
    reservations = importlib.import_module("inventory.reservations")
    assert reservations.reserve(level=5, units=2) == 3


def test_reserving_more_than_the_level_is_refused():
    reservations = importlib.import_module("inventory.reservations")
    with pytest.raises(ValueError, match="out of stock"):
        reservations.reserve(level=1, units=2)
""",
        # The first attempt forgets the stock check; the fix round adds it.
        "code": """\
def reserve(level: int, units: int) -> int:
    return level - units
""",
    },
    "restock": {
        "purpose": "Adds received units to a product's stock level.",
        "api": "- `restock(level, units) -> int`",
        "assertions": "- receiving units raises the level by that many",
        "tests": """\
import importlib
import time


def test_restocking_raises_the_level():
    time.sleep(1.5)
    restock = importlib.import_module("inventory.restock")
    assert restock.restock(level=1, units=4) == 5
""",
        "code": """\
def restock(level: int, units: int) -> int:
    return level + units
""",
    },
    "pricing": {
        "purpose": "Totals the price of a number of units.",
        "api": "- `total(units, unit_cents) -> int`",
        "assertions": "- ten units or more cost ten percent less",
        "tests": """\
import importlib
import time


def test_bulk_discount_from_ten_units():
    time.sleep(1.5)
    pricing = importlib.import_module("inventory.pricing")
    assert pricing.total(units=2, unit_cents=100) == 200
    assert pricing.total(units=10, unit_cents=100) == 900
""",
        "code": """\
def total(units: int, unit_cents: int) -> int:
    gross = units * unit_cents
    return gross * 9 // 10 if units >= 10 else gross
""",
    },
}

MODULES = sorted(f"{CONTEXT}.{name}" for name in COMPONENTS)
CODE_FILES = sorted(f"src/{CONTEXT}/{name}.py" for name in COMPONENTS)
FIXED = "reservations"
"""The component whose first implementation fails its tests (one fix round)."""


def script() -> dict[str, object]:
    """The scripted backend's recorded edits (replayed, and labelled so in results)."""
    entries: list[dict[str, object]] = [
        {
            "match": {
                "session_type": "ComponentCoding",
                "step": "GenerateImplementation",
                "component": f"{CONTEXT}.{name}",
            },
            "edits": [{"path": f"src/{CONTEXT}/{name}.py", "write": spec["code"]}],
            "reply": f"Implemented {CONTEXT}.{name}.",
        }
        for name, spec in COMPONENTS.items()
    ]
    entries.append(
        {
            "match": {
                "session_type": "ComponentCoding",
                "step": "FixTestFailures",
                "component": f"{CONTEXT}.{FIXED}",
            },
            "edits": [
                {
                    "path": f"src/{CONTEXT}/{FIXED}.py",
                    "replace": {
                        "old": "    return level - units",
                        "new": (
                            "    if units > level:\n"
                            '        raise ValueError("out of stock")\n'
                            "    return level - units"
                        ),
                    },
                }
            ],
            "reply": "Added the stock check.",
        }
    )
    return {"entries": entries}


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo``; its output."""
    done = subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    )
    return done.stdout


def create(root: Path) -> tuple[Path, Path]:
    """Write the repository at ``root`` and the script beside it; (repo, script file)."""
    repo = root / "shop"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "Test Person")
    git(repo, "config", "user.email", "test@example.invalid")
    design = repo / "docs" / "design"
    (design / CONTEXT).mkdir(parents=True)
    (repo / "tests" / CONTEXT).mkdir(parents=True)
    (repo / "src" / CONTEXT).mkdir(parents=True)
    (repo / "src" / CONTEXT / "__init__.py").write_text("")
    (repo / ".gitignore").write_text("__pycache__/\n*.pyc\n.pytest_cache/\n")
    (design / f"{CONTEXT}.md").write_text(CONTEXT_DESIGN)
    for name, spec in COMPONENTS.items():
        module = f"{CONTEXT}.{name}"
        (design / CONTEXT / f"{name}.md").write_text(
            COMPONENT_DESIGN.format(
                module=module,
                purpose=spec["purpose"],
                api=spec["api"],
                assertions=spec["assertions"],
            )
        )
        (repo / "tests" / CONTEXT / f"{name}_test.py").write_text(spec["tests"])
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "inventory: designs and tests first")
    script_file = root / "script.json"
    script_file.write_text(json.dumps(script()))
    return repo, script_file
