"""The issue's targets, checked against a run's figures."""

from __future__ import annotations

import math
from typing import Any

from bench.results import Results

TARGET_CONCURRENCY = 64


def _stats(runs: list[dict[str, Any]], key: str, name: str, c: int) -> dict[str, Any] | None:
    for run in runs:
        if run.get(key) == name and int(run["concurrency"]) == c:
            stats: dict[str, Any] = run["stats"]
            return stats
    return None


def _num(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _row(label: str, figure: float | None, unit: str, ok: bool | None) -> list[str]:
    shown = "—" if figure is None else f"{figure:,.2f}{unit}"
    verdict = "not measured" if ok is None else ("yes" if ok else "**no**")
    return [label, shown, verdict]


def target_rows(results: Results) -> list[list[str]]:
    """One row per target: what it asks, the figure, whether it is met."""
    c = TARGET_CONCURRENCY
    mine = _stats(results.specloom, "mode", "postgres", c)
    rate = _num(mine["steps_per_s"]) if mine else None
    p99 = _num(mine["p99_ms"]) if mine else None
    pgb = next((r for r in results.pgbench if int(r["clients"]) == c), None)
    share = rate / float(pgb["tps"]) if rate is not None and pgb else None
    rows = [
        _row(
            f"≥ 1,000 steps/s at {c} sessions (PG)",
            rate,
            "",
            None if rate is None else rate >= 1000,
        ),
        _row(f"p99 < 20 ms at {c} sessions (PG)", p99, " ms", None if p99 is None else p99 < 20),
        _row(
            f"≥ 30% of pgbench at {c}",
            None if share is None else share * 100,
            "%",
            None if share is None else share >= 0.30,
        ),
    ]
    for peer, label in (("dbos", "DBOS"), ("langgraph", "LangGraph")):
        theirs = _stats(results.peers, "peer", peer, c)
        other = _num(theirs["steps_per_s"]) if theirs else None
        r = rate / other if rate is not None and other else None
        rows.append(
            _row(f"specloom / {label} steps/s at {c} > 1", r, "x", None if r is None else r > 1)
        )
    if results.growth:
        first, last = results.growth[0], results.growth[-1]
        g = _num(last["p50_ms"])
        base = _num(first["p50_ms"])
        r = g / base if g is not None and base else None
        rows.append(
            _row(
                f"per-step cost at {int(last['history']):,} history "
                f"≤ 1.5x of {int(first['history'])}",
                r,
                "x",
                None if r is None else r <= 1.5,
            )
        )
    else:
        rows.append(_row("per-step cost at 10,000 history ≤ 1.5x of 10", None, "", None))
    biggest = max(results.fanout, key=lambda f: int(f["children"]), default=None)
    if biggest is not None:
        join = _num(biggest["join_s"])
        rows.append(
            _row(
                f"parent join for {int(biggest['children']):,} children < 5 s",
                join,
                " s",
                None if join is None else join < 5,
            )
        )
    else:
        rows.append(_row("parent join for 1,000 children < 5 s", None, "", None))
    e = results.executors
    if e:
        rss = _num(e.get("rss_after_mb"))
        rows.append(
            _row(
                f"{int(e['count']):,} idle executors < 300 MB (gateway RSS)",
                rss,
                " MB",
                None if rss is None else rss < 300,
            )
        )
    else:
        rows.append(_row("1,000 idle executors < 300 MB", None, "", None))
    return rows
