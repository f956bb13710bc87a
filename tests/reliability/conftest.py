"""Fixtures of the reliability suite: real processes on a fresh PostgreSQL database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.cluster import Cluster, cluster

StartCluster = Callable[..., AbstractAsyncContextManager[Cluster]]


@pytest.fixture
def start_cluster(postgres_admin_url: str, tmp_path: Path) -> StartCluster:
    """``async with start_cluster(["bench"], env={...}) as c:`` — see :func:`cluster`."""

    def start(
        orchestrators: Sequence[str], *, env: dict[str, str] | None = None, **kwargs: Any
    ) -> AbstractAsyncContextManager[Cluster]:
        # kwargs: per_service={"gateway": {...}} (see cluster()).
        return cluster(tmp_path / "cluster", postgres_admin_url, orchestrators, env=env, **kwargs)

    return start


@pytest.fixture
async def bench_cluster(start_cluster: StartCluster) -> AsyncIterator[Cluster]:
    """Sessions, the bench orchestrator and a gateway, as processes."""
    async with start_cluster(["bench"]) as running:
        yield running
