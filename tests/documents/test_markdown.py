"""The markdown reader: sections, tables, lists, and junk that must not crash it."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from specloom.documents import MAX_DOCUMENT_BYTES, DocumentRejected, parse, section_key
from specloom.documents._markdown import decode
from tests.documents.samples import VALID_CONTEXT


def test_sections_subsections_and_title() -> None:
    doc = parse(VALID_CONTEXT)
    assert doc.title == "Inventory"
    assert [s.key for s in doc.sections][:3] == ["purpose", "entity ownership", "access patterns"]
    (components,) = doc.find("components")
    assert [s.title for s in components.subsections] == ["Inventory.Stock", "Inventory.Warehouses"]
    assert components.subsections[1].body.tables[0].fields() == {
        "type": "repository",
        "dependencies": "Inventory.Stock, Accounts.Users",
    }
    assert components.subsections[0].body.prose == (
        "The quantity of one product in one warehouse; never negative."
    )


def test_hashes_inside_code_fences_are_not_headings() -> None:
    doc = parse(
        "# T\n\n## Public API\n\n```elixir\n# Workflow Orchestration\n## Not a section\n```\n"
    )
    assert [h.title for h in doc.headings] == ["T", "Public API"]
    assert doc.unclosed_fence is None
    assert "# Workflow Orchestration" in doc.sections[0].body.prose


def test_an_unclosed_fence_is_reported_and_swallows_what_follows() -> None:
    doc = parse("## Purpose\n\n~~~\ncode\n## Components\n")
    assert doc.unclosed_fence == 3
    assert [s.key for s in doc.sections] == ["purpose"]


def test_crlf_and_cr_read_like_lf() -> None:
    lf = parse(VALID_CONTEXT)
    assert parse(VALID_CONTEXT.replace("\n", "\r\n")) == lf
    assert parse(VALID_CONTEXT.replace("\n", "\r")) == lf


def test_tables_without_closing_pipes_and_with_escaped_pipes() -> None:
    doc = parse("## S\n\n| field | value\n|---|---\n| type | schema\n| note | a \\| b |\n")
    table = doc.sections[0].body.tables[0]
    assert table.rows == (("field", "value"), ("type", "schema"), ("note", "a | b"))
    assert table.fields() == {"type": "schema", "note": "a | b"}


def test_a_table_without_a_leading_pipe_needs_its_delimiter_row() -> None:
    doc = parse("## S\n\nfield | value\n--- | ---\ntype | `liveview`\n\nnot | a table\n")
    body = doc.sections[0].body
    assert len(body.tables) == 1
    assert body.tables[0].fields() == {"type": "liveview"}
    assert "not | a table" in body.prose


def test_top_level_list_items_only() -> None:
    body = (
        parse("## S\n\n- one\n  - nested\n* two\n1. three\n\n---\n**bold** text\n").sections[0].body
    )
    assert body.items == ("one", "two", "three")


def test_headings_lose_closing_hashes_and_keys_ignore_case_numbering_and_emphasis() -> None:
    doc = parse("## Public API ##\n## 3. **Test Assertions**:\n")
    assert [s.title for s in doc.sections] == ["Public API", "3. **Test Assertions**:"]
    assert [s.key for s in doc.sections] == ["public api", "test assertions"]
    assert section_key("  STATE   Management Strategy ") == "state management strategy"


def test_misplaced_headings_know_their_parent() -> None:
    doc = parse("## Scope\n### Access Patterns\ntext\n")
    heading = doc.headings[1]
    assert (heading.level, heading.title, heading.line, heading.parent) == (
        3,
        "Access Patterns",
        2,
        "Scope",
    )


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary (it contains NUL bytes)"),
        (b"## Purpose\n\xff\xfe broken", "not UTF-8 text (invalid byte at offset 11)"),
        ("a" * (MAX_DOCUMENT_BYTES + 1), f"the limit is {MAX_DOCUMENT_BYTES:,} bytes"),
        (b"x" * (5 * 1024 * 1024), "is 5,242,880 bytes"),
        ("\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0e\x0f" * 10, "looks binary"),
    ],
)
def test_junk_is_rejected_with_a_reason(source: str | bytes, message: str) -> None:
    with pytest.raises(DocumentRejected, match=re.escape(message)):
        parse(source)


def test_a_bom_is_dropped() -> None:
    assert decode(b"\xef\xbb\xbf## Purpose\n") == "## Purpose\n"
    assert parse("\ufeff# Title\n").title == "Title"


def test_empty_and_headingless_documents_parse() -> None:
    assert parse("").sections == ()
    doc = parse("just some text\nand more")
    assert doc.headings == ()
    assert doc.preamble.prose == "just some text\nand more"


_FRAGMENTS = st.sampled_from(
    [
        "# T",
        "## Purpose",
        "### Inventory.Stock",
        "#### deep",
        "| field | value |",
        "|---|---|",
        "| type | schema",
        "|",
        "||||",
        "- item",
        "  - nested",
        "1. step",
        "```",
        "~~~~",
        "",
        "text",
        "\r",
        "\t|\t",
        "---",
    ]
)


@given(st.lists(_FRAGMENTS, max_size=60))
def test_any_arrangement_of_markdown_pieces_parses(pieces: list[str]) -> None:
    doc = parse("\n".join(pieces))
    assert all(section.level == 2 for section in doc.sections)


@given(st.text(max_size=2000))
def test_any_text_parses_or_is_rejected_with_a_reason(text: str) -> None:
    try:
        parse(text)
    except DocumentRejected as exc:
        message = str(exc)
    else:
        return
    assert message.startswith("The ")
