"""The design loop: Generate → ValidateDesign ⇄ ReviseDesign → Finalize.

Shared by ContextDesign and ComponentDesign; ``kind`` says which. The
validation runs here, on the server, over the file the executor collected:
the agent's own opinion of its document is never what decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from specloom.documents import CONTEXT, validate_design
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
    cap_of,
    component_of,
    context_name,
    design_type,
    fingerprint,
    profile_of,
    text,
    workdir_of,
)
from specloom_context_design.v1.initialize import git_facts, git_failure
from specloom_context_design.v1.prompts import DesignSubject

VALIDATE = "ValidateDesign"
"""The step whose ERROR rounds a revise belongs to."""


def subject_of(ctx: StepContext, kind: str) -> DesignSubject:
    """What the session designs and where its document goes."""
    profile = profile_of(ctx)
    context = context_name(ctx)
    if kind == CONTEXT:
        return DesignSubject(
            kind=CONTEXT,
            module=context,
            component_type=CONTEXT,
            context=context,
            path=profile.design_path(context),
        )
    component = component_of(ctx)
    return DesignSubject(
        kind="component",
        module=component.module_name,
        component_type=design_type(ctx, kind),
        context=context,
        path=profile.design_path(component.module_name),
        component=component,
        context_design_path=profile.design_path(context),
    )


def _metadata(ctx: StepContext, s: DesignSubject, round_: int) -> dict[str, JsonValue]:
    return agent_metadata(
        ctx,
        component="" if s.kind == CONTEXT else s.module,
        context=s.context,
        round_=round_,
        output_path=s.path,
    )


def judge_agent(ctx: StepContext, result: ReportedResult, what: str) -> Judgement:
    """An agent step's verdict: its own outcome, and the conversation to resume later."""
    state: dict[str, JsonValue | None] = {}
    conversation = result.data.get("conversation_id")
    if isinstance(conversation, str) and conversation:
        state["conversation_id"] = conversation
    if result.outcome is Outcome.OK:
        return Judgement.ok(state)
    reason = result.error_message or result.stderr.strip()[-2000:] or f"the agent {what} failed"
    if result.outcome is Outcome.WARNING:
        return Judgement.warning(reason, state)
    return Judgement.error(reason, fingerprint=fingerprint("agent", reason), state=state)


@dataclass(frozen=True)
class GenerateDesign:
    """Ask the agent to write the design document."""

    kind: ClassVar[CommandKind] = CommandKind.AGENT
    summary: ClassVar[str] = "The agent writes the design document"
    needs_children: ClassVar[bool] = False

    design: str
    """``"context"`` or ``"component"``."""

    def command(self, ctx: StepContext) -> CommandPlan:
        s = subject_of(ctx, self.design)
        command = commands.agent(
            ctx.step,
            prompts.design_prompt(ctx, s),
            output_paths=[s.path],
            metadata=_metadata(ctx, s, 0),
            workdir=workdir_of(ctx),
            **agent_options(ctx),
        )
        return CommandPlan(command)

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        return judge_agent(ctx, result, "writing the design")


@dataclass(frozen=True)
class ValidateDesign:
    """Collect the design document and validate it here."""

    kind: ClassVar[CommandKind] = CommandKind.NOOP
    summary: ClassVar[str] = "Validate the design document (required sections, components)"
    needs_children: ClassVar[bool] = False

    design: str

    def command(self, ctx: StepContext) -> CommandPlan:
        s = subject_of(ctx, self.design)
        command = commands.noop(
            ctx.step,
            workdir=workdir_of(ctx),
            collect=[s.path],
            metadata={"session_type": ctx.session_type, "path": s.path},
        )
        return CommandPlan(command)

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        s = subject_of(ctx, self.design)
        collected = result.file(s.path)
        if result.outcome is not Outcome.OK and collected is None:
            # The executor could not even look: not the document's fault, so
            # retry this step rather than spend a revise round.
            return Judgement.warning(
                f"could not collect {s.path}: {result.error_message or 'no file returned'}"
            )
        if collected is None or not collected.exists:
            errors = [f"The design document {s.path} was not written."]
            return Judgement.error(
                errors[0],
                fingerprint=fingerprint("missing", s.path),
                state={"validation_errors": errors},
            )
        report = validate_design(
            collected.content, s.component_type, truncated=collected.truncated, edition=1
        )
        if not report.ok:
            return Judgement.error(
                report.explain(s.path),
                fingerprint=report.fingerprint(),
                state={"validation_errors": list(report.errors)},
                errors=len(report.errors),
            )
        state: dict[str, JsonValue | None] = {"validation_errors": None, "design_path": s.path}
        if self.design == CONTEXT:
            state["components"] = [c.to_dict() for c in report.components]
        return Judgement.ok(state, components=len(report.components))


@dataclass(frozen=True)
class ReviseDesign:
    """Resume the agent's conversation with the specific validation errors."""

    kind: ClassVar[CommandKind] = CommandKind.AGENT
    summary: ClassVar[str] = "The agent fixes the validation errors (same conversation)"
    needs_children: ClassVar[bool] = False

    design: str

    def command(self, ctx: StepContext) -> CommandPlan:
        s = subject_of(ctx, self.design)
        raw = ctx.state.get("validation_errors")
        errors = [str(e) for e in raw] if isinstance(raw, list) else []
        # A revise always follows a failed validation, so it is round 1 at
        # least, also right after a Resume (which restarts the counters).
        round_ = max(1, ctx.rounds.get(VALIDATE, 0))
        command = commands.agent(
            ctx.step,
            prompts.revise_prompt(ctx, s, errors, round_, cap_of(ctx)),
            output_paths=[s.path],
            resume_conversation_id=text(ctx.state.get("conversation_id")),
            metadata=_metadata(ctx, s, round_),
            workdir=workdir_of(ctx),
            **agent_options(ctx),
        )
        return CommandPlan(command)

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        return judge_agent(ctx, result, "revising the design")


@dataclass(frozen=True)
class CommitDesign:
    """Commit the validated document on the session's branch."""

    kind: ClassVar[CommandKind] = CommandKind.GIT
    summary: ClassVar[str] = "Commit the design document on the session's branch"
    needs_children: ClassVar[bool] = False

    design: str

    def command(self, ctx: StepContext) -> CommandPlan:
        s = subject_of(ctx, self.design)
        message = f"Design {s.module}\n\nspecloom {ctx.session_type} session {ctx.session_id}"
        # allow_empty: a retried Finalize after a commit that went through
        # (but whose report was lost) must not fail on "nothing to commit".
        op = commands.commit([s.path], message, allow_empty=True)
        command = commands.git(
            ctx.step,
            [op],
            workdir=workdir_of(ctx),
            metadata={"session_type": ctx.session_type, "path": s.path},
        )
        return CommandPlan(command)

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        if result.outcome is Outcome.ERROR:
            return git_failure(result, "committing the design")
        return Judgement.ok(git_facts(result))
