"""An in-process ``specloom up`` (every service and the console) for the console's fast tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from specloom.client import Client
from specloom.host import HostSettings, discover, new_secret
from specloom.process import RunningHost, start_host
from specloom.v1 import common_pb2 as pb

SERVICES = ("sessions", "context_design", "coding", "gateway", "web")


@dataclass
class Console:
    """The running host, its console's URL and tokens of two projects."""

    host: RunningHost
    url: str
    token: str
    """An admin token of account ``local``, project ``default``."""
    other_token: str
    """A token of project ``elsewhere`` in the same account."""
    settings: HostSettings
    """The host's settings (its internal secret, for a second host beside it)."""

    def client(self, token: str | None = None) -> Client:
        return Client(self.host.address, token or self.token)

    def browser(self, token: str | None = None) -> httpx.AsyncClient:
        """An HTTP client; signed in (the cookie set) with ``token`` unless it is ""."""
        cookies = {"specloom_token": token} if token else {}
        return httpx.AsyncClient(base_url=self.url, cookies=cookies, timeout=15)


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    specs = discover()
    settings = HostSettings(
        listen="127.0.0.1:0",
        data_dir=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'specloom.db'}",
        internal_secret=SecretStr(new_secret()),
        token_pepper=SecretStr(new_secret()),
        grace_seconds=1,
    )
    await specs["sessions"].admin["migrate"](settings)
    token = str(
        await specs["sessions"].admin["issue-token"](
            settings,
            account_id="local",
            project_id="default",
            user_id="alice",
            admin=True,
            name="test admin",
        )
    )
    host = await start_host(
        [specs[name] for name in SERVICES],
        settings,
        {"web_listen": "127.0.0.1:0", "web_list_refresh_seconds": 0.2},
        self_hosted=True,
    )
    try:
        async with Client(host.address, token) as client:
            other = await client.create_token(
                pb.Scope(account_id="local", project_id="elsewhere", user_id="mallory")
            )
        yield Console(host, host.endpoints["web"], token, other.token, settings)
    finally:
        await host.stop(1)
