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
"""

from __future__ import annotations

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

__all__ = ["Spawn", "child_spec"]

_REASON = 300


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

    def _problem(self, ctx: StepContext, spec: ChildSpec, child: ChildView) -> str:
        if child.status != "complete":
            said = f" ({clip(child.status_reason, _REASON)})" if child.status_reason else ""
            return f"{spec.key}: {child.status}{said}"
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
                )
            )
            problem = self._problem(ctx, spec, child)
            if problem:
                problems.append(problem)
        others = tuple(r for r in state.children if r.type != self.child_type)
        recorded_state = state.to(replace(state, children=others + tuple(records)))
        if not problems:
            return Judgement.ok(recorded_state)
        reason = f"{len(problems)} of {len(specs)} {self.child_type} children not done: " + (
            "; ".join(problems)
        )
        settled = all(child.terminal for child in mine.values())
        return Judgement.error(
            reason,
            fingerprint=fingerprint("children", "\n".join(sorted(problems))) if settled else "",
            state=recorded_state,
        )
