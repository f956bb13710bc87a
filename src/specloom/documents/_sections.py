"""Checks on what a section holds, beyond being there (edition 2 of the rules).

The Test Assertions of a design are the list its tests are written from,
one test per bullet, so they must be a list; a schema's Fields are a table
with a row per field, as the original system's schema designs had. Each
error names the section (and the field) and says what to write instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from specloom.documents._markdown import Document, Section, Table, plain
from specloom.documents._spec import FIELD_COLUMNS
from specloom.documents._types import section_title

_COLUMNS = ", ".join(section_title(c) for c in (*FIELD_COLUMNS, "description", "constraints"))


def _tables(section: Section) -> Iterable[Table]:
    yield from section.body.tables
    for sub in section.subsections:
        yield from sub.body.tables


def _items(section: Section) -> list[str]:
    return [*section.body.items, *(i for sub in section.subsections for i in sub.body.items)]


def assertion_problems(section: Section) -> list[str]:
    """Test Assertions must list their cases as bullets (the tests are one per bullet)."""
    if section.empty or _items(section):
        return []
    return [
        "Test Assertions: list each test case as a bullet ('- returns an error when the "
        "stock is negative'); the tests are written from these bullets, one test each"
    ]


def _header(table: Table) -> list[str]:
    return [plain(cell).lower() for cell in table.rows[0]] if table.rows else []


def field_problems(section: Section) -> list[str]:
    """A schema's Fields: a table with Field, Type and Required columns, a row per field."""
    if section.empty:
        return []
    tables = list(_tables(section))
    if not tables:
        return [
            f"Fields: no table; list the fields in a table with the columns {_COLUMNS}, "
            "one row per field"
        ]
    table = next((t for t in tables if "field" in _header(t)), tables[0])
    header = _header(table)
    missing = [c for c in FIELD_COLUMNS if c not in header]
    if missing:
        names = ", ".join(f"'{section_title(c)}'" for c in missing)
        return [
            f"Fields: the table (line {table.line}) has no {names} column; "
            f"its columns are {_COLUMNS}"
        ]
    rows = table.rows[1:]
    if not rows:
        return ["Fields: the table lists no fields; add one row per field"]
    at = {column: header.index(column) for column in FIELD_COLUMNS}
    errors: list[str] = []
    seen: set[str] = set()
    for number, row in enumerate(rows, start=1):

        def cell(column: str, row: tuple[str, ...] = row) -> str:
            index = at[column]
            return plain(row[index]) if index < len(row) else ""

        name = cell("field")
        if not name:
            errors.append(f"Fields: row {number} of the table has no field name")
            continue
        if name.lower() in seen:
            errors.append(f"Fields.{name}: listed more than once; describe each field once")
            continue
        seen.add(name.lower())
        if not cell("type"):
            errors.append(f"Fields.{name}: no type; give the field's type")
        if not cell("required"):
            errors.append(f"Fields.{name}: say whether it is required (yes or no)")
    return errors


def content_problems(document: Document, sections: Iterable[str]) -> list[str]:
    """Problems with what the ``sections`` of a type's rules hold, where present."""
    checks: dict[str, Callable[[Section], list[str]]] = {
        "test assertions": assertion_problems,
        "fields": field_problems,
    }
    errors: list[str] = []
    for key in sections:
        check = checks.get(key)
        if check is not None:
            errors += [e for section in document.find(key)[:1] for e in check(section)]
    return errors
