"""Small text helpers shared by the parsers and the summary."""

from __future__ import annotations

import re

from specloom.testruns._model import ReportError

MAX_REPORT_BYTES = 32 * 1024 * 1024
"""A report larger than this is refused rather than parsed."""

_LOCATION = re.compile(
    r"(?P<file>[\w./@+-]*[\w-]\.(?:py|exs?|erl|js|mjs|cjs|ts|tsx|rb|go|java|kt|rs|cs|php|swift))"
    r":(?P<line>\d+)"
)

# Parts of a message that differ between two runs of the same failure:
# object addresses, Erlang pids and references, timings. Stuck detection
# compares messages with these masked, so "the same failure" means the same
# test failing the same way, not byte-identical output.
_VOLATILE = (
    (re.compile(r"0x[0-9a-fA-F]{4,}"), "0x…"),
    (re.compile(r"#(PID|Reference|Port)<[\d.]+>"), r"#\1<…>"),
    (re.compile(r"\b\d+(?:\.\d+)?\s?(?:ms|µs|us|ns|s|seconds)\b"), "…s"),
    (re.compile(r"(?<![\w.])(?:/tmp|/var/folders|/private/var)/\S+"), "<tmp>"),
    (re.compile(r"[ \t]+"), " "),
)


def normalize(text: str) -> str:
    """``text`` with run-to-run noise masked (for fingerprints)."""
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return text.strip()


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, marked with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + "…"


def clip_lines(text: str, max_lines: int, line_limit: int) -> str:
    """The first ``max_lines`` lines of ``text``, each cut to ``line_limit``."""
    lines = [clip(line.rstrip(), line_limit) for line in text.strip("\n").splitlines()]
    if len(lines) > max_lines:
        lines = [*lines[:max_lines], f"… ({len(lines) - max_lines} more lines)"]
    return "\n".join(lines)


def tail(text: str, max_lines: int, max_chars: int) -> str:
    """The last ``max_lines`` lines of ``text``, at most ``max_chars`` characters."""
    lines = text.rstrip().splitlines()[-max_lines:]
    kept = "\n".join(lines)
    if len(kept) > max_chars:
        kept = "…" + kept[-(max_chars - 1) :]
    return kept


def locations(text: str) -> list[tuple[str, int]]:
    """Every ``file:line`` mentioned in ``text``, in order."""
    return [(m.group("file"), int(m.group("line"))) for m in _LOCATION.finditer(text)]


def best_location(text: str, prefer: str = "") -> tuple[str, int | None]:
    """The most useful ``file:line`` in a traceback.

    The deepest frame in ``prefer`` (the test's own file) is where the
    assertion failed; failing that, the deepest frame in a file that looks
    like a test; failing that, the deepest frame at all.
    """
    found = [(path.removeprefix("./"), line) for path, line in locations(text)]
    if not found:
        return "", None
    if prefer:
        own = [loc for loc in found if loc[0] == prefer or loc[0].endswith("/" + prefer)]
        if own:
            return own[-1]
    tests = [loc for loc in found if "test" in loc[0].rsplit("/", 1)[-1]]
    return (tests or found)[-1]


def decode_report(content: bytes, what: str) -> str:
    """Report bytes as text; :class:`ReportError` for binary data or oversize."""
    if len(content) > MAX_REPORT_BYTES:
        raise ReportError(
            f"the {what} is {len(content)} bytes, over the {MAX_REPORT_BYTES}-byte limit"
        )
    if b"\x00" in content:
        raise ReportError(f"the {what} contains binary data (NUL bytes), not a test report")
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ReportError(
            f"the {what} is not UTF-8 text (byte {exc.start} is invalid): "
            "binary data, not a test report"
        ) from None
