"""ContextComponentsDesign's fan-out: one ComponentDesign child per component, then a review.

The spawn steps judge the children themselves (the join report only says
"every child is terminal"): all complete with their documents recorded is
OK; anything else is an ERROR naming each child and why, and the retried
spawn reuses the same children (the engine keys them by module name) and
revives the failed ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from specloom.protoconv import JsonValue
from specloom.workflow import (
    ChildSpec,
    ChildView,
    CommandKind,
    CommandPlan,
    Judgement,
    Outcome,
    ReportedResult,
    StepContext,
    commands,
)
from specloom_context_design.v1._common import (
    COMPONENT_DESIGN,
    COMPONENT_DESIGN_REVIEW,
    REVIEW_KEY,
    branch_of,
    child_params,
    components_of,
    context_name,
    fingerprint,
    text,
    workdir_of,
)
from specloom_context_design.v1.initialize import git_facts, git_failure


def _failed_ids(children: Sequence[ChildView], session_type: str) -> tuple[str, ...]:
    return tuple(c.id for c in children if c.type == session_type and c.status == "failed")


def _problem(child: ChildView | None, key: str, recorded: str) -> str:
    if child is None:
        return f"{key}: no session"
    if child.status != "complete":
        reason = f" ({child.status_reason})" if child.status_reason else ""
        return f"{key}: {child.status}{reason}"
    if not text(child.state.get(recorded)):
        return f"{key}: complete but recorded no {recorded.replace('_', ' ')}"
    return ""


def _verdict(
    what: str, problems: list[str], children: Sequence[ChildView], state: dict[str, JsonValue]
) -> Judgement:
    if not problems:
        return Judgement.ok(dict(state))
    reason = f"{what} not done: " + "; ".join(problems)
    # While any child still runs the report came early (a person's manual
    # report): no fingerprint, so it does not count as the same failure twice.
    settled = all(child.terminal for child in children)
    return Judgement.error(reason, fingerprint=fingerprint("children", reason) if settled else "")


@dataclass(frozen=True)
class SpawnComponentDesignSessions:
    """One agentic ComponentDesign child per component of the context."""

    kind: ClassVar[CommandKind] = CommandKind.SPAWN_CHILDREN
    summary: ClassVar[str] = "Design every component in its own child session"
    needs_children: ClassVar[bool] = True

    def command(self, ctx: StepContext) -> CommandPlan:
        context = context_name(ctx)
        specs = tuple(
            ChildSpec(
                type=COMPONENT_DESIGN,
                key=component.module_name,
                name=component.module_name,
                component=component,
                params=child_params(ctx, component=component.module_name, context=context),
                state={"parent_branch": branch_of(ctx)},
            )
            for component in components_of(ctx.state)
        )
        return CommandPlan(
            commands.spawn_children(ctx.step, [], metadata={"context": context}),
            create_children=specs,
            revive_children=_failed_ids(ctx.children, COMPONENT_DESIGN),
        )

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        by_key = {c.key: c for c in ctx.children if c.type == COMPONENT_DESIGN}
        problems: list[str] = []
        recorded: dict[str, JsonValue] = {}
        for component in components_of(ctx.state):
            key = component.module_name
            child = by_key.get(key)
            problem = _problem(child, key, "design_path")
            if problem:
                problems.append(problem)
            elif child is not None:
                recorded[key] = {
                    "id": child.id,
                    "branch": text(child.state.get("branch")),
                    "design_path": text(child.state.get("design_path")),
                }
        return _verdict(
            "Component design sessions", problems, list(by_key.values()), {"children": recorded}
        )


def _designs(state: Mapping[str, JsonValue]) -> list[dict[str, JsonValue]]:
    children = state.get("children")
    if not isinstance(children, dict):
        return []
    designs: list[dict[str, JsonValue]] = []
    for module, child in sorted(children.items()):
        if isinstance(child, dict):
            designs.append(
                {
                    "module": module,
                    "path": text(child.get("design_path")),
                    "branch": text(child.get("branch")),
                }
            )
    return designs


@dataclass(frozen=True)
class SpawnReviewSession:
    """An agentic ComponentDesignReview child over every component design."""

    kind: ClassVar[CommandKind] = CommandKind.SPAWN_CHILDREN
    summary: ClassVar[str] = "Review all component designs together in a child session"
    needs_children: ClassVar[bool] = True

    def command(self, ctx: StepContext) -> CommandPlan:
        context = context_name(ctx)
        spec = ChildSpec(
            type=COMPONENT_DESIGN_REVIEW,
            key=REVIEW_KEY,
            name=f"{context} review",
            params=child_params(ctx, context=context),
            state={"parent_branch": branch_of(ctx), "designs": _designs(ctx.state)},
        )
        return CommandPlan(
            commands.spawn_children(ctx.step, [], metadata={"context": context}),
            create_children=(spec,),
            revive_children=_failed_ids(ctx.children, COMPONENT_DESIGN_REVIEW),
        )

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        reviews = [c for c in ctx.children if c.type == COMPONENT_DESIGN_REVIEW]
        child = next((c for c in reviews if c.key == REVIEW_KEY), None)
        problem = _problem(child, "review", "review_path")
        state: dict[str, JsonValue] = {}
        if child is not None and not problem:
            state["review"] = {
                "id": child.id,
                "branch": text(child.state.get("branch")),
                "review_path": text(child.state.get("review_path")),
            }
        return _verdict("Component design review", [problem] if problem else [], reviews, state)


@dataclass(frozen=True)
class FinalizeComponentsDesign:
    """Bring every child's document onto the branch, commit, push, open a pull request."""

    kind: ClassVar[CommandKind] = CommandKind.GIT
    summary: ClassVar[str] = "Commit all design documents, push, open a pull request"
    needs_children: ClassVar[bool] = False

    def command(self, ctx: StepContext) -> CommandPlan:
        context = context_name(ctx)
        branch = branch_of(ctx)
        gather = []
        paths: list[str] = []
        for design in _designs(ctx.state):
            path, source = text(design["path"]), text(design["branch"])
            paths.append(path)
            if source:
                gather.append(commands.branch_files(source, [path]))
        review = ctx.state.get("review")
        if isinstance(review, dict) and text(review.get("review_path")):
            path = text(review.get("review_path"))
            paths.append(path)
            if text(review.get("branch")):
                gather.append(commands.branch_files(text(review.get("branch")), [path]))
        message = (
            f"Design the components of {context}\n\n"
            f"specloom {ctx.session_type} session {ctx.session_id}"
        )
        ops = [
            commands.commit(paths, message, gather=gather, allow_empty=True),
            commands.push(branch),
        ]
        if ctx.params.get("pull_request") is not False:
            body = "\n".join(
                [f"Component designs of `{context}`, written and validated by specloom:", ""]
                + [f"- `{p}`" for p in paths]
            )
            ops.append(commands.pull_request(f"Design the components of {context}", body, branch))
        command = commands.git(
            ctx.step, ops, workdir=workdir_of(ctx), metadata={"session_type": ctx.session_type}
        )
        return CommandPlan(command)

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        if result.outcome is Outcome.ERROR:
            return git_failure(result, "finalizing the component designs")
        return Judgement.ok(git_facts(result))
