"""Integration: a parent brings every child's work onto its own branch, then delivers one commit.

After a fan-out the children's work sits on their branches (a dependent
child's branch already holds its dependencies' work). The parent:

- :class:`IntegrateChildren` merges every recorded child's branch into its
  own worktree, dependencies first (``ChildRecord.depends_on``; listed order
  among equals). A branch already merged is skipped, so the step may run any
  number of times. A conflict is an ERROR naming the child and the files,
  with the merge *left in progress* (``state.merging``,
  ``state.conflicts``) for the family's resolve step; run again, the step
  concludes the merge once no conflict marker is left and goes on with the
  rest. The same unresolved conflict twice in a row is stuck, as in every
  loop. A git failure that is no conflict (a branch gone) ends the session:
  no agent can fix it, a person can (then Resume).
- :class:`SquashIntegrated` is the parent's Finalize: one commit on the
  session's branch, the tree of the commit its work started from
  (``state.base_commit``) with every child's files — and whatever the
  parent's own agents wrote — as the integrated worktree has them. Merge
  commits stay on the children's branches; the session's branch gets one
  commit holding every component. Then push, and a pull request if asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import ClassVar

from specloom.protoconv import JsonValue
from specloom.v1 import common_pb2 as pb
from specloom.workflow import commands
from specloom.workflow._context import CommandPlan, Judgement, ReportedResult, StepContext
from specloom.workflow._model import CommandKind, Outcome
from specloom.workflow.steps._commit import CommitChildren
from specloom.workflow.steps._initialize import step_metadata
from specloom.workflow.steps._state import ChildRecord, SessionState
from specloom.workflow.steps._verdicts import conflicts_of, fingerprint, said

__all__ = ["IntegrateChildren", "SquashIntegrated", "integration_order"]

MAX_NAMED = 20
"""Conflicted files a reason names (the state and the result's facts hold them all)."""

MERGE_MESSAGE = "Integrate {branch}"
"""Message of each merge commit (``{branch}``: the child's branch)."""


def integration_order(children: Sequence[ChildRecord]) -> list[ChildRecord]:
    """``children`` with every child after the siblings it depends on; listed order otherwise.

    Dependencies not among ``children`` (another spawn's) are ignored. The
    graph was refused at creation if it had a cycle; should a stored one
    have any, the children on it keep their listed order at the end rather
    than being dropped.
    """
    keys = {child.key for child in children}
    placed: set[str] = set()
    order: list[ChildRecord] = []
    remaining = list(children)
    while remaining:
        ready = [c for c in remaining if all(d in placed or d not in keys for d in c.depends_on)]
        if not ready:
            order.extend(remaining)
            break
        order.extend(ready)
        placed.update(c.key for c in ready)
        remaining = [c for c in remaining if c.key not in placed]
    return order


class IntegrateChildren:
    """Merge every child's branch into the session's worktree, dependencies first."""

    kind: ClassVar[CommandKind] = CommandKind.GIT
    summary: ClassVar[str] = (
        "merge every child's branch into the session's branch, dependencies first; "
        "a conflict is left in progress for the resolve step"
    )
    needs_children: ClassVar[bool] = False

    def __init__(self, child_type: str) -> None:
        self.child_type = child_type
        """Which children to integrate (the spawn's child type)."""

    def children(self, state: SessionState) -> list[ChildRecord]:
        """The children whose branches are merged, in merge order."""
        mine = [c for c in state.children if c.type == self.child_type and c.branch]
        return integration_order(mine)

    def command(self, ctx: StepContext) -> CommandPlan:
        state = SessionState.of(ctx)
        branches = [child.branch for child in self.children(state)]
        if not branches:
            # Judged below: only a session whose spawn recorded no child gets here.
            command = commands.noop(ctx.step, metadata=step_metadata(ctx), workdir=state.workdir)
            return CommandPlan(command)
        operation = commands.merge(branches, MERGE_MESSAGE)
        command = commands.git(
            ctx.step, [operation], metadata=step_metadata(ctx), workdir=state.workdir
        )
        return CommandPlan(command)

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        state = SessionState.of(ctx)
        children = self.children(state)
        if not children:
            return Judgement.error(
                f"{ctx.step}: no child's branch is recorded, so there is nothing to integrate; "
                "retry from the spawn step",
                fail=True,
            )
        if result.outcome is Outcome.ERROR:
            files = conflicts_of(result)
            if files:
                return self.conflicted(ctx, state, children, result, files)
            return Judgement.error(
                f"{ctx.step}: git failed: {said(result) or 'no reason given'}; "
                f"fix it in {state.workdir}, then Resume",
                fail=True,
            )
        after = replace(state, merging="", conflicts=())
        merged = result.data.get("merged")
        facts: dict[str, JsonValue] = {
            "integrated": [child.key for child in children],
            "merged": merged if isinstance(merged, list) else [],
        }
        return Judgement.ok(state.to(after), **facts)

    def conflicted(
        self,
        ctx: StepContext,
        state: SessionState,
        children: Sequence[ChildRecord],
        result: ReportedResult,
        files: Sequence[str],
    ) -> Judgement:
        """ERROR naming the child and the files; the merge waits for the resolve step."""
        branch = str(result.data.get("merging") or "")
        child = next((c for c in children if c.branch == branch), None)
        who = f"{child.key} ({branch})" if child else branch or "a child's branch"
        shown = ", ".join(files[:MAX_NAMED])
        more = f" and {len(files) - MAX_NAMED} more" if len(files) > MAX_NAMED else ""
        pending = result.data.get("pending")
        after = replace(state, merging=child.key if child else branch, conflicts=tuple(files))
        reason = (
            f"merging {who} into {state.branch} conflicts in {len(files)} file(s): "
            f"{shown}{more}; the merge is left in progress for the conflicts to be resolved"
        )
        return Judgement.error(
            reason,
            # The same files still conflicting after a resolve round is no progress.
            fingerprint=fingerprint("conflict", "\n".join([branch, *files])),
            state=state.to(after),
            conflicts=list(files),
            merging=branch,
            pending=pending if isinstance(pending, list) else [],
        )


class SquashIntegrated(CommitChildren):
    """The parent's Finalize: one commit of the integrated work on its branch; push."""

    summary: ClassVar[str] = (
        "one commit on the session's branch holding every child's work (squashed onto the "
        "commit the session started from); push; pull request if asked"
    )

    def __init__(self) -> None:
        super().__init__(push=True)

    def paths(self, ctx: StepContext, state: SessionState) -> list[str]:
        # The children's files, and what the parent's own agents changed
        # while resolving conflicts or fixing the integrated suite.
        return sorted({*super().paths(ctx, state), *state.files})

    def gather(self, ctx: StepContext, state: SessionState) -> list[pb.BranchFiles]:
        # The worktree already holds every child's work: it was merged.
        return []

    def squash_onto(self, ctx: StepContext, state: SessionState) -> str:
        return state.base_commit

    def command(self, ctx: StepContext) -> CommandPlan:
        state = SessionState.of(ctx)
        if not state.base_commit:
            # Without it the commit could not be the one commit promised;
            # the judge says so rather than committing on top of the merges.
            return CommandPlan(commands.noop(ctx.step, metadata=step_metadata(ctx)))
        return super().command(ctx)

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        if not SessionState.of(ctx).base_commit:
            return Judgement.error(
                f"{ctx.step}: Initialize recorded no base commit (where this session's branch "
                "started), so the integrated work cannot be squashed into one commit on it",
                fail=True,
            )
        return super().judge(ctx, result)
