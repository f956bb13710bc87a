"""Validating design and review documents.

Every error names the place and says what to write instead: the errors go
verbatim into the revise prompt, so an agent that reads "Components.Stock:
module name must be fully qualified" can fix exactly that. Validation never
raises on any input.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from specloom.documents._graph import graph_problems
from specloom.documents._markdown import (
    MAX_DOCUMENT_BYTES,
    Body,
    Document,
    DocumentRejected,
    Section,
    parse,
    section_key,
)
from specloom.documents._sections import content_problems
from specloom.documents._spec import (
    EDITION,
    MIN_REVIEW_CHARS,
    optional_sections,
    required_sections,
)
from specloom.documents._types import COMPONENT_TYPES, CONTEXT, MAX_DESCRIPTION, section_title
from specloom.workflow import ComponentView

MAX_ERRORS = 30
"""Errors reported at most; past that a revise prompt only gets longer, not clearer."""

_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_NONE = re.compile(r"^(none|n/a|no dependencies|-)\.?$", re.IGNORECASE)
_NAME_END = re.compile(r":|\s[-–—]\s|\s\(")
_TYPES = ", ".join(COMPONENT_TYPES)


def folded_name(module: str) -> str:
    """The form two module names share when they would name the same files.

    Profiles turn ``HTTPClient``, ``HttpClient`` and ``http_client`` into the
    same path (and case-insensitive file systems merge ``Stock`` and
    ``stock``): each segment is NFKC-normalised, case-folded and stripped of
    separators, so names equal here collide.
    """
    return ".".join(
        unicodedata.normalize("NFKC", segment).casefold().replace("_", "").replace("-", "")
        for segment in module.split(".")
    )


def is_module_name(name: str, *, qualified: bool = False) -> bool:
    """``Inventory.Stock`` yes, ``Git Utility Module`` no; ``qualified`` demands a '.'."""
    return bool(_MODULE.match(name)) and (not qualified or "." in name)


@dataclass(frozen=True)
class DesignReport:
    """The verdict on one design document."""

    component_type: str
    errors: tuple[str, ...]
    """Specific, actionable problems; empty when the document is valid."""
    components: tuple[ComponentView, ...] = ()
    """A valid context design's components, in document order."""
    dependencies: tuple[str, ...] = ()
    """Module names from the Dependencies section (valid documents only)."""

    @property
    def ok(self) -> bool:
        """Whether the document is valid."""
        return not self.errors

    def fingerprint(self) -> str:
        """Identifies this exact set of problems (equal twice in a row means stuck)."""
        digest = hashlib.sha256("\n".join(self.errors).encode()).hexdigest()
        return f"design:{digest[:16]}"

    def explain(self, path: str) -> str:
        """The problems as the revise prompt and the session history show them."""
        count = len(self.errors)
        noun = "problem" if count == 1 else "problems"
        listed = "\n".join(f"- {error}" for error in self.errors)
        return f"The design document {path} is not valid ({count} {noun}):\n{listed}"


def validate_design(
    source: str | bytes, component_type: str, *, truncated: bool = False, edition: int = EDITION
) -> DesignReport:
    """Validate a design document of ``component_type`` (never raises on any document).

    ``edition`` picks the document rules (see :mod:`._spec`): 1 for the
    sessions of the frozen v1 definitions, else the current ones.
    """
    required = required_sections(component_type, edition=edition)
    optional = optional_sections(component_type, edition=edition)
    if truncated:
        return DesignReport(component_type, (_truncated(),))
    try:
        document = parse(source)
    except DocumentRejected as exc:
        return DesignReport(component_type, (str(exc),))
    errors = _structure(document, required, optional)
    if edition >= 2:
        errors += content_problems(document, (*required, *optional))
    dependencies: tuple[str, ...] = ()
    found = document.find("dependencies")
    if found:
        dependencies, problems = _dependencies(found[0])
        errors += problems
    components: tuple[ComponentView, ...] = ()
    if component_type == CONTEXT:
        found = document.find("components")
        if found:
            components, problems = _components(found[0])
            # The graph is judged once the list itself is right: a dependency
            # on a component with a broken entry is not an unknown name.
            errors += problems or graph_problems(components)
    if errors:
        return DesignReport(component_type, _capped(errors))
    return DesignReport(component_type, (), components, dependencies)


def validate_review(source: str | bytes, *, truncated: bool = False) -> tuple[str, ...]:
    """Problems with a review document: it must be text, structured and non-trivial."""
    if truncated:
        return (_truncated(),)
    try:
        document = parse(source)
    except DocumentRejected as exc:
        return (str(exc),)
    errors: list[str] = []
    if not any(h.level >= 2 for h in document.headings):
        errors.append(
            "The review has no sections; structure it as '## Summary', '## Findings' "
            "and '## Recommendations'."
        )
    bodies = [document.preamble] + [b for s in document.sections for b in _bodies(s)]
    text = " ".join(" ".join(body.prose.split()) for body in bodies).strip()
    if len(text) < MIN_REVIEW_CHARS:
        errors.append(
            f"The review has only {len(text)} characters of text; a review states its "
            f"findings (at least {MIN_REVIEW_CHARS} characters)."
        )
    return tuple(errors)


def _bodies(section: Section) -> Iterable[Body]:
    yield section.body
    for sub in section.subsections:
        yield sub.body


def _truncated() -> str:
    return (
        "The document was cut off when it was collected (it is over the size limit); "
        f"keep it under {MAX_DOCUMENT_BYTES:,} bytes."
    )


def _capped(errors: Sequence[str]) -> tuple[str, ...]:
    if len(errors) <= MAX_ERRORS:
        return tuple(errors)
    rest = len(errors) - MAX_ERRORS + 1
    return (*errors[: MAX_ERRORS - 1], f"... and {rest} more problems of the same kinds")


def _structure(
    document: Document, required: Sequence[str], optional: Sequence[str] = ()
) -> list[str]:
    errors: list[str] = []
    if not document.headings:
        errors.append(
            "The document has no markdown headings; write each section as an H2 heading "
            "('## Purpose')."
        )
    if document.unclosed_fence is not None:
        errors.append(
            f"A code fence opened at line {document.unclosed_fence} is never closed, so "
            "everything after it is read as code; close it with a matching ``` line."
        )
    present = {section.key for section in document.sections}
    missing = [key for key in required if key not in present]
    if missing:
        errors.append(f"Missing required sections: {', '.join(missing)}")
        for key in missing:
            for heading in document.headings:
                if heading.level != 2 and section_key(heading.title) == key:
                    where = f", under '{heading.parent}'" if heading.parent else ""
                    errors.append(
                        f"Section '{key}' is an H{heading.level} (line {heading.line}{where}); "
                        f"required sections are H2 headings: '## {section_title(key)}'"
                    )
                    break
    empty = [key for key in required if key in present and all(s.empty for s in document.find(key))]
    if empty:
        errors.append(f"Empty required sections: {', '.join(empty)}")
    idle = [key for key in optional if key in present and all(s.empty for s in document.find(key))]
    if idle:
        errors.append(f"Empty sections: {', '.join(idle)}; write what they hold, or leave them out")
    for key in (*required, *optional):
        repeats = document.find(key)
        if len(repeats) > 1:
            lines = ", ".join(str(s.line) for s in repeats)
            errors.append(
                f"Section '{key}' appears {len(repeats)} times (lines {lines}); merge them into one"
            )
    return errors


def _dependency_name(item: str) -> str:
    head = _NAME_END.split(item, maxsplit=1)[0]
    return re.sub(r"[*`]", "", head).strip().rstrip(".,;").strip()


def _dependencies(section: Section) -> tuple[tuple[str, ...], list[str]]:
    items = list(section.body.items) + [i for s in section.subsections for i in s.body.items]
    if not items:
        prose = re.sub(r"[*_`]", "", section.body.prose).strip()
        if prose and not _NONE.match(prose):
            return (), [
                "Dependencies: list each dependency as a bullet with its module name "
                "('- Accounts.Users: why'), or write 'None'"
            ]
        return (), []
    names: list[str] = []
    errors: list[str] = []
    for item in items:
        name = _dependency_name(item)
        if _NONE.match(name) and len(items) == 1:
            break
        if not is_module_name(name):
            errors.append(
                f"Dependencies: '{name or item}' is not a module name; start the bullet with "
                "the module's name (e.g. '- Accounts.Users: why')"
            )
        elif name not in names:
            names.append(name)
    return tuple(names), errors


def _components(section: Section) -> tuple[tuple[ComponentView, ...], list[str]]:
    if not section.subsections:
        return (), [
            "Components: no components listed; add one H3 per component ('### Inventory.Stock') "
            "followed by a '| field | value |' table with its type, and a description"
        ]
    views: list[ComponentView] = []
    errors: list[str] = []
    seen: dict[str, str] = {}
    for sub in section.subsections:
        module = re.sub(r"[*`]", "", sub.title).strip()
        label = f"Components.{module}"
        if not module:
            errors.append(f"Components: the H3 at line {sub.line} has no module name")
            continue
        first = seen.get(folded_name(module))
        if first == module:
            errors.append(f"{label}: listed more than once; describe each component once")
            continue
        if first is not None:
            # Both would write the same design, code and test files, and one
            # child's work would silently replace the other's.
            errors.append(
                f"{label}: collides with Components.{first}: names that differ only in case, "
                "Unicode form or separators ('_', '-') map to the same files; rename one"
            )
            continue
        seen[folded_name(module)] = module
        problems = _component_name(label, module)
        fields = _component_fields(sub)
        kind = ""
        if fields is None:
            problems.append(
                f"{label}: missing its '| field | value |' table with a 'type' row "
                f"(type is one of {_TYPES})"
            )
            fields = {}
        elif "type" not in fields:
            problems.append(
                f"{label}: the table has no 'type' row; add '| type | <one of {_TYPES}> |'"
            )
        else:
            kind = fields["type"].lower().lstrip(":").strip()
            if kind not in COMPONENT_TYPES:
                problems.append(f"{label}: type '{kind}' is not one of {_TYPES}")
        description = sub.body.prose or fields.get("description", "")
        if not description:
            problems.append(
                f"{label}: description is missing; after the table, write 1–{MAX_DESCRIPTION} "
                "characters on what the component does"
            )
        elif len(description) > MAX_DESCRIPTION:
            problems.append(
                f"{label}: description is {len(description)} characters; "
                f"the limit is {MAX_DESCRIPTION}"
            )
        dependencies: list[str] = []
        for raw in re.split(r"[,\n]", fields.get("dependencies", "")):
            name = _dependency_name(raw)
            if not name or _NONE.match(name):
                continue
            if is_module_name(name):
                dependencies.append(name)
            else:
                problems.append(f"{label}: dependency '{name}' is not a module name")
        errors += problems
        if not problems:
            views.append(
                ComponentView(
                    name=module.rsplit(".", 1)[-1],
                    module_name=module,
                    type=kind,
                    description=description,
                    dependencies=tuple(dependencies),
                )
            )
    return tuple(views), errors


def _component_name(label: str, module: str) -> list[str]:
    if not is_module_name(module):
        return [
            f"{label}: '{module}' is not a module name; the heading must be the component's "
            "fully qualified module name, e.g. 'Inventory.Stock'"
        ]
    if "." not in module:
        return [
            f"{label}: module name must be fully qualified (contain a '.'), "
            f"e.g. 'MyContext.{module}'"
        ]
    return []


def _component_fields(sub: Section) -> dict[str, str] | None:
    if not sub.body.tables:
        return None
    for table in sub.body.tables:
        fields = table.fields()
        if "type" in fields:
            return fields
    return sub.body.tables[0].fields()
