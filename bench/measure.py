"""One definition of a step's cost, applied identically to every system.

A *step* is one durable, committed unit of progress: the system has written
the completion of one no-op step to the database and committed, so a crash
after that point would not run the step again. Every system under test
(specloom, DBOS, LangGraph) reports a timestamp each time a step body starts
(the executor receiving a command, a DBOS step function or a LangGraph node
being entered). Between two consecutive step starts of one workflow lies
exactly one durable commit of the earlier step plus whatever the system
spends deciding and dispatching the next one; that interval is the
*per-step latency*.

Throughput is measured over the steady-state window between the 10th and
90th percentile of all step-start timestamps, so connection ramp-up and the
stragglers at the end do not count: ``steps/s = steps in window / window``.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

WINDOW = (0.10, 0.90)
"""Steady-state window: the part of the run between these quantiles of step starts."""


def now() -> float:
    """The benchmark clock (CLOCK_MONOTONIC on Linux, so comparable across processes)."""
    return time.perf_counter()


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of ``values`` (``pct`` in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class StepLog:
    """Step-start timestamps, per workflow, as a run records them."""

    starts: dict[str, list[float]] = field(default_factory=dict)

    def mark(self, workflow_id: str, at: float | None = None) -> None:
        """Record that a step of ``workflow_id`` started (now, unless ``at`` is given)."""
        self.starts.setdefault(workflow_id, []).append(now() if at is None else at)

    def merge(self, other: StepLog) -> None:
        """Add another log's timestamps (a run split over processes or tasks)."""
        for key, values in other.starts.items():
            self.starts.setdefault(key, []).extend(values)

    def to_json(self) -> dict[str, list[float]]:
        """Plain form, to carry a log across a process boundary."""
        return self.starts

    @staticmethod
    def from_json(data: dict[str, list[float]]) -> StepLog:
        """Read the plain form."""
        return StepLog({str(k): [float(v) for v in values] for k, values in data.items()})


@dataclass(frozen=True)
class StepStats:
    """Throughput and per-step latency of one run."""

    steps: int
    """Step starts recorded, all workflows."""
    workflows: int
    """Workflows (sessions, threads) that recorded steps."""
    steps_per_s: float
    """Steady-state steps per second (see the module docstring)."""
    p50_ms: float
    """Median interval between consecutive steps of one workflow."""
    p99_ms: float
    """99th percentile of the same intervals."""
    mean_ms: float
    """Mean of the same intervals."""
    wall_s: float
    """First to last step start."""

    def to_json(self) -> dict[str, Any]:
        """Plain form for the raw results file."""
        return asdict(self)

    @staticmethod
    def from_json(data: dict[str, Any]) -> StepStats:
        """Read the plain form."""
        return StepStats(**data)


def intervals(log: StepLog) -> list[float]:
    """Every interval between consecutive step starts of one workflow, in seconds."""
    gaps: list[float] = []
    for values in log.starts.values():
        ordered = sorted(values)
        gaps.extend(b - a for a, b in itertools.pairwise(ordered))
    return gaps


def steady_rate(stamps: Iterable[float]) -> float:
    """Events per second inside the steady-state window of ``stamps``."""
    ordered = sorted(stamps)
    if len(ordered) < 2:
        return math.nan
    lo = ordered[int(WINDOW[0] * (len(ordered) - 1))]
    hi = ordered[int(WINDOW[1] * (len(ordered) - 1))]
    if hi <= lo:
        return math.nan
    inside = sum(1 for t in ordered if lo <= t <= hi)
    return inside / (hi - lo)


def summarize(log: StepLog) -> StepStats:
    """The statistics of one run's step log."""
    stamps = [t for values in log.starts.values() for t in values]
    gaps = intervals(log)
    return StepStats(
        steps=len(stamps),
        workflows=len(log.starts),
        steps_per_s=steady_rate(stamps),
        p50_ms=percentile(gaps, 50) * 1000.0,
        p99_ms=percentile(gaps, 99) * 1000.0,
        mean_ms=(sum(gaps) / len(gaps) * 1000.0) if gaps else math.nan,
        wall_s=(max(stamps) - min(stamps)) if stamps else 0.0,
    )


def latency_stats(samples_s: Sequence[float]) -> dict[str, float]:
    """p50/p99/mean in milliseconds of latency samples given in seconds."""
    return {
        "n": float(len(samples_s)),
        "p50_ms": percentile(samples_s, 50) * 1000.0,
        "p99_ms": percentile(samples_s, 99) * 1000.0,
        "mean_ms": (sum(samples_s) / len(samples_s) * 1000.0) if samples_s else math.nan,
    }
