"""A toy registry exercising every engine mechanism (loops, caps, children).

Not a product workflow: it exists so engine behaviour is pinned
independently of the design and coding families.
"""

from __future__ import annotations

from typing import ClassVar

from specloom.protoconv import JsonValue
from specloom.workflow import (
    DONE,
    ChildSpec,
    CommandKind,
    CommandPlan,
    ComponentView,
    Judgement,
    ParamSpec,
    Registry,
    ReportedResult,
    StepContext,
    StepDef,
    Workflow,
    commands,
    dependencies_of,
)


class Shell:
    """Runs `make <target>`; OK unless the report says otherwise."""

    kind: ClassVar[CommandKind] = CommandKind.SHELL
    summary: ClassVar[str] = "run make"
    needs_children: ClassVar[bool] = False

    def __init__(self, target: str) -> None:
        self.target = target

    def command(self, ctx: StepContext) -> CommandPlan:
        return CommandPlan(
            commands.shell(ctx.step, ["make", self.target]), state={"last": self.target}
        )

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        if result.outcome.value == "ok":
            return Judgement.ok()
        if result.outcome.value == "warning":
            return Judgement.warning(result.error_message or "flaky")
        fingerprint = str(result.data.get("fingerprint", ""))
        return Judgement.error(
            result.error_message or f"{self.target} failed",
            fingerprint=fingerprint,
            fail=bool(result.data.get("fatal", False)),
        )


class Spawn:
    """One Leaf child per name in params["parts"]; OK when all complete."""

    kind: ClassVar[CommandKind] = CommandKind.SPAWN_CHILDREN
    summary: ClassVar[str] = "spawn leaves"
    needs_children: ClassVar[bool] = True

    def command(self, ctx: StepContext) -> CommandPlan:
        parts = [str(p) for p in ctx.params.get("parts") or []]  # type: ignore[union-attr]
        given = ctx.params.get("payload")
        payload: dict[str, JsonValue] = {"payload": given} if given is not None else {}
        specs = tuple(
            ChildSpec(
                type="Leaf",
                key=f"toy.{part}",
                component=ComponentView(name=part, module_name=f"toy.{part}", type="other"),
                # A payload given to the parent is copied to every child: how a
                # fan-out's write grows past what one message can carry.
                params={"component": f"toy.{part}", **payload},
            )
            for part in parts
        )
        failed = tuple(c.id for c in ctx.children if c.status == "failed")
        return CommandPlan(
            commands.spawn_children(ctx.step, []), create_children=specs, revive_children=failed
        )

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        bad = sorted(c.key for c in ctx.children if c.status != "complete")
        if bad:
            return Judgement.error(f"children not complete: {', '.join(bad)}")
        return Judgement.ok(state={"children": sorted(c.key for c in ctx.children)})


class Checkout:
    """A part's own worktree and branch, merging its dependencies' branches in order.

    What the families' Initialize does for a dependent child: everything it
    needs is in its initial state, so the command is built at creation.
    """

    kind: ClassVar[CommandKind] = CommandKind.GIT
    summary: ClassVar[str] = "worktree on the part's branch, dependencies merged"
    needs_children: ClassVar[bool] = False

    def command(self, ctx: StepContext) -> CommandPlan:
        branch = f"toy-{ctx.params.get('component')}"
        merge = [d.branch for d in dependencies_of(ctx.state)]
        worktree = commands.add_worktree(
            f".specloom/worktrees/{ctx.session_id}", branch, "main", merge=merge
        )
        return CommandPlan(commands.git(ctx.step, [worktree]), state={"branch": branch})

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        if result.outcome.value == "ok":
            return Judgement.ok()
        return Judgement.error(result.error_message or "checkout failed", fail=True)


class GraphSpawn:
    """One Part child per node of params["graph"]: [[name, [names it depends on]], ...].

    A list, not a mapping: a Struct's keys come back in no particular order,
    and the spawn's order is part of what is tested.
    """

    kind: ClassVar[CommandKind] = CommandKind.SPAWN_CHILDREN
    summary: ClassVar[str] = "spawn parts in dependency order"
    needs_children: ClassVar[bool] = True

    def command(self, ctx: StepContext) -> CommandPlan:
        graph = ctx.params.get("graph") or []
        assert isinstance(graph, list)
        specs = []
        for node in graph:
            assert isinstance(node, list)
            name, deps = node
            assert isinstance(deps, list)
            specs.append(
                ChildSpec(
                    type="Part",
                    key=f"toy.{name}",
                    params={"component": f"toy.{name}"},
                    depends_on=tuple(f"toy.{d}" for d in deps),
                )
            )
        failed = tuple(c.id for c in ctx.children if c.status == "failed")
        return CommandPlan(
            commands.spawn_children(ctx.step, []),
            create_children=tuple(specs),
            revive_children=failed,
        )

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        status = {c.key: c.status for c in ctx.children}
        problems = []
        for child in ctx.children:
            if child.status == "complete":
                continue
            stuck = [d.key for d in child.dependencies if status.get(d.key) != "complete"]
            if child.status == "active" and stuck:
                problems.append(f"{child.key}: waiting for {', '.join(stuck)}")
            else:
                problems.append(f"{child.key}: {child.status}")
        if problems:
            return Judgement.error("; ".join(problems))
        return Judgement.ok()


BUILD = Workflow(
    type="Build",
    version=1,
    steps=(
        StepDef("Compile", Shell("compile"), on_ok="Test"),
        StepDef("Test", Shell("test"), on_ok=DONE, on_error="Fix"),
        StepDef("Fix", Shell("fix"), on_ok="Test"),
    ),
    params={"parts": ParamSpec("names", kind=list)},
)

LEAF = Workflow(
    type="Leaf",
    version=1,
    steps=(StepDef("Work", Shell("work"), on_ok=DONE),),
    params={
        "component": ParamSpec("component", kind=str, required=True),
        "payload": ParamSpec("opaque text handed down by the parent", kind=str),
    },
)

TREE = Workflow(
    type="Tree",
    version=1,
    steps=(
        StepDef("Prepare", Shell("prepare"), on_ok="Spawn"),
        StepDef("Spawn", Spawn(), on_ok="Finish"),
        StepDef("Finish", Shell("finish"), on_ok=DONE),
    ),
    params={
        "parts": ParamSpec("names", kind=list, required=True),
        "payload": ParamSpec("opaque text copied to every child", kind=str),
    },
    child_types=("Leaf",),
)

PART = Workflow(
    type="Part",
    version=1,
    steps=(
        StepDef("Checkout", Checkout(), on_ok="Work"),
        StepDef("Work", Shell("work"), on_ok=DONE),
    ),
    params={"component": ParamSpec("component", kind=str, required=True)},
)

GRAPH = Workflow(
    type="Graph",
    version=1,
    steps=(
        StepDef("Prepare", Shell("prepare"), on_ok="Spawn"),
        StepDef("Spawn", GraphSpawn(), on_ok="Finish"),
        StepDef("Finish", Shell("finish"), on_ok=DONE),
    ),
    params={"graph": ParamSpec("[[part, [parts it depends on]], ...]", kind=list, required=True)},
    child_types=("Part",),
)

REGISTRY = Registry([BUILD, LEAF, TREE, PART, GRAPH])
