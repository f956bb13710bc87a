"""What one benchmark run measures, and how much of it."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
"""The repository root (``docs/`` and ``bench/out/`` live under it)."""

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def admin_url_from_env() -> str:
    """libpq URL of a server where the harness may create databases (DATABASE_URL)."""
    url = os.environ.get("DATABASE_URL") or DEFAULT_ADMIN_URL
    return url.replace("postgresql+psycopg://", "postgresql://")


@dataclass(frozen=True)
class BenchConfig:
    """Sizes of a run. ``quick()`` shrinks everything for smoke tests."""

    concurrency: tuple[int, ...] = (1, 16, 64, 256)
    """Concurrent sessions / workflows / threads / pgbench clients."""
    steps_per_workflow: int = 20
    """No-op steps in each workflow (session, DBOS workflow, LangGraph graph)."""
    target_steps: int = 4000
    """Steps per concurrency level; each of C slots runs workflows back to back
    until its share is done (at least one workflow per slot)."""
    pgbench_seconds: float = 10.0
    """Duration of each pgbench run."""
    pgbench_rows: int = 10_000
    """Rows of the small table pgbench updates."""
    history_lengths: tuple[int, ...] = (10, 1_000, 10_000)
    """History lengths at which the growth run samples the per-step cost."""
    history_window: int = 100
    """Steps sampled at each history length."""
    fanout_children: tuple[int, ...] = (10, 100, 1_000)
    """Children of the parent in each fan-out run."""
    fanout_executors: int = 32
    """Executors the children are spread across."""
    idle_executors: int = 1_000
    """Idle executor streams held on one gateway for the memory run."""
    push_samples: int = 200
    """Commands pushed one at a time to measure dispatch latency to an idle executor."""
    profile_seconds: float = 15.0
    """py-spy sampling time during the 64-session run (``--profile``)."""
    quick: bool = False
    """Smoke-test sizes; figures are not meaningful."""
    out_dir: Path = field(default_factory=lambda: REPO / "bench" / "out")
    """Raw JSON results and flame graphs."""
    admin_url: str = field(default_factory=admin_url_from_env)
    """PostgreSQL server (libpq URL) where the harness creates its databases."""

    def workflows_per_slot(self, concurrency: int) -> int:
        """How many workflows each of ``concurrency`` slots runs back to back."""
        return max(1, math.ceil(self.target_steps / (concurrency * self.steps_per_workflow)))

    @staticmethod
    def quick_config(**changes: object) -> BenchConfig:
        """Small sizes: every part runs in seconds."""
        base = BenchConfig(
            concurrency=(1, 4),
            steps_per_workflow=5,
            target_steps=100,
            pgbench_seconds=1.0,
            pgbench_rows=100,
            history_lengths=(10, 100),
            history_window=20,
            fanout_children=(10,),
            fanout_executors=4,
            idle_executors=50,
            push_samples=20,
            profile_seconds=3.0,
            quick=True,
        )
        return replace(base, **changes)  # type: ignore[arg-type]
