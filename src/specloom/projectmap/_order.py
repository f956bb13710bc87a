"""Contexts in dependency order, for the judge and the planner alike."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

T = TypeVar("T")


def dependencies_first(
    by_key: Mapping[str, T], depends_on: Callable[[T], Iterable[str]]
) -> list[T]:
    """``by_key``'s values, each after those it depends on (keys are case-folded names).

    Names that are no key are ignored; the members of a cycle keep their
    listed order (the design validator reports cycles, the map must still draw).
    """
    order: list[T] = []
    placed: set[str] = set()
    visiting: set[str] = set()

    def visit(key: str) -> None:
        if key in placed or key in visiting:
            return
        visiting.add(key)
        for name in depends_on(by_key[key]):
            if name.casefold() in by_key:
                visit(name.casefold())
        visiting.discard(key)
        placed.add(key)
        order.append(by_key[key])

    for key in by_key:
        visit(key)
    return order
