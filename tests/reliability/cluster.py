"""specloom as real processes, for fault injection.

:func:`cluster` starts every service as its own process on a fresh
PostgreSQL database, as a Kubernetes install runs them: ``specloom serve
sessions``, the orchestrators (``specloom serve context_design`` /
``coding``, or a test-only one through :mod:`tests.reliability.orchestrator`)
and ``specloom serve gateway``. Executors are ``specloom agent`` processes.
Each process logs to its own file under the test's directory (appended to
across restarts), so a failing test can show what a process said.

A :class:`Proc` can be killed with any signal and started again on the same
port, which is what a crashed pod rescheduled behind a Service looks like to
its peers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import SecretStr

from specloom.client import Client
from specloom.host import HostSettings
from specloom.v1 import sessions_pb2 as spb
from specloom_sessions.service import SERVICE as SESSIONS
from tests.fixtures.databases import async_url, fresh_postgres_database
from tests.fixtures.ports import free_ports

REPO = Path(__file__).resolve().parents[2]
_RUNNING = re.compile(r"running ([0-9a-f-]{36}): ")
SPECLOOM = str(Path(sys.executable).with_name("specloom"))
PRODUCT_ORCHESTRATORS = ("context_design", "coding")
"""Orchestrators ``specloom serve`` knows; anything else is a test-only one."""

FAST_GATEWAY: Mapping[str, str] = {
    # Short leases and sweeps, so work held by a killed process moves on
    # within seconds rather than the production defaults' tens of seconds.
    "SPECLOOM_LEASE_TTL_SECONDS": "6",
    "SPECLOOM_HEARTBEAT_INTERVAL_SECONDS": "1",
    "SPECLOOM_CLAIM_SWEEP_INTERVAL_SECONDS": "0.5",
    "SPECLOOM_JOIN_SWEEP_INTERVAL_SECONDS": "0.5",
    "SPECLOOM_JOIN_LEASE_TTL_SECONDS": "4",
    "SPECLOOM_STALLED_SWEEP_INTERVAL_SECONDS": "1",
    "SPECLOOM_STALLED_IDLE_MS": "2000",
    "SPECLOOM_UPSTREAM_TIMEOUT_SECONDS": "10",
    "SPECLOOM_OUTPUT_FLUSH_INTERVAL_SECONDS": "0.1",
}


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MB (0 when it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


@dataclass
class Proc:
    """One process of the cluster, restartable on the same address."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    address: str = ""
    """``127.0.0.1:<port>`` for services; empty for agents."""
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start the process (its output appended to :attr:`log`)."""
        self.starts += 1
        with self.log.open("ab") as out:
            out.write(f"=== start {self.starts} of {self.name} ===\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                self.argv, env=self.env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT
            )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` and, for a killing signal, wait for the process to be gone."""
        assert self.process is not None
        self.kills += 1
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self.process.wait(30)

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if it does not stop within ``grace``."""
        if not self.alive():
            return
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGCONT)
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def text(self) -> str:
        """Everything the process has logged so far (every start)."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    async def ready(self, within: float = 45.0) -> None:
        """Wait until the service answers its health check with SERVING."""
        assert self.address, f"{self.name} is not a service"
        deadline = time.monotonic() + within
        async with grpc.aio.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                if not self.alive():
                    raise RuntimeError(f"{self.name} exited while starting:\n{self.text()[-4000:]}")
                with contextlib.suppress(grpc.aio.AioRpcError):
                    answer = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{self.name} not serving on {self.address} after {within} s:\n"
                        f"{self.text()[-4000:]}"
                    )
                await asyncio.sleep(0.1)

    async def restart(self, sig: int = signal.SIGKILL, down_for: float = 0.3) -> None:
        """Kill with ``sig``, stay down a moment, start again, wait until serving."""
        await asyncio.to_thread(self.kill, sig)
        await asyncio.sleep(down_for)
        self.start()
        if self.address:
            await self.ready()


@dataclass
class Cluster:
    """A running specloom: services, agents, a database, an admin token."""

    root: Path
    database_url: str
    """libpq URL of the cluster's own database."""
    env: dict[str, str]
    """The environment every service process gets."""
    admin_token: str
    """An admin token of account ``acme``, project ``alpha``."""
    services: dict[str, Proc] = field(default_factory=dict)
    agents: list[Proc] = field(default_factory=list)
    clients: list[Client] = field(default_factory=list)

    @property
    def gateway(self) -> str:
        """The gateway's address."""
        return self.services["gateway"].address

    def client(self, token: str | None = None, timeout: float = 15.0) -> Client:
        """A gateway client (closed with the cluster)."""
        client = Client(self.gateway, token or self.admin_token, timeout=timeout)
        self.clients.append(client)
        return client

    def processes(self) -> list[Proc]:
        """Every process, services first."""
        return [*self.services.values(), *self.agents]

    def agent(
        self,
        name: str,
        workspace: Path,
        *,
        token: str | None = None,
        script: Path | None = None,
        max_parallel: int = 8,
        env: Mapping[str, str] | None = None,
        extra: Sequence[str] = (),
        gateway: str | None = None,
    ) -> Proc:
        """Start a ``specloom agent`` process (scripted backend) on ``workspace``.

        ``extra`` are global CLI options (``--tls``, ``--ca-file F``, ``--debug``);
        ``gateway`` is another address to dial than the cluster's gateway.
        """
        if script is None:
            script = self.root / "empty-script.json"
            if not script.exists():
                script.write_text('{"entries": []}\n')
        # The token goes in the environment: the agent refuses one on its command line.
        argv = [
            SPECLOOM, "--gateway", gateway or self.gateway,
            *extra,
            "agent", "--workspace", str(workspace), "--backend", "scripted",
            "--script", str(script), "--name", name, "--max-parallel", str(max_parallel),
        ]  # fmt: skip
        agent_env = {
            **_clean_environment(),
            # The agent's test commands run `python -m pytest`: this interpreter.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "SPECLOOM_AGENT_RECONNECT_INITIAL_SECONDS": "0.2",
            "SPECLOOM_AGENT_RECONNECT_MAX_SECONDS": "1",
            "SPECLOOM_AGENT_KILL_GRACE_SECONDS": "1",
            "SPECLOOM_TOKEN": token or self.admin_token,
            **(env or {}),
        }
        proc = Proc(name, argv, agent_env, self.root / f"agent-{name}.log")
        proc.start()
        self.agents.append(proc)
        return proc

    async def connected(self, agent: Proc, times: int = 1, within: float = 30.0) -> None:
        """Wait until ``agent`` has logged ``times`` connections to the gateway."""
        deadline = time.monotonic() + within
        while agent.text().count("connected to ") < times:
            if not agent.alive():
                raise RuntimeError(f"agent {agent.name} exited:\n{agent.text()[-4000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"agent {agent.name} did not connect:\n{agent.text()[-4000:]}")
            await asyncio.sleep(0.1)

    def leased_more_than_once(self) -> list[str]:
        """Steps whose command was handed out more than once (re-claimed).

        The lease epoch, kept on every interaction as its audit trail, grows
        by one per claim: above 1, the command was handed out again. That is
        a second run only if its first holder had started it, which
        :meth:`ran_more_than_once` tells from the agents' own logs.
        Only commands for executors count: a join (a spawn step waiting for
        its children) is leased by a gateway, which runs nothing for it but
        reads the children and reports; a join held by a gateway that was
        killed is claimed again by design once its lease lapses.
        Returns ``"<type> <step> <interaction id> epoch <n>"`` for each.
        """
        with psycopg.connect(self.database_url) as conn:
            rows = conn.execute(
                "SELECT s.type, i.step, i.id, i.lease_epoch FROM interactions i "
                "JOIN sessions s ON s.id = i.session_id "
                "WHERE i.lease_epoch > 1 AND i.dispatch = %s",
                (spb.DISPATCH_EXECUTOR,),
            ).fetchall()
        return [f"{kind} {step} {iid} epoch {epoch}" for kind, step, iid, epoch in rows]

    def commands_run(self) -> Counter[str]:
        """How many times executor agents started each interaction, by their logs.

        Each ``specloom agent`` logs ``running <interaction id>: …`` as it
        starts a command.
        """
        runs: Counter[str] = Counter()
        for agent in self.agents:
            runs.update(_RUNNING.findall(agent.text()))
        return runs

    def ran_more_than_once(self) -> list[str]:
        """Interactions that executor agents started more than once, by their logs.

        An id logged twice (by one agent or two) ran twice.
        Returns ``"<interaction id> ran <n> times"`` for each.
        """
        runs = self.commands_run()
        return [f"{iid} ran {n} times" for iid, n in sorted(runs.items()) if n > 1]

    def logs(self) -> str:
        """The tail of every process's log, for a failure message."""
        return "\n".join(f"--- {p.name} ---\n{p.text()[-3000:]}" for p in self.processes())


def _clean_environment() -> dict[str, str]:
    # A developer's own SPECLOOM_* settings must not leak into the cluster.
    return {k: v for k, v in os.environ.items() if not k.startswith("SPECLOOM_")}


def _service_argv(name: str, address: str, orchestrators: Iterable[str]) -> list[str]:
    if name in ("sessions", "gateway", *PRODUCT_ORCHESTRATORS):
        argv = [SPECLOOM, "serve", name, "--listen", address]
        if name == "gateway":
            for target in orchestrators:
                argv += ["--orchestrator", target]
        return argv
    return [sys.executable, "-m", "tests.reliability.orchestrator", name]


async def _bootstrap(url: str, secret: str, pepper: str) -> str:
    settings = HostSettings(
        database_url=async_url(url),
        internal_secret=SecretStr(secret),
        token_pepper=SecretStr(pepper),
    )
    await SESSIONS.admin["migrate"](settings)
    token = await SESSIONS.admin["issue-token"](
        settings,
        account_id="acme",
        project_id="alpha",
        user_id="admin",
        admin=True,
        name="reliability admin",
    )
    return str(token)


@contextlib.asynccontextmanager
async def cluster(
    root: Path,
    admin_url: str,
    orchestrators: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    per_service: Mapping[str, Mapping[str, str]] | None = None,
) -> AsyncIterator[Cluster]:
    """Sessions, ``orchestrators`` and a gateway as processes on a fresh database.

    ``env`` is added to every service's environment (``SPECLOOM_LOG_FORMAT``,
    gateway knobs...), ``per_service[name]`` to one service's only;
    :data:`FAST_GATEWAY` applies unless overridden.
    """
    root.mkdir(parents=True, exist_ok=True)
    with fresh_postgres_database(admin_url) as url:
        secret, pepper = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        token = await _bootstrap(url, secret, pepper)
        names = ("sessions", *orchestrators, "gateway")
        addresses = {
            n: f"127.0.0.1:{p}" for n, p in zip(names, free_ports(len(names)), strict=True)
        }
        base = {
            **_clean_environment(),
            "SPECLOOM_DATABASE_URL": async_url(url),
            "SPECLOOM_INTERNAL_SECRET": secret,
            "SPECLOOM_TOKEN_PEPPER": pepper,
            "SPECLOOM_SESSIONS_ADDRESS": addresses["sessions"],
            "SPECLOOM_GRACE_SECONDS": "2",
            **FAST_GATEWAY,
            **(env or {}),
        }
        running = Cluster(root=root, database_url=url, env=base, admin_token=token)
        try:
            for name, address in addresses.items():
                argv = _service_argv(name, address, [addresses[o] for o in orchestrators])
                own = {**base, **(per_service or {}).get(name, {}), "SPECLOOM_LISTEN": address}
                proc = Proc(name, argv, own, root / f"{name}.log", address)
                running.services[name] = proc
            # In dependency order, each serving before the next starts, as a
            # deployment's readiness probes would have it; what happens when
            # a peer goes away later is what the tests are about.
            for proc in running.services.values():
                proc.start()
                await proc.ready()
            yield running
        finally:
            for client in running.clients:
                await client.close()
            await asyncio.gather(
                *(asyncio.to_thread(proc.stop) for proc in running.processes()),
                return_exceptions=True,
            )
