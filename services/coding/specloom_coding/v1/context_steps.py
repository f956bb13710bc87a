"""Steps of the context workflows (ContextTesting, ContextCoding).

A context session reads its components from the context design document,
spawns one component child per component, checks the children itself
(complete, files recorded, tests in the expected state), and commits every
child's files, taken from the children's branches, in one commit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from specloom.documents import CONTEXT, validate_design
from specloom.errors import InvalidArgument
from specloom.protoconv import JsonObject, JsonValue
from specloom.rules import RULE_GLOBS, RuleError
from specloom.workflow import (
    ChildSpec,
    ChildView,
    CommandKind,
    CommandPlan,
    ComponentView,
    Judgement,
    Outcome,
    ReportedResult,
    StepContext,
    commands,
)
from specloom_coding.testruns._text import clip
from specloom_coding.v1.common import (
    child_params,
    collected,
    component_list,
    components_of,
    profile_of,
    project_rules,
    session_branch,
    text_param,
    text_state,
)
from specloom_coding.v1.component_steps import git_failed


def context_of(ctx: StepContext) -> str:
    """The context's module name (the required ``context`` parameter)."""
    return text_param(ctx, "context")


class InitializeContext:
    """Create the session branch and read the components from the context design."""

    kind: ClassVar[CommandKind] = CommandKind.GIT
    summary: ClassVar[str] = "create the session branch; read components from the context design"
    needs_children: ClassVar[bool] = False

    def __init__(self, branch_prefix: str, *, session_kind: str) -> None:
        self.branch_prefix = branch_prefix
        self.session_kind = session_kind  # "test" or "code": which rules children get

    def command(self, ctx: StepContext) -> CommandPlan:
        context = context_of(ctx)
        design = profile_of(ctx).design_path(context)
        branch = session_branch(ctx, self.branch_prefix, context)
        operation = commands.create_branch(branch, text_param(ctx, "base"))
        metadata = {"session_type": ctx.session_type, "context": context}
        return CommandPlan(
            commands.git(ctx.step, [operation], metadata=metadata, collect=[design, *RULE_GLOBS]),
            state={"branch": branch, "design_path": design},
        )

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        if result.outcome is Outcome.ERROR:
            return git_failed(result, ctx.step)
        path = text_state(ctx, "design_path")
        content = collected(result, path)
        if content is None:
            return Judgement.error(
                f"no context design at {path}: design the context first "
                "(a ContextDesign session), then Resume",
                fail=True,
            )
        found = result.file(path)
        report = validate_design(
            content, CONTEXT, truncated=bool(found and found.truncated), edition=1
        )
        if not report.ok:
            # A person (or a ContextDesign session) must fix the design; no
            # retry of this step can.
            return Judgement.error(report.explain(path), fail=True)
        problems = _unusable(ctx, report.components)
        if problems:
            return Judgement.error("; ".join(problems), fail=True)
        try:
            rules = project_rules(ctx, result, self.session_kind)
        except RuleError as exc:
            return Judgement.error(f"rules: {exc}; fix the file, then Resume", fail=True)
        return Judgement.ok(
            state={"components": [c.to_dict() for c in report.components], "rules": rules}
        )


def _unusable(ctx: StepContext, components: Sequence[ComponentView]) -> list[str]:
    if not components:
        return [f"the context design {text_state(ctx, 'design_path')} lists no components"]
    profile = profile_of(ctx)
    problems = []
    for component in components:
        try:
            profile.files(component.module_name)
        except InvalidArgument as exc:
            problems.append(f"component {component.module_name!r}: {exc.message}")
    return problems


@dataclass(frozen=True)
class ChildCheck:
    """What a context requires of each finished child."""

    verdict_key: str
    """The child state flag its RunTests judge sets (``tests_passed``, ``tests_verified``)."""
    verdict_text: str
    """What the flag means, for error messages."""
    file_kinds: tuple[str, ...]
    """Which of the component's files must be recorded (``code``, ``test``)."""


class SpawnComponents:
    """One child per component; OK when the children prove they are done."""

    kind: ClassVar[CommandKind] = CommandKind.SPAWN_CHILDREN
    summary: ClassVar[str] = "one child session per component; check every child"
    needs_children: ClassVar[bool] = True

    def __init__(self, child_type: str, check: ChildCheck) -> None:
        self.child_type = child_type
        self.check = check

    def command(self, ctx: StepContext) -> CommandPlan:
        branch = text_state(ctx, "branch")
        rules = ctx.state.get("rules") or []
        specs = tuple(
            ChildSpec(
                type=self.child_type,
                key=component.module_name,
                name=component.name,
                component=component,
                params=child_params(ctx, component),
                state={"base_branch": branch, "rules": rules},
            )
            for component in components_of(ctx.state)
        )
        # A retry reuses the children by key and revives the failed ones,
        # so completed work is never redone.
        failed = tuple(child.id for child in ctx.children if child.status == "failed")
        metadata = {"session_type": ctx.session_type, "context": context_of(ctx)}
        return CommandPlan(
            commands.spawn_children(ctx.step, [], metadata=metadata),
            create_children=specs,
            revive_children=failed,
        )

    def _problem(self, ctx: StepContext, component: ComponentView, child: ChildView | None) -> str:
        name = component.module_name
        if child is None:
            return f"{name}: no child session"
        if child.status != "complete":
            reason = f" ({clip(child.status_reason, 300)})" if child.status_reason else ""
            return f"{name}: {child.status}{reason}"
        files = profile_of(ctx).files(name)
        recorded = child.state.get("files")
        recorded_set = {str(f) for f in recorded} if isinstance(recorded, list) else set()
        missing = [getattr(files, kind) for kind in self.check.file_kinds]
        missing = [path for path in missing if path not in recorded_set]
        if missing:
            return f"{name}: files not recorded as written: {', '.join(missing)}"
        if child.state.get(self.check.verdict_key) is not True:
            return f"{name}: {self.check.verdict_text}"
        if not child.state.get("branch"):
            return f"{name}: no branch recorded"
        return ""

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        by_key = {child.key: child for child in ctx.children}
        components = components_of(ctx.state)
        if not components:
            # Only reachable by retrying from this step on a session whose
            # Initialize never recorded components.
            return Judgement.error(
                "no components recorded for this context; retry from Initialize", fail=True
            )
        problems = [
            problem
            for component in components
            if (problem := self._problem(ctx, component, by_key.get(component.module_name)))
        ]
        if problems:
            digest = hashlib.sha256(json.dumps(sorted(problems)).encode()).hexdigest()[:20]
            return Judgement.error(
                f"{len(problems)} of {len(components)} components not done: " + "; ".join(problems),
                fingerprint=f"children:{digest}",
            )
        children: list[JsonValue] = []
        for component in components:
            child = by_key[component.module_name]
            files = child.state.get("files")
            entry: JsonObject = {
                "key": component.module_name,
                "id": child.id,
                "branch": str(child.state.get("branch", "")),
                "files": [str(f) for f in files] if isinstance(files, list) else [],
            }
            children.append(entry)
        return Judgement.ok(state={"children": children})


class FinalizeContext:
    """Commit every child's files (taken from their branches) in one commit; push."""

    kind: ClassVar[CommandKind] = CommandKind.GIT
    summary: ClassVar[str] = "commit every child's files in one commit; push; pull request"
    needs_children: ClassVar[bool] = False

    def __init__(self, verb: str) -> None:
        self.verb = verb

    def command(self, ctx: StepContext) -> CommandPlan:
        context = context_of(ctx)
        branch = text_state(ctx, "branch")
        gather = []
        paths: set[str] = set()
        for child in _children(ctx):
            gather.append(commands.branch_files(child.branch, child.files))
            paths.update(child.files)
        components = components_of(ctx.state)
        listing = component_list(components)
        message = (
            f"{self.verb} for {context}\n\nComponents:\n{listing}\n\n"
            f"specloom {ctx.session_type} session {ctx.session_id}"
        )
        operations = [
            commands.commit(sorted(paths), message, gather=gather, allow_empty=True),
            commands.push(branch),
        ]
        if ctx.params.get("pull_request") is True:
            title = f"{self.verb} for {context}"
            body = f"Components:\n{listing}\n\nOpened by specloom session {ctx.session_id}."
            operations.append(
                commands.pull_request(title, body, head=branch, base=text_param(ctx, "base"))
            )
        metadata = {"session_type": ctx.session_type, "context": context}
        return CommandPlan(commands.git(ctx.step, operations, metadata=metadata))

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        if result.outcome is Outcome.ERROR:
            return git_failed(result, ctx.step)
        # WARNING is the push finding no remote: the commit is made, and a
        # local-only repository is allowed to finish.
        state: JsonObject = {
            "commit": str(result.data.get("commit", "")),
            "pushed": result.data.get("pushed") is True,
        }
        if result.outcome is Outcome.WARNING:
            state["push_warning"] = result.error_message
        pull_request = result.data.get("pull_request")
        if pull_request is not None:
            state["pull_request"] = pull_request
        return Judgement.ok(state=state)


@dataclass(frozen=True)
class ChildWork:
    """A finished child's branch and the files it wrote there."""

    branch: str
    files: tuple[str, ...]


def _children(ctx: StepContext) -> list[ChildWork]:
    value = ctx.state.get("children")
    work: list[ChildWork] = []
    for item in value if isinstance(value, list) else []:
        if isinstance(item, dict) and item.get("branch") and isinstance(item.get("files"), list):
            work.append(ChildWork(str(item["branch"]), tuple(str(f) for f in item["files"])))
    return work
