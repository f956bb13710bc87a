"""Reviews: an agent reads designs together and writes a review document.

The original system never built ComponentDesignReview, so its parent waited
forever. Here the review is an ordinary agent step whose output file is
collected and judged on the server: it must exist and say something
(:func:`specloom.documents.validate_review`); otherwise the step runs again
in the same conversation with the specific problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from specloom.documents import validate_review
from specloom.protoconv import JsonValue
from specloom.workflow import (
    CommandKind,
    CommandPlan,
    Judgement,
    Outcome,
    ReportedResult,
    StepContext,
    commands,
)
from specloom_context_design.v1 import prompts
from specloom_context_design.v1._common import (
    agent_metadata,
    agent_options,
    context_name,
    fingerprint,
    profile_of,
    text,
    workdir_of,
)
from specloom_context_design.v1.design import judge_agent
from specloom_context_design.v1.initialize import git_facts, git_failure

COMPONENT_DESIGNS = "component_designs"
CONTEXT_DESIGN = "context_design"


def review_path(ctx: StepContext, which: str) -> str:
    """``docs/review/<context path>/<which>.md``."""
    return f"docs/review/{profile_of(ctx).module_path(context_name(ctx))}/{which}.md"


def _designs(ctx: StepContext) -> list[tuple[str, str]]:
    raw = ctx.state.get("designs")
    if not isinstance(raw, list):
        return []
    return [
        (text(d.get("module")), text(d.get("path")))
        for d in raw
        if isinstance(d, dict) and text(d.get("path"))
    ]


@dataclass(frozen=True)
class ExecuteReview:
    """The agent reviews the designs and writes the review document."""

    kind: ClassVar[CommandKind] = CommandKind.AGENT
    summary: ClassVar[str] = "The agent reviews the designs together and writes a review"
    needs_children: ClassVar[bool] = False

    which: str
    """``component_designs`` (all component designs) or ``context_design``."""

    def command(self, ctx: StepContext) -> CommandPlan:
        context = context_name(ctx)
        path = review_path(ctx, self.which)
        raw = ctx.state.get("review_problems")
        problems = [str(p) for p in raw] if isinstance(raw, list) else []
        if problems:
            prompt = prompts.review_retry_prompt(ctx, path=path, problems=problems)
            resume = text(ctx.state.get("conversation_id"))
        else:
            what = "all component designs" if self.which == COMPONENT_DESIGNS else "the design"
            prompt = prompts.review_prompt(
                ctx,
                what=what,
                context=context,
                context_design_path=profile_of(ctx).design_path(context),
                designs=_designs(ctx),
                path=path,
            )
            resume = ""
        command = commands.agent(
            ctx.step,
            prompt,
            output_paths=[path],
            resume_conversation_id=resume,
            metadata=agent_metadata(
                ctx,
                component="",
                context=context,
                round_=ctx.rounds.get(ctx.step, 0),
                output_path=path,
            ),
            workdir=workdir_of(ctx),
            collect=[path],
            **agent_options(ctx),
        )
        return CommandPlan(command)

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        verdict = judge_agent(ctx, result, "writing the review")
        if verdict.outcome is not Outcome.OK:
            return verdict
        path = review_path(ctx, self.which)
        collected = result.file(path)
        if collected is None or not collected.exists:
            problems: tuple[str, ...] = (f"The review document {path} was not written.",)
        else:
            problems = validate_review(collected.content, truncated=collected.truncated)
        state: dict[str, JsonValue | None] = dict(verdict.state)
        if problems:
            state["review_problems"] = list(problems)
            reason = "; ".join(problems)
            return Judgement.error(reason, fingerprint=fingerprint("review", reason), state=state)
        state.update({"review_problems": None, "review_path": path})
        return Judgement.ok(state)


@dataclass(frozen=True)
class CommitReview:
    """Commit the review document where the session works."""

    kind: ClassVar[CommandKind] = CommandKind.GIT
    summary: ClassVar[str] = "Commit the review document"
    needs_children: ClassVar[bool] = False

    which: str

    def command(self, ctx: StepContext) -> CommandPlan:
        path = review_path(ctx, self.which)
        message = (
            f"Review of {context_name(ctx)}\n\nspecloom {ctx.session_type} session {ctx.session_id}"
        )
        command = commands.git(
            ctx.step,
            [commands.commit([path], message, allow_empty=True)],
            workdir=workdir_of(ctx),
            metadata={"session_type": ctx.session_type, "path": path},
        )
        return CommandPlan(command)

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        if result.outcome is Outcome.ERROR:
            return git_failure(result, "committing the review")
        return Judgement.ok(git_facts(result))
