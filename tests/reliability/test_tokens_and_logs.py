"""Tokens: stored hashed with the server's pepper, revoked at once, never logged.

Every service, an agent and the CLI run as processes, logging at DEBUG: the
gateway and the orchestrator in JSON, Sessions and the agent in text. A
token goes through its whole life: created by an admin, used by the CLI, a
client and an agent, presented wrong (a good id with a bad secret, junk),
revoked (the next call and the agent's stream fail). Then:

- no table of the database holds any token or its secret in clear;
- the stored hash depends on the server-side pepper: Sessions restarted with
  another pepper verifies nothing; with its own again, everything;
- not one line any process logged, nor anything the CLI printed (except
  ``token create``, whose job it is), contains a token or its secret.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import psycopg
import pytest

from specloom.client import Client
from specloom.demo.run import create_project
from specloom.errors import Unauthenticated, Unavailable
from specloom.v1 import common_pb2 as pb
from tests.reliability.cluster import SPECLOOM, Cluster
from tests.reliability.conftest import StartCluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def _secret(token: str, token_id: str) -> str:
    """The secret part of ``slm_<id>_<secret>``."""
    prefix = f"slm_{token_id}_"
    assert token.startswith(prefix)
    return token[len(prefix) :]


def _cli(c: Cluster, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPECLOOM_")}
    return subprocess.run(
        [SPECLOOM, "--gateway", c.gateway, "--token", token, "--debug", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def _rows(url: str) -> str:
    """Every row of every table of the database, as text."""
    with psycopg.connect(url) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        ]
        text = []
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"').fetchall():  # noqa: S608
                text.append(" ".join(v.hex() if isinstance(v, bytes) else str(v) for v in row))
                text.append(" ".join(repr(v) for v in row))
    assert "tokens" in tables
    return "\n".join(text)


async def _unauthenticated(client: Client) -> bool:
    try:
        await client.whoami()
    except Unauthenticated:
        return True
    return False


async def test_tokens_are_hashed_revoked_at_once_and_never_logged(
    start_cluster: StartCluster, tmp_path: Path
) -> None:
    json_logs = {"SPECLOOM_LOG_FORMAT": "json"}
    async with start_cluster(
        ["bench"],
        env={"SPECLOOM_LOG_FORMAT": "text", "SPECLOOM_LOG_LEVEL": "DEBUG"},
        per_service={"gateway": json_logs, "bench": json_logs},
    ) as c:
        admin = c.client()
        made = await admin.create_token(
            pb.Scope(account_id="acme", project_id="alpha", user_id="ci"), name="ci"
        )
        token = made.token
        kept = (
            await admin.create_token(
                pb.Scope(account_id="acme", project_id="alpha", user_id="kept"), name="kept"
            )
        ).token
        kept_id = (await c.client(kept).whoami()).id
        secrets = {
            token: made.info.id,
            kept: kept_id,
            c.admin_token: (await admin.whoami()).id,
        }
        wrong = f"slm_{made.info.id}_{'x' * 43}"  # a real id, a made-up secret
        printed: list[str] = []

        # Used by the CLI, a client and an agent.
        shown = _cli(c, token, "whoami", "--json")
        assert shown.returncode == 0, shown.stderr
        printed += [shown.stdout, shown.stderr]
        client = c.client(token)
        started = await client.start_session("BenchNoop", {"ticks": 2}, mode="agentic")
        repo = tmp_path / "repo"
        create_project(repo, tmp_path / "origin.git")
        agent = c.agent("ci-box", repo, token=token, extra=["--debug"])
        await c.connected(agent)
        async with asyncio.timeout(30):
            while (
                await client.get_session(started.session.id)
            ).status != pb.SESSION_STATUS_COMPLETE:
                await asyncio.sleep(0.1)

        # Presented wrong: a bad secret, junk, nothing.
        for bad in (wrong, "not-a-token-at-all-1234567890", "slm_" + "y" * 600):
            with pytest.raises(Unauthenticated):
                await c.client(bad).whoami()
            refused = _cli(c, bad, "session", "list")
            assert refused.returncode == 4, refused.stderr
            printed += [refused.stdout, refused.stderr]

        # Revoked: the very next call fails, and the agent's stream ends.
        await admin.revoke_token(made.info.id)
        assert await _unauthenticated(client)
        assert _cli(c, token, "whoami").returncode == 4
        async with asyncio.timeout(20):
            while agent.alive():
                await asyncio.sleep(0.1)
        assert agent.process is not None
        assert agent.process.returncode == 2  # refused: the agent stops, it does not retry
        assert "refused the executor" in agent.text()

        # In the database: hashes only.
        rows = await asyncio.to_thread(_rows, c.database_url)
        for value, token_id in secrets.items():
            assert value not in rows
            assert _secret(value, token_id) not in rows
            assert token_id in rows  # the id is stored; it is public (the token's prefix)

        # The hash depends on the pepper: another pepper verifies nothing.
        sessions = c.services["sessions"]
        pepper = sessions.env["SPECLOOM_TOKEN_PEPPER"]
        sessions.env["SPECLOOM_TOKEN_PEPPER"] = pepper + "-another"
        await sessions.restart()
        assert await _eventually_unauthenticated(c.client(kept))
        sessions.env["SPECLOOM_TOKEN_PEPPER"] = pepper
        await sessions.restart()
        async with asyncio.timeout(20):
            while True:
                try:
                    assert (await c.client(kept).whoami()).id == kept_id
                    break
                except Unavailable:  # while the gateway reconnects
                    await asyncio.sleep(0.2)

        # In the logs (DEBUG, every process) and the CLI's output: nothing.
        lines = [line for proc in c.processes() for line in proc.text().splitlines()]
        lines += [line for text in printed for line in text.splitlines()]
        assert len(lines) > 100
        assert any("UNAUTHENTICATED" in line for line in lines)  # the refusals were logged
        for value, token_id in {**secrets, wrong: made.info.id}.items():
            for line in lines:
                assert value not in line, line
                assert _secret(value, token_id) not in line, line
        assert not any("y" * 100 in line for line in lines)
        # Both formats were in play: JSON lines from the gateway, text from Sessions.
        logged = [line for line in c.services["gateway"].text().splitlines() if line[:1] == "{"]
        assert len(logged) > 20
        assert any("UNAUTHENTICATED" in json.loads(line)["message"] for line in logged)
        assert " DEBUG specloom" in c.services["sessions"].text()


async def _eventually_unauthenticated(client: Client) -> bool:
    async with asyncio.timeout(20):
        while True:
            try:
                await client.whoami()
            except Unauthenticated:
                return True
            except Unavailable:  # while Sessions restarts
                await asyncio.sleep(0.2)
                continue
            await asyncio.sleep(0.2)
