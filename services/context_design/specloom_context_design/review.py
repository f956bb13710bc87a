"""Reviews: an agent reads designs together and writes a review document (definition v2).

The original system never built ComponentDesignReview, so its parent waited
forever. Here the review is the library's agent step whose output file is
judged on the server: it must exist and say something
(:func:`specloom.documents.validate_review`); otherwise the step runs again
in the same conversation with the specific problems.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from specloom.documents import validate_review
from specloom.workflow import Judgement, StepContext
from specloom.workflow.steps import (
    AgentStep,
    Commit,
    Found,
    SessionState,
    context_of,
    fingerprint,
    profile_of,
)
from specloom_context_design import prompts
from specloom_context_design.state import DesignState

COMPONENT_DESIGNS = "component_designs"
CONTEXT_DESIGN = "context_design"


def review_path(ctx: StepContext, which: str) -> str:
    """``docs/review/<context path>/<which>.md``."""
    return f"docs/review/{profile_of(ctx).module_path(context_of(ctx))}/{which}.md"


class ExecuteReview(AgentStep):
    """The agent reviews the designs and writes the review document."""

    summary: ClassVar[str] = "The agent reviews the designs together and writes a review"

    def __init__(self, which: str) -> None:
        self.which = which
        """``component_designs`` (all component designs) or ``context_design``."""

    def outputs(self, ctx: StepContext) -> list[str]:
        return [review_path(ctx, self.which)]

    def required(self, ctx: StepContext) -> list[str]:
        # A missing review is judged by :meth:`check`, which keeps the
        # conversation going with the problem rather than starting afresh.
        return []

    def round(self, ctx: StepContext) -> int:
        return ctx.rounds.get(ctx.step, 0)

    def resumes(self, ctx: StepContext, state: SessionState) -> str:
        # A retry continues the conversation that wrote the rejected review.
        return state.conversation_id if DesignState.of(ctx).review_problems else ""

    def prompt(self, ctx: StepContext) -> str:
        state = DesignState.of(ctx)
        path = review_path(ctx, self.which)
        if state.review_problems:
            return prompts.review_retry_prompt(ctx, path=path, problems=state.review_problems)
        context = context_of(ctx)
        what = "all component designs" if self.which == COMPONENT_DESIGNS else "the design"
        return prompts.review_prompt(
            ctx,
            what=what,
            context=context,
            context_design_path=profile_of(ctx).design_path(context),
            designs=[(d.module, d.path) for d in state.designs if d.path],
            path=path,
        )

    def check(self, ctx: StepContext, found: Found) -> Judgement | None:
        state = DesignState.of(ctx)
        path = review_path(ctx, self.which)
        collected = found.file(path)
        if collected is None or not collected.exists:
            problems: tuple[str, ...] = (f"The review document {path} was not written.",)
        else:
            problems = validate_review(collected.content, truncated=collected.truncated)
        if problems:
            reason = "; ".join(problems)
            return Judgement.error(
                reason,
                fingerprint=fingerprint("review", reason),
                state=state.to(replace(state, review_problems=problems)),
            )
        return Judgement.ok(state.to(replace(state, review_problems=(), review_path=path)))


class CommitReview(Commit):
    """Commit the review document on the session's branch."""

    summary: ClassVar[str] = "Commit the review document"

    def __init__(self, which: str) -> None:
        super().__init__()
        self.which = which

    def paths(self, ctx: StepContext, state: SessionState) -> list[str]:
        return [review_path(ctx, self.which)]

    def headline(self, ctx: StepContext, state: SessionState) -> str:
        return f"Review of {context_of(ctx)}"
