"""PostgreSQL restarted under a load of 100 concurrent sessions.

The services (as processes) are not restarted: they must find the database
again on their own. Meanwhile clients may see ``UNAVAILABLE`` (retriable)
and nothing worse, no service logs an internal error, and afterwards every
session is complete with every step recorded exactly once: no write that
was acknowledged is lost.

The restart cuts every connection on the server, other tests' too; it
happens once, and the server is up again when the test ends, whatever
happened (:func:`tests.reliability.postgres.local_server`).
"""

from __future__ import annotations

import asyncio
import collections
import time
from pathlib import Path

import pytest

from specloom.client import Client
from specloom.demo.run import create_project
from specloom.errors import SpecloomError
from tests.reliability.conftest import StartCluster
from tests.reliability.load import RETRIABLE, Load
from tests.reliability.postgres import local_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


async def _probe(client: Client, codes: collections.Counter[str], stop: asyncio.Event) -> None:
    """Reads and a write through the gateway, back to back, counting the outcomes."""
    n = 0
    while not stop.is_set():
        n += 1
        for call in (
            client.whoami(),
            client.list_sessions(page_size=5),
            client.start_session("BenchNoop", {"ticks": 1}, idempotency_key=f"probe-{n}"),
        ):
            try:
                await call
                codes["OK"] += 1
            except SpecloomError as exc:
                codes[exc.code] += 1
        await asyncio.sleep(0.05)


async def test_a_postgres_restart_mid_load_loses_no_write(
    start_cluster: StartCluster, postgres_admin_url: str, tmp_path: Path
) -> None:
    with local_server(postgres_admin_url) as server:
        async with start_cluster(["bench"]) as c:
            bulk = tmp_path / "bulk"
            create_project(bulk, tmp_path / "bulk-origin.git")
            agents = [c.agent(f"bulk-{i}", bulk, max_parallel=64) for i in range(2)]
            for agent in agents:
                await c.connected(agent)
            load = Load(c.client(), target=100, ticks=5)
            probe_codes: collections.Counter[str] = collections.Counter()
            stop = asyncio.Event()
            loading = asyncio.create_task(load.run())
            probing = asyncio.create_task(_probe(c.client(timeout=20), probe_codes, stop))
            try:
                await load.progress(30)
                before = dict(probe_codes)
                down = await asyncio.to_thread(server.restart)
                began = time.monotonic()
                await load.progress(30)
                recovered = time.monotonic() - began
                await load.drain()
            except BaseException:
                print(c.logs())
                raise
            finally:
                stop.set()
                load.stop.set()
                await asyncio.gather(loading, probing, return_exceptions=True)
            print(
                f"PostgreSQL answered again {down:.1f} s after the restart began; "
                f"30 more sessions done {recovered:.1f} s later; {len(load.sessions)} sessions; "
                f"client errors {dict(load.errors)}; probe {before} -> {dict(probe_codes)}"
            )
            problems = await load.verify()
            assert not problems, "\n".join(problems[:30])
            # Nothing worse than "try again" reached a client.
            assert set(load.errors) <= RETRIABLE
            assert set(probe_codes) <= {"OK", *RETRIABLE}, probe_codes
            assert probe_codes["OK"] > before.get("OK", 0)
            for proc in c.processes():
                # Reconnected on their own: never restarted, still running...
                assert proc.starts == 1
                assert proc.alive(), proc.name
                # ...and no request met an internal error (a bug) meanwhile.
                assert "unhandled error" not in proc.text(), f"{proc.name}:\n{proc.text()[-5000:]}"
