"""The demo's recorded agent edits, replayed by the scripted backend.

Nothing here comes from a model at run time: these are edits written down
once and replayed, so the demo runs anywhere without a key. Two of them are
deliberately imperfect, so the demo shows the loops working: the first
context design lacks a required section (ValidateDesign fails, ReviseDesign
adds it), and the first ``inventory.stock`` implementation forgets to check
the quantity on hand (RunTests fails, FixTestFailures fixes it in the same
conversation).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from specloom.demo.sample import CONTEXT

TEST_ASSERTIONS = """\
## Test Assertions
- `Stock().quantity(sku)` is 0 for an unknown sku; adding then removing leaves the difference.
- Removing more than is on hand raises `OutOfStock` and changes nothing.
- `price_for(10, Decimal("1.00"))` is `Decimal("9.00")`; prices round half-up to cents.
- `needs_reorder` is true strictly below the threshold; `reorder_quantity` is never negative.
- `reorder_for(stock, sku, threshold, target)` orders up to the target from a `Stock`'s level.
"""

CONTEXT_DESIGN_FIRST = """\
# Inventory

## Purpose
Keeps track of what is on the shelves, what it costs in bulk, and when to order more,
for a small shop that sells by stock-keeping unit (sku).

## Entity Ownership
- **Stock levels**: quantities per sku, owned by `inventory.stock`.
- **Prices**: computed on demand by `inventory.pricing`; nothing is stored.
- **Reorder policy**: thresholds and targets evaluated by `inventory.reorder`.

## Access Patterns
- Callers hold their own `Stock` instance; nothing is shared between processes.
- Pricing and reordering are pure functions of their arguments.

## Public API
- `Stock.add(sku, quantity)`, `Stock.remove(sku, quantity)`, `Stock.quantity(sku)`
- `price_for(quantity, unit_price) -> Decimal`
- `needs_reorder(level, threshold) -> bool`, `reorder_quantity(level, target) -> int`,
  `reorder_for(stock, sku, threshold, target) -> int`

## State Management Strategy
State lives in memory inside `Stock`; pricing and reordering keep no state.

## Execution Flow
1. A sale checks the price with `price_for`, then calls `Stock.remove`.
2. After each sale the caller asks `reorder_for` with its `Stock`, which reads the level and
   says how many to order (`needs_reorder`, then `reorder_quantity`).

## Dependencies
- None

## Components

### inventory.stock

| field | value |
| ----- | ----- |
| type  | module |

Quantities per sku with add and remove; removing more than is on hand raises OutOfStock.

### inventory.pricing

| field | value |
| ----- | ----- |
| type  | module |

Prices a quantity of one sku: ten or more items get ten percent off, rounded to cents.

### inventory.reorder

| field | value |
| ----- | ----- |
| type  | module |
| dependencies | inventory.stock |

Decides when a sku needs reordering and how many items bring it back to its target level,
reading the level from an `inventory.stock` `Stock`.

## Test Strategies
Plain pytest unit tests per component, no fixtures beyond fresh objects; the tests under
`tests/inventory/` were written before the code and are the acceptance criteria.
"""

COMPONENT_DESIGNS = {
    "inventory.stock": (
        "Quantities per sku. `add` and `remove` change them; `remove` refuses to go below zero.",
        "- `Stock.add(sku: str, quantity: int) -> None` (ValueError when negative)\n"
        "- `Stock.remove(sku: str, quantity: int) -> None` (OutOfStock when short)\n"
        "- `Stock.quantity(sku: str) -> int`",
        "`remove` checks the level first and raises `OutOfStock` without changing it.",
    ),
    "inventory.pricing": (
        "Prices a quantity of one sku, with a bulk discount.",
        "- `price_for(quantity: int, unit_price: Decimal) -> Decimal`",
        "Multiply, take ten percent off from ten items, round half-up to cents.",
    ),
    "inventory.reorder": (
        "Reorder policy: when to order, and how many. Builds on `inventory.stock`.",
        "- `needs_reorder(level: int, threshold: int) -> bool`\n"
        "- `reorder_quantity(level: int, target: int) -> int`\n"
        "- `reorder_for(stock: Stock, sku: str, threshold: int, target: int) -> int`",
        "Strictly below the threshold means reorder; the quantity fills up to the target. "
        "`reorder_for` reads the level from the `Stock` and applies both.",
    ),
}

IMPLEMENTATIONS = {
    "inventory.stock": '''\
"""Quantities per sku."""


class OutOfStock(Exception):
    """Removing more than is on hand."""


class Stock:
    def __init__(self) -> None:
        self._levels: dict[str, int] = {}

    def add(self, sku: str, quantity: int) -> None:
        if quantity < 0:
            raise ValueError("quantity must not be negative")
        self._levels[sku] = self._levels.get(sku, 0) + quantity

    def remove(self, sku: str, quantity: int) -> None:
        self._levels[sku] = self._levels.get(sku, 0) - quantity

    def quantity(self, sku: str) -> int:
        return self._levels.get(sku, 0)
''',
    "inventory.pricing": '''\
"""Bulk pricing."""

from decimal import ROUND_HALF_UP, Decimal

BULK = 10
DISCOUNT = Decimal("0.90")


def price_for(quantity: int, unit_price: Decimal) -> Decimal:
    total = unit_price * quantity
    if quantity >= BULK:
        total *= DISCOUNT
    return total.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
''',
    "inventory.reorder": '''\
"""When to reorder, and how many."""

from inventory.stock import Stock


def needs_reorder(level: int, threshold: int) -> bool:
    return level < threshold


def reorder_quantity(level: int, target: int) -> int:
    return max(0, target - level)


def reorder_for(stock: Stock, sku: str, threshold: int, target: int) -> int:
    level = stock.quantity(sku)
    return reorder_quantity(level, target) if needs_reorder(level, threshold) else 0
''',
}

STOCK_FIX_OLD = """    def remove(self, sku: str, quantity: int) -> None:
        self._levels[sku] = self._levels.get(sku, 0) - quantity
"""
STOCK_FIX_NEW = """    def remove(self, sku: str, quantity: int) -> None:
        on_hand = self._levels.get(sku, 0)
        if quantity > on_hand:
            raise OutOfStock(f"{sku}: {quantity} wanted, {on_hand} on hand")
        self._levels[sku] = on_hand - quantity
"""

REVIEW = """\
# Review of the Inventory component designs

## Consistency
The three designs share one vocabulary (sku, level, quantity) and keep their state where
the context design says: only `inventory.stock` holds state, the other two are pure.

## Dependencies
`inventory.reorder` reads levels through `inventory.stock`'s `Stock`, so it is built once
stock is done, on top of its work; `inventory.pricing` depends on nothing and is built
alongside. Callers combine them (price, then remove, then ask about reordering).

## Integration risks
`OutOfStock` must leave the level unchanged, or a failed sale would corrupt the stock; the
stock tests pin that. Pricing rounds half-up to cents, which matches the shop's tills.
"""


def component_design(module: str) -> str:
    """A valid component design document for ``module``."""
    purpose, api, flow = COMPONENT_DESIGNS[module]
    return (
        f"# {module}\n\n## Purpose\n{purpose}\n\n## Public API\n{api}\n\n"
        f"## Execution Flow\n{flow}\n\n## Test Assertions\n"
        f"- The tests in `tests/{module.replace('.', '/')}_test.py` pass.\n"
    )


def _path(module: str, root: str, suffix: str) -> str:
    return f"{root}/{module.replace('.', '/')}{suffix}"


def entries() -> list[dict[str, Any]]:
    """The script's entries, matched on command metadata (first match wins)."""
    context_path = "docs/design/inventory.md"
    found: list[dict[str, Any]] = [
        {
            "match": {"session_type": "ContextDesign", "step": "GenerateContextDesign"},
            "edits": [{"path": context_path, "write": CONTEXT_DESIGN_FIRST}],
            "reply": f"Wrote the {CONTEXT} context design (without test assertions, by mistake).",
        },
        {
            "match": {"session_type": "ContextDesign", "step": "ReviseDesign"},
            "edits": [
                {
                    "path": context_path,
                    "replace": {
                        "old": "## Test Strategies\n",
                        "new": TEST_ASSERTIONS + "\n## Test Strategies\n",
                    },
                }
            ],
            "reply": "Added the missing Test Assertions section.",
        },
        {
            "match": {"session_type": "ComponentDesignReview", "step": "ExecuteReview"},
            "edits": [{"path": "docs/review/inventory/component_designs.md", "write": REVIEW}],
            "reply": "Reviewed the three component designs.",
        },
        {
            "match": {
                "session_type": "ComponentCoding",
                "step": "FixTestFailures",
                "component": "inventory.stock",
            },
            "edits": [
                {
                    "path": _path("inventory.stock", "src", ".py"),
                    "replace": {"old": STOCK_FIX_OLD, "new": STOCK_FIX_NEW},
                }
            ],
            "reply": "remove() now checks the level first and raises OutOfStock.",
        },
    ]
    for module in COMPONENT_DESIGNS:
        found.append(
            {
                "match": {
                    "session_type": "ComponentDesign",
                    "step": "GenerateComponentDesign",
                    "component": module,
                },
                "edits": [
                    {"path": _path(module, "docs/design", ".md"), "write": component_design(module)}
                ],
                "reply": f"Designed {module}.",
            }
        )
        found.append(
            {
                "match": {
                    "session_type": "ComponentCoding",
                    "step": "GenerateImplementation",
                    "component": module,
                },
                "edits": [{"path": _path(module, "src", ".py"), "write": IMPLEMENTATIONS[module]}],
                "reply": f"Implemented {module}.",
            }
        )
    return found


def write_script(path: Path) -> Path:
    """Write the script file the scripted backend reads."""
    path.write_text(json.dumps({"entries": entries()}, indent=2))
    return path
