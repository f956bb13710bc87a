"""Design documents used across the documents tests."""

from __future__ import annotations

VALID_CONTEXT = """\
# Inventory

## Purpose
Tracks how much of each product is in each warehouse.

## Entity Ownership
- Stock levels
- Warehouses

## Access Patterns
- Every query filters by account and project.

## Public API
- `get_stock(scope, product_id)` returns the stock or `:not_found`.

## State Management Strategy
Rows in PostgreSQL; nothing is cached.

## Execution Flow
1. Load the warehouse.
2. Update the stock in one transaction.

## Dependencies
- **Accounts.Users**: who owns a warehouse
- `Catalog.Products` - the products stocked

## Components

### Inventory.Stock

| field | value |
|-------|-------|
| type  | schema |

The quantity of one product in one warehouse; never negative.

### Inventory.Warehouses

| field | value |
|-------|-------|
| type  | repository |
| dependencies | Inventory.Stock, Accounts.Users |

Queries and writes for warehouses, scoped by account.

## Test Strategies
Unit tests per component with an in-memory database.

## Test Assertions
- stock never goes below zero
- a warehouse of another account is not found
"""

VALID_COMPONENT = """\
# Inventory.Stock

## Purpose
The quantity of one product in one warehouse.

## Public API
- `adjust(stock, delta)` returns the new stock or an error when it would go negative.

## Execution Flow
1. Check the delta.
2. Write the new quantity.

## Test Assertions
- adjusting below zero is refused
"""


def context_with_components(block: str) -> str:
    """VALID_CONTEXT with its Components section replaced by ``block``."""
    start = VALID_CONTEXT.index("## Components")
    end = VALID_CONTEXT.index("## Test Strategies")
    return VALID_CONTEXT[:start] + "## Components\n\n" + block + "\n" + VALID_CONTEXT[end:]


def component(module: str, kind: str | None = "schema", description: str = "Does a thing.") -> str:
    """One component block of a Components section."""
    table = f"| field | value |\n|---|---|\n| type | {kind} |\n" if kind is not None else ""
    return f"### {module}\n\n{table}\n{description}\n"


VALID_SCHEMA = """\
# Inventory.Stock

## Purpose
The quantity of one product in one warehouse, which is never negative.

## Fields

| Field | Type | Required | Description | Constraints |
|-------|------|----------|-------------|-------------|
| product_id | integer | yes | The product counted | references products.id |
| quantity | integer | yes | Units on hand | >= 0, default 0 |

## Test Assertions
- a stock with a negative quantity is invalid
- a stock without a product is invalid
"""
