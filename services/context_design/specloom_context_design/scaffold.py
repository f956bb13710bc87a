"""Component creation: scaffold a validated context design with the project's own tools.

The seed's "Component Creation" step (ContextDesign v2, after
ValidateDesign, before Finalize): the profile turns the design's components
into a plan (``Profile.scaffold``: package modules and test skeletons for
Python, Phoenix generators for Elixir, and the check that the result
builds), and one shell command carries it out in the session's worktree
(``python3 -c <runner> <plan>``; no new command kind). The runner never
overwrites a file: a file that exists with other content is a conflict and
nothing is written; a file with exactly the planned content counts as
scaffolded (so a retried Scaffold is idempotent), and a generator whose
output exists is skipped. Conflicts, generator failures and a failing
check are ERRORs carrying the tools' own messages; FixScaffold (an agent,
capped by ``max_rounds`` like every fix loop) works from them and Scaffold
runs again. Finalize commits the scaffolded files with the design.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from specloom.documents import FIELD_COLUMNS, parse
from specloom.documents._markdown import plain
from specloom.profiles import ScaffoldComponent, ScaffoldReport, SchemaField
from specloom.rules import UNIT_CODER
from specloom.workflow import (
    CommandKind,
    CommandPlan,
    Judgement,
    Outcome,
    ReportedResult,
    StepContext,
    commands,
)
from specloom.workflow.steps import (
    AgentStep,
    clip,
    context_of,
    fingerprint,
    loop_cap,
    profile_of,
    said,
    step_metadata,
)
from specloom_context_design import prompts
from specloom_context_design.state import SCAFFOLD, DesignState

RUNNER_EXIT_CODES = (0, 1)
"""The runner's "done" and "done, with problems in its report" (2: it could not run)."""


def scaffold_components(state: DesignState) -> list[ScaffoldComponent]:
    """The validated design's components, as the profile plans them."""
    fields = {schema.module: schema.fields for schema in state.schemas}
    return [
        ScaffoldComponent(
            module_name=c.module_name,
            type=c.type,
            description=c.description,
            fields=fields.get(c.module_name, ()),
        )
        for c in state.components
    ]


def schema_fields(design: str) -> tuple[SchemaField, ...]:
    """The fields of a schema design's Fields table (empty when it has none).

    The table is the one the document rules require (Field, Type and
    Required columns); rows without a name are left out, as validation
    reports them.
    """
    for section in parse(design).find("fields")[:1]:
        tables = [
            *section.body.tables,
            *(t for sub in section.subsections for t in sub.body.tables),
        ]
        for table in tables:
            header = [plain(cell).lower() for cell in table.rows[0]] if table.rows else []
            if not all(column in header for column in FIELD_COLUMNS):
                continue
            at = {column: header.index(column) for column in FIELD_COLUMNS}
            rows = [
                {c: plain(row[i]) if i < len(row) else "" for c, i in at.items()}
                for row in table.rows[1:]
            ]
            return tuple(
                SchemaField(
                    name=row["field"],
                    type=row["type"],
                    required=row["required"].lower().startswith("y"),
                )
                for row in rows
                if row["field"]
            )
    return ()


class Scaffold:
    """Create the components' scaffolding through the profile and check that it builds.

    One shell command runs the profile's plan with the runner (see the module
    docstring); OK records what it created or found already scaffolded in
    ``scaffolded`` (and ``files``) for Finalize to commit; a conflict or a
    failing generator or check is an ERROR whose reason, and whose
    ``scaffold_errors`` for FixScaffold, are the tools' own words.
    """

    kind: ClassVar[CommandKind] = CommandKind.SHELL
    summary: ClassVar[str] = (
        "Scaffold the design's components with the project's tools (files, generators) "
        "and check that they build"
    )
    needs_children: ClassVar[bool] = False

    def command(self, ctx: StepContext) -> CommandPlan:
        state = DesignState.of(ctx)
        plan = profile_of(ctx).scaffold(context_of(ctx), scaffold_components(state))
        command = commands.shell(
            ctx.step,
            plan.argv(),
            ok_exit_codes=RUNNER_EXIT_CODES,
            metadata=step_metadata(ctx),
            workdir=state.workdir,
        )
        return CommandPlan(command)

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        state = DesignState.of(ctx)
        if result.outcome is not Outcome.OK:
            problem = f"{ctx.step}: the scaffolding did not run: {said(result) or 'no reason'}"
            return Judgement.error(problem, fingerprint=fingerprint("scaffold-run", problem))
        try:
            report = ScaffoldReport.parse(result.stdout)
        except ValueError as exc:
            problem = f"{ctx.step}: unreadable scaffolding report: {exc}"
            return Judgement.error(problem, fingerprint=fingerprint("scaffold-run", problem))
        if not report.ok:
            errors = tuple(clip(error, 4000) for error in report.errors())
            return Judgement.error(
                "\n".join(errors),
                fingerprint=fingerprint("scaffold", "\n".join(errors)),
                state=state.to(replace(state, scaffold_errors=errors)),
                conflicts=len(report.conflicts),
            )
        scaffolded = report.files()
        after = replace(
            state,
            scaffold_errors=(),
            scaffolded=scaffolded,
            files=state.with_files(scaffolded),
        )
        return Judgement.ok(
            state.to(after),
            created=len(report.created),
            unchanged=len(report.unchanged),
            kept=len(report.kept),
            generated=len(report.generated),
            skipped=len(report.skipped),
        )


class FixScaffold(AgentStep):
    """An agent resolves the conflicts or failures of the last Scaffold (capped rounds)."""

    summary: ClassVar[str] = "The agent resolves the scaffolding's conflicts or build failures"
    loop: ClassVar[str] = SCAFFOLD
    runs_tests: ClassVar[bool] = True
    persona: ClassVar[str] = UNIT_CODER

    def outputs(self, ctx: StepContext) -> list[str]:
        state = DesignState.of(ctx)
        plan = profile_of(ctx).scaffold(context_of(ctx), scaffold_components(state))
        return [f.path for f in plan.files]

    def required(self, ctx: StepContext) -> list[str]:
        # Resolving a conflict may mean moving a file away: nothing must exist afterwards.
        return []

    def prompt(self, ctx: StepContext) -> str:
        state = DesignState.of(ctx)
        plan = profile_of(ctx).scaffold(context_of(ctx), scaffold_components(state))
        return prompts.fix_scaffold_prompt(
            ctx,
            design_path=state.design_path,
            errors=state.scaffold_errors,
            plan=plan,
            round_=self.round(ctx),
            cap=loop_cap(ctx),
        )
