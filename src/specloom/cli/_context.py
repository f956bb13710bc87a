"""Global CLI options and how commands reach the gateway."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from specloom.cli._errors import (
    EXIT_AUTH,
    EXIT_ERROR,
    EXIT_OF_CODE,
    HINTS,
    CliError,
    token_hint,
)
from specloom.client import Client
from specloom.errors import SpecloomError
from specloom.host import DEFAULT_LISTEN, default_data_dir

T = TypeVar("T")

TOKEN_FILE_NAME = "admin.token"  # noqa: S105 - a file name, not a secret


@dataclass
class Options:
    """What the global options resolved to."""

    gateway: str = DEFAULT_LISTEN
    token: str | None = None
    tls: bool = False
    ca_file: Path | None = None
    debug: bool = False
    data_dir: Path = field(default_factory=default_data_dir)

    def token_file(self) -> Path:
        """$SPECLOOM_TOKEN_FILE, else the file `up` writes in the data directory."""
        path = os.environ.get("SPECLOOM_TOKEN_FILE")
        return Path(path) if path else self.data_dir / TOKEN_FILE_NAME

    def resolved_token(self) -> str | None:
        """--token, else $SPECLOOM_TOKEN, else $SPECLOOM_TOKEN_FILE, else the file `up` wrote."""
        if self.token:
            return self.token
        env = os.environ.get("SPECLOOM_TOKEN")
        if env:
            return env.strip()
        candidate = self.token_file()
        if candidate.is_file():
            return candidate.read_text().strip() or None
        return None

    def require_token(self) -> str:
        """The token, or a one-line error saying where one comes from."""
        token = self.resolved_token()
        if token is None:
            raise CliError(f"no token: {token_hint(self.token_file())}", EXIT_AUTH)
        return token

    def client(self) -> Client:
        """A gateway client with these options."""
        return Client(self.gateway, self.require_token(), tls=self.tls, ca_file=self.ca_file)

    def run(self, work: Callable[[Client], Awaitable[T]]) -> T:
        """Run ``work`` with a connected client, closing it afterwards.

        A refusal becomes one line with its exit code; a token refusal says
        where tokens come from, naming this command's own token file.
        """

        async def main() -> T:
            async with self.client() as client:
                return await work(client)

        try:
            return asyncio.run(main())
        except SpecloomError as exc:
            hint = (
                token_hint(self.token_file())
                if exc.code == "UNAUTHENTICATED"
                else HINTS.get(exc.code)
            )
            message = exc.message + (f" ({hint})" if hint else "")
            raise CliError(message, EXIT_OF_CODE.get(exc.code, EXIT_ERROR)) from exc
