"""The design loop: Generate → ValidateDesign ⇄ ReviseDesign → Finalize (definition v2).

Shared by ContextDesign and ComponentDesign; ``kind`` says which. The agent
steps are the library's (the document must exist afterwards); the
validation runs here, on the server, over the file the executor collected:
the agent's own opinion of its document is never what decides.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from specloom.documents import CONTEXT, validate_design
from specloom.rules import COMPONENT_DESIGNER, CONTEXT_DESIGNER
from specloom.workflow import (
    CommandKind,
    CommandPlan,
    ComponentView,
    Judgement,
    Outcome,
    ReportedResult,
    StepContext,
    commands,
)
from specloom.workflow.steps import (
    AgentStep,
    Commit,
    SessionState,
    context_of,
    fingerprint,
    loop_cap,
    profile_of,
    step_metadata,
)
from specloom_context_design import prompts
from specloom_context_design.prompts import DesignSubject
from specloom_context_design.scaffold import schema_fields
from specloom_context_design.state import VALIDATE, DesignState, SchemaDesign


def component_of(ctx: StepContext) -> ComponentView:
    """The component a component session designs (params are validated to name one)."""
    if ctx.component is None:
        raise ValueError(f"{ctx.session_type} session {ctx.session_id} has no component")
    return ctx.component


def subject_of(ctx: StepContext, kind: str) -> DesignSubject:
    """What the session designs and where its document goes."""
    profile = profile_of(ctx)
    context = context_of(ctx)
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
        component_type=component.type or "other",
        context=context,
        path=profile.design_path(component.module_name),
        component=component,
        context_design_path=profile.design_path(context),
    )


def designer(design: str) -> str:
    """The persona that writes a ``design`` (``"context"`` or ``"component"``) document."""
    return CONTEXT_DESIGNER if design == CONTEXT else COMPONENT_DESIGNER


class GenerateDesign(AgentStep):
    """The agent writes the design document."""

    summary: ClassVar[str] = "The agent writes the design document"

    def __init__(self, design: str) -> None:
        self.design = design
        """``"context"`` or ``"component"``."""

    def persona_of(self, ctx: StepContext) -> str:
        return designer(self.design)

    def outputs(self, ctx: StepContext) -> list[str]:
        return [subject_of(ctx, self.design).path]

    def prompt(self, ctx: StepContext) -> str:
        return prompts.design_prompt(ctx, subject_of(ctx, self.design))


class ReviseDesign(AgentStep):
    """The same conversation fixes exactly the validation errors."""

    summary: ClassVar[str] = "The agent fixes the validation errors (same conversation)"
    loop: ClassVar[str] = VALIDATE
    continues: ClassVar[bool] = True

    def __init__(self, design: str) -> None:
        self.design = design

    def persona_of(self, ctx: StepContext) -> str:
        return designer(self.design)

    def outputs(self, ctx: StepContext) -> list[str]:
        return [subject_of(ctx, self.design).path]

    def prompt(self, ctx: StepContext) -> str:
        errors = DesignState.of(ctx).validation_errors
        s = subject_of(ctx, self.design)
        return prompts.revise_prompt(ctx, s, errors, self.round(ctx), loop_cap(ctx))


@dataclass(frozen=True)
class ValidateDesign:
    """Collect the design document and validate it here."""

    kind: ClassVar[CommandKind] = CommandKind.NOOP
    summary: ClassVar[str] = "Validate the design document (required sections, components)"
    needs_children: ClassVar[bool] = False

    design: str

    def command(self, ctx: StepContext) -> CommandPlan:
        s = subject_of(ctx, self.design)
        collect = [s.path]
        if self.design == CONTEXT:
            # The component designs already there: scaffolding reads its schemas' fields.
            collect.append(f"{s.path.removesuffix('.md')}/**/*.md")
        command = commands.noop(
            ctx.step,
            workdir=DesignState.of(ctx).workdir,
            collect=collect,
            metadata=step_metadata(ctx),
        )
        return CommandPlan(command)

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        state = DesignState.of(ctx)
        s = subject_of(ctx, self.design)
        collected = result.file(s.path)
        if result.outcome is not Outcome.OK and collected is None:
            # The executor could not even look: not the document's fault, so
            # retry this step rather than spend a revise round.
            return Judgement.warning(
                f"could not collect {s.path}: {result.error_message or 'no file returned'}"
            )
        if collected is None or not collected.exists:
            error = f"The design document {s.path} was not written."
            return Judgement.error(
                error,
                fingerprint=fingerprint("missing", s.path),
                state=state.to(replace(state, validation_errors=(error,))),
            )
        report = validate_design(collected.content, s.component_type, truncated=collected.truncated)
        if not report.ok:
            return Judgement.error(
                report.explain(s.path),
                fingerprint=report.fingerprint(),
                state=state.to(replace(state, validation_errors=report.errors)),
                errors=len(report.errors),
            )
        after = replace(state, validation_errors=(), design_path=s.path)
        if self.design == CONTEXT:
            profile = profile_of(ctx)
            schemas = []
            for component in report.components:
                found = result.file(profile.design_path(component.module_name))
                if component.type == "schema" and found is not None and found.exists:
                    schemas.append(SchemaDesign(component.module_name, schema_fields(found.text())))
            after = replace(after, components=report.components, schemas=tuple(schemas))
        return Judgement.ok(state.to(after), components=len(report.components))


class CommitDesign(Commit):
    """Commit the validated document (and the context's scaffolding) on the session's branch."""

    summary: ClassVar[str] = "Commit the design document on the session's branch"

    def __init__(self, design: str) -> None:
        super().__init__()
        self.design = design

    def paths(self, ctx: StepContext, state: SessionState) -> list[str]:
        # The scaffolding (ContextDesign's Scaffold step) is committed with the design.
        scaffolded = DesignState.read(ctx.state).scaffolded
        return [subject_of(ctx, self.design).path, *scaffolded]

    def headline(self, ctx: StepContext, state: SessionState) -> str:
        return f"Design {subject_of(ctx, self.design).module}"
