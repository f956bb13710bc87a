"""Reviews: an agent reads designs together and writes a review document (definition v2).

Two reviews, as the original had them, plus the one it never built:

* ContextDesignReview: the original's context reviewer read the context
  design and every component design, checked them against the user stories,
  *fixed* what it found in the design files and wrote a review. Here the
  same, and better checked: every design it may edit is collected back and
  validated under its type's document rules, so a fix cannot leave a design
  invalid, and Finalize commits the fixed designs with the review (the
  original staged only the review).
* ComponentDesignReview (never built in the original, so its parent waited
  forever): the designs of a context's components read together and a
  review written; it reports and does not edit, since its parent commits
  the designs its siblings wrote.

The review document is judged on the server: it must exist and say
something (:func:`specloom.documents.validate_review`); otherwise the step
runs again in the same conversation with the specific problems.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from specloom.documents import CONTEXT, validate_design, validate_review
from specloom.rules import COMPONENT_DESIGN_REVIEWER, CONTEXT_REVIEWER
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
from specloom_context_design.prompts import ReviewedDesign
from specloom_context_design.state import DesignState

COMPONENT_DESIGNS = "component_designs"
CONTEXT_DESIGN = "context_design"


def review_path(ctx: StepContext, which: str) -> str:
    """``docs/review/<context path>/<which>.md``."""
    return f"docs/review/{profile_of(ctx).module_path(context_of(ctx))}/{which}.md"


def reviewed(ctx: StepContext) -> list[ReviewedDesign]:
    """The designs a review reads: the context's, then each component's, with its type."""
    state = DesignState.of(ctx)
    context = context_of(ctx)
    types = {c.module_name: c.type for c in state.components}
    found = [ReviewedDesign(context, CONTEXT, profile_of(ctx).design_path(context))]
    found += [ReviewedDesign(d.module, types.get(d.module, ""), d.path) for d in state.designs]
    return [d for d in found if d.path]


class ExecuteReview(AgentStep):
    """The agent reviews the designs (and, for a context review, fixes them) and writes a review."""

    summary: ClassVar[str] = "The agent reviews the designs together and writes a review"

    def __init__(self, which: str) -> None:
        self.which = which
        """``component_designs`` (all component designs) or ``context_design``."""
        self.fixes = which == CONTEXT_DESIGN
        """The reviewer fixes what it finds in the designs (the context review)."""

    def persona_of(self, ctx: StepContext) -> str:
        return CONTEXT_REVIEWER if self.fixes else COMPONENT_DESIGN_REVIEWER

    def designs(self, ctx: StepContext) -> list[ReviewedDesign]:
        """The design documents this review may edit (none unless it fixes)."""
        return reviewed(ctx) if self.fixes else []

    def outputs(self, ctx: StepContext) -> list[str]:
        return [review_path(ctx, self.which), *(d.path for d in self.designs(ctx))]

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
            return prompts.review_retry_prompt(
                ctx, path=path, problems=state.review_problems, designs=self.designs(ctx)
            )
        context = context_of(ctx)
        if self.fixes:
            return prompts.context_review_prompt(ctx, designs=reviewed(ctx), path=path)
        return prompts.review_prompt(
            ctx,
            what="all component designs",
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
        problems += self.design_problems(ctx, found)
        if problems:
            reason = "; ".join(problems)
            return Judgement.error(
                reason,
                fingerprint=fingerprint("review", reason),
                state=state.to(replace(state, review_problems=problems)),
            )
        return Judgement.ok(state.to(replace(state, review_problems=(), review_path=path)))

    def design_problems(self, ctx: StepContext, found: Found) -> tuple[str, ...]:
        """What is wrong with the designs as the review left them (each must stay valid)."""
        problems: list[str] = []
        for design in self.designs(ctx):
            collected = found.file(design.path)
            if collected is None or not collected.exists:
                continue  # not designed yet: a review does not write new designs
            report = validate_design(
                collected.content, design.component_type or "other", truncated=collected.truncated
            )
            problems += [f"{design.path}: {error}" for error in report.errors]
        return tuple(problems)


class CommitReview(Commit):
    """Commit the review (and the designs a context review fixed) on the session's branch."""

    summary: ClassVar[str] = "Commit the review document, and the designs it fixed"

    def __init__(self, which: str) -> None:
        super().__init__()
        self.which = which

    def paths(self, ctx: StepContext, state: SessionState) -> list[str]:
        review = review_path(ctx, self.which)
        # The designs the review step recorded; the commit keeps only those that changed.
        return [review, *sorted(p for p in state.files if p != review)]

    def headline(self, ctx: StepContext, state: SessionState) -> str:
        return f"Review of {context_of(ctx)}"

    def body(self, ctx: StepContext, state: SessionState) -> str:
        designs = sorted(p for p in state.files if p != review_path(ctx, self.which))
        if not designs:
            return ""
        listed = "\n".join(f"- {p}" for p in designs)
        return f"Design documents reviewed, fixed where the review found problems:\n{listed}"
