"""A specloom cluster on one machine: every service its own ``specloom serve`` process.

What a Kubernetes install runs, minus Kubernetes: each process gets its own
gRPC port and metrics port, is configured by ``SPECLOOM_*`` variables only,
and is started and killed with real signals. Replicas of one orchestrator
service are one gRPC target, ``ipv4:127.0.0.1:A,127.0.0.1:B``, the static
form of what ``dns:///coding:7420`` resolves to on Kubernetes: the
channel's round_robin policy spreads calls over both and stops picking one
whose connection died. Executor agents dial the gateway replicas the same
way, with the default pick_first policy, each listing its own replica
first (a Service in front of the gateway pods, seen from one client).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.ports import free_ports

BIN = Path(sys.executable).parent
SPECLOOM = str(BIN / "specloom")
SECRET = "cluster-internal-secret"
PEPPER = "cluster-token-pepper"


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
"""One scrape: (sample name, sorted labels) -> value."""


def targets(*addresses: str) -> str:
    """One gRPC target naming several ``host:port`` addresses (tried in this order)."""
    return "ipv4:" + ",".join(addresses)


def base_env(**extra: str) -> dict[str, str]:
    """This environment without any ``SPECLOOM_*`` variable, plus ``extra``.

    ``python -m pytest`` in the profile's test command must be this
    interpreter (it has pytest) and must not load this environment's plugins.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPECLOOM_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env.update(extra)
    return env


@dataclass
class Proc:
    """One OS process of the cluster, its output in a log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    address: str = ""
    """``127.0.0.1:<port>`` of a service's gRPC server ("" for agents)."""
    metrics_port: int | None = None

    def text(self) -> str:
        """Everything the process wrote so far."""
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        """Still running."""
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no drain, no cleanup, like a node dying."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def metrics(self) -> Samples:
        """One scrape of the metrics endpoint: (sample name, sorted labels) -> value."""
        assert self.metrics_port is not None, f"{self.name} serves no metrics"
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        samples: Samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels`` (0 if none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


@dataclass
class Cluster:
    """Processes started for one test; everything is killed at the end."""

    root: Path
    database_url: str
    service_env: dict[str, str] = field(default_factory=dict)
    """Extra ``SPECLOOM_*`` settings for every service process."""
    procs: dict[str, Proc] = field(default_factory=dict)

    def __post_init__(self) -> None:
        (self.root / "logs").mkdir(parents=True, exist_ok=True)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> Proc:
        log = self.root / "logs" / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        proc = Proc(name, process, log)
        self.procs[name] = proc
        return proc

    def run(
        self,
        *argv: str,
        env: Mapping[str, str] | None = None,
        timeout: float = 60,
        cwd: Path | None = None,
    ) -> str:
        """A one-off ``specloom`` command (migrate, token, session …) in ``cwd``; its stdout.

        ``cwd`` defaults to the cluster's directory (no repository); ``session
        start`` runs in the project, so the session belongs to its workspace.
        """
        done = subprocess.run(
            [SPECLOOM, *argv],
            env=base_env(**(env or {})),
            cwd=cwd or self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, f"specloom {' '.join(argv)}: {done.stderr}{done.stdout}"
        return done.stdout

    def migrate(self) -> None:
        """``specloom migrate`` as its own process, as the migration Job runs it."""
        self.run("migrate", env={"SPECLOOM_DATABASE_URL": self.database_url})

    def token(self, account: str = "acme", project: str = "shop", user: str = "ci") -> str:
        """The first token, written straight to the database (the bootstrap path)."""
        return self.run(
            "token",
            "create",
            "--direct",
            "--account",
            account,
            "--project",
            project,
            "--user",
            user,
            "--name",
            "cluster test",
            env={"SPECLOOM_DATABASE_URL": self.database_url, "SPECLOOM_TOKEN_PEPPER": PEPPER},
        ).strip()

    def serve(
        self,
        name: str,
        service: str,
        *,
        sessions: str = "",
        orchestrators: list[str] | None = None,
        **settings: str,
    ) -> Proc:
        """``specloom serve <service>`` on fresh ports (gRPC and metrics)."""
        port, metrics = free_ports(2)
        env = base_env(
            SPECLOOM_LISTEN=f"127.0.0.1:{port}",
            SPECLOOM_METRICS_PORT=str(metrics),
            SPECLOOM_INTERNAL_SECRET=SECRET,
            SPECLOOM_LOG_FORMAT="json",
            SPECLOOM_GRACE_SECONDS="2",
            **self.service_env,
        )
        if service == "sessions":
            env["SPECLOOM_DATABASE_URL"] = self.database_url
            env["SPECLOOM_TOKEN_PEPPER"] = PEPPER
        if sessions:
            env["SPECLOOM_SESSIONS_ADDRESS"] = sessions
        if orchestrators is not None:
            env["SPECLOOM_ORCHESTRATOR_ADDRESSES"] = json.dumps(orchestrators)
        env.update({f"SPECLOOM_{key.upper()}": value for key, value in settings.items()})
        proc = self._spawn(name, [SPECLOOM, "serve", service], env)
        proc.address = f"127.0.0.1:{port}"
        proc.metrics_port = metrics
        return proc

    def agent(self, name: str, gateway: str, token: str, repo: Path, script: Path) -> Proc:
        """``specloom agent`` with the scripted backend, one command at a time."""
        # The token goes in the environment: the agent refuses one on its command line.
        env = base_env(
            SPECLOOM_AGENT_RECONNECT_INITIAL_SECONDS="0.2",
            SPECLOOM_AGENT_RECONNECT_MAX_SECONDS="1",
            SPECLOOM_TOKEN=token,
        )
        argv = [SPECLOOM, "--gateway", gateway, "agent"]
        argv += ["--workspace", str(repo), "--backend", "scripted", "--script", str(script)]
        argv += ["--name", name, "--max-parallel", "1"]
        return self._spawn(name, argv, env)

    def wait_serving(self, *procs: Proc, timeout: float = 60) -> None:
        """Wait until every process answers the standard health check with SERVING."""
        deadline = time.monotonic() + timeout
        for proc in procs:
            with grpc.insecure_channel(proc.address) as channel:
                health = health_pb2_grpc.HealthStub(channel)
                while True:
                    assert proc.alive(), f"{proc.name} exited:\n{proc.text()[-3000:]}"
                    try:
                        answer = health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                        if answer.status == health_pb2.HealthCheckResponse.SERVING:
                            break
                    except grpc.RpcError:
                        pass
                    assert time.monotonic() < deadline, f"{proc.name} is not serving"
                    time.sleep(0.1)

    def wait_for(self, proc: Proc, text: str, timeout: float = 30) -> None:
        """Wait until ``proc`` has logged ``text``."""
        deadline = time.monotonic() + timeout
        while text not in proc.text():
            assert proc.alive(), f"{proc.name} exited:\n{proc.text()[-3000:]}"
            assert time.monotonic() < deadline, f"{proc.name} never logged {text!r}"
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM the agents, then the services; SIGKILL what does not stop in time."""
        agents = [p for p in self.procs.values() if not p.address]
        services = [p for p in self.procs.values() if p.address]
        for group in (agents, services):
            for proc in group:
                if proc.alive():
                    proc.process.send_signal(signal.SIGTERM)
            for proc in group:
                try:
                    proc.process.wait(15)
                except subprocess.TimeoutExpired:
                    proc.process.kill()
                    proc.process.wait(5)

    def tails(self, lines: int = 40) -> str:
        """The end of every process's log, for a failure message."""
        parts = []
        for proc in self.procs.values():
            tail = "\n".join(proc.text().splitlines()[-lines:])
            parts.append(f"----- {proc.name} (exit {proc.process.poll()}) -----\n{tail}")
        return "\n".join(parts)
