"""Benchmark workflows, served by their own orchestrator service.

Never shipped in a product service: the harness starts :data:`SERVICE` next
to the real services (its own process in the split topology, merged into the
one servicer in the all-in-one mode).

- ``BenchNoop``: ``ticks`` no-op steps, then done. The loop is one ``Tick``
  row that goes to itself on OK; the judge ends it with a WARNING once the
  count is reached, and WARNING on ``Tick`` means done. (A transition target
  is fixed per outcome, so a counted loop needs a second outcome to leave
  by; one table row keeps the per-step decision independent of ``ticks``.)
- ``BenchParent``: ``Start`` (no-op; a first step cannot spawn) → ``Spawn``
  ``children`` one-tick ``BenchNoop`` children and join on them → ``Joined``
  (no-op) → done. An executor receiving ``Joined`` is the moment the join
  was judged.
- ``BenchGraph``: ContextCoding's shape with no-op steps: ``Initialize`` →
  ``Spawn`` the nodes of ``graph`` (``[[name, [names it depends on]], ...]``),
  each a ``ticks``-step ``BenchNoop`` that waits for its dependencies
  (``ChildSpec.depends_on``), and join on them → ``IntegrateChildren`` →
  ``RunTests`` → ``Finalize`` → done: the dependency-ordered fan-out a
  context's components make, then the integration phase, each parent step
  one command handed to an executor as the real ones are. An executor
  receiving ``IntegrateChildren`` is the moment the join was judged.
"""

from __future__ import annotations

from typing import ClassVar

from specloom.orchestration import orchestrator_service
from specloom.protoconv import JsonValue
from specloom.workflow import (
    DONE,
    ChildSpec,
    CommandKind,
    CommandPlan,
    Judgement,
    ParamSpec,
    Registry,
    ReportedResult,
    StepContext,
    StepDef,
    Workflow,
    commands,
)

NOOP_TYPE = "BenchNoop"
PARENT_TYPE = "BenchParent"
GRAPH_TYPE = "BenchGraph"


def _int(value: JsonValue | None, default: int = 0) -> int:
    # Struct carries numbers as doubles; params and state come back as floats.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return int(value)


class Noop:
    """A no-op command; OK whatever the report says."""

    kind: ClassVar[CommandKind] = CommandKind.NOOP
    summary: ClassVar[str] = "do nothing"
    needs_children: ClassVar[bool] = False

    def command(self, ctx: StepContext) -> CommandPlan:
        return CommandPlan(commands.noop(ctx.step))

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        return Judgement.ok()


class Tick(Noop):
    """A counted no-op: WARNING (leave the loop) once ``ticks`` ran."""

    summary: ClassVar[str] = "count a no-op step"

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        done = _int(ctx.state.get("ticks_done")) + 1
        if done >= _int(ctx.params.get("ticks"), 1):
            return Judgement.warning("all ticks ran", state={"ticks_done": done})
        return Judgement.ok(state={"ticks_done": done})


class SpawnNoops:
    """``children`` one-tick BenchNoop children; OK when all are complete."""

    kind: ClassVar[CommandKind] = CommandKind.SPAWN_CHILDREN
    summary: ClassVar[str] = "spawn no-op children and join"
    needs_children: ClassVar[bool] = True

    def command(self, ctx: StepContext) -> CommandPlan:
        count = _int(ctx.params.get("children"))
        specs = tuple(
            ChildSpec(type=NOOP_TYPE, key=f"bench.c{i}", params={"ticks": 1}) for i in range(count)
        )
        return CommandPlan(commands.spawn_children(ctx.step, []), create_children=specs)

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        bad = sum(1 for c in ctx.children if c.status != "complete")
        if bad:
            return Judgement.error(f"{bad} children not complete")
        return Judgement.ok()


class SpawnGraph:
    """One ``ticks``-step BenchNoop child per node of ``graph``, waiting for its dependencies."""

    kind: ClassVar[CommandKind] = CommandKind.SPAWN_CHILDREN
    summary: ClassVar[str] = "spawn no-op children in dependency order and join"
    needs_children: ClassVar[bool] = True

    def command(self, ctx: StepContext) -> CommandPlan:
        ticks = _int(ctx.params.get("ticks"), 1)
        specs: list[ChildSpec] = []
        graph = ctx.params.get("graph")
        for node in graph if isinstance(graph, list) else []:
            if not isinstance(node, list) or len(node) != 2 or not isinstance(node[1], list):
                continue
            name, deps = node
            specs.append(
                ChildSpec(
                    type=NOOP_TYPE,
                    key=f"bench.{name}",
                    params={"ticks": ticks},
                    depends_on=tuple(f"bench.{d}" for d in deps),
                )
            )
        return CommandPlan(commands.spawn_children(ctx.step, []), create_children=tuple(specs))

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        bad = sum(1 for c in ctx.children if c.status != "complete")
        if bad:
            return Judgement.error(f"{bad} children not complete")
        return Judgement.ok()


BENCH_NOOP = Workflow(
    type=NOOP_TYPE,
    version=1,
    steps=(StepDef("Tick", Tick(), on_ok="Tick", on_warning=DONE),),
    params={"ticks": ParamSpec("No-op steps to run.", kind=int)},
    summary="Benchmark: N no-op steps.",
)

BENCH_PARENT = Workflow(
    type=PARENT_TYPE,
    version=1,
    steps=(
        StepDef("Start", Noop(), on_ok="Spawn"),
        StepDef("Spawn", SpawnNoops(), on_ok="Joined"),
        StepDef("Joined", Noop(), on_ok=DONE),
    ),
    params={"children": ParamSpec("No-op children to spawn.", kind=int, required=True)},
    child_types=(NOOP_TYPE,),
    summary="Benchmark: fan out to N no-op children and join.",
)

GRAPH_BEFORE_SPAWN = ("Initialize",)
"""The parent's steps before its children (as ContextCoding's)."""
GRAPH_AFTER_JOIN = ("IntegrateChildren", "RunTests", "Finalize")
"""The parent's steps after the join: ContextCoding's integration phase, when nothing fails."""

BENCH_GRAPH = Workflow(
    type=GRAPH_TYPE,
    version=1,
    steps=(
        StepDef("Initialize", Noop(), on_ok="Spawn"),
        StepDef("Spawn", SpawnGraph(), on_ok="IntegrateChildren"),
        StepDef("IntegrateChildren", Noop(), on_ok="RunTests"),
        StepDef("RunTests", Noop(), on_ok="Finalize"),
        StepDef("Finalize", Noop(), on_ok=DONE),
    ),
    params={
        "graph": ParamSpec(
            "Children and their dependencies: [[name, [names]], ...].", kind=list, required=True
        ),
        "ticks": ParamSpec("No-op steps of each child (default 1).", kind=int),
    },
    child_types=(NOOP_TYPE,),
    summary=(
        "Benchmark: fan out to no-op children in dependency order, join, then the "
        "integration phase's steps."
    ),
)

REGISTRY = Registry([BENCH_NOOP, BENCH_PARENT, BENCH_GRAPH])

SERVICE = orchestrator_service(
    "bench", "Benchmark workflows (no-op loops, fan-out); never in a product image", REGISTRY
)
