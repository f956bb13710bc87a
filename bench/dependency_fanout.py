"""Dependency-ordered fan-out against its lower bound: ``python -m bench.dependency_fanout``.

A context of ``n`` components fans out to one child per component; a child
waits for the children of the components it depends on (issue 13). How
close does the whole context come to the best any scheduler could do?

- **Graph.** A chain (c01 → c02 → …), a diamond (one top, ``width``
  middles, one bottom) and independent components; 12 components: chain 3,
  diamond of width 2, 5 independent; 50: chain 10, diamond of width 6,
  32 independent.
- **Work.** Every step an executor runs takes exactly ``delay`` seconds
  (the harness's executors hold each command that long, then answer OK); a
  child is ``ticks`` such steps (default 4, as a ComponentCoding that passes
  first time: Initialize, GenerateImplementation, RunTests, Finalize); the
  parent has ContextCoding's shape: Initialize, the spawn, then the
  integration phase — IntegrateChildren, RunTests, Finalize — each a command
  handed to an executor. ``slots`` executors of one slot each.
- **Run.** Through the real services (``specloom serve sessions``, the bench
  orchestrator, ``specloom serve gateway``) on PostgreSQL; the parent is a
  ``BenchGraph`` session (:mod:`bench.workflows`).
- **Wall time**: from the parent's first command reaching an executor to
  the end of its last (its arrival plus ``delay``).
- **Lower bound**: ``delay × (1 + 3 + max(ticks × longest chain, ⌈ticks × n
  / slots⌉))`` — the parent's step before the spawn and three after the
  join, then the children's phase, which can be no shorter than its longest
  dependency chain run back to back nor than all its steps spread evenly
  over the slots (every step is one unit long, so a slot finishes at most
  one per ``delay``).

It also checks the gating held: no child's first command reached an
executor before each of its dependencies' last step ended.

``--write-docs`` replaces the ``## Dependency-ordered fan-out`` section of
``docs/performance.md`` (and only it).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import tempfile
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.cluster import Cluster, running
from bench.config import REPO, admin_url_from_env
from bench.docs import replace_section
from bench.executors import Fleet
from bench.measure import now, percentile
from bench.pg import scratch_database, server_facts
from bench.results import load_average, machine_facts
from bench.workflows import GRAPH_AFTER_JOIN, GRAPH_BEFORE_SPAWN, GRAPH_TYPE
from specloom.client import Client
from specloom.v1 import gateway_pb2 as gpb

HEADING = "## Dependency-ordered fan-out"
TARGET_RATIO = 1.25
"""Issue 13: a context's wall time within 1.25x of the bound."""

log = logging.getLogger("bench.dependency_fanout")

Graph = list[tuple[str, list[str]]]
"""Components in listed order, each with the names it depends on."""


@dataclass(frozen=True)
class Shape:
    """How a context's components depend on each other."""

    chain: int
    diamond_width: int
    independent: int

    @property
    def components(self) -> int:
        return self.chain + (self.diamond_width + 2 if self.diamond_width else 0) + self.independent

    def graph(self) -> Graph:
        """The components, dependents listed before what they depend on (as designs do)."""
        names = iter(f"c{n:02d}" for n in range(1, self.components + 1))
        chain = [next(names) for _ in range(self.chain)]
        nodes: Graph = [(name, [chain[i - 1]] if i else []) for i, name in enumerate(chain)]
        if self.diamond_width:
            top = next(names)
            middles = [next(names) for _ in range(self.diamond_width)]
            bottom = next(names)
            nodes += [(bottom, list(middles)), *[(m, [top]) for m in middles], (top, [])]
        nodes += [(next(names), []) for _ in range(self.independent)]
        return list(reversed(nodes))


SHAPES = {12: Shape(chain=3, diamond_width=2, independent=5), 50: Shape(10, 6, 32)}


def longest_chain(graph: Graph) -> int:
    """Components on the graph's longest dependency chain."""
    depends = dict(graph)
    depth: dict[str, int] = {}

    def of(name: str) -> int:
        if name not in depth:
            depth[name] = 1 + max((of(d) for d in depends[name]), default=0)
        return depth[name]

    return max((of(name) for name, _ in graph), default=0)


PARENT_STEPS = len(GRAPH_BEFORE_SPAWN) + len(GRAPH_AFTER_JOIN)
"""The parent's own steps: one before the spawn, the integration phase's three after it."""
JOINED, LAST = GRAPH_AFTER_JOIN[0], GRAPH_AFTER_JOIN[-1]


def lower_bound(graph: Graph, ticks: int, slots: int, delay: float) -> float:
    """The shortest wall time any scheduler could reach (see the module docstring)."""
    children = ticks * longest_chain(graph), math.ceil(ticks * len(graph) / slots)
    return delay * (PARENT_STEPS + max(children))


@dataclass
class Watch:
    """Arrivals of every command of one run, by session."""

    parent: str = ""
    arrivals: dict[str, list[tuple[str, float]]] = field(default_factory=lambda: defaultdict(list))
    keys: dict[str, str] = field(default_factory=dict)
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    def on_assignment(self, assignment: gpb.CommandAssignment, at: float) -> None:
        session = assignment.session
        self.arrivals[session.id].append((assignment.interaction.step, at))
        if session.idempotency_key:
            self.keys[session.id] = session.idempotency_key
        if session.id == self.parent and assignment.interaction.step == LAST:
            self.finished.set()


@dataclass(frozen=True)
class Run:
    """One context's figures."""

    components: int
    slots: int
    ticks: int
    delay: float
    chain: int
    wall_s: float
    bound_s: float
    gating_violations: int
    wake_ms: float
    """Median, over dependent children, from the end of a child's last dependency to its
    first command reaching an executor (complete → signal → claim → push)."""
    join_ms: float
    """From the end of the last child's last step to the parent's next command arriving."""
    integration_s: float
    """From the join (IntegrateChildren arriving) to the end of Finalize: three steps
    and their hand-overs."""

    @property
    def ratio(self) -> float:
        return self.wall_s / self.bound_s

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "ratio": self.ratio}


async def run_context(
    cluster: Cluster, shape: Shape, slots: int, ticks: int, delay: float, limit_s: float = 600.0
) -> Run:
    """Run one context through ``cluster`` on ``slots`` one-slot executors."""
    graph = shape.graph()
    watch = Watch()
    fleet = Fleet(cluster.gateway, cluster.token)
    await fleet.connect(slots, 1, listener=watch.on_assignment, delay=delay)
    try:
        async with Client(cluster.gateway, cluster.token) as client:
            response = await client.start_session(
                GRAPH_TYPE,
                {"graph": [[name, deps] for name, deps in graph], "ticks": ticks},
                idempotency_key=f"deps-{uuid.uuid4().hex[:8]}",
            )
            watch.parent = response.session.id
            await asyncio.wait_for(watch.finished.wait(), limit_s)
            await asyncio.sleep(delay)  # let the last step finish before the fleet closes
    finally:
        await fleet.close()
    started = min(at for _, at in watch.arrivals[watch.parent])
    joined = max(at for step, at in watch.arrivals[watch.parent] if step == JOINED)
    ended = max(at for step, at in watch.arrivals[watch.parent] if step == LAST) + delay
    children_end = max(
        at for sid, arrived in watch.arrivals.items() if sid != watch.parent for _, at in arrived
    )
    violations, wakes = _waits(graph, watch, delay)
    return Run(
        components=len(graph),
        slots=slots,
        ticks=ticks,
        delay=delay,
        chain=longest_chain(graph),
        wall_s=ended - started,
        bound_s=lower_bound(graph, ticks, slots, delay),
        gating_violations=violations,
        wake_ms=percentile(wakes, 50) * 1000 if wakes else math.nan,
        join_ms=(joined - children_end - delay) * 1000,
        integration_s=ended - joined,
    )


def _waits(graph: Graph, watch: Watch, delay: float) -> tuple[int, list[float]]:
    """Gating violations, and each dependent child's wait from its dependencies' end.

    A violation is a child whose first command reached an executor before
    one of its dependencies' last step had ended.
    """
    by_name = {key.removeprefix("bench."): sid for sid, key in watch.keys.items()}
    missing = [name for name, _ in graph if name not in by_name]
    if missing:
        raise RuntimeError(f"children never got a command: {', '.join(missing)}")
    bad = 0
    wakes: list[float] = []
    for name, deps in graph:
        if not deps:
            continue
        first = min(at for _, at in watch.arrivals[by_name[name]])
        ends = [max(at for _, at in watch.arrivals[by_name[dep]]) + delay for dep in deps]
        # Arrival stamps come from one clock in one process; the executor
        # sends its result at arrival + delay, and only then can Sessions
        # see the dependency complete.
        bad += sum(1 for ended in ends if first < ended)
        wakes.append(first - max(ends))
    return bad, wakes


async def measure(
    configurations: Sequence[tuple[int, int]],
    ticks: int,
    delays: Sequence[float],
    logs: Path,
) -> list[Run]:
    """Every (components, slots) configuration at every delay, on one fresh cluster."""
    runs: list[Run] = []
    with scratch_database(admin_url_from_env(), "dependency_fanout") as url:
        async with running("split", url, logs) as cluster:
            # Warm-up: first connections and query plans are not the figure.
            await run_context(cluster, Shape(2, 0, 1), 2, 1, 0.01)
            for delay in delays:
                for components, slots in configurations:
                    runs.append(await _one(cluster, components, slots, ticks, delay))
    return runs


async def _one(cluster: Cluster, components: int, slots: int, ticks: int, delay: float) -> Run:
    started = now()
    found = await run_context(cluster, SHAPES[components], slots, ticks, delay)
    log.info(
        "%d components on %d slots, %.2f s steps: %.2f s (bound %.2f s, %.2fx) in %.1f s",
        components,
        slots,
        delay,
        found.wall_s,
        found.bound_s,
        found.ratio,
        now() - started,
    )
    return found


def render(runs: Sequence[Run], machine: dict[str, Any], phase: str) -> str:
    """The docs section."""
    lines = [
        HEADING,
        "",
        "`python -m bench.dependency_fanout` — a context of N components fans out to one "
        "child per component, each child waiting for its dependencies' children "
        "(`ChildSpec.depends_on`, gated in Sessions' claim), through the real services "
        "(`specloom serve sessions`, the bench orchestrator, `specloom serve gateway`) on "
        "PostgreSQL; executors hold every command for a fixed delay, one command per slot.",
        "",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']} GiB RAM, "
        f"Linux {machine['kernel']}, Python {machine['python']}, {machine['postgresql']}.",
        f"- Commit: `{machine['commit']}`, measured {machine['date']}; load average before: "
        f"{machine['load_before']}, after: {load_average()}.",
        f"- Graphs: 12 components = chain of 3, diamond 1 → 2 → 1, 5 independent; 50 = chain "
        f"of 10, diamond 1 → 6 → 1, 32 independent. {phase}",
        f"- Bound: delay × ({PARENT_STEPS} + max(ticks × longest chain, ⌈ticks × components / "
        "slots⌉)): the parent's step before the spawn and its three after the join "
        "(IntegrateChildren, RunTests, Finalize), and the children's phase, no shorter than its "
        "longest chain back to back nor than its steps spread evenly over the slots. Wall: "
        "from the parent's first command at an executor to the end of its last.",
        "",
        "- Wake-up: median, over dependent children, from the end of a child's last "
        "dependency to its first command at an executor (result → orchestrator → Sessions "
        "completes it → work signal → gateway claim → push). Join: from the last child's end "
        "to the parent's next command (IntegrateChildren). Integration: from there to the end "
        "of Finalize (three steps, at least 3 × delay). Gating violations: children whose "
        "first command arrived before a dependency had ended (must be 0).",
        "",
        "| components | longest chain | slots | ticks × delay | wall (s) | bound (s) | "
        "wall / bound | wake-up ms | join ms | integration (s) | gating violations |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        lines.append(
            f"| {run.components} | {run.chain} | {run.slots} | {run.ticks} × "
            f"{run.delay * 1000:,.0f} ms | {run.wall_s:.2f} | {run.bound_s:.2f} | "
            f"{run.ratio:.2f}x | {run.wake_ms:.0f} | {run.join_ms:.0f} | "
            f"{run.integration_s:.2f} | {run.gating_violations} |"
        )
    worst = max((run.ratio for run in runs), default=math.nan)
    met = "met" if worst <= TARGET_RATIO else "not met"
    lines += [
        "",
        f"Target (issue 13): within {TARGET_RATIO}x of the bound — {met} here "
        f"(worst {worst:.2f}x).",
    ]
    analysis = REPO / "bench" / "dependency_fanout_analysis.md"
    if analysis.exists():
        lines += ["", analysis.read_text().strip()]
    return "\n".join(lines) + "\n"


def _configurations(text: str) -> list[tuple[int, int]]:
    pairs = []
    for item in text.split(","):
        components, slots = item.strip().split("x")
        if int(components) not in SHAPES:
            raise argparse.ArgumentTypeError(f"components must be one of {sorted(SHAPES)}")
        pairs.append((int(components), int(slots)))
    return pairs


PHASE_2 = (
    "Phase 2: the bench-only `BenchGraph` parent has ContextCoding's shape — Initialize, "
    "the dependency-gated spawn of `BenchNoop` children (ticks steps each, as many as a "
    "ComponentCoding that passes first time), then IntegrateChildren, RunTests, Finalize — "
    "with no-op steps: what is measured is the scheduling and the hand-overs, the steps' "
    "own work is the fixed delay."
)


def main(argv: list[str] | None = None) -> None:
    """Command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.dependency_fanout", description=__doc__)
    parser.add_argument(
        "--runs",
        type=_configurations,
        default=[(12, 4), (12, 8), (50, 8), (50, 16)],
        help="components x slots, comma-separated (default 12x4,12x8,50x8,50x16)",
    )
    parser.add_argument(
        "--ticks", type=int, default=4, help="steps per child (default 4, as ComponentCoding)"
    )
    parser.add_argument(
        "--delays",
        type=lambda text: [float(x) for x in text.split(",")],
        default=[0.25, 1.0],
        help="seconds per step, comma-separated (default 0.25,1)",
    )
    parser.add_argument("--write-docs", action="store_true", help="update docs/performance.md")
    parser.add_argument("--out", type=Path, default=None, help="service logs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = args.out or Path(tempfile.mkdtemp(prefix="dependency-fanout-"))
    machine = machine_facts(server_facts(admin_url_from_env()).version)
    runs = asyncio.run(measure(args.runs, args.ticks, args.delays, out))
    section = render(runs, machine, PHASE_2)
    print(section)
    print(f"(service logs in {out})")
    if args.write_docs:
        replace_section(section, REPO / "docs" / "performance.md")


if __name__ == "__main__":
    main()
