"""The prompts of the design family's agent steps.

A prompt is self-contained: project, subject, user stories, the document
spec, the matching rules and the exact output path are all in it, even for
a revise step that also resumes the earlier conversation. A person running
the command by hand, or a backend that lost the conversation, gets the same
instructions. Who the agent is (a context designer, a component designer,
a reviewer) is its persona, sent as the system prompt by the steps.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from specloom.documents import CONTEXT, document_spec, required_sections, review_spec, section_title
from specloom.profiles import ScaffoldPlan
from specloom.workflow import ComponentView, StepContext
from specloom.workflow.steps import context_of, rules_text, story_lines
from specloom_context_design.state import SESSION_KIND, DesignState


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
    name = str(project.get("name") or "").strip()
    about = str(project.get("description") or "").strip()
    if not name and not about:
        return []
    return ["## Project", "", f"{name}: {about}" if name and about else name or about, ""]


def _stories(ctx: StepContext) -> list[str]:
    stories = story_lines(ctx.params.get("user_stories"))
    if not stories:
        return []
    return ["## User stories", "", *(f"- {story}" for story in stories), ""]


def _rules(ctx: StepContext, component_type: str | Sequence[str]) -> list[str]:
    composed = rules_text(DesignState.of(ctx).rules, component_type, SESSION_KIND)
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
    return ["## Document specification", "", document_spec(s.component_type), ""]


def _output(path: str) -> list[str]:
    return [
        "## Output",
        "",
        f"Write the document to exactly `{path}` (relative to the working directory), "
        "creating folders as needed. Write no other file.",
    ]


CONCISE = (
    "Make the design as concise as it can be while it still describes the module "
    "accurately: dense, specific, nothing a reader does not need."
)
"""The original's closing instruction to its designers."""


def design_prompt(ctx: StepContext, s: DesignSubject) -> str:
    """The prompt that writes a design document from nothing."""
    lines = [
        *_subject(s),
        *_project(ctx),
        *_stories(ctx),
        *_spec(s),
        *_rules(ctx, s.component_type),
        *_output(s.path),
        "",
        CONCISE,
    ]
    return "\n".join(lines)


def revise_prompt(
    ctx: StepContext, s: DesignSubject, errors: Sequence[str], round_: int, cap: int
) -> str:
    """The prompt that fixes exactly the validation errors of the last round."""
    listed = [f"- {error}" for error in errors] or ["- (the errors were not recorded)"]
    which = (
        f"revise round {round_} of at most {cap}"
        if round_
        # A Resume restarted the count; this revise is not one of the capped rounds.
        else f"a revision after the session was resumed; then up to {cap} more rounds"
    )
    lines = [
        f"The design document `{s.path}` for `{s.module}` did not pass validation "
        f"({which}). Fix exactly these problems and keep everything that is already right:",
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


def review_retry_prompt(
    ctx: StepContext,
    *,
    path: str,
    problems: Sequence[str],
    designs: Sequence[ReviewedDesign] = (),
) -> str:
    """The prompt after a review document was missing or too thin; for a review that fixes
    the ``designs``, also after it left one of them invalid."""
    listed = [f"- {problem}" for problem in problems]
    if not designs:
        return "\n".join(
            [
                f"The review document `{path}` is not acceptable yet:",
                "",
                *listed,
                "",
                "Write the complete review again, following this specification:",
                "",
                review_spec(f"`{context_of(ctx)}`"),
                "",
                *_output(path),
            ]
        )
    return "\n".join(
        [
            "The review is not finished; these problems remain:",
            "",
            *listed,
            "",
            "Fix each one where it is: a design document a problem names must follow its "
            "document rules again (keep your fixes), and the review must follow its "
            "specification.",
            "",
            *_design_list(designs),
            *_document_rules(designs),
            "## Review document specification",
            "",
            review_spec(f"`{context_of(ctx)}`", fixes=True),
            "",
            *_review_output(path),
        ]
    )


@dataclass(frozen=True)
class ReviewedDesign:
    """A design document a context review reads and may fix."""

    module: str
    component_type: str
    """Its type ("" when the context design does not give it)."""
    path: str


def _design_list(designs: Sequence[ReviewedDesign]) -> list[str]:
    context_design, components = designs[0], designs[1:]
    lines = ["## Design documents", "", f"- the context design: `{context_design.path}`"]
    lines += [f"- `{d.module}` ({d.component_type or 'other'}): `{d.path}`" for d in components]
    return [*lines, ""]


def _document_rules(designs: Sequence[ReviewedDesign]) -> list[str]:
    lines = [
        "## Document rules",
        "",
        "Every design you edit must still follow its document rules: an H1 naming the module, "
        "then these H2 sections, each with content (types as the context design gives them). "
        "Test Assertions are a bullet list, one test case each; a schema's Fields are a table "
        "with the columns Field, Type, Required, Description and Constraints.",
        "",
    ]
    seen: list[str] = []
    for design in designs:
        kind = design.component_type or "other"
        if kind not in seen:
            seen.append(kind)
            titles = ", ".join(section_title(key) for key in required_sections(kind))
            lines.append(f"- {kind}: {titles}")
    return [*lines, ""]


def _review_output(path: str) -> list[str]:
    return [
        "## Output",
        "",
        f"Write the review to exactly `{path}` (relative to the working directory), creating "
        "folders as needed. Edit the design documents listed above in place; create no "
        "design that does not exist yet, and write no other file.",
    ]


def context_review_prompt(ctx: StepContext, *, designs: Sequence[ReviewedDesign], path: str) -> str:
    """ContextDesignReview: check the context and component designs together, fix, report."""
    context = context_of(ctx)
    lines = [
        f"Review the design of the context `{context}` together with the designs of its "
        "components, fix the problems you find in the design documents themselves, and "
        "write a review of what you checked, found and fixed.",
        "",
        *_design_list(designs),
        "A component whose design does not exist yet is designed by its own session; do not "
        "write it.",
        "",
        "## What to do",
        "",
        "1. Read every design document listed above.",
        "2. Check that the architecture is consistent: each component has one responsibility "
        "and the type that fits it; the context's entity ownership, public API and components "
        "agree with each other and with the component designs.",
        "3. Check the integration points: every dependency a design uses is declared, needed "
        "and free of cycles; every function one design calls on another exists there with the "
        "same signature; no two components write the same entity; data flows between them "
        "are clear.",
        "4. Check the design against the user stories below: every story is served and its "
        "acceptance criteria can be met; a gap is a problem to fix.",
        "5. Fix every problem you find in the design documents, keeping all of them "
        "consistent with each other and valid under their document rules (below).",
        "6. Write the review.",
        "",
        *_project(ctx),
        *_stories(ctx),
        *_document_rules(designs),
        *_rules(ctx, [d.component_type or "other" for d in designs]),
        "## Review document specification",
        "",
        review_spec(f"`{context}`", fixes=True),
        "",
        *_review_output(path),
    ]
    return "\n".join(lines)


def fix_scaffold_prompt(
    ctx: StepContext,
    *,
    design_path: str,
    errors: Sequence[str],
    plan: ScaffoldPlan,
    round_: int,
    cap: int,
) -> str:
    """The prompt that resolves what stopped the scaffolding of a context design."""
    which = (
        f"fix round {round_} of at most {cap}"
        if round_
        else f"a fix after the session was resumed; then up to {cap} more rounds"
    )
    listed = [f"- {error}" for error in errors] or ["- (the errors were not recorded)"]
    planned = [f"- `{f.path}`" for f in plan.files] or ["- (none; the generators write them)"]
    generators = [f"- `{shlex.join(g.argv)}`" for g in plan.generators]
    checks = [f"- `{shlex.join(c)}`" for c in plan.checks if "\n" not in " ".join(c)]
    lines = [
        f"Scaffolding the components of the context `{context_of(ctx)}` designed in "
        f"`{design_path}` failed ({which}). Resolve exactly these problems:",
        "",
        *listed,
        "",
        "Scaffolding never overwrites a file. A conflict is a file standing where a "
        "component's scaffold goes with other content: if it belongs to something else, "
        "move it where it belongs (and update what refers to it); if it is stale, delete it. "
        "A failed generator or check is fixed in the files its message names. Do not edit "
        "the design document.",
        "",
        "## The scaffolding",
        "",
        "Files it creates:",
        "",
        *planned,
        "",
    ]
    if generators:
        lines += ["Generators it runs, in order:", "", *generators, ""]
    if checks:
        lines += ["Then it checks with:", "", *checks, ""]
    lines.append("When you are done the scaffolding runs again.")
    return "\n".join(lines)
