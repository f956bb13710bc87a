"""An in-process ``specloom up`` (every service and the console) for the console's fast tests.

``console`` is the product's services; ``agents_console`` adds the toy
workflows (``Build``: ``make compile`` then ``make test``, in the session's
workspace) and real executor agents (:class:`specloom.agent.AgentLoop`)
over real git repositories, with a one-second heartbeat so executor
presence moves within a test.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from specloom.agent import AgentLoop, AgentSettings, build_executor
from specloom.client import Client
from specloom.host import HostSettings, ServiceSpec, discover, new_secret
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
    async with _console(tmp_path) as running:
        yield running


@dataclass
class AgentsConsole(Console):
    """A console whose host also runs the toy workflows, and the agents started on it."""

    agents: list[tuple[AgentLoop, asyncio.Task[int]]] = field(default_factory=list)

    async def agent(self, workspace: Path, name: str, token: str | None = None) -> AgentLoop:
        """A real executor agent serving ``workspace``; returns once it is connected."""
        settings = AgentSettings(
            gateway=self.host.address,
            token=SecretStr(token or self.token),
            workspace=workspace,
            name=name,
            max_parallel=2,
            backends=[],
            reconnect_initial_seconds=0.1,
            reconnect_max_seconds=1.0,
            drain_seconds=5.0,
        )
        loop = AgentLoop(settings, build_executor(settings))
        task = asyncio.create_task(loop.run())
        self.agents.append((loop, task))
        await asyncio.wait_for(loop.connected.wait(), 10)
        return loop

    async def stop_agents(self) -> None:
        for loop, _ in self.agents:
            loop.stopped.set()
        for _, task in self.agents:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, 15)


@pytest.fixture
async def agents_console(tmp_path: Path) -> AsyncIterator[AgentsConsole]:
    from specloom.orchestration import orchestrator_service
    from tests.orchestration.toy import REGISTRY

    toy = orchestrator_service("toy", "toy workflows (tests only)", REGISTRY)
    # Presence is written at register and with heartbeats: one a second here.
    fast = {"heartbeat_interval_seconds": 1, "claim_sweep_interval_seconds": 0.2}
    async with _console(tmp_path, [toy], fast, AgentsConsole) as running:
        assert isinstance(running, AgentsConsole)
        try:
            yield running
        finally:
            await running.stop_agents()


@contextlib.asynccontextmanager
async def _console(
    tmp_path: Path,
    extra: Sequence[ServiceSpec] = (),
    overrides: dict[str, Any] | None = None,
    kind: type[Console] = Console,
) -> AsyncIterator[Console]:
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
        [*(specs[name] for name in SERVICES), *extra],
        settings,
        {"web_listen": "127.0.0.1:0", "web_list_refresh_seconds": 0.2, **(overrides or {})},
        self_hosted=True,
    )
    try:
        async with Client(host.address, token) as client:
            other = await client.create_token(
                pb.Scope(account_id="local", project_id="elsewhere", user_id="mallory")
            )
        yield kind(host, host.endpoints["web"], token, other.token, settings)
    finally:
        await host.stop(1)
