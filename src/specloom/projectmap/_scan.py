"""Scanning a checkout: what the files say about each context and component.

The scan reads facts only, never verdicts (the judge is :mod:`._evaluate`):

1. Every markdown file in the profile's design directory is looked at. A
   context design is one at the top of it (a one-segment module cannot be a
   component: components are fully qualified), one with a Components
   section (a nested context, e.g. ``MyApp.Inventory``), or one whose
   module the project file lists.
2. Each context design is validated as a context; a valid one lists its
   components, an invalid one is still read for the components it names
   (so breaking a context design shows its errors, not an empty context).
3. Per component, the profile's design, test and code paths: present or
   not, their digests, and the component design validated under its type.
4. Per context, the review file ContextDesignReview writes
   (``docs/review/<context path>/context_design.md``).
5. With ``run_tests``, the profile's runner once over every test file
   present, its cases attributed per component.

Files are read through the cache of :mod:`._files`, so a scan after one
change reads one file.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, cast

from google.protobuf.timestamp_pb2 import Timestamp

from specloom.documents import (
    COMPONENT_TYPES,
    CONTEXT,
    DocumentRejected,
    is_module_name,
    parse,
    section_key,
    validate_design,
    validate_review,
)
from specloom.errors import InvalidArgument
from specloom.profiles import SCAFFOLD_MARKER, Profile
from specloom.projectmap._files import FileReader, Seen, load_cache, save_cache
from specloom.projectmap._project import ProjectFile
from specloom.projectmap._testrun import SCAN_SOURCE, files_digest, run_suite
from specloom.protoconv import JsonValue
from specloom.v1 import projectmap_pb2 as pb

MAX_DESIGN_ERRORS = 10
"""Design errors kept per component, as ``ComponentFacts.design_errors`` allows."""

SKELETON_MARKER = SCAFFOLD_MARKER.encode()
"""What ContextDesign's Scaffold step writes into every skeleton file: a file that still
holds it was not written by anyone yet."""

REVIEW_FILE = "context_design.md"
"""The file ContextDesignReview writes under ``docs/review/<context path>/``."""

_MARKS = re.compile(r"[*`]")


@dataclass(frozen=True)
class _Component:
    module: str
    type: str
    description: str
    dependencies: tuple[str, ...]


@dataclass(frozen=True)
class _Context:
    module: str
    design: Seen
    errors: tuple[str, ...]
    components: tuple[_Component, ...]
    dependencies: tuple[str, ...]
    """Module names from its Dependencies section."""


def review_path(profile: Profile, context: str) -> str:
    """Where ContextDesignReview writes a context's review."""
    return f"docs/review/{profile.module_path(context)}/{REVIEW_FILE}"


def design_directory(profile: Profile) -> str:
    """The directory the profile keeps design documents in (``docs/design``)."""
    return str(PurePosixPath(profile.design_path("x")).parent)


def scan_checkout(
    root: Path,
    profile: Profile,
    *,
    cache_path: Path | None,
    run_tests: bool = False,
    contexts: Sequence[str] = (),
    project: ProjectFile | None = None,
) -> pb.ProjectScan:
    """What the checkout at ``root`` holds, per context and component.

    ``cache_path`` keeps digests and parsed summaries between scans (``None``:
    read everything); ``contexts`` are module names (from the project file)
    that count as contexts even before they have a design; ``project`` (the
    project file) adds its contexts the same way, and its ``depends_on`` to
    each context's dependencies, so the map knows them without the file;
    ``run_tests`` runs the test files present and fills each component's
    ``tests``.
    """
    started = time.monotonic()
    scanned_at = Timestamp()
    scanned_at.GetCurrentTime()
    if not root.is_dir():
        raise InvalidArgument(f"{root} is not a directory: nothing to scan")
    reader = FileReader(root, load_cache(cache_path), time.time_ns())
    problems: list[str] = []
    named = list(
        dict.fromkeys([*contexts, *(c.module for c in project.contexts)] if project else contexts)
    )
    found = _contexts(root, profile, reader, named, problems)
    scan = pb.ProjectScan(profile=profile.name, scanned_at=scanned_at, ran_tests=run_tests)
    scan.branch, scan.revision = _git_head(root)
    known = {c.module.casefold(): c.module for c in found}
    namespaces = {
        _namespace(c).casefold(): c.module for c in found if c.components and _namespace(c)
    }
    listed: list[pb.ComponentFacts] = []
    for context in found:
        declared = project.context(context.module) if project else None
        listed.append(
            _context_facts(
                context,
                profile,
                reader,
                known,
                namespaces,
                problems,
                declared.depends_on if declared else (),
            )
        )
    for context in found:
        for component in context.components:
            listed.append(_component_facts(component, context.module, profile, reader))
    scan.components.extend(listed)
    if run_tests:
        _run_tests(root, profile, scan, problems)
    scan.problems.extend([*reader.problems, *problems])
    scan.files_seen = reader.files_seen
    scan.files_read = reader.files_read
    if cache_path is not None and (reader.changed or not cache_path.exists()):
        save_cache(cache_path, reader.cache())
    scan.duration_ms = round((time.monotonic() - started) * 1000)
    return scan


def _contexts(
    root: Path,
    profile: Profile,
    reader: FileReader,
    named: Sequence[str],
    problems: list[str],
) -> list[_Context]:
    directory = design_directory(profile)
    by_path = {}
    for name in named:
        try:
            by_path[profile.design_path(name)] = name
        except InvalidArgument as exc:
            problems.append(f"project file: {exc}")
    documents = sorted(_markdown_under(root, directory))
    candidates: list[tuple[str, str]] = []
    for path in documents:
        probe = reader.parsed(path, "probe", _probe)
        if not isinstance(probe, dict):
            continue
        depth = len(PurePosixPath(path).relative_to(directory).parts)
        if path in by_path or depth == 1 or probe.get("components"):
            candidates.append((path, _context_module(path, probe, by_path, profile, directory)))
    contexts = [_read_context(path, module, reader) for path, module in candidates]
    # A document some context lists as its component is that component's design,
    # even when it has a Components section of its own.
    claimed = {profile.design_path(c.module) for ctx in contexts for c in ctx.components}
    contexts = [c for c in contexts if c.design.path not in claimed or c.design.path in by_path]
    present = {c.design.path for c in contexts}
    for path, name in by_path.items():
        if path not in present:
            contexts.append(_Context(name, Seen(path, False), (), (), ()))
    order = {path: index for index, path in enumerate(by_path)}
    return sorted(contexts, key=lambda c: (order.get(c.design.path, len(order)), c.design.path))


def _markdown_under(root: Path, directory: str) -> list[str]:
    base = root / directory
    if not base.is_dir():
        return []
    return [
        path.relative_to(root).as_posix()
        for path in base.rglob("*.md")
        if path.is_file() and not path.is_symlink()
    ]


def _probe(content: bytes) -> JsonValue:
    try:
        document = parse(content)
    except DocumentRejected:
        return {"title": "", "components": False}
    has_components = any(section_key(h.title) == "components" for h in document.headings)
    return {"title": _MARKS.sub("", document.title).strip(), "components": has_components}


def _context_module(
    path: str, probe: dict[str, Any], by_path: dict[str, str], profile: Profile, directory: str
) -> str:
    if path in by_path:
        return by_path[path]
    title = str(probe.get("title", ""))
    if title and is_module_name(title):
        try:
            if profile.design_path(title) == path:
                return title
        except InvalidArgument:
            pass
    return ".".join(PurePosixPath(path).relative_to(directory).with_suffix("").parts)


def _read_context(path: str, module: str, reader: FileReader) -> _Context:
    summary = reader.parsed(path, "design:context", _context_summary)
    seen = reader.see(path)
    if not isinstance(summary, dict):
        return _Context(module, seen, (), (), ())
    components = tuple(
        _Component(
            module=str(c["module"]),
            type=str(c["type"]),
            description=str(c["description"]),
            dependencies=tuple(str(d) for d in c["dependencies"]),
        )
        for c in cast(list[dict[str, Any]], summary["components"])
    )
    return _Context(
        module,
        seen,
        tuple(str(e) for e in cast(list[Any], summary["errors"])),
        components,
        tuple(str(d) for d in cast(list[Any], summary["dependencies"])),
    )


def _context_summary(content: bytes) -> JsonValue:
    report = validate_design(content, CONTEXT)
    if report.ok:
        components = [
            {
                "module": c.module_name,
                "type": c.type,
                "description": c.description,
                "dependencies": list(c.dependencies),
            }
            for c in report.components
        ]
        return {
            "errors": [],
            "components": cast(JsonValue, components),
            "dependencies": list(report.dependencies),
        }
    return {
        "errors": list(report.errors),
        "components": cast(JsonValue, _lenient_components(content)),
        "dependencies": [],
    }


def _lenient_components(content: bytes) -> list[dict[str, JsonValue]]:
    """The components an invalid context design still names plainly (H3 module, type row)."""
    try:
        document = parse(content)
    except DocumentRejected:
        return []
    found: list[dict[str, JsonValue]] = []
    seen: set[str] = set()
    for section in document.find("components"):
        for sub in section.subsections:
            module = _MARKS.sub("", sub.title).strip()
            if not is_module_name(module, qualified=True) or module.casefold() in seen:
                continue
            fields: dict[str, str] = {}
            for table in sub.body.tables:
                fields = table.fields()
                if "type" in fields:
                    break
            kind = fields.get("type", "").lower().lstrip(":").strip()
            if kind not in COMPONENT_TYPES:
                continue
            seen.add(module.casefold())
            dependencies: list[JsonValue] = [
                d.strip() for d in re.split(r"[,\n]", fields.get("dependencies", ""))
            ]
            found.append(
                {
                    "module": module,
                    "type": kind,
                    "description": sub.body.prose[:300],
                    "dependencies": [
                        d for d in dependencies if isinstance(d, str) and is_module_name(d)
                    ],
                }
            )
    return found


def _namespace(context: _Context) -> str:
    parents = {c.module.rsplit(".", 1)[0] for c in context.components}
    return parents.pop() if len(parents) == 1 else ""


def _owner(name: str, context: str, known: dict[str, str], namespaces: dict[str, str]) -> str:
    """The context (other than ``context``) that module ``name`` is or belongs to, or ""."""
    folded = name.casefold()
    for table in (known, namespaces):
        for key, module in table.items():
            if module != context and (folded == key or folded.startswith(key + ".")):
                return module
    return ""


def _context_facts(
    context: _Context,
    profile: Profile,
    reader: FileReader,
    known: dict[str, str],
    namespaces: dict[str, str],
    problems: list[str],
    declared: Sequence[str],
) -> pb.ComponentFacts:
    depends: list[str] = []
    names = [
        *declared,
        *context.dependencies,
        *(d for c in context.components for d in c.dependencies),
    ]
    for name in names:
        owner = _owner(name, context.module, known, namespaces)
        if owner and owner not in depends:
            depends.append(owner)
    facts = pb.ComponentFacts(
        module=context.module,
        type=CONTEXT,
        dependencies=depends,
        design=_fact(context.design),
        design_errors=context.errors[:MAX_DESIGN_ERRORS],
    )
    try:
        path = review_path(profile, context.module)
    except InvalidArgument:
        return facts
    review = reader.see(path)
    facts.review.CopyFrom(_fact(review))
    if review.present:
        errors = reader.parsed(path, "review", _review_summary)
        if isinstance(errors, list) and errors:
            problems.append(f"{path}: {errors[0]}")
    return facts


def _review_summary(content: bytes) -> JsonValue:
    return list(validate_review(content))


def _component_facts(
    component: _Component, context: str, profile: Profile, reader: FileReader
) -> pb.ComponentFacts:
    facts = pb.ComponentFacts(
        module=component.module,
        type=component.type,
        context=context,
        dependencies=component.dependencies,
        description=component.description,
    )
    try:
        files = profile.files(component.module)
    except InvalidArgument:
        return facts
    design = reader.see(files.design)
    facts.design.CopyFrom(_fact(design))
    if design.present:
        errors = reader.parsed(
            files.design, f"design:{component.type}", _design_parser(component.type)
        )
        if isinstance(errors, list):
            facts.design_errors.extend(str(e) for e in errors[:MAX_DESIGN_ERRORS])
    facts.test.CopyFrom(_source_fact(reader, files.test))
    facts.code.CopyFrom(_source_fact(reader, files.code))
    return facts


def _source_fact(reader: FileReader, path: str) -> pb.FileFact:
    fact = _fact(reader.see(path))
    if fact.present:
        fact.skeleton = reader.parsed(path, "skeleton", _is_skeleton) is True
    return fact


def _is_skeleton(content: bytes) -> JsonValue:
    return SKELETON_MARKER in content


def _design_parser(component_type: str) -> Any:
    def parser(content: bytes) -> JsonValue:
        return list(validate_design(content, component_type).errors)

    return parser


def _fact(seen: Seen) -> pb.FileFact:
    return pb.FileFact(path=seen.path, present=seen.present, digest=seen.digest)


def _run_tests(root: Path, profile: Profile, scan: pb.ProjectScan, problems: list[str]) -> None:
    testable = [
        c for c in scan.components if c.type != CONTEXT and c.test.present and not c.test.skeleton
    ]
    if not testable:
        return
    suite = run_suite(root, profile, [c.test.path for c in testable])
    if suite.problem:
        problems.append(suite.problem)
        return
    ran_at = Timestamp()
    ran_at.GetCurrentTime()
    unrun: list[str] = []
    for facts in testable:
        result = suite.by_file[facts.test.path]
        if not result.cases:
            # The runner stopped before it (pytest stops at a file that does not
            # load): no evidence either way, so whatever was known stays.
            unrun.append(facts.test.path)
            continue
        facts.tests.CopyFrom(
            pb.TestEvidence(
                passed=result.passed,
                failed=result.failed,
                failures=result.failures,
                files_digest=files_digest(facts.code.digest, facts.test.digest),
                source=SCAN_SOURCE,
                ran_at=ran_at,
            )
        )
    if unrun:
        shown = ", ".join(unrun[:3]) + (f" and {len(unrun) - 3} more" if len(unrun) > 3 else "")
        problems.append(
            f"the test run reported nothing for {len(unrun)} test files ({shown}); "
            f"the run: {suite.run.counts()}"
        )


def _git_head(root: Path) -> tuple[str, str]:
    """The checkout's branch ("" when detached) and commit, in one git call when there is one."""

    def git(*args: str) -> list[str] | None:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=False
        )
        return done.stdout.split() if done.returncode == 0 else None

    found = git("rev-parse", "HEAD", "--symbolic-full-name", "HEAD")
    if found is not None and len(found) == 2:
        revision, ref = found
        return ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else "", revision
    # No commit yet (or not a repository): the branch HEAD names, if any.
    branch = git("symbolic-ref", "--short", "-q", "HEAD")
    return (branch[0] if branch else ""), ""
