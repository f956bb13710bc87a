"""Spawn and join: a parent's children, created once, judged by the parent itself.

One behaviour for both families (issue 13): a spawn step lists its children
as :class:`~specloom.workflow.ChildSpec` (keyed, so a retried spawn reuses
them; a failed one is revived, a completed one never runs again), each
starting from the parent's branch with the parent's rules and the params of
:data:`~specloom.workflow.steps.CHILD_PARAMS`. On the join the judge checks
every child itself: complete, its expected files recorded, its branch
known, and the family's own verdict. Every child is recorded, with its
status, in the one typed list ``state.children``. While any child still
runs the ERROR carries no fingerprint (a person's early report is not "the
same failure twice").

Partial failure loses nothing: a child that failed is named with its
reason and the files it has not delivered; a child that cannot start
because a sibling it waits for failed says so; and the children that did
finish are listed as kept, with their branches (their work stays there, and
``state.children`` records each one's files). The retry (or a person's
Resume) revives only the failed children; their dependents start when they
complete, and a complete child never runs again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import ClassVar

from specloom.protoconv import JsonValue
from specloom.workflow import commands
from specloom.workflow._context import (
    ChildSpec,
    ChildView,
    CommandPlan,
    ComponentView,
    Judgement,
    ReportedResult,
    StepContext,
)
from specloom.workflow._model import CommandKind
from specloom.workflow._record import changes
from specloom.workflow.steps._initialize import step_metadata
from specloom.workflow.steps._params import child_params
from specloom.workflow.steps._state import ChildRecord, SessionState
from specloom.workflow.steps._verdicts import clip, fingerprint

__all__ = ["Spawn", "child_spec", "kept_text"]

_REASON = 300
MAX_KEPT_NAMED = 12
"""Kept children a reason names by key and branch (``state.children`` has them all)."""


def child_spec(
    ctx: StepContext,
    state: SessionState,
    *,
    child_type: str,
    key: str,
    name: str = "",
    component: ComponentView | None = None,
    params: dict[str, JsonValue] | None = None,
    given: SessionState | None = None,
    depends_on: tuple[str, ...] = (),
) -> ChildSpec:
    """A child starting from this session's branch, with its rules and passed-down params.

    ``given`` adds family state to the child's initial state (its ``base`` and
    ``rules`` are set here).
    """
    start = replace(given or SessionState(), base=state.branch, rules=state.rules)
    # Only what differs from a fresh record is written: the child's state
    # starts small whatever the record holds.
    initial = changes(type(start)(), start)
    return ChildSpec(
        type=child_type,
        key=key,
        name=name,
        component=component,
        params=child_params(ctx, **(params or {})),
        state={k: v for k, v in initial.items() if v is not None},
        depends_on=depends_on,
    )


class Spawn:
    """One child per spec; OK when every child proves it is done."""

    kind: ClassVar[CommandKind] = CommandKind.SPAWN_CHILDREN
    summary: ClassVar[str] = "one child session per part; the parent checks every child"
    needs_children: ClassVar[bool] = True

    def __init__(self, child_type: str) -> None:
        self.child_type = child_type

    # -- hooks -------------------------------------------------------------------------

    def specs(self, ctx: StepContext, state: SessionState) -> list[ChildSpec]:
        """The children this step wants (deterministic: the judge asks again)."""
        raise NotImplementedError

    def expected_files(self, ctx: StepContext, spec: ChildSpec) -> list[str]:
        """Paths a complete child must have recorded in its ``files``."""
        return []

    def problem(self, ctx: StepContext, spec: ChildSpec, child: ChildView) -> str:
        """The family's objection to a complete child ("" for none)."""
        return ""

    # -- the step ------------------------------------------------------------------------

    def command(self, ctx: StepContext) -> CommandPlan:
        state = SessionState.of(ctx)
        # A retry reuses the children by key and revives the failed ones, so
        # completed work is never redone.
        failed = tuple(
            c.id for c in ctx.children if c.type == self.child_type and c.status == "failed"
        )
        return CommandPlan(
            commands.spawn_children(ctx.step, [], metadata=step_metadata(ctx)),
            create_children=tuple(self.specs(ctx, state)),
            revive_children=failed,
        )

    def _problem(
        self,
        ctx: StepContext,
        spec: ChildSpec,
        child: ChildView,
        blocked: Mapping[str, Sequence[ChildView]],
    ) -> str:
        if child.status != "complete":
            if spec.key in blocked:
                causes = ", ".join(f"{c.key} ({c.status})" for c in blocked[spec.key])
                return f"{spec.key}: waits for {causes}"
            said = f" ({clip(child.status_reason, _REASON)})" if child.status_reason else ""
            missing = self.expected_files(ctx, spec)
            owed = f"; not delivered: {', '.join(missing)}" if missing else ""
            return f"{spec.key}: {child.status}{said}{owed}"
        recorded = SessionState.read(child.state, where=f"{spec.key}.state")
        missing = [p for p in self.expected_files(ctx, spec) if p not in recorded.files]
        if missing:
            return f"{spec.key}: files not recorded as written: {', '.join(missing)}"
        if not recorded.branch:
            return f"{spec.key}: no branch recorded"
        return self.problem(ctx, spec, child)

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        state = SessionState.of(ctx)
        specs = self.specs(ctx, state)
        if not specs:
            # Only reachable by retrying from this step on a session whose
            # Initialize never recorded what to spawn.
            return Judgement.error(
                f"{ctx.step}: nothing to spawn was recorded; retry from Initialize", fail=True
            )
        mine = {c.key: c for c in ctx.children if c.type == self.child_type}
        blocked = blocked_children(specs, mine)
        problems: list[str] = []
        records: list[ChildRecord] = []
        for spec in specs:
            child = mine.get(spec.key)
            if child is None:
                problems.append(f"{spec.key}: no child session")
                continue
            recorded = SessionState.read(child.state, where=f"{spec.key}.state")
            records.append(
                ChildRecord(
                    key=spec.key,
                    id=child.id,
                    type=child.type,
                    status=child.status,
                    branch=recorded.branch,
                    files=recorded.files,
                    depends_on=spec.depends_on,
                )
            )
            problem = self._problem(ctx, spec, child, blocked)
            if problem:
                problems.append(problem)
        others = tuple(r for r in state.children if r.type != self.child_type)
        recorded_state = state.to(replace(state, children=others + tuple(records)))
        if not problems:
            return Judgement.ok(recorded_state)
        reason = f"{len(problems)} of {len(specs)} {self.child_type} children not done: " + (
            "; ".join(problems)
        )
        kept = [r for r in records if r.status == "complete"]
        if kept:
            reason += "; " + kept_text(kept)
        # Settled as the join is: no child can make progress without a person
        # (or this retry) — each is finished or waits for one that failed.
        settled = all(child.terminal or key in blocked for key, child in mine.items())
        return Judgement.error(
            reason,
            fingerprint=fingerprint("children", "\n".join(sorted(problems))) if settled else "",
            state=recorded_state,
            kept=[r.key for r in kept],
        )


def blocked_children(
    specs: Sequence[ChildSpec], children: Mapping[str, ChildView]
) -> dict[str, list[ChildView]]:
    """Unfinished children that wait, directly or through others, for a failed or cancelled
    sibling: their key, and the siblings at the root of the wait."""
    waits = {spec.key: spec.depends_on for spec in specs}
    memo: dict[str, list[ChildView]] = {}

    def roots(key: str, path: frozenset[str]) -> list[ChildView]:
        if key in memo:
            return memo[key]
        found: dict[str, ChildView] = {}
        for dependency in waits.get(key, ()):
            sibling = children.get(dependency)
            # The graph was refused at creation if it had a cycle; `path`
            # only keeps hand-edited state from looping.
            if sibling is None or dependency in path:
                continue
            if sibling.status in ("failed", "cancelled"):
                found[sibling.key] = sibling
            elif not sibling.terminal:
                found.update((c.key, c) for c in roots(dependency, path | {dependency}))
        memo[key] = list(found.values())
        return memo[key]

    return {
        key: causes
        for key, child in children.items()
        if not child.terminal and (causes := roots(key, frozenset({key})))
    }


def kept_text(kept: Sequence[ChildRecord]) -> str:
    """What a partial failure keeps, as the parent's reason says it."""
    shown = ", ".join(f"{r.key} ({r.branch})" for r in kept[:MAX_KEPT_NAMED])
    more = f" and {len(kept) - MAX_KEPT_NAMED} more" if len(kept) > MAX_KEPT_NAMED else ""
    return (
        f"kept, complete on their own branches ({len(kept)}): {shown}{more}; state.children "
        "lists their files; a retry or Resume runs only what did not finish"
    )
