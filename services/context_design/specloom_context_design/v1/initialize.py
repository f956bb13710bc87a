"""Initialize: the session's checkout, its rules, and (for fan-out) the context's components.

A top-level session works on its own branch in the main checkout. A child
works in its own git worktree (``.specloom/worktrees/<session_id>``) on its
own branch based on the parent's, so parallel children never share a
checkout. Either way the same command collects the project's rule files and,
where the workflow needs them, the context design; the judge reads them
server-side instead of trusting the executor.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar

from specloom.documents import CONTEXT, validate_design
from specloom.naming import branch_name
from specloom.protoconv import JsonValue
from specloom.rules import RULE_GLOBS, Rule, RuleError, matching, parse_rule
from specloom.workflow import (
    CommandKind,
    CommandPlan,
    Judgement,
    Outcome,
    ReportedResult,
    StepContext,
    commands,
)
from specloom_context_design.v1._common import (
    SESSION_KIND,
    WORKTREES,
    branch_of,
    context_name,
    fingerprint,
    profile_of,
    text,
    workdir_of,
)


def _under(workdir: str, path: str) -> str:
    return f"{workdir}/{path}" if workdir else path


def _designs(state: Mapping[str, JsonValue]) -> list[Mapping[str, JsonValue]]:
    raw = state.get("designs")
    return [d for d in raw if isinstance(d, dict)] if isinstance(raw, list) else []


@dataclass(frozen=True)
class Initialize:
    """Create the branch or worktree; collect rules (and the context design if asked)."""

    kind: ClassVar[CommandKind] = CommandKind.GIT
    summary: ClassVar[str] = (
        "Create the session's branch (a worktree for a child) and collect the project's rules"
    )
    needs_children: ClassVar[bool] = False

    prefix: str
    """Branch name prefix (``branch_prefix`` param overrides it)."""
    component_type: Callable[[StepContext], str]
    """Which component type the session's rules are matched for."""
    read_context_design: bool = False
    """Collect and validate the context design; record its components."""
    designs_from_context: bool = False
    """Derive ``designs`` from the context's components unless the parent gave them."""

    def _wants_design(self, ctx: StepContext) -> bool:
        if self.designs_from_context:
            return "designs" not in ctx.state
        return self.read_context_design

    def command(self, ctx: StepContext) -> CommandPlan:
        prefix = text(ctx.params.get("branch_prefix")) or self.prefix
        if ctx.parent_id:
            # The id suffix keeps two runs over the same component from
            # fighting over a branch still checked out in an old worktree.
            subject = ctx.component.module_name if ctx.component else context_name(ctx)
            branch = branch_name(prefix, f"{subject}-{ctx.session_id[-8:]}")
            workdir = f"{WORKTREES}/{ctx.session_id}"
            gather = [
                commands.branch_files(text(d.get("branch")), [text(d.get("path"))])
                for d in _designs(ctx.state)
                if text(d.get("branch")) and text(d.get("path"))
            ]
            op = commands.add_worktree(
                workdir, branch, text(ctx.state.get("parent_branch")), gather=gather
            )
        else:
            subject = ctx.component.module_name if ctx.component else context_name(ctx)
            branch = branch_name(prefix, subject)
            workdir = ""
            op = commands.create_branch(branch)
        collect = [_under(workdir, glob) for glob in RULE_GLOBS]
        if self._wants_design(ctx):
            collect.append(_under(workdir, profile_of(ctx).design_path(context_name(ctx))))
        command = commands.git(
            ctx.step,
            [op],
            collect=collect,
            metadata={"session_type": ctx.session_type, "branch": branch, "workdir": workdir},
        )
        return CommandPlan(command, state={"branch": branch, "workdir": workdir})

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        if result.outcome is Outcome.ERROR:
            reason = result.error_message or result.stderr.strip()[-2000:] or "git failed"
            return Judgement.error(
                f"Setting up {branch_of(ctx)} failed: {reason}",
                fingerprint=fingerprint("init", reason),
            )
        workdir = workdir_of(ctx)
        try:
            rules = self._rules(ctx, result, workdir)
        except RuleError as exc:
            # A broken rule file is the project's to fix; retrying cannot help.
            return Judgement.error(f"Rules: {exc}. Fix the file, then resume.", fail=True)
        state: dict[str, JsonValue | None] = {
            "rules": [
                rule.to_dict() for rule in matching(rules, self.component_type(ctx), SESSION_KIND)
            ]
        }
        if self._wants_design(ctx):
            problem = self._read_design(ctx, result, workdir, state)
            if problem:
                return Judgement.error(problem, fail=True)
        return Judgement.ok(state)

    @staticmethod
    def _rules(ctx: StepContext, result: ReportedResult, workdir: str) -> list[Rule]:
        globs = [_under(workdir, glob) for glob in RULE_GLOBS]
        found: list[Rule] = []
        for item in sorted(result.existing_files(), key=lambda f: f.path):
            if any(fnmatch.fnmatchcase(item.path, glob) for glob in globs):
                source = item.path.removeprefix(f"{workdir}/") if workdir else item.path
                found.append(parse_rule(item.content, source=source))
        given = ctx.params.get("rules")
        for n, raw in enumerate(given if isinstance(given, list) else []):
            if not isinstance(raw, str):
                raise RuleError(f"params.rules[{n}] must be a markdown string with front matter")
            found.append(parse_rule(raw, source=f"params.rules[{n}]"))
        return found

    def _read_design(
        self,
        ctx: StepContext,
        result: ReportedResult,
        workdir: str,
        state: dict[str, JsonValue | None],
    ) -> str:
        context = context_name(ctx)
        path = profile_of(ctx).design_path(context)
        collected = result.file(_under(workdir, path))
        if collected is None or not collected.exists:
            return (
                f"The context design {path} does not exist on this branch; run a ContextDesign "
                f"session for {context} (and merge or branch from it) first."
            )
        report = validate_design(
            collected.content, CONTEXT, truncated=collected.truncated, edition=1
        )
        if not report.ok:
            return (
                f"The context design {path} is not valid, so its components are unknown; "
                f"fix it (a ContextDesign session does) and resume.\n{report.explain(path)}"
            )
        if not report.components:
            return f"The context design {path} lists no components; there is nothing to fan out."
        state["components"] = [c.to_dict() for c in report.components]
        state["context_design"] = path
        if self.designs_from_context:
            profile = profile_of(ctx)
            state["designs"] = [
                {"module": c.module_name, "path": profile.design_path(c.module_name), "branch": ""}
                for c in report.components
            ]
        return ""


def git_failure(result: ReportedResult, what: str) -> Judgement:
    """ERROR for a failed git command, fingerprinted by its message."""
    reason = result.error_message or result.stderr.strip()[-2000:] or f"{what} failed"
    return Judgement.error(f"{what} failed: {reason}", fingerprint=fingerprint("git", reason))


def git_facts(result: ReportedResult) -> dict[str, JsonValue | None]:
    """The state a finished git step records (commit sha, pull request)."""
    state: dict[str, JsonValue | None] = {}
    commit = result.data.get("commit")
    if isinstance(commit, str) and commit:
        state["commit"] = commit
    pull = result.data.get("pull_request")
    if isinstance(pull, dict):
        state["pull_request"] = dict(pull)
    return state


__all__ = ["Initialize", "git_facts", "git_failure"]
