"""Design documents a step collected, rendered as markdown, with the validator's word.

Markdown is rendered with raw HTML off: a document is written by a model
and may say anything, so its HTML is shown as text, never interpreted, and
markdown-it's link check refuses ``javascript:`` and other unsafe targets.
"""

from __future__ import annotations

from dataclasses import dataclass

from markdown_it import MarkdownIt
from markupsafe import Markup

from specloom.v1 import common_pb2 as pb

MAX_DOCUMENT_BYTES = 512 * 1024
"""Larger collected documents are shown cut, with a note."""

_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


@dataclass(frozen=True)
class Document:
    """One collected markdown file."""

    path: str
    html: Markup
    truncated: bool


@dataclass(frozen=True)
class Validation:
    """Documents of a step and what the validator said of them."""

    documents: tuple[Document, ...]
    problems: tuple[str, ...]
    """Validator errors, one per line (empty when the document passed)."""
    headline: str
    """The validator's summary line (empty when it passed)."""
    valid: bool


def render_markdown(text: str) -> Markup:
    """Safe HTML for markdown ``text`` (raw HTML in it is escaped)."""
    return Markup(_MARKDOWN.render(text))  # noqa: S704 - markdown-it output, html disabled


def _problems(message: str) -> tuple[str, tuple[str, ...]]:
    lines = [line.rstrip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return "", ()
    bullets = tuple(line.lstrip()[2:] for line in lines[1:] if line.lstrip().startswith("- "))
    return lines[0], bullets or tuple(lines[1:])


def documents_of(interaction: pb.Interaction) -> Validation | None:
    """The markdown documents a finished step collected, with the validator's errors."""
    if not interaction.HasField("result"):
        return None
    documents: list[Document] = []
    for file in interaction.result.files:
        if not file.exists or not file.path.endswith(".md"):
            continue
        # Project rules are collected too (Initialize); they are inputs, not designs.
        if "/rules/" in f"/{file.path}":
            continue
        content = file.content[:MAX_DOCUMENT_BYTES]
        text = content.decode("utf-8", errors="replace")
        documents.append(
            Document(
                file.path,
                render_markdown(text),
                file.truncated or len(file.content) > MAX_DOCUMENT_BYTES,
            )
        )
    if not documents:
        return None
    failed = interaction.result.status == pb.RESULT_STATUS_ERROR
    headline, problems = _problems(interaction.result.error_message) if failed else ("", ())
    return Validation(tuple(documents), problems, headline, not failed)
