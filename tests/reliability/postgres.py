"""Restarting the local PostgreSQL server under a test, and always bringing it back.

A restart ends every connection of every database on the server, other
tests' included, so the tests that do it are few and short, and
:func:`local_server` makes sure the server answers again when they end,
whether they passed or not.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from sqlalchemy.engine import make_url


@dataclass(frozen=True)
class LocalServer:
    """A cluster ``pg_ctlcluster`` controls (Debian's PostgreSQL packaging)."""

    version: str
    name: str
    url: str
    """libpq URL of its maintenance database."""

    def _ctl(self, action: str) -> None:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, action],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def answers(self) -> bool:
        try:
            with psycopg.connect(self.url, connect_timeout=2):
                return True
        except psycopg.Error:
            return False

    def wait_until_up(self, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while not self.answers():
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL {self.version}/{self.name} is not back")
            time.sleep(0.2)

    def restart(self) -> float:
        """Restart (fast shutdown: every connection is cut); seconds until it answers."""
        began = time.monotonic()
        self._ctl("restart")
        self.wait_until_up()
        return time.monotonic() - began

    def ensure_up(self) -> None:
        """Start the server if it does not answer (after a failed restart, say)."""
        if not self.answers():
            with contextlib.suppress(subprocess.CalledProcessError):
                self._ctl("start")
            self.wait_until_up()


@contextlib.contextmanager
def local_server(admin_url: str) -> Iterator[LocalServer]:
    """The local cluster serving ``admin_url``; up again when the block ends.

    Skips when the server is not a local ``pg_ctlcluster`` cluster on the
    URL's port (a remote server or a container cannot be restarted from here).
    """
    if shutil.which("pg_lsclusters") is None:
        pytest.skip("no pg_lsclusters: the PostgreSQL server is not a local cluster")
    port = str(make_url(admin_url).port or 5432)
    listed = subprocess.run(
        ["pg_lsclusters", "--no-header"], check=True, capture_output=True, text=True
    ).stdout
    for line in listed.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == port:
            server = LocalServer(fields[0], fields[1], admin_url)
            break
    else:
        pytest.skip(f"no local PostgreSQL cluster listens on port {port}")
    try:
        yield server
    finally:
        server.ensure_up()
