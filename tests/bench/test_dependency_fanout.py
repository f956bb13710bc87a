"""The dependency fan-out benchmark: its graphs and bound, and one tiny run through real services.

Not a benchmark (the sizes are tiny and the figures mean nothing); it keeps
``python -m bench.dependency_fanout`` from rotting, and checks on the real
services that no child ran before its dependencies ended.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.dependency_fanout import (
    HEADING,
    PHASE_2,
    SHAPES,
    Shape,
    longest_chain,
    lower_bound,
    measure,
    render,
)
from bench.results import machine_facts


def test_the_graphs_have_a_chain_a_diamond_and_independent_parts() -> None:
    twelve = SHAPES[12].graph()
    assert len(twelve) == 12
    assert longest_chain(twelve) == 3
    depends = dict(twelve)
    # Dependents are listed before what they depend on, as in a design.
    assert twelve[0][0] == "c12"
    assert depends["c03"] == ["c02"]
    assert depends["c07"] == ["c05", "c06"]  # the diamond's bottom
    assert depends["c05"] == depends["c06"] == ["c04"]
    assert sum(1 for _, deps in twelve if not deps) == 1 + 1 + 5
    fifty = SHAPES[50].graph()
    assert len(fifty) == 50
    assert longest_chain(fifty) == 10


def test_the_bound_is_the_chain_or_the_slots_whichever_is_longer() -> None:
    graph = SHAPES[12].graph()
    # 4 parent steps (Initialize; IntegrateChildren, RunTests, Finalize after the
    # join) + max(2 x 3 chain steps, ceil(24 / 4) slot rounds) = 10 delays.
    assert lower_bound(graph, ticks=2, slots=4, delay=0.5) == pytest.approx(5.0)
    assert lower_bound(graph, ticks=2, slots=2, delay=0.5) == pytest.approx(8.0)
    assert lower_bound(graph, ticks=2, slots=64, delay=0.5) == pytest.approx(5.0)
    assert Shape(chain=1, diamond_width=0, independent=0).graph() == [("c01", [])]


@pytest.mark.postgres
async def test_a_tiny_run_through_the_services(
    postgres_admin_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", postgres_admin_url)
    (run,) = await measure([(12, 4)], ticks=1, delays=[0.05], logs=tmp_path / "logs")
    assert run.components == 12
    assert run.gating_violations == 0
    assert run.wall_s >= run.bound_s > 0
    assert run.integration_s >= 3 * 0.05  # the integration phase's three steps ran
    assert not math.isnan(run.wake_ms)
    section = render([run], machine_facts("PostgreSQL"), PHASE_2)
    assert section.startswith(HEADING)
    assert "| 12 | 3 | 4 |" in section
