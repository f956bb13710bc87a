"""Exit codes scripts can rely on, and one-line error messages for people."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

EXIT_OK = 0
EXIT_ERROR = 1
"""Anything else: refused by the server (state does not allow it), internal error."""
EXIT_USAGE = 2
"""Bad command line or bad input (INVALID_ARGUMENT): fix the command."""
EXIT_NOT_FOUND = 3
"""The session (or token) does not exist in your scope."""
EXIT_AUTH = 4
"""No token, a bad token, or not allowed (UNAUTHENTICATED, PERMISSION_DENIED)."""
EXIT_UNAVAILABLE = 5
"""The gateway cannot be reached."""
EXIT_FAILED = 6
"""The session ended failed (watch, start --watch)."""
EXIT_CANCELLED = 7
"""The session was cancelled."""
EXIT_PAUSED = 8
"""The session stopped paused, waiting for a person."""

EXIT_OF_CODE: Mapping[str, int] = {
    "INVALID_ARGUMENT": EXIT_USAGE,
    "NOT_FOUND": EXIT_NOT_FOUND,
    "UNAUTHENTICATED": EXIT_AUTH,
    "PERMISSION_DENIED": EXIT_AUTH,
    "UNAVAILABLE": EXIT_UNAVAILABLE,
    "DEADLINE_EXCEEDED": EXIT_UNAVAILABLE,
}

HINTS: Mapping[str, str] = {
    "PERMISSION_DENIED": "this needs an admin token",
}
"""Hints by status code; UNAUTHENTICATED's names the data directory (:func:`token_hint`)."""


def token_hint(token_file: Path) -> str:
    """Where a token comes from, naming the token file this command reads."""
    return (
        "pass --token or set SPECLOOM_TOKEN; without them the token file "
        f"{token_file} is used, which `specloom up` writes"
    )


class CliError(Exception):
    """A failure the CLI reports in one line, with its exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
