"""What steps read from a session's params, and what a parent hands its children.

One reading of each param for both families: the profile, the context and
subject a session works on, the loop cap, the agent's model, turns and time
limit, whether to open a pull request, and the one list of params that pass
down to children (:data:`CHILD_PARAMS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from specloom.naming import branch_name_problem
from specloom.profiles import Profile, get_profile
from specloom.protoconv import JsonObject, JsonValue
from specloom.workflow._context import StepContext
from specloom.workflow._model import ParamSpec, max_rounds_of

__all__ = [
    "AGENT_TIMEOUT_SECONDS",
    "CHILD_PARAMS",
    "MAX_STORIES",
    "MAX_STORY_CHARS",
    "STEP_PARAMS",
    "AgentOptions",
    "agent_options",
    "child_params",
    "context_of",
    "land_on_of",
    "loop_cap",
    "profile_of",
    "pull_request_wanted",
    "story_lines",
    "subject_of",
    "text_param",
]

AGENT_TIMEOUT_SECONDS = 30 * 60
"""Time limit of one agent step; the executor's watchdog stops a hung agent."""


def _branch_problem(value: str) -> str | None:
    problem = branch_name_problem(value)
    return None if problem is None else f"not a branch name git accepts ({problem})"


STEP_PARAMS: Mapping[str, ParamSpec] = {
    "base": ParamSpec(
        "Start point of the session's branch (default: the workspace's current HEAD) and "
        "base of its pull request; start a session from an earlier one's branch with it.",
        kind=str,
    ),
    "rules": ParamSpec(
        "Extra rules: markdown texts with component_type/session_type front matter.", kind=list
    ),
    "max_turns": ParamSpec(
        "Upper bound on agent turns per agent step (backend default).", kind=int
    ),
    "land_on": ParamSpec(
        "Branch to land the session's work on after its final commit (the project's line, "
        "e.g. specloom/main; it must exist): merged without checking anything out, then the "
        "line is scanned for the project map. Top-level sessions only.",
        kind=str,
        problem=_branch_problem,
    ),
}
"""Params every definition built on the step library accepts (beside the common ones)."""

CHILD_PARAMS: tuple[str, ...] = (
    "profile",
    "project",
    "model",
    "max_rounds",
    "max_turns",
    "user_stories",
)
"""The params a parent hands down to its children, when it has them.

Not ``rules`` (children inherit the parsed rules in their state), not
``base``/``branch_prefix``/``pull_request`` (a child starts from its
parent's branch and never pushes), not ``land_on`` (a child never lands:
its parent's final commit holds its work and lands it). ``user_stories`` passes as
:func:`story_lines`: what a prompt shows, never the whole list, so a wide
fan-out does not copy a large backlog into every child (issue 16).
"""

MAX_STORIES = 50
"""User stories a prompt lists at most (the rest are counted)."""

MAX_STORY_CHARS = 1000
"""Longest user story a prompt shows; longer ones are cut."""


def text_param(ctx: StepContext, name: str) -> str:
    """A string param, stripped; "" when absent."""
    value = ctx.params.get(name)
    return value.strip() if isinstance(value, str) else ""


def profile_of(ctx: StepContext) -> Profile:
    """The session's project profile (``InvalidArgument`` if unknown)."""
    return get_profile(text_param(ctx, "profile") or None)


def context_of(ctx: StepContext) -> str:
    """The context a session works in: the ``context`` param, else its component's parent."""
    given = text_param(ctx, "context")
    if given:
        return given
    if ctx.component is not None and "." in ctx.component.module_name:
        return ctx.component.module_name.rsplit(".", 1)[0]
    return ""


def subject_of(ctx: StepContext) -> str:
    """What a session's branch is named for: its component, else its context."""
    if ctx.component is not None and ctx.component.module_name:
        return ctx.component.module_name
    return context_of(ctx) or ctx.name or ctx.session_type


def loop_cap(ctx: StepContext) -> int:
    """The fix/revise round cap in force (the kernel applies it; prompts quote it)."""
    return max_rounds_of(ctx.params)


def land_on_of(ctx: StepContext) -> str:
    """The branch a session's final commit lands on: ``land_on``, for a top-level
    session only ("" for none, and always for a child)."""
    return "" if ctx.parent_id else text_param(ctx, "land_on")


def pull_request_wanted(ctx: StepContext) -> bool:
    """The one rule: a pull request is opened only when ``pull_request`` is true."""
    return ctx.params.get("pull_request") is True


@dataclass(frozen=True)
class AgentOptions:
    """How an agent command runs, from params."""

    model: str
    """Model name; "" lets the backend choose."""
    max_turns: int
    """Turn limit; 0 lets the backend choose."""
    timeout_seconds: int
    """Time limit of the step."""


def agent_options(ctx: StepContext) -> AgentOptions:
    """The ``model`` and ``max_turns`` params, and the agent time limit."""
    turns = ctx.params.get("max_turns")
    return AgentOptions(
        model=text_param(ctx, "model"),
        max_turns=turns if isinstance(turns, int) and not isinstance(turns, bool) else 0,
        timeout_seconds=AGENT_TIMEOUT_SECONDS,
    )


def _story(value: JsonValue) -> str:
    if isinstance(value, Mapping):
        title = value.get("title")
        about = value.get("description")
        title = title.strip() if isinstance(title, str) else ""
        about = about.strip() if isinstance(about, str) else ""
        text = f"{title}: {about}" if title and about else title or about
    else:
        text = str(value).strip() if value is not None else ""
    text = " ".join(text.split())
    return text if len(text) <= MAX_STORY_CHARS else text[: MAX_STORY_CHARS - 1] + "…"


def story_lines(value: JsonValue) -> list[str]:
    """User stories as a prompt shows them: one line each, at most :data:`MAX_STORIES` lines.

    Past the limit the last line counts the rest. Applying it to its own
    output changes nothing, so a child given these lines shows the same.
    """
    if not isinstance(value, list):
        return []
    stories = [line for line in (_story(v) for v in value) if line]
    if len(stories) <= MAX_STORIES:
        return stories
    rest = len(stories) - MAX_STORIES + 1
    return [*stories[: MAX_STORIES - 1], f"... and {rest} more (see the project's backlog)"]


def child_params(ctx: StepContext, **extra: JsonValue) -> JsonObject:
    """A child's params: :data:`CHILD_PARAMS` the parent has, then ``extra``."""
    params: JsonObject = {}
    for name in CHILD_PARAMS:
        value = ctx.params.get(name)
        if value is None:
            continue
        params[name] = story_lines(value) if name == "user_stories" else value
    params.update(extra)
    return params
