"""Where a process's metrics, traces and startup lines go."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from specloom.host import HostSettings
from specloom.process import metrics_address, start_host
from tests.cli.conftest import SPECLOOM
from tests.fixtures.ports import free_port
from tests.gateway.conftest import TOY


def test_the_metrics_address_is_the_listen_address_s_interface() -> None:
    assert metrics_address("127.0.0.1:7420") == "127.0.0.1"
    assert metrics_address("localhost:7420") == "localhost"
    assert metrics_address("0.0.0.0:7420") == "0.0.0.0"  # noqa: S104 - what is configured
    assert metrics_address(":7420") == "0.0.0.0"  # noqa: S104
    assert metrics_address("[::1]:7420") == "::1"
    assert metrics_address("[::]:7420") == "::"


async def test_metrics_are_served_on_the_interface_the_server_listens_on() -> None:
    port = free_port()
    settings = HostSettings(
        listen="127.0.0.1:0", sessions_address="127.0.0.1:1", metrics_port=port, grace_seconds=0.2
    )
    host = await start_host([TOY], settings)
    try:
        server = host.metrics[0]
        # Not 0.0.0.0: a server on loopback keeps its metrics on loopback.
        assert server.server_address[0] == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
            assert b"specloom_rpc" in page.read() or page.status == 200
    finally:
        await host.stop(0.2)


def _service_name(env: dict[str, str]) -> str:
    code = (
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter\n"
        "from specloom.rpc.tracing import setup_tracing\n"
        "provider = setup_tracing('gateway', InMemorySpanExporter())\n"
        "print(provider.resource.attributes['service.name'])\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


def test_otel_service_name_is_honoured() -> None:
    assert _service_name({}) == "specloom-gateway"
    assert _service_name({"OTEL_SERVICE_NAME": "billing-gateway"}) == "billing-gateway"
    assert _service_name({"OTEL_RESOURCE_ATTRIBUTES": "team=core,service.name=edge"}) == "edge"


@pytest.mark.timeout(60)
def test_up_with_json_logs_writes_only_json_lines(tmp_path: Path) -> None:
    data, ready = tmp_path / "data", tmp_path / "ready"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPECLOOM_")}
    env["SPECLOOM_LOG_FORMAT"] = "json"
    process = subprocess.Popen(
        [
            SPECLOOM,
            "up",
            "--listen",
            f"127.0.0.1:{free_port()}",
            "--data-dir",
            str(data),
            "--ready-file",
            str(ready),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "specloom up did not start"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    token = (data / "admin.token").read_text().strip()
    lines = [line for line in (out + err).splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    messages = [record["message"] for record in records]
    assert any(m.startswith("specloom is up on 127.0.0.1:") for m in messages), messages
    assert any(m == f"first admin token written to {data / 'admin.token'}" for m in messages)
    assert token not in out + err
