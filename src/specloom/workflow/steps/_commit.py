"""The commit step: exactly the session's files, on its own branch, in its own worktree.

One behaviour for both families (issue 12's truthful commits): the commit
names the paths the session must deliver and ``expect_branch``, so the
executor refuses to commit anywhere but the session's worktree on its
branch, and a path that does not exist is an ERROR naming it. Unchanged
paths are success (a Finalize retried after its commit landed). A
top-level session pushes when its definition says so or a pull request is
asked for, and opens a pull request only when ``pull_request`` is true; a
child never pushes (its parent delivers). Every family's Finalize is this
step, so the ``land_on`` param of a top-level session makes its final commit
land the branch on the project's line (``Commit.land_on``); a child never
lands.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from specloom.v1 import common_pb2 as pb
from specloom.workflow import commands
from specloom.workflow._context import CommandPlan, Judgement, ReportedResult, StepContext
from specloom.workflow._model import CommandKind, Outcome
from specloom.workflow.steps._initialize import step_metadata
from specloom.workflow.steps._params import (
    land_on_of,
    profile_of,
    pull_request_wanted,
    text_param,
)
from specloom.workflow.steps._state import PullRequestRef, SessionState
from specloom.workflow.steps._verdicts import git_failed

__all__ = ["Commit", "CommitChildren"]


class Commit:
    """Commit the session's files; a family fills in the message (and may name the paths)."""

    kind: ClassVar[CommandKind] = CommandKind.GIT
    summary: ClassVar[str] = "commit exactly the session's files on its own branch"
    needs_children: ClassVar[bool] = False

    def __init__(self, *, push: bool = False) -> None:
        self.push = push
        """A top-level session pushes its branch (a pull request pushes anyway)."""

    # -- hooks -------------------------------------------------------------------------

    def paths(self, ctx: StepContext, state: SessionState) -> list[str]:
        """What must be committed: by default the files the session produced."""
        return list(state.files)

    def gather(self, ctx: StepContext, state: SessionState) -> list[pb.BranchFiles]:
        """Files to take from other branches first."""
        return []

    def headline(self, ctx: StepContext, state: SessionState) -> str:
        """The commit's (and pull request's) title."""
        raise NotImplementedError

    def body(self, ctx: StepContext, state: SessionState) -> str:
        """What the commit holds, for its message and the pull request ("" for none)."""
        return ""

    def squash_onto(self, ctx: StepContext, state: SessionState) -> str:
        """A commit to squash onto: one commit replacing the branch's commits since it
        ("" commits on top of the branch as usual)."""
        return ""

    # -- the step ------------------------------------------------------------------------

    def command(self, ctx: StepContext) -> CommandPlan:
        state = SessionState.of(ctx)
        headline, body = self.headline(ctx, state), self.body(ctx, state)
        trailer = f"specloom {ctx.session_type} session {ctx.session_id}"
        message = "\n\n".join(part for part in (headline, body, trailer) if part)
        land_on = land_on_of(ctx)
        operations = [
            commands.commit(
                self.paths(ctx, state),
                message,
                gather=self.gather(ctx, state),
                allow_empty=True,
                squash_onto=self.squash_onto(ctx, state),
                expect_branch=state.branch,
                land_on=land_on,
            )
        ]
        top_level = not ctx.parent_id
        wants_pr = top_level and pull_request_wanted(ctx)
        if top_level and (self.push or wants_pr):
            operations.append(commands.push(state.branch))
        if wants_pr:
            text = "\n\n".join(
                part for part in (body, f"Opened by specloom session {ctx.session_id}.") if part
            )
            operations.append(
                commands.pull_request(
                    headline, text, head=state.branch, base=text_param(ctx, "base")
                )
            )
        metadata = step_metadata(ctx)
        if land_on:
            # The executor scans the line after landing, laid out as this
            # session's profile says.
            metadata["profile"] = profile_of(ctx).name
        command = commands.git(ctx.step, operations, metadata=metadata, workdir=state.workdir)
        return CommandPlan(command)

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        if result.outcome is Outcome.ERROR:
            return git_failed(result, ctx.step)
        state = SessionState.of(ctx)
        data = result.data
        commit, files, pr = (
            data.get("commit"),
            data.get("committed_files"),
            data.get("pull_request"),
        )
        after = replace(
            state,
            commit=commit if isinstance(commit, str) else "",
            committed_files=tuple(str(f) for f in files) if isinstance(files, list) else (),
            pushed=data.get("pushed") is True,
            # WARNING is the push finding no remote: the commit is made, and a
            # local-only repository is allowed to finish.
            push_warning=result.error_message if result.outcome is Outcome.WARNING else "",
            pull_request=(
                PullRequestRef(
                    url=str(pr.get("url") or ""),
                    command=str(pr.get("command") or ""),
                    opened=pr.get("opened") is True,
                )
                if isinstance(pr, dict)
                else None
            ),
        )
        return Judgement.ok(state.to(after))


class CommitChildren(Commit):
    """A parent's Finalize: every child's files, taken from the child's branch, in one commit."""

    summary: ClassVar[str] = "commit every child's files in one commit on the session's branch"

    def paths(self, ctx: StepContext, state: SessionState) -> list[str]:
        return sorted({path for child in state.children for path in child.files})

    def gather(self, ctx: StepContext, state: SessionState) -> list[pb.BranchFiles]:
        return [
            commands.branch_files(child.branch, child.files)
            for child in state.children
            if child.branch and child.files
        ]
