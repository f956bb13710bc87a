"""What every coding-family step reads from a session: profile, component, paths, branch.

Steps are pure: everything here derives from the step context (params,
state, component) and never touches the file system or git.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence

from specloom.naming import branch_name
from specloom.profiles import ComponentFiles, Profile, get_profile
from specloom.protoconv import JsonObject, JsonValue
from specloom.rules import (
    ANY,
    RULE_GLOBS,
    Rule,
    RuleError,
    builtin_rules,
    compose,
    matching,
    parse_rule,
)
from specloom.workflow import ComponentView, ReportedResult, StepContext

WORKTREES = ".specloom/worktrees"
"""Child sessions work in ``<WORKTREES>/<session_id>`` (see docs/internals.md)."""

REPORTS = ".specloom/reports"
"""Test reports land in ``<REPORTS>/<session_id>/run-<n>.<ext>``, one file per
run, so a run that dies before writing its report is never judged by the
report an earlier run left behind."""

PASSED_TO_CHILDREN = ("profile", "max_rounds", "model", "project", "rules")
"""Parameters a context session hands on to its component children."""


def profile_of(ctx: StepContext) -> Profile:
    """The session's project profile (``InvalidArgument`` if unknown)."""
    value = ctx.params.get("profile")
    return get_profile(value if isinstance(value, str) else None)


def text_param(ctx: StepContext, name: str) -> str:
    """A string parameter, "" when absent."""
    value = ctx.params.get(name)
    return value.strip() if isinstance(value, str) else ""


def text_state(ctx: StepContext, name: str) -> str:
    """A string state value, "" when absent."""
    value = ctx.state.get(name)
    return value if isinstance(value, str) else ""


def component_of(ctx: StepContext) -> ComponentView:
    """The component a component session works on."""
    if ctx.component is None or not ctx.component.module_name:
        # The workflow's params make `component` required, so only a
        # session written by hand can get here.
        raise ValueError(f"{ctx.session_type} session {ctx.session_id} has no component")
    return ctx.component


def files_of(ctx: StepContext) -> ComponentFiles:
    """The component's design, code, test and fixtures paths (relative to its workdir)."""
    return profile_of(ctx).files(component_of(ctx).module_name)


def workdir_of(ctx: StepContext) -> str:
    """Where the session's commands run: its worktree for a child, else the workspace root."""
    return text_state(ctx, "workdir")


def at_root(ctx: StepContext, path: str) -> str:
    """``path`` (relative to the session's workdir) relative to the workspace root."""
    workdir = workdir_of(ctx)
    return f"{workdir}/{path}" if workdir else path


def branch_prefix(ctx: StepContext, default: str) -> str:
    """The ``branch_prefix`` param, else the workflow's default prefix."""
    return text_param(ctx, "branch_prefix") or default


def session_branch(ctx: StepContext, default_prefix: str, subject: str) -> str:
    """``<prefix>-session-for-<subject>``, sanitised for git."""
    return branch_name(branch_prefix(ctx, default_prefix), subject)


def context_name(ctx: StepContext) -> str:
    """The context a session belongs to ("" for a lone component session)."""
    return text_param(ctx, "context")


def agent_metadata(ctx: StepContext, round_: int = 0) -> JsonObject:
    """What the executor (and the scripted backend) match agent commands on."""
    component = ctx.component.module_name if ctx.component else ""
    return {
        "session_type": ctx.session_type,
        "step": ctx.step,
        "component": component,
        "context": context_name(ctx),
        "round": round_,
    }


def collected(result: ReportedResult, path: str) -> bytes | None:
    """Content of a collected file, ``None`` when it was not there."""
    found = result.file(path)
    if found is None or not found.exists:
        return None
    return found.content


def existing(result: ReportedResult, paths: Iterable[str]) -> list[str]:
    """Those of ``paths`` that were collected and are non-empty."""
    return [p for p in paths if (content := collected(result, p)) is not None and content.strip()]


def recorded_files(ctx: StepContext) -> list[str]:
    """Files this session has produced so far (``state.files``)."""
    value = ctx.state.get("files")
    return [str(v) for v in value] if isinstance(value, list) else []


def with_files(ctx: StepContext, new: Iterable[str]) -> list[str]:
    """``state.files`` with ``new`` added, in a stable order."""
    return sorted({*recorded_files(ctx), *new})


def conversation_state(result: ReportedResult) -> JsonObject:
    """State update keeping the agent's conversation id, when it gave one."""
    conversation = result.data.get("conversation_id")
    if isinstance(conversation, str) and conversation:
        return {"conversation_id": conversation}
    return {}


def agent_problem(result: ReportedResult, step: str) -> str:
    """Why an agent step failed, as the agent or executor said."""
    said = result.error_message.strip() or result.stderr.strip()[-500:]
    return f"{step}: the agent did not finish" + (f": {said}" if said else "")


def project_rules(ctx: StepContext, result: ReportedResult, kind: str) -> list[JsonValue]:
    """The project's rules that apply to ``kind`` sessions, in their plain form.

    From the collected rule files and ``params.rules``. Kept in state; a
    context hands them to its children. Raises :class:`RuleError` for a
    malformed rule (the project's to fix, so the session stops).
    """
    found: list[Rule] = []
    for item in sorted(result.existing_files(), key=lambda f: f.path):
        if any(fnmatch.fnmatchcase(item.path, glob) for glob in RULE_GLOBS):
            found.append(parse_rule(item.content, source=item.path))
    given = ctx.params.get("rules")
    for n, raw in enumerate(given if isinstance(given, list) else []):
        if not isinstance(raw, str):
            raise RuleError(f"params.rules[{n}] must be a markdown string with front matter")
        found.append(parse_rule(raw, source=f"params.rules[{n}]"))
    # Only the session kind is filtered here: the component type is matched
    # per component when a prompt is built.
    return [
        rule.to_dict() for rule in found if ANY in rule.session_types or kind in rule.session_types
    ]


def rules_text(ctx: StepContext, component_type: str, kind: str) -> str:
    """Built-in and project rules for a ``kind`` prompt on ``component_type``, composed."""
    stored = ctx.state.get("rules")
    project = (
        [Rule.from_dict(r) for r in stored if isinstance(r, Mapping)]
        if isinstance(stored, list)
        else []
    )
    chosen = matching(builtin_rules(), component_type, kind) + matching(
        project, component_type, kind
    )
    return compose(chosen)


def child_params(ctx: StepContext, component: ComponentView) -> JsonObject:
    """Parameters of a component child: its component, the context, and what carries over."""
    params: JsonObject = {"component": component.to_dict(), "context": text_param(ctx, "context")}
    for name in PASSED_TO_CHILDREN:
        if name in ctx.params and ctx.params[name] is not None:
            params[name] = ctx.params[name]
    return params


def components_of(state: Mapping[str, JsonValue]) -> list[ComponentView]:
    """The context's components recorded by Initialize."""
    value = state.get("components")
    if not isinstance(value, list):
        return []
    return [ComponentView.from_dict(item) for item in value if isinstance(item, Mapping)]


def component_list(components: Sequence[ComponentView]) -> str:
    """A commit-message body listing components, one per line."""
    return "\n".join(f"- {c.module_name}" for c in components)
