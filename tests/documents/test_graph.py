"""The components' dependency graph: cycles, unknown names, order and closure."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from specloom.documents import (
    DependencyError,
    context_namespace,
    dependency_graph,
    graph_problems,
    validate_design,
)
from specloom.workflow import ComponentView
from tests.documents.samples import VALID_CONTEXT, context_with_components


def part(module: str, *dependencies: str) -> ComponentView:
    return ComponentView(
        name=module.rsplit(".", 1)[-1],
        module_name=module,
        type="module",
        dependencies=dependencies,
    )


def block(module: str, dependencies: str = "") -> str:
    row = f"| dependencies | {dependencies} |\n" if dependencies else ""
    table = f"| field | value |\n|---|---|\n| type | module |\n{row}"
    return f"### {module}\n\n{table}\nDoes a thing.\n"


# -- the namespace rule ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("modules", "namespace"),
    [
        (["Inventory.Stock", "Inventory.Warehouses"], "Inventory"),
        (["Inventory.Stock"], "Inventory"),
        (["Ledger.Accounts", "Ledger.Posting.Rules"], "Ledger"),
        (["A.B.C", "A.B.D", "A.B.E.F"], "A.B"),
        (["Inventory.Stock", "Catalog.Products"], ""),
        ([], ""),
    ],
)
def test_the_namespace_is_the_shared_parent(modules: list[str], namespace: str) -> None:
    assert context_namespace(modules) == namespace


def test_modules_of_other_contexts_are_not_edges() -> None:
    components = [part("Inventory.Stock"), part("Inventory.Warehouses", "Accounts.Users")]
    assert graph_problems(components) == []
    graph = dependency_graph(components)
    assert graph.direct["Inventory.Warehouses"] == ()


# -- refused graphs --------------------------------------------------------------------------


def test_a_cycle_is_named_in_full() -> None:
    components = [
        part("Ledger.A", "Ledger.C"),
        part("Ledger.B", "Ledger.A"),
        part("Ledger.C", "Ledger.B"),
        part("Ledger.D"),
    ]
    assert graph_problems(components) == [
        "Components: dependency cycle Ledger.A -> Ledger.C -> Ledger.B -> Ledger.A; a "
        "component cannot depend on itself through others, so break the cycle (move what "
        "both need into a component of its own)"
    ]
    with pytest.raises(DependencyError, match=r"Ledger\.A -> Ledger\.C -> Ledger\.B -> Ledger\.A"):
        dependency_graph(components)


def test_two_separate_cycles_are_both_named() -> None:
    components = [
        part("Ledger.A", "Ledger.B"),
        part("Ledger.B", "Ledger.A"),
        part("Ledger.C", "Ledger.D"),
        part("Ledger.D", "Ledger.C"),
    ]
    problems = graph_problems(components)
    assert len(problems) == 2
    assert "Ledger.A -> Ledger.B -> Ledger.A" in problems[0]
    assert "Ledger.C -> Ledger.D -> Ledger.C" in problems[1]


def test_a_self_dependency_is_refused() -> None:
    assert graph_problems([part("Ledger.A", "Ledger.A"), part("Ledger.B")]) == [
        "Components.Ledger.A: depends on itself; remove 'Ledger.A' from its dependencies"
    ]


@pytest.mark.parametrize(
    ("dependency", "problem"),
    [
        (
            "Ledger.Missing",
            "Components.Ledger.B: dependency 'Ledger.Missing' names no component of this "
            "context (its components are Ledger.A, Ledger.B); add the component, or fix the name",
        ),
        (
            "ledger.a",
            "Components.Ledger.B: dependency 'ledger.a' is not a component of this context; "
            "did you mean 'Ledger.A'?",
        ),
        (
            "Ledger",
            "Components.Ledger.B: dependency 'Ledger' is the context itself; name the "
            "components of it that this one uses",
        ),
    ],
)
def test_a_name_inside_the_context_must_be_a_component(dependency: str, problem: str) -> None:
    assert graph_problems([part("Ledger.A"), part("Ledger.B", dependency)]) == [problem]


def test_validation_refuses_a_cycle_and_a_missing_component_naming_them() -> None:
    cycle = block("Inventory.Stock", "Inventory.Warehouses") + block(
        "Inventory.Warehouses", "Inventory.Stock"
    )
    report = validate_design(context_with_components(cycle), "context")
    assert report.components == ()
    assert report.errors == (
        "Components: dependency cycle Inventory.Stock -> Inventory.Warehouses -> "
        "Inventory.Stock; a component cannot depend on itself through others, so break the "
        "cycle (move what both need into a component of its own)",
    )
    missing = block("Inventory.Stock") + block("Inventory.Warehouses", "Inventory.Stocks")
    assert validate_design(context_with_components(missing), "context").errors == (
        "Components.Inventory.Warehouses: dependency 'Inventory.Stocks' names no component of "
        "this context (its components are Inventory.Stock, Inventory.Warehouses); add the "
        "component, or fix the name",
    )
    assert validate_design(VALID_CONTEXT, "context").ok


def test_a_broken_entry_is_reported_before_the_graph() -> None:
    # Inventory.Warehouses is listed but broken; depending on it is no unknown name.
    broken = block("Inventory.Stock", "Inventory.Warehouses") + (
        "### Inventory.Warehouses\n\nNo table.\n"
    )
    errors = validate_design(context_with_components(broken), "context").errors
    assert errors == (
        "Components.Inventory.Warehouses: missing its '| field | value |' table with a 'type' "
        "row (type is one of context, schema, repository, genserver, controller, liveview, "
        "task, module, other)",
    )


# -- the graph the spawn uses -------------------------------------------------------------------


def twelve() -> list[ComponentView]:
    """A chain a -> b -> c, a diamond d -> (e, f) -> g, and six independent parts."""
    return [
        part("ledger.c", "ledger.b"),
        part("ledger.b", "ledger.a"),
        part("ledger.a"),
        part("ledger.g", "ledger.e", "ledger.f", "Accounts.Users"),
        part("ledger.e", "ledger.d"),
        part("ledger.f", "ledger.d"),
        part("ledger.d"),
        *(part(f"ledger.i{n}") for n in range(5)),
    ]


def test_order_puts_dependencies_first_and_keeps_document_order_otherwise() -> None:
    graph = dependency_graph(twelve())
    assert graph.order == (
        "ledger.a",
        "ledger.b",
        "ledger.c",
        "ledger.d",
        "ledger.e",
        "ledger.f",
        "ledger.g",
        "ledger.i0",
        "ledger.i1",
        "ledger.i2",
        "ledger.i3",
        "ledger.i4",
    )
    assert graph.namespace == "ledger"
    assert graph.direct["ledger.g"] == ("ledger.e", "ledger.f")
    assert graph.transitive["ledger.c"] == ("ledger.a", "ledger.b")
    assert graph.transitive["ledger.g"] == ("ledger.d", "ledger.e", "ledger.f")
    assert graph.transitive["ledger.i3"] == ()
    assert graph.depth("ledger.c") == 3
    assert graph.depth("ledger.g") == 3
    assert graph.depth("ledger.i0") == 1
    assert graph.longest_chain() == 3


def test_a_long_chain_needs_no_recursion() -> None:
    chain = [part("big.c0")] + [part(f"big.c{n}", f"big.c{n - 1}") for n in range(1, 5000)]
    graph = dependency_graph(list(reversed(chain)))
    assert graph.order[0] == "big.c0"
    assert graph.order[-1] == "big.c4999"
    assert graph.longest_chain() == 5000
    cyclic = [part("big.c0", "big.c4999"), *chain[1:]]
    (problem,) = graph_problems(cyclic)
    assert problem.startswith("Components: dependency cycle big.c0 -> big.c4999 -> big.c4998")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(0, 9), max_size=4), min_size=1, max_size=10))
def test_any_graph_is_either_refused_or_ordered_with_closed_dependencies(
    edges: list[list[int]],
) -> None:
    components = [
        part(f"g.m{i}", *(f"g.m{j}" for j in targets if j < len(edges)))
        for i, targets in enumerate(edges)
    ]
    problems = graph_problems(components)
    if problems:
        with pytest.raises(DependencyError):
            dependency_graph(components)
        return
    graph = dependency_graph(components)
    position = {module: index for index, module in enumerate(graph.order)}
    assert sorted(graph.order) == sorted(c.module_name for c in components)
    for component in components:
        for dependency in graph.direct[component.module_name]:
            assert position[dependency] < position[component.module_name]
            assert set(graph.transitive[dependency]) <= set(graph.transitive[component.module_name])
            assert dependency in graph.transitive[component.module_name]
