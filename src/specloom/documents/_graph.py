"""The dependency graph of a context's components.

A component's ``dependencies`` row names modules. Those that are components
of the same context are the edges of the context's graph: a child session
for a component starts only when the children of its dependencies are
complete, from a base holding their work. The graph must be a DAG.

Which names belong to the context, and which to another one, is decided by
the **namespace rule**:

- The context's *namespace* is the longest dotted prefix shared by the
  parent modules of all its components (``Inventory`` for
  ``Inventory.Stock`` and ``Inventory.Warehouses``; ``Ledger`` for
  ``Ledger.Accounts`` and ``Ledger.Posting.Rules``). Components spread over
  unrelated top-level modules have no namespace.
- A dependency equal to a component's module name is an edge.
- A dependency inside the namespace (the namespace itself, or anything
  starting with ``<namespace>.``; compared case-insensitively) that is not
  a component is an error: it names a component that does not exist (a
  typo, a component dropped from the list, or the context module itself,
  which its own components cannot depend on).
- Any other dependency looks like a module of another context
  (``Accounts.Users`` from ``Inventory``) and is not an edge; whether that
  context offers it is for the design review to judge, not for this graph.

Everything here is pure and never raises on a component list that
:func:`graph_problems` accepts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from specloom.workflow import ComponentView

MAX_CYCLES_NAMED = 5
"""Cycles named at most; one is enough to act on, a few show the pattern."""


def context_namespace(modules: Sequence[str]) -> str:
    """The longest dotted prefix shared by the parents of ``modules`` ("" if none)."""
    parents = [module.split(".")[:-1] for module in modules]
    if not parents:
        return ""
    shared = parents[0]
    for parts in parents[1:]:
        length = 0
        for mine, theirs in zip(shared, parts, strict=False):
            if mine != theirs:
                break
            length += 1
        shared = shared[:length]
    return ".".join(shared)


def _inside(name: str, namespace: str) -> bool:
    if not namespace:
        return False
    folded, space = name.casefold(), namespace.casefold()
    return folded == space or folded.startswith(space + ".")


@dataclass(frozen=True)
class DependencyGraph:
    """A valid context's components in dependency order, with their dependencies."""

    namespace: str
    """The context's namespace (see the module docstring); "" when there is none."""
    order: tuple[str, ...]
    """Every component's module name, each after all of its dependencies; among
    components free to go at the same point, the one listed first in the
    design goes first."""
    direct: Mapping[str, tuple[str, ...]]
    """Each component's dependencies on components of the context, as declared
    (other contexts' modules left out)."""
    transitive: Mapping[str, tuple[str, ...]]
    """Each component's dependencies and theirs, all the way down, in :attr:`order`."""

    def depth(self, module: str) -> int:
        """Components on the longest dependency chain ending at ``module`` (1: none)."""
        return self._depths()[module]

    def longest_chain(self) -> int:
        """Components on the graph's longest dependency chain (0 for no components)."""
        return max(self._depths().values(), default=0)

    def _depths(self) -> dict[str, int]:
        depths: dict[str, int] = {}
        for module in self.order:
            depths[module] = 1 + max((depths[d] for d in self.direct[module]), default=0)
        return depths


class DependencyError(ValueError):
    """The components' dependencies do not form a usable graph (the message says why)."""


def graph_problems(components: Sequence[ComponentView]) -> list[str]:
    """What is wrong with the components' dependencies, each problem naming its place.

    Empty when :func:`dependency_graph` will accept the components.
    """
    modules = [c.module_name for c in components]
    known = set(modules)
    folded = {module.casefold(): module for module in modules}
    namespace = context_namespace(modules)
    problems: list[str] = []
    for component in components:
        label = f"Components.{component.module_name}"
        for name in component.dependencies:
            if name == component.module_name:
                problems.append(
                    f"{label}: depends on itself; remove '{name}' from its dependencies"
                )
            elif name in known or not _inside(name, namespace):
                continue
            elif name.casefold() in folded:
                problems.append(
                    f"{label}: dependency '{name}' is not a component of this context; "
                    f"did you mean '{folded[name.casefold()]}'?"
                )
            elif name.casefold() == namespace.casefold():
                problems.append(
                    f"{label}: dependency '{name}' is the context itself; name the components "
                    "of it that this one uses"
                )
            else:
                problems.append(
                    f"{label}: dependency '{name}' names no component of this context "
                    f"(its components are {_listed(modules)}); add the component, or fix "
                    "the name"
                )
    if problems:
        return problems
    edges = _edges(components, known)
    for cycle in _cycles(modules, edges)[:MAX_CYCLES_NAMED]:
        problems.append(
            "Components: dependency cycle "
            + " -> ".join([*cycle, cycle[0]])
            + "; a component cannot depend on itself through others, so break the cycle "
            "(move what both need into a component of its own)"
        )
    return problems


def dependency_graph(components: Sequence[ComponentView]) -> DependencyGraph:
    """The components' graph (:class:`DependencyError` naming every problem if invalid)."""
    problems = graph_problems(components)
    if problems:
        raise DependencyError("; ".join(problems))
    modules = [c.module_name for c in components]
    edges = _edges(components, set(modules))
    order = _topological(modules, edges)
    position = {module: index for index, module in enumerate(order)}
    transitive: dict[str, tuple[str, ...]] = {}
    for module in order:
        # Dependencies come first in `order`, so theirs are known already.
        closure = set(edges[module])
        for dependency in edges[module]:
            closure.update(transitive[dependency])
        transitive[module] = tuple(sorted(closure, key=position.__getitem__))
    return DependencyGraph(
        namespace=context_namespace(modules),
        order=tuple(order),
        direct={module: tuple(edges[module]) for module in modules},
        transitive=transitive,
    )


def _listed(modules: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(modules[:limit])
    return shown + (f" and {len(modules) - limit} more" if len(modules) > limit else "")


def _edges(components: Sequence[ComponentView], known: set[str]) -> dict[str, list[str]]:
    """Each component's dependencies on other components, declared order, no repeats."""
    edges: dict[str, list[str]] = {}
    for component in components:
        mine: list[str] = []
        for name in component.dependencies:
            if name in known and name != component.module_name and name not in mine:
                mine.append(name)
        edges[component.module_name] = mine
    return edges


def _topological(modules: Sequence[str], edges: Mapping[str, Sequence[str]]) -> list[str]:
    """Kahn's algorithm, always taking the first ready component in document order."""
    waiting = {module: len(edges[module]) for module in modules}
    dependents: dict[str, list[str]] = {module: [] for module in modules}
    for module in modules:
        for dependency in edges[module]:
            dependents[dependency].append(module)
    order: list[str] = []
    ready = [module for module in modules if waiting[module] == 0]
    index_of = {module: index for index, module in enumerate(modules)}
    while ready:
        ready.sort(key=index_of.__getitem__)
        module = ready.pop(0)
        order.append(module)
        for dependent in dependents[module]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                ready.append(dependent)
    return order


def _cycles(modules: Sequence[str], edges: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Elementary cycles found by a depth-first walk, each named once, from its first member.

    Not every cycle of a tangled graph (there can be exponentially many):
    one per back edge the walk meets, which names every strongly connected
    knot at least once.
    """
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []
    found: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()
    index_of = {module: index for index, module in enumerate(modules)}

    def visit(start: str) -> None:
        # Iterative, so a long chain cannot exhaust Python's recursion limit.
        stack: list[tuple[str, int]] = [(start, 0)]
        state[start] = 1
        path.append(start)
        while stack:
            module, next_edge = stack[-1]
            targets = edges[module]
            if next_edge == len(targets):
                stack.pop()
                path.pop()
                state[module] = 2
                continue
            stack[-1] = (module, next_edge + 1)
            target = targets[next_edge]
            if state.get(target) == 1:
                cycle = path[path.index(target) :]
                first = min(range(len(cycle)), key=lambda i: index_of[cycle[i]])
                rotated = tuple(cycle[first:] + cycle[:first])
                if rotated not in seen:
                    seen.add(rotated)
                    found.append(list(rotated))
            elif target not in state:
                state[target] = 1
                path.append(target)
                stack.append((target, 0))

    for module in modules:
        if module not in state:
            visit(module)
    return found
