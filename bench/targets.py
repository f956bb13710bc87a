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


LEVELS = (1, 16, 64, 256)
"""Concurrency levels at which specloom must be ahead of both peers on steps/s."""

CPU_BUDGET_MS = 1.0
"""CPU per step at 64 sessions, summed over every process (PostgreSQL included)."""


def _rate(stats: dict[str, Any] | None) -> float | None:
    return _num(stats["steps_per_s"]) if stats else None


def _versus(mine: float | None, theirs: float | None) -> str | None:
    if mine is None or theirs is None:
        return None
    return f"{mine:,.0f} vs {theirs:,.0f} ({mine / theirs:.2f}x)"


def _text_row(label: str, shown: str | None, ok: bool | None) -> list[str]:
    verdict = "not measured" if ok is None else ("yes" if ok else "**no**")
    return [label, "—" if shown is None else shown, verdict]


def throughput_rows(results: Results) -> list[list[str]]:
    """Issue 17's targets: ahead of DBOS and LangGraph at every load, one session included."""
    rows: list[list[str]] = []
    for c in LEVELS:
        mine = _rate(_stats(results.specloom, "mode", "postgres", c))
        for peer, label in (("dbos", "DBOS"), ("langgraph", "LangGraph")):
            theirs = _rate(_stats(results.peers, "peer", peer, c))
            ok = None if mine is None or theirs is None else mine >= theirs
            rows.append(_text_row(f"steps/s at {c} ≥ {label}'s", _versus(mine, theirs), ok))
    one = _stats(results.specloom, "mode", "postgres", 1)
    dbos_one = _stats(results.peers, "peer", "dbos", 1)
    p50 = _num(one["p50_ms"]) if one else None
    dbos_p50 = _num(dbos_one["p50_ms"]) if dbos_one else None
    rows.append(
        _text_row(
            "p50 at 1 session ≤ DBOS's",
            None if p50 is None or dbos_p50 is None else f"{p50:.2f} vs {dbos_p50:.2f} ms",
            None if p50 is None or dbos_p50 is None else p50 <= dbos_p50,
        )
    )
    c = TARGET_CONCURRENCY
    mine64 = _stats(results.specloom, "mode", "postgres", c)
    p99 = _num(mine64["p99_ms"]) if mine64 else None
    peer_p99 = [
        value
        for peer in ("dbos", "langgraph")
        if (stats := _stats(results.peers, "peer", peer, c)) is not None
        and (value := _num(stats["p99_ms"])) is not None
    ]
    best = min(peer_p99, default=None)
    rows.append(
        _text_row(
            f"p99 at {c} ≤ the better peer's",
            None if p99 is None or best is None else f"{p99:.1f} vs {best:.1f} ms",
            None if p99 is None or best is None else p99 <= best,
        )
    )
    run64 = next(
        (r for r in results.specloom if r.get("mode") == "postgres" and int(r["concurrency"]) == c),
        None,
    )
    per_process = run64.get("cpu_ms_per_step") if run64 else None
    cpu = sum(float(v) for v in per_process.values()) if per_process else None
    rows.append(
        _text_row(
            f"CPU per step at {c}, every process ≤ {CPU_BUDGET_MS} ms",
            None if cpu is None else f"{cpu:.2f} ms",
            None if cpu is None else cpu <= CPU_BUDGET_MS,
        )
    )
    up = _rate(_stats(results.specloom, "mode", "sqlite", c))
    lang = _rate(_stats(results.peers, "peer", "langgraph", c))
    rows.append(
        _text_row(
            f"`specloom up` (SQLite) steps/s at {c} ≥ LangGraph's",
            _versus(up, lang),
            None if up is None or lang is None else up >= lang,
        )
    )
    return rows


def target_rows(results: Results) -> list[list[str]]:
    """One row per target: what it asks, the figure, whether it is met."""
    rows = throughput_rows(results)
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
