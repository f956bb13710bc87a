"""A small, forgiving markdown reader for design documents.

Design documents are written by AI agents and by people, and both produce
junk now and then: binary files, megabytes of text, CRLF line ends, tables
without their closing pipe, code fences that never close. This reader never
raises on any text it accepts; it raises :class:`DocumentRejected` only for
input that is not a text document at all (binary, not UTF-8, over the size
cap), with a message that says what to do.

It understands exactly what validation needs: ATX headings (``#`` to
``###`` split sections, deeper ones stay in the body), fenced code blocks
(whose ``#`` lines are code, not headings), pipe tables and bullet lists.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

MAX_DOCUMENT_BYTES = 512 * 1024
"""Largest design document accepted. A focused design is a few kilobytes; a
cap keeps one runaway agent from putting megabytes into prompts and state."""

_CONTROL_BUDGET = 0.01
"""Share of control characters above which text is taken for binary."""

_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
_CLOSING_HASHES = re.compile(r"(?:^|[ \t]+)#+$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_BULLET = re.compile(r"^([ \t]*)(?:[-*+]|\d{1,9}[.)])[ \t]+(.*)$")
_DELIMITER_CELL = re.compile(r"^:?-+:?$")
_PIPE_SPLIT = re.compile(r"(?<!\\)\|")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


class DocumentRejected(ValueError):
    """The input is not a text document this reader will look at."""


@dataclass(frozen=True)
class Table:
    """A pipe table."""

    rows: tuple[tuple[str, ...], ...]
    """Every row, header included, delimiter rows left out; cells stripped."""
    line: int
    """1-based line of the first row."""

    def fields(self) -> dict[str, str]:
        """The table read as ``| field | value |`` pairs, keys lower-cased.

        The ``field | value`` header row is skipped; the first occurrence of
        a key wins. Rows with fewer than two cells are ignored.
        """
        pairs: dict[str, str] = {}
        for row in self.rows:
            if len(row) < 2:
                continue
            key = plain(row[0]).lower()
            value = plain(row[1])
            if (key, value.lower()) == ("field", "value") or not key:
                continue
            pairs.setdefault(key, value)
        return pairs


@dataclass(frozen=True)
class Body:
    """The content between a heading and the next heading that splits sections."""

    lines: tuple[str, ...]
    """Raw lines (code blocks included)."""
    tables: tuple[Table, ...] = ()
    items: tuple[str, ...] = ()
    """Top-level bullet or numbered list items (nested items left out)."""
    prose: str = ""
    """Everything that is not a table, stripped; paragraphs joined by a blank line."""

    @property
    def empty(self) -> bool:
        """Whether there is nothing but whitespace."""
        return not any(line.strip() for line in self.lines)


@dataclass(frozen=True)
class Heading:
    """Any heading, with where it sits (used to explain misplaced sections)."""

    level: int
    title: str
    line: int
    parent: str
    """Title of the enclosing H2 ("" at top level)."""


@dataclass(frozen=True)
class Section:
    """An H2 (with its H3 subsections) or an H3."""

    title: str
    level: int
    line: int
    body: Body
    subsections: tuple[Section, ...] = ()

    @property
    def key(self) -> str:
        """The title normalised for matching (see :func:`section_key`)."""
        return section_key(self.title)

    @property
    def empty(self) -> bool:
        """No content in the body or any subsection."""
        return self.body.empty and not self.subsections


@dataclass(frozen=True)
class Document:
    """A parsed design document."""

    title: str
    """The first H1's text ("" when there is none)."""
    preamble: Body
    """Content before the first H2."""
    sections: tuple[Section, ...]
    """The H2 sections in order."""
    headings: tuple[Heading, ...]
    """Every heading outside code blocks, in order."""
    unclosed_fence: int | None = None
    """Line of a code fence that never closes (everything after it is code)."""

    def find(self, key: str) -> list[Section]:
        """H2 sections whose normalised title is ``key``."""
        return [s for s in self.sections if s.key == key]


def plain(text: str) -> str:
    """Cell or heading text without markdown emphasis and code marks around it."""
    value = text.strip()
    for mark in ("**", "__", "`", "*", "_"):
        if len(value) > 2 * len(mark) and value.startswith(mark) and value.endswith(mark):
            value = value[len(mark) : -len(mark)].strip()
    return value.replace("`", "").strip()


def section_key(title: str) -> str:
    """``"## 3. Public API:"`` -> ``"public api"``: case, emphasis, numbering, colon ignored."""
    text = re.sub(r"[*`]", "", title).strip().lower()
    text = re.sub(r"^\d+(\.\d+)*[.)]?\s+", "", text)
    text = text.rstrip(":").strip()
    return re.sub(r"\s+", " ", text)


def decode(source: str | bytes) -> str:
    """The document as text with ``\\n`` line ends, or :class:`DocumentRejected`."""
    if isinstance(source, bytes):
        size = len(source)
        if size > MAX_DOCUMENT_BYTES:
            raise DocumentRejected(_too_big(size))
        if b"\x00" in source:
            raise DocumentRejected(
                "The file is binary (it contains NUL bytes), not a markdown document."
            )
        try:
            text = source.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DocumentRejected(
                f"The file is not UTF-8 text (invalid byte at offset {exc.start}); "
                "write the design as UTF-8 markdown."
            ) from None
    else:
        size = len(source.encode("utf-8", errors="replace"))
        if size > MAX_DOCUMENT_BYTES:
            raise DocumentRejected(_too_big(size))
        text = source.removeprefix("\ufeff")
        if "\x00" in text:
            raise DocumentRejected(
                "The file is binary (it contains NUL bytes), not a markdown document."
            )
    controls = len(_CONTROL.findall(text))
    if text and controls > max(8, len(text) * _CONTROL_BUDGET):
        raise DocumentRejected(
            f"The file looks binary ({controls} control characters), not a markdown document."
        )
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _too_big(size: int) -> str:
    return (
        f"The document is {size:,} bytes; the limit is {MAX_DOCUMENT_BYTES:,} bytes. "
        "Keep the design focused: describe behaviour and structure, not code listings."
    )


def parse(source: str | bytes) -> Document:
    """Parse a design document (:class:`DocumentRejected` for non-text input)."""
    lines = decode(source).split("\n")
    code = _code_lines(lines)
    headings: list[tuple[int, int, str]] = []  # (index, level, title)
    for index, line in enumerate(lines):
        if index in code.inside:
            continue
        match = _HEADING.match(line)
        if match:
            title = _CLOSING_HASHES.sub("", match.group(2) or "").strip()
            headings.append((index, len(match.group(1)), title))

    splits = [(i, lvl, t) for i, lvl, t in headings if lvl <= 3]
    title = next((t for _, lvl, t in headings if lvl == 1), "")
    preamble_end = next((i for i, lvl, _ in splits if lvl >= 2), len(lines))
    preamble_start = next((i + 1 for i, lvl, _ in splits if lvl == 1 and i < preamble_end), 0)

    sections: list[Section] = []
    for n, (index, level, heading) in enumerate(splits):
        if level != 2:
            continue
        end = next((i for i, lvl, _ in splits[n + 1 :] if lvl <= 2), len(lines))
        subs = [(i, lvl, t) for i, lvl, t in splits[n + 1 :] if i < end and lvl == 3]
        own_end = subs[0][0] if subs else end
        subsections = []
        for m, (sub_index, _, sub_title) in enumerate(subs):
            sub_end = subs[m + 1][0] if m + 1 < len(subs) else end
            body = _body(lines, sub_index + 1, sub_end, code.inside)
            subsections.append(Section(sub_title, 3, sub_index + 1, body))
        sections.append(
            Section(
                heading,
                2,
                index + 1,
                _body(lines, index + 1, own_end, code.inside),
                tuple(subsections),
            )
        )

    parent = ""
    placed: list[Heading] = []
    for index, level, heading in headings:
        if level <= 2:
            parent = heading if level == 2 else ""
        placed.append(Heading(level, heading, index + 1, parent if level > 2 else ""))
    return Document(
        title=title,
        preamble=_body(lines, preamble_start, preamble_end, code.inside),
        sections=tuple(sections),
        headings=tuple(placed),
        unclosed_fence=code.unclosed,
    )


@dataclass
class _Code:
    inside: set[int] = field(default_factory=set)
    unclosed: int | None = None


def _code_lines(lines: Sequence[str]) -> _Code:
    code = _Code()
    fence = ""
    opened = 0
    for index, line in enumerate(lines):
        match = _FENCE.match(line)
        if fence:
            code.inside.add(index)
            closes = (
                match is not None
                and match.group(1)[0] == fence[0]
                and len(match.group(1)) >= len(fence)
                and not line.strip().lstrip(fence[0])
            )
            if closes:
                fence = ""
            continue
        if match:
            fence = match.group(1)
            opened = index
            code.inside.add(index)
    if fence:
        code.unclosed = opened + 1
    return code


def _split_row(line: str) -> tuple[str, ...]:
    text = line.strip()
    cells = _PIPE_SPLIT.split(text)
    if text.startswith("|"):
        cells = cells[1:]
    if text.endswith("|") and not text.endswith("\\|") and cells:
        cells = cells[:-1]
    return tuple(cell.strip().replace("\\|", "|") for cell in cells)


def _is_delimiter(line: str) -> bool:
    cells = _split_row(line)
    return bool(cells) and all(_DELIMITER_CELL.match(c) for c in cells)


def _body(lines: Sequence[str], start: int, end: int, code: set[int]) -> Body:
    tables: list[Table] = []
    items: list[str] = []
    prose: list[str] = []
    base_indent: int | None = None
    index = start
    while index < end:
        line = lines[index]
        if index in code:
            prose.append(line)
            base_indent = None
            index += 1
            continue
        stripped = line.strip()
        starts_table = stripped.startswith("|") or (
            "|" in stripped and index + 1 < end and _is_delimiter(lines[index + 1])
        )
        if starts_table:
            first = index
            rows: list[tuple[str, ...]] = []
            while index < end and index not in code and "|" in lines[index]:
                if not _is_delimiter(lines[index]):
                    rows.append(_split_row(lines[index]))
                index += 1
            tables.append(Table(tuple(rows), first + 1))
            prose.append("")
            base_indent = None
            continue
        bullet = _BULLET.match(line)
        if bullet and not re.fullmatch(r"[-*_ \t]{3,}", line):
            indent = len(bullet.group(1).expandtabs(4))
            if base_indent is None:
                base_indent = indent
            if indent <= base_indent + 1:
                items.append(bullet.group(2).strip())
        elif not stripped:
            pass
        elif not line[:1].isspace():
            base_indent = None
        prose.append(line)
        index += 1
    return Body(
        lines=tuple(lines[start:end]),
        tables=tuple(tables),
        items=tuple(items),
        prose=_paragraphs(prose),
    )


def _paragraphs(lines: Sequence[str]) -> str:
    text = "\n".join(line.rstrip() for line in lines).strip()
    return re.sub(r"\n{3,}", "\n\n", text)
