"""Design validation: specific errors for everything wrong, components for what is right."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from specloom.documents import (
    COMPONENT_TYPES,
    CONTEXT_SECTIONS,
    MAX_DESCRIPTION,
    MAX_ERRORS,
    document_spec,
    folded_name,
    validate_design,
    validate_review,
)
from specloom.workflow import ComponentView
from tests.documents.samples import (
    VALID_COMPONENT,
    VALID_CONTEXT,
    component,
    context_with_components,
)

SEEDS = Path(__file__).resolve().parents[3] / "shared" / "seeds"
TYPES = ", ".join(COMPONENT_TYPES)


def seed(prefix: str) -> bytes:
    (path,) = SEEDS.glob(f"{prefix}_*")
    return path.read_bytes()


# -- the seeds --------------------------------------------------------------------------


def test_seed_000_as_a_context_design_lists_exactly_what_it_lacks() -> None:
    report = validate_design(seed("000"), "context")
    assert not report.ok
    assert report.components == ()
    assert report.errors == (
        "Missing required sections: access patterns, components, test strategies, test assertions",
        "Section 'access patterns' is an H3 (line 20, under 'Scope Integration'); "
        "required sections are H2 headings: '## Access Patterns'",
        "Dependencies: 'Git Utility Module' is not a module name; start the bullet with the "
        "module's name (e.g. '- Accounts.Users: why')",
    )


def test_seed_001_lacks_only_its_test_sections() -> None:
    report = validate_design(seed("001"), "context")
    assert report.errors == ("Missing required sections: test strategies, test assertions",)


def test_seed_001_with_test_sections_is_valid_and_yields_its_components() -> None:
    text = seed("001").decode() + (
        "\n## Test Strategies\nScripted sessions.\n\n## Test Assertions\n- children spawn once\n"
    )
    report = validate_design(text, "context")
    assert report.ok, report.errors
    assert [c.module_name for c in report.components] == [
        "ContextComponentsDesignSessions.Orchestrator",
        "ContextComponentsDesignSessions.Steps.Initialize",
        "ContextComponentsDesignSessions.Steps.SpawnComponentDesignSessions",
        "ContextComponentsDesignSessions.Steps.SpawnReviewSession",
        "ContextComponentsDesignSessions.Steps.Finalize",
    ]
    assert {c.type for c in report.components} == {"other"}
    assert report.components[1].name == "Initialize"
    assert report.components[1].description.startswith("Prepares the development environment")
    assert report.dependencies == ("Sessions", "Components", "Rules", "Agents")


def test_seed_002_is_not_a_component_design_either() -> None:
    report = validate_design(seed("002"), "module")
    assert report.errors == (
        "Missing required sections: purpose, public api, execution flow, test assertions",
    )


# -- valid documents ------------------------------------------------------------------------


def test_a_valid_context_yields_components_and_dependencies() -> None:
    report = validate_design(VALID_CONTEXT, "context")
    assert report.ok, report.errors
    assert report.components == (
        ComponentView(
            name="Stock",
            module_name="Inventory.Stock",
            type="schema",
            description="The quantity of one product in one warehouse; never negative.",
        ),
        ComponentView(
            name="Warehouses",
            module_name="Inventory.Warehouses",
            type="repository",
            description="Queries and writes for warehouses, scoped by account.",
            dependencies=("Inventory.Stock", "Accounts.Users"),
        ),
    )
    assert report.dependencies == ("Accounts.Users", "Catalog.Products")


def test_a_valid_component_design_needs_only_the_component_sections() -> None:
    assert validate_design(VALID_COMPONENT, "module").ok
    assert validate_design(VALID_COMPONENT, "repository").ok
    assert validate_design(VALID_COMPONENT, "no-such-type").ok
    assert validate_design(VALID_COMPONENT, "context").errors[0] == (
        "Missing required sections: entity ownership, access patterns, "
        "state management strategy, dependencies, components, test strategies"
    )


def test_section_titles_match_case_insensitively() -> None:
    shouted = re.sub(
        r"^## (.*)$", lambda m: "## " + m.group(1).upper() + ":", VALID_CONTEXT, flags=re.M
    )
    assert validate_design(shouted, "context").ok


def test_crlf_documents_validate_like_lf() -> None:
    assert validate_design(VALID_CONTEXT.replace("\n", "\r\n").encode(), "context").ok


def test_dependencies_may_be_none() -> None:
    text = VALID_CONTEXT.replace(
        "- **Accounts.Users**: who owns a warehouse\n- `Catalog.Products` - the products stocked",
        "None.",
    )
    report = validate_design(text, "context")
    assert report.ok, report.errors
    assert report.dependencies == ()


# -- what is wrong, precisely -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "error"),
    [
        (
            component("Inventory.Stock", "bar"),
            f"Components.Inventory.Stock: type 'bar' is not one of {TYPES}",
        ),
        (
            component("Stock"),
            "Components.Stock: module name must be fully qualified (contain a '.'), "
            "e.g. 'MyContext.Stock'",
        ),
        (
            component("Stock Levels"),
            "Components.Stock Levels: 'Stock Levels' is not a module name; the heading must be "
            "the component's fully qualified module name, e.g. 'Inventory.Stock'",
        ),
        (
            component("Inventory.Stock", None),
            "Components.Inventory.Stock: missing its '| field | value |' table with a 'type' "
            f"row (type is one of {TYPES})",
        ),
        (
            "### Inventory.Stock\n\n| field | value |\n|---|---|\n| kind | schema |\n\nText.\n",
            "Components.Inventory.Stock: the table has no 'type' row; "
            f"add '| type | <one of {TYPES}> |'",
        ),
        (
            "### Inventory.Stock\n\n| field | value |\n|---|---|\n| type | schema |\n",
            "Components.Inventory.Stock: description is missing; after the table, write "
            f"1–{MAX_DESCRIPTION} characters on what the component does",
        ),
        (
            component("Inventory.Stock", description="x" * (MAX_DESCRIPTION + 1)),
            f"Components.Inventory.Stock: description is {MAX_DESCRIPTION + 1} characters; "
            f"the limit is {MAX_DESCRIPTION}",
        ),
        (
            component("Inventory.Stock") + component("Inventory.Stock"),
            "Components.Inventory.Stock: listed more than once; describe each component once",
        ),
        (
            component("inventory.stock") + component("Inventory.Stock"),
            "Components.Inventory.Stock: collides with Components.inventory.stock: names that "
            "differ only in case, Unicode form or separators ('_', '-') map to the same files; "
            "rename one",
        ),
        (
            component("Net.HTTPClient") + component("Net.http_client"),
            "Components.Net.http_client: collides with Components.Net.HTTPClient: names that "
            "differ only in case, Unicode form or separators ('_', '-') map to the same files; "
            "rename one",
        ),
        (
            "### Inventory.Stock\n\n| field | value |\n|---|---|\n| type | schema |\n"
            "| dependencies | Inventory.Warehouses, the database |\n\nText.\n",
            "Components.Inventory.Stock: dependency 'the database' is not a module name",
        ),
        (
            "Just prose, no components.\n",
            "Components: no components listed; add one H3 per component ('### Inventory.Stock') "
            "followed by a '| field | value |' table with its type, and a description",
        ),
    ],
)
def test_component_errors_name_the_component_and_the_fix(block: str, error: str) -> None:
    report = validate_design(context_with_components(block), "context")
    assert report.errors == (error,)
    assert report.components == ()


def test_names_that_fold_to_the_same_files_collide_and_distinct_ones_do_not() -> None:
    names = ["Net.HTTPClient", "Net.HttpClient", "Net.http_client", "net.httpclient"]
    assert len({folded_name(n) for n in names}) == 1
    assert folded_name("Net.Ｈｔｔｐ") == folded_name("net.http")  # NFKC: full-width letters
    assert folded_name("Net.Client") != folded_name("Net.Clients")
    three = component("Net.HTTPClient") + component("Net.HttpClient") + component("Net.Http")
    report = validate_design(context_with_components(three), "context")
    assert report.errors == (
        "Components.Net.HttpClient: collides with Components.Net.HTTPClient: names that differ "
        "only in case, Unicode form or separators ('_', '-') map to the same files; rename one",
    )


def test_every_known_type_is_accepted_and_types_are_normalised() -> None:
    block = "".join(component(f"Inventory.C{n}", kind) for n, kind in enumerate(COMPONENT_TYPES))
    block += component("Inventory.Atom", "`:GenServer`")
    report = validate_design(context_with_components(block), "context")
    assert report.ok, report.errors
    assert [c.type for c in report.components] == [*COMPONENT_TYPES, "genserver"]


def test_a_description_may_come_from_the_table() -> None:
    block = (
        "### Inventory.Stock\n\n| field | value |\n|--|--|\n"
        "| type | schema |\n| description | Stock. |\n"
    )
    report = validate_design(context_with_components(block), "context")
    assert report.components[0].description == "Stock."


def test_dependencies_must_be_module_names() -> None:
    text = VALID_CONTEXT.replace("- `Catalog.Products` - the products stocked", "- the database")
    assert validate_design(text, "context").errors == (
        "Dependencies: 'the database' is not a module name; start the bullet with the module's "
        "name (e.g. '- Accounts.Users: why')",
    )
    prose = VALID_CONTEXT.replace(
        "- **Accounts.Users**: who owns a warehouse\n- `Catalog.Products` - the products stocked",
        "We use the accounts context.",
    )
    assert validate_design(prose, "context").errors == (
        "Dependencies: list each dependency as a bullet with its module name "
        "('- Accounts.Users: why'), or write 'None'",
    )


def test_empty_and_repeated_sections() -> None:
    text = VALID_CONTEXT.replace(
        "## Purpose\nTracks how much of each product is in each warehouse.\n", "## Purpose\n\n"
    )
    text += "\n## Purpose\nAgain.\n"
    second = text.splitlines().index("## Purpose", 5) + 1
    assert validate_design(text, "context").errors == (
        f"Section 'purpose' appears 2 times (lines 3, {second}); merge them into one",
    )
    only_empty = VALID_CONTEXT.replace(
        "## Execution Flow\n1. Load the warehouse.\n2. Update the stock in one transaction.\n",
        "## Execution Flow\n",
    )
    assert validate_design(only_empty, "context").errors == (
        "Empty required sections: execution flow",
    )


# -- bad input never crashes -------------------------------------------------------------------


def test_no_headings() -> None:
    report = validate_design("Here is my design. It is great.", "module")
    assert report.errors == (
        "The document has no markdown headings; write each section as an H2 heading "
        "('## Purpose').",
        "Missing required sections: purpose, public api, execution flow, test assertions",
    )


@pytest.mark.parametrize(
    ("source", "start"),
    [
        (bytes(range(256)) * 4, "The file is binary"),
        (b"\xff\xd8\xff\xe0 JPEG", "The file is not UTF-8 text"),
        ("## Purpose\n" + "lorem ipsum " * 450_000, "The document is 5,400,011 bytes"),
        ("", "Missing required sections"),
    ],
)
def test_junk_gives_one_clear_error(source: str | bytes, start: str) -> None:
    report = validate_design(source, "context")
    assert not report.ok
    assert report.errors[-1 if start.startswith("Missing") else 0].startswith(start)


def test_an_unclosed_code_fence_is_explained() -> None:
    text = VALID_CONTEXT.replace("## Components", "```\n## Components")
    fence = VALID_CONTEXT.splitlines().index("## Components") + 1
    errors = validate_design(text, "context").errors
    assert errors[0].startswith(f"A code fence opened at line {fence} is never closed")
    assert errors[1].startswith("Missing required sections: components, test strategies")


def test_a_truncated_collection_is_an_error_not_a_partial_read() -> None:
    report = validate_design(VALID_CONTEXT, "context", truncated=True)
    assert report.errors[0].startswith("The document was cut off when it was collected")


def test_errors_are_capped() -> None:
    block = "".join(component(f"Bad{n}") for n in range(100))
    errors = validate_design(context_with_components(block), "context").errors
    assert len(errors) == MAX_ERRORS
    assert errors[-1] == "... and 71 more problems of the same kinds"


def test_fingerprints_follow_the_errors() -> None:
    a = validate_design(context_with_components(component("A")), "context")
    again = validate_design(context_with_components(component("A")), "context")
    b = validate_design(context_with_components(component("B")), "context")
    assert a.fingerprint() == again.fingerprint() != b.fingerprint()
    assert a.explain("docs/design/inventory.md").startswith(
        "The design document docs/design/inventory.md is not valid (1 problem):\n- Components.A:"
    )


@settings(max_examples=200)
@given(
    st.one_of(st.text(max_size=3000), st.binary(max_size=3000)),
    st.sampled_from(["context", "schema"]),
)
def test_validation_never_raises(source: str | bytes, kind: str) -> None:
    report = validate_design(source, kind)
    assert report.ok or report.errors


_PIECES = st.sampled_from(
    [
        *[f"## {s}" for s in CONTEXT_SECTIONS],
        "### Inventory.Stock",
        "### Stock",
        "| field | value |",
        "|---|---|",
        "| type | schema |",
        "| type | bar",
        "| dependencies | A.B, c d |",
        "- Accounts.Users: x",
        "- not a module",
        "text",
        "```",
        "",
    ]
)


@settings(max_examples=300)
@given(st.lists(_PIECES, max_size=80))
def test_structured_junk_gives_errors_or_components_never_both(pieces: list[str]) -> None:
    report = validate_design("\n".join(pieces), "context")
    assert bool(report.errors) != bool(report.ok)
    if report.errors:
        assert report.components == ()
        assert len(report.errors) <= MAX_ERRORS
    else:
        assert all("." in c.module_name for c in report.components)


# -- spec and validator agree ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(COMPONENT_TYPES))
def test_a_document_written_to_the_spec_validates(kind: str) -> None:
    spec = document_spec(kind)
    titles = re.findall(r"`## ([^`]+)`", spec)
    parts = ["# Subject\n"]
    for title in titles:
        parts.append(f"## {title}\n")
        if title == "Components":
            example = spec.split("(each component exactly like this):\n\n", 1)[1]
            parts.append(example.split("\nThe `type` must be", 1)[0])
        elif title == "Fields":
            parts.append(spec.split("(one row per field, like this):\n\n", 1)[1])
        elif title in ("Dependencies", "Test Assertions"):
            parts.append("- Accounts.Users: owners\n")
        else:
            parts.append("Content.\n")
    report = validate_design("\n".join(parts), kind)
    assert report.ok, report.errors
    if kind == "context":
        assert [c.module_name for c in report.components] == ["Inventory.Stock"]
        assert all(t in spec for t in COMPONENT_TYPES)


# -- reviews ---------------------------------------------------------------------------------------


def test_review_documents_must_exist_in_substance() -> None:
    good = "# Review\n\n## Summary\n" + "The designs agree on the stock API. " * 8
    assert validate_review(good) == ()
    assert validate_review("# Review\n\n## Summary\nFine.") == (
        "The review has only 5 characters of text; a review states its findings "
        "(at least 200 characters).",
    )
    assert validate_review("ok " * 100)[0].startswith("The review has no sections")
    assert validate_review(b"\x00\x01")[0].startswith("The file is binary")
    assert validate_review(good, truncated=True)[0].startswith("The document was cut off")
