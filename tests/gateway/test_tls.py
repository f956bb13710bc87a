"""TLS on the gateway's listener: clients and executors verify the server's certificate."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from specloom.client import Client
from specloom.errors import Unavailable
from specloom.host import HostSettings
from specloom.process import start_host
from specloom.v1 import common_pb2 as pb
from specloom_gateway.service import SERVICE as GATEWAY
from tests.fixtures.pki import certificates
from tests.gateway.conftest import FAST, Stack, eventually, make_repo


async def test_clients_and_executors_reach_a_tls_gateway_and_verify_it(
    stack: Stack, tmp_path: Path
) -> None:
    ca, cert, key = certificates(tmp_path / "pki")
    settings = HostSettings(
        listen="127.0.0.1:0",
        sessions_address=stack.sessions.address,
        orchestrator_addresses=[host.address for host in stack.orchestrators],
        internal_secret=SecretStr(stack.sessions.secret),
        tls_cert_file=cert,
        tls_key_file=key,
        grace_seconds=1.0,
    )
    secure = await start_host([GATEWAY], settings, FAST)
    try:
        token = await stack.token()
        async with Client(secure.address, token, ca_file=ca) as client:
            started = await client.start_session("Build", {}, mode="agentic")
            repo = make_repo(tmp_path / "repo")
            await stack.agent(token, repo, "tls-box", address=secure.address, tls_ca_file=ca)

            async def complete() -> bool:
                session = await client.get_session(started.session.id)
                return session.status == pb.SESSION_STATUS_COMPLETE

            await eventually(complete)
        # A client that does not trust the certificate gets nothing through.
        async with Client(secure.address, token, tls=True, timeout=3) as stranger:
            with pytest.raises(Unavailable):
                await stranger.whoami()
    finally:
        await secure.stop(0.5)
