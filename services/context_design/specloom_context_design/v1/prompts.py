"""The prompts of the design family's agent steps.

A prompt is self-contained: project, subject, user stories, the document
spec, the matching rules and the exact output path are all in it, even for
a revise step that also resumes the earlier conversation. A person running
the command by hand, or a backend that lost the conversation, gets the same
instructions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from specloom.documents import CONTEXT, document_spec, review_spec
from specloom.protoconv import JsonValue
from specloom.workflow import ComponentView, StepContext
from specloom_context_design.v1._common import rules_for, text

MAX_STORIES = 50
"""User stories listed at most (the rest are counted, not inlined)."""


@dataclass(frozen=True)
class DesignSubject:
    """What a design session designs, and where the document goes."""

    kind: str
    """``"context"`` or ``"component"``."""
    module: str
    component_type: str
    context: str
    path: str
    """Design document path, relative to the session's working directory."""
    component: ComponentView | None = None
    context_design_path: str = ""
    """For components: the context design to read first."""


def _project(ctx: StepContext) -> list[str]:
    project = ctx.params.get("project")
    if not isinstance(project, dict):
        return []
    name = text(project.get("name")).strip()
    about = text(project.get("description")).strip()
    if not name and not about:
        return []
    return ["## Project", "", f"{name}: {about}" if name and about else name or about, ""]


def _story(value: JsonValue) -> str:
    if isinstance(value, dict):
        title = text(value.get("title")).strip()
        about = text(value.get("description")).strip()
        return f"{title}: {about}" if title and about else title or about
    return str(value).strip() if value is not None else ""


def _stories(ctx: StepContext) -> list[str]:
    raw = ctx.params.get("user_stories")
    if not isinstance(raw, list):
        return []
    stories = [s for s in (_story(v) for v in raw) if s]
    if not stories:
        return []
    lines = ["## User stories", ""]
    lines += [f"- {' '.join(story.split())}" for story in stories[:MAX_STORIES]]
    if len(stories) > MAX_STORIES:
        lines.append(f"- ... and {len(stories) - MAX_STORIES} more (see the project's backlog)")
    return [*lines, ""]


def _rules(ctx: StepContext, component_type: str) -> list[str]:
    composed = rules_for(ctx, component_type)
    if not composed:
        return []
    return ["## Rules", "", "Follow these rules:", "", composed, ""]


def _subject(s: DesignSubject) -> list[str]:
    if s.kind == CONTEXT:
        return [
            f"Design the context `{s.module}`: its purpose, entities, public API and the "
            "components it is made of.",
            "",
        ]
    lines = [
        f"Design the component `{s.module}` (type `{s.component_type}`) of the context "
        f"`{s.context}`.",
        "",
        "## Component",
        "",
        f"- Module: `{s.module}`",
        f"- Type: `{s.component_type}`",
    ]
    if s.component is not None and s.component.description:
        lines.append(f"- Description from the context design: {s.component.description}")
    if s.component is not None and s.component.dependencies:
        lines.append(f"- Depends on: {', '.join(s.component.dependencies)}")
    lines.append("")
    if s.context_design_path:
        lines += [
            f"Read the context design at `{s.context_design_path}` first; this component "
            "must fit it.",
            "",
        ]
    return lines


def _spec(s: DesignSubject) -> list[str]:
    return ["## Document specification", "", document_spec(s.component_type, edition=1), ""]


def _output(path: str) -> list[str]:
    return [
        "## Output",
        "",
        f"Write the document to exactly `{path}` (relative to the working directory), "
        "creating folders as needed. Write no other file.",
    ]


def design_prompt(ctx: StepContext, s: DesignSubject) -> str:
    """The prompt that writes a design document from nothing."""
    lines = [
        *_subject(s),
        *_project(ctx),
        *_stories(ctx),
        *_spec(s),
        *_rules(ctx, s.component_type),
        *_output(s.path),
    ]
    return "\n".join(lines)


def revise_prompt(
    ctx: StepContext, s: DesignSubject, errors: Sequence[str], round_: int, cap: int
) -> str:
    """The prompt that fixes exactly the validation errors of the last round."""
    listed = [f"- {error}" for error in errors] or ["- (the errors were not recorded)"]
    lines = [
        f"The design document `{s.path}` for `{s.module}` did not pass validation "
        f"(revise round {round_} of at most {cap}). Fix exactly these problems and keep "
        "everything that is already right:",
        "",
        *listed,
        "",
        f"Edit `{s.path}` in place. The specification and rules are repeated below.",
        "",
        *_spec(s),
        *_rules(ctx, s.component_type),
        *_output(s.path),
    ]
    return "\n".join(lines)


def review_prompt(
    ctx: StepContext,
    *,
    what: str,
    context: str,
    context_design_path: str,
    designs: Sequence[tuple[str, str]],
    path: str,
) -> str:
    """The prompt of a review: read the designs, write the review document."""
    lines = [
        f"Review {what} of the context `{context}` for consistency, missing dependencies "
        "and integration issues. Read, do not edit, the design documents:",
        "",
        f"- the context design: `{context_design_path}`",
    ]
    lines += [f"- `{module}`: `{design}`" for module, design in designs]
    if not designs:
        lines.append(
            f"- every component design listed in the context design's Components section "
            f"(under `{context_design_path.removesuffix('.md')}/`)"
        )
    lines += [
        "",
        "Check that every dependency one design uses is declared and designed, that the "
        "public APIs the designs call on each other exist with the same signatures, that "
        "entity ownership does not overlap, and that test assertions cover the behaviour.",
        "",
        *_project(ctx),
        *_stories(ctx),
        "## Review document specification",
        "",
        review_spec(f"`{context}`"),
        "",
        *_rules(ctx, CONTEXT),
        *_output(path),
    ]
    return "\n".join(lines)


def review_retry_prompt(ctx: StepContext, *, path: str, problems: Sequence[str]) -> str:
    """The prompt after a review document was missing or too thin."""
    listed = [f"- {problem}" for problem in problems]
    return "\n".join(
        [
            f"The review document `{path}` is not acceptable yet:",
            "",
            *listed,
            "",
            "Write the complete review again, following this specification:",
            "",
            review_spec(f"`{text(ctx.params.get('context'))}`"),
            "",
            *_output(path),
        ]
    )
