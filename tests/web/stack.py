"""A real ``specloom up`` with its web console, and an executor agent on a sample project.

The console tests run against exactly what a person runs: the ``specloom``
executable (every service and the console in one process, SQLite), and a
``specloom agent`` process with the scripted backend on a git repository
made from the demo's sample project.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from specloom.client import Client
from specloom.demo.run import create_project
from specloom.demo.script import write_script
from specloom.v1 import common_pb2 as pb
from tests.fixtures.ports import free_ports

SPECLOOM = str(Path(sys.executable).parent / "specloom")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPECLOOM_")}
    # The agent's commands run `python -m pytest`: this interpreter, which has pytest.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def stop(process: subprocess.Popen[bytes], timeout: float = 20) -> int:
    """SIGTERM, then wait; SIGKILL if it does not drain in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


@dataclass
class Stack:
    """``specloom up`` (gateway and console) and its admin token."""

    address: str
    web: str
    admin_token: str
    root: Path
    process: subprocess.Popen[bytes]

    def call(self, token: str, method: str, *args: object, **kwargs: object) -> object:
        """One client call with ``token`` (a fresh event loop: tests are synchronous)."""

        async def run() -> object:
            async with Client(self.address, token) as client:
                return await getattr(client, method)(*args, **kwargs)

        return asyncio.run(run())

    def token_for(self, project: str, user: str) -> str:
        """A new token of another project (or user) in the admin's account."""
        scope = pb.Scope(account_id="local", project_id=project, user_id=user)
        created = self.call(self.admin_token, "create_token", scope, name=f"{user} test")
        return str(created.token)  # type: ignore[attr-defined]


@contextmanager
def running_stack(root: Path) -> Iterator[Stack]:
    """Start ``specloom up`` with its console on free ports under ``root``; stop it after."""
    data = root / "data"
    ready = root / "ready"
    grpc_port, web_port = free_ports(2)
    address = f"127.0.0.1:{grpc_port}"
    log = (root / "up.log").open("wb")
    process = subprocess.Popen(
        [
            SPECLOOM,
            "up",
            "--listen",
            address,
            "--web-listen",
            f"127.0.0.1:{web_port}",
            "--data-dir",
            str(data),
            "--ready-file",
            str(ready),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_env(),
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() or "web " not in ready.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"specloom up did not start:\n{(root / 'up.log').read_text()}")
            time.sleep(0.05)
        web = ready.read_text().split("web ", 1)[1].strip()
        token = (data / "admin.token").read_text().strip()
        yield Stack(address, web, token, root, process)
    finally:
        code = stop(process)
        log.close()
        if code != 0:
            raise RuntimeError(f"specloom up exited {code}:\n{(root / 'up.log').read_text()}")


@contextmanager
def running_agent(stack: Stack, root: Path, token: str) -> Iterator[Path]:
    """The demo's sample project, and ``specloom agent`` (scripted backend) serving it."""
    project = root / "inventory"
    create_project(project, root / "origin.git")
    script = write_script(root / "demo-script.json")
    env = _env()
    env["SPECLOOM_TOKEN"] = token
    log = (root / "agent.log").open("wb")
    process = subprocess.Popen(
        [
            SPECLOOM,
            "--gateway",
            stack.address,
            "agent",
            "--workspace",
            str(project),
            "--backend",
            "scripted",
            "--script",
            str(script),
            "--name",
            "browser-test-agent",
            "--max-parallel",
            "4",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        yield project
    finally:
        stop(process)
        log.close()
