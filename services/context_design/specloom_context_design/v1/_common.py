"""What every design-family step shares: names, params, paths, agent plumbing.

Session state keys written by this family (all plain JSON):

``branch``
    The session's git branch (Initialize).
``workdir``
    ``""`` for a top-level session, ``.specloom/worktrees/<session_id>`` for a
    child; every later command runs there (Initialize).
``parent_branch``
    A child's base branch, given by its parent at creation.
``rules``
    Project rules matching this session (Initialize), as ``Rule.to_dict()``.
``components``
    A context's components as ``ComponentView.to_dict()`` (a valid context
    design: ValidateDesign of ContextDesign, or Initialize of
    ContextComponentsDesign).
``context_design``
    Path of the context design read by Initialize.
``conversation_id``
    The agent conversation a revise step resumes (agent steps' judges).
``validation_errors``
    The last validation's errors (ValidateDesign); the revise prompt's input.
``design_path``
    The validated design document (ValidateDesign).
``commit``
    The commit sha of Finalize.
``children``
    ``{module: {id, branch, design_path}}`` of the component design children
    (SpawnComponentDesignSessions).
``designs``
    ``[{module, path, branch}]`` the review reads (given by the parent, or
    derived from the context design by a top-level review's Initialize).
``review``
    ``{id, branch, review_path}`` of the review child (SpawnReviewSession).
``review_path``
    The validated review document (ExecuteReview).
``pull_request``
    What Finalize reported for the pull request (``url`` or ``command``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from specloom.documents import CONTEXT
from specloom.profiles import Profile, get_profile
from specloom.protoconv import JsonValue
from specloom.rules import Rule, builtin_rules, compose, matching
from specloom.workflow import ComponentView, ParamSpec, StepContext, max_rounds_of

CONTEXT_DESIGN = "ContextDesign"
COMPONENT_DESIGN = "ComponentDesign"
CONTEXT_COMPONENTS_DESIGN = "ContextComponentsDesign"
COMPONENT_DESIGN_REVIEW = "ComponentDesignReview"
CONTEXT_DESIGN_REVIEW = "ContextDesignReview"

SESSION_KIND = "design"
"""How rules name this family's sessions (their ``session_type``)."""

WORKTREES = ".specloom/worktrees"
"""Where child sessions get their own checkouts (relative to the workspace)."""

REVIEW_KEY = "review"
"""Child key of the review session (module names always contain a '.', so no clash)."""

AGENT_TIMEOUT_SECONDS = 30 * 60
"""Time limit of one agent step; the executor's watchdog stops a hung agent."""

PASSED_TO_CHILDREN = (
    "profile",
    "project",
    "model",
    "max_rounds",
    "max_turns",
    "user_stories",
    "rules",
)
"""Params a parent hands down to the sessions it spawns."""

USER_STORIES = ParamSpec(
    "User stories the design must serve: strings or {title, description}.", kind=list
)
RULES = ParamSpec(
    "Extra rules: markdown texts with component_type/session_type front matter.", kind=list
)
MAX_TURNS = ParamSpec("Upper bound on agent turns per agent step (backend default).", kind=int)
CONTEXT_PARAM = ParamSpec("The context's module name, e.g. 'Inventory'.", required=True)


def profile_of(ctx: StepContext) -> Profile:
    """The session's project profile (file layout)."""
    name = ctx.params.get("profile")
    return get_profile(name if isinstance(name, str) and name else None)


def text(value: JsonValue | None) -> str:
    """A state or param value as a string ("" when absent or not a string)."""
    return value if isinstance(value, str) else ""


def context_name(ctx: StepContext) -> str:
    """The context the session works in: the ``context`` param, else the component's parent."""
    given = text(ctx.params.get("context")).strip()
    if given:
        return given
    if ctx.component is not None and "." in ctx.component.module_name:
        return ctx.component.module_name.rsplit(".", 1)[0]
    return ctx.name


def component_of(ctx: StepContext) -> ComponentView:
    """The component a component session designs (params are validated to name one)."""
    if ctx.component is None:
        raise ValueError(f"{ctx.session_type} session {ctx.session_id} has no component")
    return ctx.component


def workdir_of(ctx: StepContext) -> str:
    """Where this session's commands run."""
    return text(ctx.state.get("workdir"))


def branch_of(ctx: StepContext) -> str:
    """The session's branch."""
    return text(ctx.state.get("branch"))


def cap_of(ctx: StepContext) -> int:
    """The revise-round cap in force (for telling the agent which round this is)."""
    return max_rounds_of(ctx.params)


def fingerprint(kind: str, detail: str) -> str:
    """A short stable fingerprint of a failure, for stuck detection."""
    return f"{kind}:{hashlib.sha256(detail.encode()).hexdigest()[:16]}"


def rules_for(ctx: StepContext, component_type: str) -> str:
    """Built-in and project rules for this session, composed for a prompt."""
    stored = ctx.state.get("rules")
    project = (
        [Rule.from_dict(r) for r in stored if isinstance(r, dict)]
        if isinstance(stored, list)
        else []
    )
    chosen = matching(builtin_rules(), component_type, SESSION_KIND) + matching(
        project, component_type, SESSION_KIND
    )
    return compose(chosen)


def agent_metadata(
    ctx: StepContext, *, component: str, context: str, round_: int, **extra: JsonValue
) -> dict[str, JsonValue]:
    """What internals.md promises on every agent command (the scripted backend matches on it)."""
    return {
        "session_type": ctx.session_type,
        "step": ctx.step,
        "component": component,
        "context": context,
        "round": round_,
        **extra,
    }


def agent_options(ctx: StepContext) -> dict[str, Any]:
    """Model and turn limit for agent commands, from params."""
    turns = ctx.params.get("max_turns")
    return {
        "model": text(ctx.params.get("model")),
        "max_turns": turns if isinstance(turns, int) and not isinstance(turns, bool) else 0,
        "timeout_seconds": AGENT_TIMEOUT_SECONDS,
    }


def child_params(ctx: StepContext, **extra: JsonValue) -> dict[str, JsonValue]:
    """Params for a child: the ones passed down, plus ``extra``."""
    passed = {k: ctx.params[k] for k in PASSED_TO_CHILDREN if ctx.params.get(k) is not None}
    return {**passed, **extra}


def components_of(state: Mapping[str, JsonValue]) -> list[ComponentView]:
    """The components recorded in ``state``."""
    raw = state.get("components")
    if not isinstance(raw, list):
        return []
    return [ComponentView.from_dict(item) for item in raw if isinstance(item, dict)]


def design_type(ctx: StepContext, kind: str) -> str:
    """Component type a design session validates against."""
    if kind == CONTEXT:
        return CONTEXT
    return component_of(ctx).type or "other"
