"""TLS with real processes: ``specloom serve gateway`` serving TLS, ``specloom agent`` verifying it.

A second gateway process serves TLS with a certificate from a throwaway CA.
Agents that cannot verify it — another CA, only the system roots, a
certificate for another name, or no TLS at all — never register, so the
session waiting for an executor is never handed out; an agent trusting the
right CA connects and runs it. The in-process companions are
``tests/gateway/test_tls.py`` (clients and an agent loop against a TLS
gateway) and ``tests/agent/test_connection.py::test_tls_verifies_the_server``.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from specloom.client import Client
from specloom.demo.run import create_project
from specloom.v1 import common_pb2 as pb
from tests.fixtures.ports import free_port
from tests.reliability.cluster import Cluster, Proc
from tests.reliability.conftest import StartCluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def _openssl(directory: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)


def _ca(directory: Path, name: str) -> Path:
    _openssl(
        directory, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
        "-out", f"{name}.pem", "-days", "1", "-subj", f"/CN={name}",
    )  # fmt: skip
    return directory / f"{name}.pem"


def _server(directory: Path, ca: str, name: str, san: str) -> tuple[Path, Path]:
    """A server certificate for ``san`` signed by ``ca``."""
    _openssl(
        directory, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
        "-out", f"{name}.csr", "-subj", f"/CN={name}",
    )  # fmt: skip
    (directory / f"{name}.cnf").write_text(f"subjectAltName={san}\n")
    _openssl(
        directory, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey",
        f"{ca}.key", "-CAcreateserial", "-out", f"{name}.pem", "-days", "1",
        "-extfile", f"{name}.cnf",
    )  # fmt: skip
    return directory / f"{name}.pem", directory / f"{name}.key"


async def _tls_gateway(
    c: Cluster, cert: Path, key: Path, ca: Path, name: str, host: str | None = None
) -> Proc:
    plain = c.services["gateway"]
    address = f"127.0.0.1:{free_port()}"
    argv = [a if a != plain.address else address for a in plain.argv]
    env = {
        **plain.env,
        "SPECLOOM_LISTEN": address,
        "SPECLOOM_TLS_CERT_FILE": str(cert),
        "SPECLOOM_TLS_KEY_FILE": str(key),
    }
    proc = Proc(name, argv, env, c.root / f"{name}.log", address)
    proc.start()
    c.services[name] = proc  # stopped with the cluster
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())
    options = [("grpc.ssl_target_name_override", host)] if host else []
    async with asyncio.timeout(45):
        while True:
            try:
                async with grpc.aio.secure_channel(address, credentials, options) as channel:
                    reply = await health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(), timeout=2
                    )
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return proc
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.2)


def _agent(c: Cluster, gateway: Proc, name: str, repo: Path, *tls: str) -> Proc:
    return c.agent(name, repo, extra=list(tls), gateway=gateway.address)


async def test_an_agent_refuses_a_gateway_whose_certificate_does_not_verify(
    start_cluster: StartCluster, tmp_path: Path
) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    ca, impostor = _ca(pki, "ca"), _ca(pki, "impostor")
    cert, key = _server(pki, "ca", "gateway", "DNS:localhost,IP:127.0.0.1")
    elsewhere, elsewhere_key = _server(pki, "ca", "elsewhere", "DNS:gateway.example.org")
    repo = tmp_path / "repo"
    create_project(repo, tmp_path / "origin.git")
    async with start_cluster(["bench"]) as c:
        secure = await _tls_gateway(c, cert, key, ca, "gateway-tls")
        misnamed = await _tls_gateway(
            c, elsewhere, elsewhere_key, ca, "gateway-misnamed", host="gateway.example.org"
        )
        async with Client(secure.address, c.admin_token, ca_file=ca) as client:
            started = await client.start_session("BenchNoop", {"ticks": 2}, mode="agentic")
            refused = [
                _agent(c, secure, "other-ca", repo, "--ca-file", str(impostor)),
                _agent(c, secure, "system-roots", repo, "--tls"),
                _agent(c, secure, "plaintext", repo),
                _agent(c, misnamed, "wrong-name", repo, "--ca-file", str(ca)),
            ]
            # Several attempts each (an agent first runs its start-up checks,
            # then retries with back-off), and none of them connects.
            async with asyncio.timeout(60):
                while any(
                    agent.text().count("gateway stream ended: UNAVAILABLE") < 2 for agent in refused
                ):
                    await asyncio.sleep(0.2)
            for agent in refused:
                assert "connected to" not in agent.text(), agent.name
            session = await client.get_session(started.session.id)
            assert session.status == pb.SESSION_STATUS_ACTIVE
            assert not session.interactions[-1].lease.executor_id  # nobody got the work

            trusting = _agent(c, secure, "right-ca", repo, "--ca-file", str(ca))
            await c.connected(trusting)
            async with asyncio.timeout(30):
                while (await client.get_session(started.session.id)).status != (
                    pb.SESSION_STATUS_COMPLETE
                ):
                    await asyncio.sleep(0.1)
        for agent in refused:
            assert "connected to" not in agent.text(), agent.name
        assert misnamed.alive()
