"""The specloom parts of a run, built on the service owners' own benchmarks.

- PostgreSQL step overhead (split and all-in-one shapes) comes from
  :func:`bench.step_overhead.measure`, the gateway engineer's benchmark
  (itself made of :mod:`bench.cluster`, :mod:`bench.specloom_steps` and
  :mod:`bench.measure`, so its figures are defined exactly as the peers').
- Append cost alone comes from :func:`bench.sessions_append.measure`, the
  Sessions engineer's benchmark.
- The embedded mode on SQLite is driven here: ``step_overhead.measure``
  always makes a PostgreSQL scratch database.

Those modules are imported when their part runs, so a part whose module
does not load (yet) is reported as skipped instead of breaking the run.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from bench import specloom_steps
from bench.cluster import Shape, Unavailable, running
from bench.config import REPO, BenchConfig
from bench.profile import Recording, hot_frames
from bench.results import Results

WARMUP_SESSIONS = 4
"""Sessions run before the first measured level (first connections, plans)."""


def shown_path(path: Path) -> str:
    """``path`` relative to the repository when inside it (as the report cites it)."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def profile_entry(recording: Recording) -> dict[str, Any]:
    """A finished recording as the report lists it (hot spots, or py-spy's complaint)."""
    if recording.error:
        return {"name": recording.name, "error": recording.error}
    entry = hot_frames(recording.name, recording.svg).to_json()
    entry["svg"] = shown_path(recording.svg)
    return entry


async def specloom_postgres(
    config: BenchConfig, results: Results, shape: Shape, mode: str, profile: bool
) -> None:
    """Step overhead on PostgreSQL at every level, via ``bench.step_overhead``."""
    try:
        from bench import step_overhead
    except ImportError as exc:
        raise Unavailable(f"bench.step_overhead does not load: {exc}") from exc
    out = config.out_dir / mode
    levels, hotspots = await step_overhead.measure(
        shape,
        config.concurrency,
        config.steps_per_workflow,
        config.target_steps,
        out,
        config.profile_seconds if profile else 0.0,
    )
    for level in levels:
        results.specloom.append(
            {
                "mode": mode,
                "concurrency": level.concurrency,
                "stats": level.stats.to_json(),
                "meta": {**level.meta, "shape": shape, "database": "postgresql"},
                # CPU seconds per step per process (PostgreSQL backends summed):
                # steadier than wall time on a shared machine.
                "cpu_ms_per_step": dict(getattr(level, "cpu_ms_per_step", {})),
            }
        )
    for spot in hotspots:
        entry = spot.to_json()
        entry["svg"] = shown_path(out / f"profile-{spot.name}.svg")
        results.profiles.append(entry)


async def specloom_sqlite(config: BenchConfig, results: Results) -> None:
    """Step overhead of the all-in-one process on a fresh SQLite file (``specloom up``)."""
    with tempfile.TemporaryDirectory(prefix="specloom-bench-") as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/specloom.db"
        async with running("up", url, config.out_dir / "sqlite" / "logs") as cluster:
            await specloom_steps.drive(
                cluster, WARMUP_SESSIONS, config.steps_per_workflow, per_slot=2
            )
            runs = await specloom_steps.run_levels(
                cluster,
                "sqlite",
                config.concurrency,
                config.steps_per_workflow,
                config.workflows_per_slot,
            )
    results.specloom.extend(run.to_json() for run in runs)


async def sessions_append(config: BenchConfig, results: Results) -> None:
    """Append cost at a short and a long history, via ``bench.sessions_append``."""
    try:
        from bench import sessions_append as append
    except ImportError as exc:
        raise Unavailable(f"bench.sessions_append does not load: {exc}") from exc
    long = max(config.history_lengths)
    rounds, block = (3, 5) if config.quick else (20, 25)
    short_figures, long_figures = await append.measure(config.admin_url, long, rounds, block)
    figures: dict[str, Any] = {
        "what": "one AdvanceSession straight to Sessions (no gateway, no orchestrator)",
        f"median ms at {short_figures.history:,}": short_figures.median_ms,
        f"median ms at {long_figures.history:,}": long_figures.median_ms,
        f"p90 ms at {short_figures.history:,}": short_figures.p90_ms,
        f"p90 ms at {long_figures.history:,}": long_figures.p90_ms,
        "long / short median": long_figures.median_ms / short_figures.median_ms,
        "steps sampled each": len(long_figures.samples),
    }
    results.sessions_append = figures
