"""Required sections per component type (edition 2), and edition 1 kept for v1 sessions.

The original system's document registry gave a schema its own sections
(Purpose, Fields as a table, Test Assertions; Associations, Validation
Rules and Database Constraints when they apply) and every other component
the same four; edition 2 of specloom's rules does the same, checks what the
Fields table and the Test Assertions hold, and tells the agent so.
"""

from __future__ import annotations

import pytest

from specloom.documents import (
    COMPONENT_SECTIONS,
    COMPONENT_TYPES,
    CONTEXT_SECTIONS,
    DESIGN_SPECS,
    SCHEMA_SECTIONS,
    document_spec,
    optional_sections,
    required_sections,
    validate_design,
)
from tests.documents.samples import VALID_COMPONENT, VALID_CONTEXT, VALID_SCHEMA

FIELDS_TABLE = VALID_SCHEMA[VALID_SCHEMA.index("| Field |") : VALID_SCHEMA.index("## Test")]


def with_fields(table: str) -> str:
    """VALID_SCHEMA with its Fields section's content replaced by ``table``."""
    return VALID_SCHEMA.replace(FIELDS_TABLE, table)


def test_every_type_has_its_rules_and_a_schema_its_own_sections() -> None:
    assert set(DESIGN_SPECS) == set(COMPONENT_TYPES)
    assert required_sections("context") == CONTEXT_SECTIONS
    assert (
        required_sections("schema") == SCHEMA_SECTIONS == ("purpose", "fields", "test assertions")
    )
    assert optional_sections("schema") == (
        "associations",
        "validation rules",
        "database constraints",
    )
    for kind in ("repository", "genserver", "controller", "liveview", "task", "module", "other"):
        assert required_sections(kind) == COMPONENT_SECTIONS
        assert optional_sections(kind) == ()
    assert required_sections("no-such-type") == COMPONENT_SECTIONS


def test_a_schema_design_needs_its_fields_not_a_public_api() -> None:
    assert validate_design(VALID_SCHEMA, "schema").ok
    assert validate_design(VALID_COMPONENT, "schema").errors == (
        "Missing required sections: fields",
    )
    # What a schema needs is not what a repository needs.
    assert validate_design(VALID_SCHEMA, "repository").errors == (
        "Missing required sections: public api, execution flow",
    )


def test_the_fields_section_is_a_table_with_a_row_per_field() -> None:
    assert validate_design(with_fields("Quantity and product.\n\n"), "schema").errors == (
        "Fields: no table; list the fields in a table with the columns Field, Type, Required, "
        "Description, Constraints, one row per field",
    )
    no_required = "| Field | Type |\n|---|---|\n| quantity | integer |\n\n"
    assert validate_design(with_fields(no_required), "schema").errors == (
        "Fields: the table (line 8) has no 'Required' column; its columns are Field, Type, "
        "Required, Description, Constraints",
    )
    header_only = "| Field | Type | Required |\n|---|---|---|\n\n"
    assert validate_design(with_fields(header_only), "schema").errors == (
        "Fields: the table lists no fields; add one row per field",
    )
    rows = (
        "| **Field** | Type | Required | Description |\n|---|---|---|---|\n"
        "| `quantity` | | yes | units |\n"
        "| | integer | no | nameless |\n"
        "| sku | string | | the unit |\n"
        "| Quantity | integer | yes | again |\n\n"
    )
    assert validate_design(with_fields(rows), "schema").errors == (
        "Fields.quantity: no type; give the field's type",
        "Fields: row 2 of the table has no field name",
        "Fields.sku: say whether it is required (yes or no)",
        "Fields.Quantity: listed more than once; describe each field once",
    )


def test_optional_sections_are_checked_only_when_present() -> None:
    with_extras = VALID_SCHEMA + (
        "\n## Associations\n- belongs to a product (product_id), deleted with it\n"
        "\n## Database Constraints\n- unique (warehouse_id, product_id)\n"
    )
    assert validate_design(with_extras, "schema").ok
    empty = VALID_SCHEMA + "\n## Validation Rules\n\n## Associations\n"
    assert validate_design(empty, "schema").errors == (
        "Empty sections: associations, validation rules; write what they hold, or leave them out",
    )


def test_test_assertions_are_a_list_because_tests_are_written_one_per_bullet() -> None:
    prose = VALID_COMPONENT.replace(
        "- adjusting below zero is refused", "Adjusting below zero is refused."
    )
    assert validate_design(prose, "module").errors == (
        "Test Assertions: list each test case as a bullet ('- returns an error when the stock "
        "is negative'); the tests are written from these bullets, one test each",
    )
    grouped = VALID_COMPONENT.replace(
        "- adjusting below zero is refused",
        "### adjust/2\n- adjusting below zero is refused\n1. adjusting by zero changes nothing",
    )
    assert validate_design(grouped, "module").ok
    context_prose = VALID_CONTEXT.replace(
        "- stock never goes below zero\n- a warehouse of another account is not found",
        "Stock never goes below zero.",
    )
    assert validate_design(context_prose, "context").errors[0].startswith("Test Assertions:")


def test_the_spec_tells_the_agent_each_types_sections() -> None:
    schema = document_spec("schema")
    for expected in (
        "A schema component design is a markdown document. A schema defines one entity",
        "`## Purpose`",
        "`## Fields` — A table with the columns `Field`, `Type`, `Required`",
        "`## Test Assertions`",
        "one test per bullet and no others",
        "- Add each of these H2 sections that applies",
        "`## Associations`",
        "`## Validation Rules`",
        "`## Database Constraints`",
        "| Field    | Type    | Required | Description",
    ):
        assert expected in schema, expected
    assert "`## Public API`" not in schema
    repository = document_spec("repository")
    assert "`## Public API`" in repository
    assert repository.endswith(
        "In Public API, list each query and write, and the scope it filters by."
    )
    assert "Add each of these" not in repository


# -- edition 1, frozen for the v1 definitions' sessions ---------------------------------------


def test_edition_1_keeps_four_sections_for_every_component_type() -> None:
    assert required_sections("schema", edition=1) == COMPONENT_SECTIONS
    assert optional_sections("schema", edition=1) == ()
    assert validate_design(VALID_COMPONENT, "schema", edition=1).ok
    prose = VALID_COMPONENT.replace("- adjusting below zero is refused", "Refuses below zero.")
    assert validate_design(prose, "module", edition=1).ok
    assert not validate_design(VALID_SCHEMA, "schema", edition=1).ok


def test_edition_1_spec_is_word_for_word_what_v1_prompts_quoted() -> None:
    spec = document_spec("schema", edition=1)
    assert spec.startswith("A schema component design is a markdown document:\n")
    assert spec.endswith(
        "\n\nIn Public API, list the fields with their types and validation rules."
    )
    assert "`## Fields`" not in spec
    with pytest.raises(ValueError, match="edition 3 of the document rules does not exist"):
        document_spec("schema", edition=3)
