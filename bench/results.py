"""Everything one run measured, kept as plain JSON under ``bench/out/``.

The report is rendered from this form only, so ``python -m bench --render
bench/out/results.json`` rebuilds the tables and the plot without measuring
again.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.config import REPO


@dataclass
class Results:
    """One run of the harness."""

    machine: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    pgbench: list[dict[str, Any]] = field(default_factory=list)
    """:class:`bench.pgbench.PgbenchResult` forms."""
    peers: list[dict[str, Any]] = field(default_factory=list)
    """:class:`bench.peers.PeerRun` forms."""
    specloom: list[dict[str, Any]] = field(default_factory=list)
    """Step-overhead runs: ``{"mode", "concurrency", "stats", "meta"}``."""
    growth: list[dict[str, Any]] = field(default_factory=list)
    """Per-step cost by history length: ``{"history", "p50_ms", "p99_ms", "mean_ms", "n"}``."""
    sessions_append: dict[str, Any] = field(default_factory=dict)
    """The Sessions engineer's append benchmark, when it can be reused."""
    fanout: list[dict[str, Any]] = field(default_factory=list)
    executors: dict[str, Any] = field(default_factory=dict)
    profiles: list[dict[str, Any]] = field(default_factory=list)
    """:class:`bench.profile.Hotspots` forms plus ``svg`` (path)."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Parts not measured, and why."""
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Plain form."""
        return dict(self.__dict__)

    @staticmethod
    def from_json(data: dict[str, Any]) -> Results:
        """Read the plain form."""
        known = {k: v for k, v in data.items() if k in Results.__dataclass_fields__}
        return Results(**known)

    def save(self, out_dir: Path, name: str = "results.json") -> Path:
        """Write the JSON (and a timestamped copy, so earlier runs stay)."""
        out_dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_json(), indent=1, default=str)
        path = out_dir / name
        path.write_text(text)
        stamp = str(self.machine.get("date", "")).replace(":", "").replace("-", "")
        if stamp:
            (out_dir / f"results-{stamp}.json").write_text(text)
        return path

    @staticmethod
    def load(path: Path) -> Results:
        """Read a saved run."""
        return Results.from_json(json.loads(path.read_text()))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=REPO, capture_output=True, text=True, check=False, timeout=10
    )
    return done.stdout.strip()


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (how busy the machine was)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine_facts(pg_version: str) -> dict[str, Any]:
    """What the report says about where it ran."""
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count() or 0,
        "ram_gib": round(_ram_gib(), 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": pg_version,
        "commit": _git("rev-parse", "--short=12", "HEAD") + ("+dirty" if dirty else ""),
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "load_before": load_average(),
    }
