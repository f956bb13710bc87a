"""Fixtures for driving the real ``specloom`` executable as a person would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.ports import free_port

SPECLOOM = str(Path(sys.executable).parent / "specloom")


@dataclass
class Stack:
    """A running ``specloom up`` and how to call the CLI against it."""

    address: str
    data_dir: Path
    process: subprocess.Popen[str]

    def run(
        self, *args: str, timeout: float = 60, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``specloom --gateway … --data-dir … <args>``, captured, run in ``cwd``.

        ``cwd`` defaults to the test's temporary directory, which is no git
        repository: a person starts sessions inside their project instead.
        """
        return subprocess.run(
            [SPECLOOM, "--gateway", self.address, "--data-dir", str(self.data_dir), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=cwd or self.data_dir.parent,
            env={k: v for k, v in os.environ.items() if not k.startswith("SPECLOOM_")},
        )


def stop(process: subprocess.Popen[str], timeout: float = 20) -> int:
    """SIGTERM, then wait; SIGKILL if it does not drain in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """``specloom up`` on a free port with its own data directory."""
    data = tmp_path / "data"
    ready = tmp_path / "ready"
    address = f"127.0.0.1:{free_port()}"
    log = (tmp_path / "up.log").open("w")
    process = subprocess.Popen(
        [SPECLOOM, "up", "--listen", address, "--data-dir", str(data), "--ready-file", str(ready)],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("SPECLOOM_")},
    )
    deadline = time.monotonic() + 30
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            log.close()
            pytest.fail(f"specloom up did not start:\n{(tmp_path / 'up.log').read_text()}")
        time.sleep(0.05)
    yield Stack(address=address, data_dir=data, process=process)
    code = stop(process)
    log.close()
    assert code == 0, (tmp_path / "up.log").read_text()
