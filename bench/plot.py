"""docs/bench-concurrency.png: steps/s and p99 against concurrency, every system."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display in CI or the sandbox

import matplotlib.pyplot as plt

from bench.report import SYSTEM_LABELS, series
from bench.results import Results


def plot(results: Results, path: Path) -> Path:
    """Draw both panels and write the PNG."""
    levels = [int(c) for c in results.config.get("concurrency", [])]
    systems = series(results)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, lookup in systems.items():
        xs = [c for c in levels if lookup(c) is not None]
        if not xs:
            continue
        stats = [lookup(c) for c in xs]
        label = SYSTEM_LABELS[name]
        style = "-" if name in ("postgres", "postgres-up", "sqlite") else "--"
        left.plot(xs, [s["steps_per_s"] for s in stats if s], style, marker="o", label=label)
        right.plot(xs, [s["p99_ms"] for s in stats if s], style, marker="o", label=label)
    if results.pgbench:
        xs = [int(r["clients"]) for r in results.pgbench]
        left.plot(xs, [r["tps"] for r in results.pgbench], ":", color="grey", label="pgbench TPS")
        right.plot(xs, [r["p99_ms"] for r in results.pgbench], ":", color="grey", label="pgbench")
    # The targets at 64 sessions, for scale.
    left.axhline(1000, color="black", linewidth=0.8, alpha=0.5)
    left.annotate("target at 64: 1,000 steps/s", (levels[0] if levels else 1, 1000), fontsize=7)
    right.axhline(20, color="black", linewidth=0.8, alpha=0.5)
    right.annotate("target at 64: p99 20 ms", (levels[0] if levels else 1, 20), fontsize=7)
    for ax, title, unit in (
        (left, "throughput", "steps/s"),
        (right, "per-step latency p99", "ms"),
    ):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(levels or [1])
        ax.set_xticklabels([str(c) for c in levels] or ["1"])
        ax.set_xlabel("concurrent sessions / workflows")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=7, loc="center right")
    machine = results.machine
    fig.suptitle(
        f"specloom vs pgbench, DBOS, LangGraph — {machine.get('cpu', '?')}, "
        f"{machine.get('cores', '?')} cores, commit {machine.get('commit', '?')}",
        fontsize=9,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
