"""Initialize: every session in its own worktree, on its own branch, with its inputs checked.

One behaviour for every session, top-level or child (issue 12): the command
adds the worktree ``.specloom/worktrees/<session_id>`` on the session's own
branch (:func:`specloom.naming.session_branch`), started from the ``base``
param (a top-level session; default the workspace's HEAD commit) or from
the parent's branch (a child, given at creation). The user's checkout —
HEAD, index, files — is never touched. The same command collects what the
judge needs: the family's inputs and, for a top-level session, the
project's rules (children inherit their parent's).

A child of a dependency-ordered fan-out starts from its dependencies' work:
the same command merges their branches (``state.dependencies``, given at
creation, in order) into the new worktree before anything else. A conflict
between them stops the child at once with the files named and the merge
left in progress (no retry can resolve it; a person can, then Resume).
Initialize records the commit the session's own work starts from
(``base_commit``); a parent squashes its integrated result onto it.

Families subclass :class:`Initialize` (or :class:`ContextInitialize`, which
reads the context design and its components) and fill in the hooks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import ClassVar

from specloom.documents import CONTEXT, validate_design
from specloom.naming import session_branch, worktree_path
from specloom.protoconv import JsonObject, JsonValue
from specloom.rules import RULE_GLOBS, RuleError
from specloom.v1 import common_pb2 as pb
from specloom.workflow import commands
from specloom.workflow._context import (
    CommandPlan,
    ComponentView,
    Judgement,
    ReportedResult,
    StepContext,
)
from specloom.workflow._model import CommandKind, Outcome
from specloom.workflow.steps._found import Found, under
from specloom.workflow.steps._params import context_of, profile_of, subject_of, text_param
from specloom.workflow.steps._rules import project_rules
from specloom.workflow.steps._state import SessionState
from specloom.workflow.steps._verdicts import conflicts_of, git_failed, said

__all__ = ["ContextInitialize", "Initialize", "step_metadata"]

MAX_NAMED = 20
"""Conflicted files a reason names (the judged result's facts list them all)."""


def step_metadata(ctx: StepContext) -> JsonObject:
    """What every command of a session carries (executors and the scripted backend match it)."""
    return {
        "session_type": ctx.session_type,
        "step": ctx.step,
        "component": ctx.component.module_name if ctx.component else "",
        "context": context_of(ctx),
    }


class Initialize:
    """Create the session's worktree on its own branch; collect and check its inputs."""

    kind: ClassVar[CommandKind] = CommandKind.GIT
    summary: ClassVar[str] = (
        "create the session's own worktree and branch; collect and check its inputs"
    )
    needs_children: ClassVar[bool] = False

    def __init__(self, prefix: str, *, session_kind: str) -> None:
        self.prefix = prefix
        """Branch name prefix (the ``branch_prefix`` param overrides it)."""
        self.session_kind = session_kind
        """How rules name this session's kind: ``design``, ``test`` or ``code``."""

    # -- hooks -------------------------------------------------------------------------

    def inputs(self, ctx: StepContext, state: SessionState) -> list[str]:
        """Paths (in the worktree) the judge must see."""
        return []

    def gather(self, ctx: StepContext, state: SessionState) -> list[pb.BranchFiles]:
        """Files to bring into the new worktree from other branches."""
        return []

    def inspect(self, ctx: StepContext, state: SessionState, found: Found) -> Judgement:
        """The family's verdict on the collected inputs (OK by default)."""
        return Judgement.ok()

    # -- the step ------------------------------------------------------------------------

    def worktree(
        self, ctx: StepContext, state: SessionState, workdir: str, branch: str
    ) -> list[pb.GitOperation]:
        """The operations that make the session's worktree, in order.

        The worktree on its branch from its base (the ``base`` param, or the
        parent's branch for a child) with the family's gathered files. A child
        of a dependency-gated fan-out also brings in ``state.dependencies``'
        branches here, in order, so it starts from its dependencies' work.
        """
        base = state.base or text_param(ctx, "base")
        merge = [d.branch for d in state.dependencies if d.branch]
        return [commands.add_worktree(workdir, branch, base, self.gather(ctx, state), merge=merge)]

    def command(self, ctx: StepContext) -> CommandPlan:
        state = SessionState.of(ctx)
        branch = session_branch(
            text_param(ctx, "branch_prefix") or self.prefix, subject_of(ctx), ctx.session_id
        )
        workdir = worktree_path(ctx.session_id)
        operations = self.worktree(ctx, state, workdir, branch)
        # The command runs at the workspace root: the worktree does not exist
        # before it, so what it collects is named from the root.
        collect = [under(workdir, path) for path in self.inputs(ctx, state)]
        if not ctx.parent_id:
            collect += [under(workdir, glob) for glob in RULE_GLOBS]
        command = commands.git(ctx.step, operations, metadata=step_metadata(ctx), collect=collect)
        after = replace(state, branch=branch, workdir=workdir)
        return CommandPlan(command, state=state.to(after))

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        state = SessionState.of(ctx)
        unnamed = [d.key for d in state.dependencies if not d.branch]
        if unnamed:
            # The kernel reads each dependency's branch from its initial
            # state; a sibling without one cannot be built on.
            return Judgement.error(
                f"{ctx.step}: the dependencies {', '.join(unnamed)} recorded no branch, so their "
                "work cannot be merged into this session's worktree",
                fail=True,
            )
        if result.outcome is Outcome.ERROR:
            if conflicts_of(result):
                return self.conflicted(ctx, state, result)
            return git_failed(result, ctx.step)
        found = Found(result, state.workdir)
        verdict = self.inspect(ctx, state, found)
        if verdict.outcome is not Outcome.OK:
            return verdict
        started = self.started(state, result)
        if ctx.parent_id:
            return replace(verdict, state={**verdict.state, **started})
        try:
            rules = project_rules(ctx, found, self.session_kind)
        except RuleError as exc:
            return Judgement.error(f"rules: {exc}; fix the file, then Resume", fail=True)
        changes = {**verdict.state, **started, **state.to(replace(state, rules=rules))}
        return Judgement.ok(changes, **verdict.facts)

    @staticmethod
    def started(state: SessionState, result: ReportedResult) -> dict[str, JsonValue | None]:
        """``base_commit``: the worktree's head as the work starts (recorded once).

        A retried Initialize (a worktree reused after later steps committed
        in it) must not move it: the squash onto it would lose that work.
        """
        commit = result.data.get("commit")
        if state.base_commit or not isinstance(commit, str) or not commit:
            return {}
        return state.to(replace(state, base_commit=commit))

    @staticmethod
    def conflicted(ctx: StepContext, state: SessionState, result: ReportedResult) -> Judgement:
        """The dependencies' branches conflict with each other: a person must resolve them."""
        files = conflicts_of(result)
        return Judgement.error(
            f"{ctx.step}: the dependencies' branches conflict in {len(files)} file(s): "
            f"{', '.join(files[:MAX_NAMED])}; {said(result)}. The merge is left in progress in "
            f"{state.workdir}: resolve the conflicts there (remove every conflict marker), "
            "then Resume",
            fail=True,
            conflicts=list(files),
        )


class ContextInitialize(Initialize):
    """Initialize of a fan-out: read the context design and record its components."""

    summary: ClassVar[str] = (
        "create the session's own worktree and branch; read the components from the context design"
    )

    def inputs(self, ctx: StepContext, state: SessionState) -> list[str]:
        return [profile_of(ctx).design_path(context_of(ctx))]

    def usable(self, ctx: StepContext, components: Sequence[ComponentView]) -> list[str]:
        """Problems that stop this family from working on ``components`` (none by default)."""
        return []

    def inspect(self, ctx: StepContext, state: SessionState, found: Found) -> Judgement:
        path = profile_of(ctx).design_path(context_of(ctx))
        collected = found.file(path)
        start = state.base or text_param(ctx, "base") or "the workspace's HEAD"
        if collected is None or not collected.exists:
            # A person must act (design the context, or start from its
            # branch); no retry of this step can.
            return Judgement.error(
                f"no context design at {path} on {start}: design the context first (a "
                "ContextDesign session) and start this session from its branch (the "
                "`base` parameter), then Resume",
                fail=True,
            )
        report = validate_design(collected.content, CONTEXT, truncated=collected.truncated)
        if not report.ok:
            return Judgement.error(report.explain(path), fail=True)
        if not report.components:
            return Judgement.error(
                f"the context design {path} lists no components; there is nothing to fan out",
                fail=True,
            )
        problems = self.usable(ctx, report.components)
        if problems:
            return Judgement.error("; ".join(problems), fail=True)
        after = replace(state, context_design=path, components=report.components)
        return Judgement.ok(state.to(after), components=len(report.components))
