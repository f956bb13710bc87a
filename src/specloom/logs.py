"""Logging for every specloom process: text for people, JSON lines for collectors.

Log records carry the session and interaction they are about: servicers set
them with :func:`log_context` and every record logged inside picks them up.
Anything that looks like a specloom token is masked before it is written, so
a token pasted into an error message or a command line never reaches a log.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator
from typing import Any

_SESSION: contextvars.ContextVar[str] = contextvars.ContextVar("specloom_session", default="")
_INTERACTION: contextvars.ContextVar[str] = contextvars.ContextVar(
    "specloom_interaction", default=""
)
TOKEN_PATTERN = re.compile(r"slm_[A-Za-z0-9_-]{8,}")
"""What a specloom bearer token looks like (``slm_<id>_<secret>``)."""


@contextlib.contextmanager
def log_context(session_id: str = "", interaction_id: str = "") -> Iterator[None]:
    """Tag every record logged inside with these ids."""
    tokens = []
    if session_id:
        tokens.append((_SESSION, _SESSION.set(session_id)))
    if interaction_id:
        tokens.append((_INTERACTION, _INTERACTION.set(interaction_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def redact(text: str) -> str:
    """``text`` with token-shaped strings masked."""
    return TOKEN_PATTERN.sub("slm_***", text)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.session_id = getattr(record, "session_id", "") or _SESSION.get()
        record.interaction_id = getattr(record, "interaction_id", "") or _INTERACTION.get()
        return True


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("session_id", "interaction_id"):
            value = getattr(record, key, "")
            if value:
                entry[key] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))


def configure(fmt: str = "text", level: str = "INFO") -> None:
    """Set up the root logger once for this process (stderr)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ContextFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            _RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # grpc logs a line per call at DEBUG ("Loaded running loop"), which would
    # drown the per-step lines that DEBUG is for.
    logging.getLogger("grpc._cython.cygrpc").setLevel(max(logging.INFO, root.level))
