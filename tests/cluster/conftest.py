"""Fixtures of the one-machine cluster: a fresh PostgreSQL database and its processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.cluster import Cluster
from tests.fixtures.databases import fresh_postgres_database


@pytest.fixture
def cluster(postgres_admin_url: str, tmp_path: Path) -> Iterator[Cluster]:
    """A migrated, empty database and a cluster to start processes in; all stopped after."""
    with fresh_postgres_database(postgres_admin_url) as url:
        running = Cluster(tmp_path, url)
        running.migrate()
        try:
            yield running
        finally:
            running.stop()
            # Shown by pytest only when the test failed: what every process said last.
            print(running.tails())
