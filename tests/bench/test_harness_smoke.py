"""The benchmark harness still runs: pgbench and the peers in quick mode.

Not a benchmark (the sizes are tiny and the figures mean nothing); it keeps
``make bench`` from rotting between the runs that matter.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

# The harness plots with matplotlib and races DBOS and LangGraph, all of
# which come with the `bench` extra; `make test` installs it, a plain
# `pip install -e '.[dev]'` does not.
pytest.importorskip(
    "matplotlib", reason="the bench extra is not installed (pip install -e '.[dev,bench]')"
)

from bench.config import BenchConfig
from bench.docs import replace_section
from bench.plot import plot
from bench.report import HEADING, render
from bench.results import Results
from bench.runner import run, select


def test_select_expands_aliases_and_keeps_harness_order() -> None:
    assert select("peers,pgbench", None) == ("pgbench", "dbos", "langgraph")
    assert "langgraph-async" not in select(None, None)
    assert select(None, "specloom,embedded,growth,sessions-append,fanout,executors") == (
        "pgbench",
        "dbos",
        "langgraph",
    )


def test_write_section_replaces_only_its_own_section(tmp_path: Path) -> None:
    doc = tmp_path / "performance.md"
    doc.write_text(
        "# Performance\n\n## Theirs\n\nkeep me\n\n" + HEADING + "\n\nold\n\n## Later\n\nx\n"
    )
    replace_section(HEADING + "\n\nnew\n", doc)
    text = doc.read_text()
    for kept in ("keep me", "## Theirs", "## Later", "new"):
        assert kept in text
    assert "old" not in text


@pytest.mark.postgres
async def test_quick_pgbench_and_peers_give_positive_figures(
    postgres_admin_url: str, tmp_path: Path
) -> None:
    config = replace(
        BenchConfig.quick_config(concurrency=(1, 4)),
        admin_url=postgres_admin_url,
        out_dir=tmp_path / "out",
    )
    results = await run(config, ("pgbench", "dbos", "langgraph"), strict=True)

    assert [r["clients"] for r in results.pgbench] == [1, 4]
    assert all(r["tps"] > 0 and r["p99_ms"] > 0 for r in results.pgbench)
    by_peer = {(r["peer"], r["concurrency"]): r["stats"] for r in results.peers}
    assert set(by_peer) == {(p, c) for p in ("dbos", "langgraph") for c in (1, 4)}
    for (peer, c), stats in by_peer.items():
        expected = c * config.workflows_per_slot(c) * config.steps_per_workflow
        assert stats["steps"] == expected, (peer, c)
        assert stats["steps_per_s"] > 0
        assert not math.isnan(stats["steps_per_s"])
        assert 0 < stats["p50_ms"] <= stats["p99_ms"]

    saved = Results.load(results.save(config.out_dir))
    section = render(saved)
    assert section.startswith(HEADING)
    for shown in ("| 4 |", "DBOS", "LangGraph", "pgbench"):
        assert shown in section
    png = plot(saved, tmp_path / "plot.png")
    assert png.stat().st_size > 10_000
