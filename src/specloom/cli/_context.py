"""Global CLI options and how commands reach the gateway."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from specloom.client import Client
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

    def resolved_token(self) -> str | None:
        """--token, else $SPECLOOM_TOKEN, else $SPECLOOM_TOKEN_FILE, else the file `up` wrote."""
        if self.token:
            return self.token
        env = os.environ.get("SPECLOOM_TOKEN")
        if env:
            return env.strip()
        path = os.environ.get("SPECLOOM_TOKEN_FILE")
        candidate = Path(path) if path else self.data_dir / TOKEN_FILE_NAME
        if candidate.is_file():
            return candidate.read_text().strip() or None
        return None

    def client(self) -> Client:
        """A gateway client with these options."""
        return Client(self.gateway, self.resolved_token(), tls=self.tls, ca_file=self.ca_file)

    def run(self, work: Callable[[Client], Awaitable[T]]) -> T:
        """Run ``work`` with a connected client, closing it afterwards."""

        async def main() -> T:
            async with self.client() as client:
                return await work(client)

        return asyncio.run(main())
