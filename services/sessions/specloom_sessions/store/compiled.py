"""Hot-path statements compiled once, for the driver's own connection.

The batched step writes (:mod:`.pipelined` on PostgreSQL, :mod:`.on_thread`
on SQLite) run the very statements a single step builds (:mod:`.advance`),
but hand them to the driver as SQL text: the SQL toolkit's per-execute
work (cache keys, parameter construction, result wrapping) was the largest
share of the Sessions process's CPU per step. Statements are built once per
shape and kept by their own caches; they hash by identity, so each compiles
once per process and dialect.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert
from sqlalchemy.engine import Dialect

from specloom_sessions.store._common import I

Processor = Callable[[Any], Any]


@dataclass(frozen=True)
class Compiled:
    """One statement as its dialect's SQL text, with what binding it takes."""

    sql: str
    constants: Mapping[str, Any]
    """Values the statement binds itself (``.values(status=3)``), by name."""
    positions: tuple[str, ...] | None
    """Parameter names in order, for a positional (``?``) dialect; None if named."""
    binds: Mapping[str, Processor]
    """Each parameter's type conversion on the way in, where it has one."""
    results: Mapping[str, Processor]
    """Each RETURNING column's conversion on the way out, where it has one."""

    def positional(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        """``params`` (and the constants) converted and in the statement's order."""
        assert self.positions is not None
        binds, constants = self.binds, self.constants
        values = []
        for name in self.positions:
            value = params[name] if name in params else constants[name]
            process = binds.get(name)
            values.append(value if process is None or value is None else process(value))
        return tuple(values)

    def row(self, names: list[str], values: tuple[Any, ...]) -> dict[str, Any]:
        """A RETURNING row as the SQL toolkit would hand it back, by column name."""
        results = self.results
        row: dict[str, Any] = {}
        for name, value in zip(names, values, strict=True):
            process = results.get(name)
            row[name] = value if process is None or value is None else process(value)
        return row


_compiled: dict[tuple[Any, str], Compiled] = {}
_inserts: dict[tuple[str, ...], Any] = {}


def compile_once(statement: Any, dialect: Dialect) -> Compiled:
    """``statement`` for ``dialect``, compiled the first time it is asked for."""
    key = (statement, dialect.name)
    found = _compiled.get(key)
    if found is None:
        compiled = statement.compile(dialect=dialect)
        binds: dict[str, Processor] = {}
        constants: dict[str, Any] = {}
        for bind, name in compiled.bind_names.items():
            if not bind.required:
                constants[name] = bind.effective_value
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                binds[name] = process
        results: dict[str, Processor] = {}
        for column in getattr(statement, "exported_columns", ()):
            process = column.type.dialect_impl(dialect).result_processor(dialect, None)
            if process is not None:
                results[column.name] = process
        positions = tuple(compiled.positiontup) if compiled.positional else None
        found = Compiled(compiled.string, constants, positions, binds, results)
        _compiled[key] = found
    return found


def insert_for(columns: tuple[str, ...]) -> Any:
    """``INSERT INTO interactions`` binding exactly ``columns``."""
    statement = _inserts.get(columns)
    if statement is None:
        statement = insert(I).values({name: bindparam(name) for name in columns})
        _inserts[columns] = statement
    return statement
