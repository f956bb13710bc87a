"""Typed session state: frozen records read from and written to a session's Struct.

A session's state is stored as a ``google.protobuf.Struct``: plain JSON. A
workflow family describes what it keeps there as one frozen dataclass (its
*state record*); steps read it with :func:`decode` and say what changed with
:func:`changes`. The conversion lives here once, so steps never defend dict
values with ``isinstance``, and a value of the wrong shape is one clear error
naming the field (:class:`StateError`) instead of a ``KeyError`` three calls
later.

Field types a record may use: ``str``, ``int``, ``float``, ``bool``,
``X | None``, ``tuple[X, ...]``, another frozen dataclass, a class with
``to_dict()`` / ``from_dict()`` (``ComponentView``, ``Rule``), and raw JSON
(``JsonObject``, ``JsonValue``). Every field has a default: a key that is not
in the state reads as the default, and keys no field names are ignored (the
engine and other steps may keep their own).
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

from specloom.errors import InvalidArgument
from specloom.protoconv import JsonObject, JsonValue

R = TypeVar("R")

__all__ = ["StateError", "changes", "decode", "encode"]


class StateError(InvalidArgument):
    """A stored value does not have the shape its record declares."""


class _Plain(Protocol):
    def to_dict(self) -> Mapping[str, Any]: ...


def _hints(cls: type) -> dict[str, Any]:
    """Field annotations, each evaluated in the module of the class that declares it.

    Not ``typing.get_type_hints``: it would expand the JSON aliases into their
    recursive unions, and they are recognised by identity.
    """
    known = {"JsonValue": JsonValue, "JsonObject": JsonObject}
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        module = vars(sys.modules[klass.__module__])
        for name, annotation in vars(klass).get("__annotations__", {}).items():
            hints[name] = (
                eval(annotation, dict(module), known)  # noqa: S307 - our own annotations
                if isinstance(annotation, str)
                else annotation
            )
    return hints


_FIELDS: dict[type, tuple[tuple[str, Any, Any], ...]] = {}


def _fields(cls: type) -> tuple[tuple[str, Any, Any], ...]:
    """(name, type, default) of a record's fields, types resolved once per class."""
    known = _FIELDS.get(cls)
    if known is not None:
        return known
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__name__} is not a dataclass")
    hints = _hints(cls)
    found = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        found.append((f.name, hints[f.name], default))
    _FIELDS[cls] = tuple(found)
    return _FIELDS[cls]


def _is_json(kind: Any) -> bool:
    # JsonValue / JsonObject are aliases of unions and dicts; recognised by
    # identity with the aliases rather than by structure.
    return kind is JsonValue or kind is JsonObject


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _read(kind: Any, value: JsonValue, where: str) -> Any:
    """``value`` (from a Struct) as ``kind``; :class:`StateError` naming ``where``."""
    if _is_json(kind):
        return value
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        if value is None:
            return None
        if len(options) != 1:
            raise TypeError(f"{where}: only `X | None` unions are supported")
        return _read(options[0], value, where)
    if origin is tuple:
        item = typing.get_args(kind)[0]
        if not isinstance(value, list):
            raise StateError(f"{where} must be a list, found {_shown(value)}")
        return tuple(_read(item, v, f"{where}[{n}]") for n, v in enumerate(value))
    if kind is bool:
        if not isinstance(value, bool):
            raise StateError(f"{where} must be true or false, found {_shown(value)}")
        return value
    if kind is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise StateError(f"{where} must be an integer, found {_shown(value)}")
        return value
    if kind is float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise StateError(f"{where} must be a number, found {_shown(value)}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise StateError(f"{where} must be a string, found {_shown(value)}")
        return value
    if isinstance(kind, type):
        if not isinstance(value, Mapping):
            raise StateError(f"{where} must be an object, found {_shown(value)}")
        reader = getattr(kind, "from_dict", None)
        if reader is not None:
            return reader(value)
        return _record(kind, value, where)
    raise TypeError(f"{where}: unsupported field type {kind!r}")


def _record(cls: type[R], data: Mapping[str, JsonValue], where: str) -> R:
    values: dict[str, Any] = {}
    for name, kind, default in _fields(cls):
        if name in data and (data[name] is not None or default is None):
            values[name] = _read(kind, data[name], f"{where}.{name}")
        elif default is dataclasses.MISSING:
            raise StateError(f"{where}.{name} is missing")
    return cls(**values)


def decode(cls: type[R], data: Mapping[str, JsonValue], *, where: str = "state") -> R:
    """Read a ``cls`` record from a session's state (or any JSON object).

    A key that is absent (or null) reads as the field's default. Raises
    :class:`StateError` naming the first field whose value has the wrong shape.
    """
    return _record(cls, data, where)


def _write(value: Any) -> JsonValue:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, tuple | list):
        return [_write(v) for v in value]
    if hasattr(value, "to_dict"):
        plain: _Plain = value
        return dict(plain.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return encode(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"a session state cannot hold a {type(value).__name__}")


def encode(record: object) -> JsonObject:
    """Every field of ``record`` in its stored (JSON) form."""
    return {name: _write(getattr(record, name)) for name, _, _ in _fields(type(record))}


def changes(before: R, after: R) -> dict[str, JsonValue | None]:
    """The state keys to write to turn ``before`` into ``after`` (None deletes a key).

    Steps build ``after`` with :func:`dataclasses.replace` (which mypy checks
    field by field) and hand this to a :class:`~specloom.workflow.Judgement`
    or :class:`~specloom.workflow.CommandPlan`.
    """
    if type(before) is not type(after):
        raise TypeError(f"changes between a {type(before).__name__} and a {type(after).__name__}")
    delta: dict[str, JsonValue | None] = {}
    for name, _, _ in _fields(type(after)):
        old, new = getattr(before, name), getattr(after, name)
        if old != new:
            delta[name] = _write(new)
    return delta
