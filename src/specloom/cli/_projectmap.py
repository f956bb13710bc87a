"""``specloom status`` and ``specloom next``: where the project stands, and what runs next.

Both work on the workspace's line (:mod:`specloom.line`): they make it and
its worktree when missing, scan the worktree here (incrementally: the cache
is under the repository's git directory), report the scan to the gateway,
and read the map (or the next sessions) it judges from the recorded facts.
``next --start`` starts sessions on the line: ``base`` and ``land_on`` are
the line, so each one's work lands there when it finishes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from specloom.agent.linescan import line_lock
from specloom.cli._context import Options
from specloom.cli._errors import EXIT_ERROR, EXIT_OK, EXIT_USAGE, CliError
from specloom.cli._render import as_dict, console, errors, print_json, session_line
from specloom.client import Client
from specloom.errors import InvalidArgument
from specloom.line import Line, LineError, common_dir, ensure_line, scan_cache_path
from specloom.profiles import get_profile
from specloom.projectmap import (
    ProjectFile,
    entry_subject,
    load_project,
    scan_checkout,
    start_params,
    startable,
    with_project_params,
)
from specloom.v1 import common_pb2 as pb
from specloom.v1 import projectmap_pb2 as mpb
from specloom.workspaces import NotARepository, identify, label, repository_root

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
Repository = Annotated[
    Path, typer.Option(help="The repository (default: the one of the current directory).")
]
LineOption = Annotated[
    str,
    typer.Option(
        "--line",
        metavar="BRANCH",
        help="The line branch (default: `line` in specloom.toml, else specloom/<current branch>).",
    ),
]

START = "--start"
"""``--start`` takes an optional count: alone it means 1 (``specloom.cli.optional_count``)."""

MARK = {
    mpb.REQUIREMENT_STATE_MET: ("✓", "green"),
    mpb.REQUIREMENT_STATE_NOT_NEEDED: ("–", "dim"),
    mpb.REQUIREMENT_STATE_MISSING: ("✗", "red"),
    mpb.REQUIREMENT_STATE_FAILING: ("✗", "red"),
    mpb.REQUIREMENT_STATE_STALE: ("~", "yellow"),
    mpb.REQUIREMENT_STATE_BLOCKED: ("·", "yellow"),
}
STATE_WORD = {
    mpb.REQUIREMENT_STATE_MET: "met",
    mpb.REQUIREMENT_STATE_NOT_NEEDED: "not needed",
    mpb.REQUIREMENT_STATE_MISSING: "missing",
    mpb.REQUIREMENT_STATE_FAILING: "failing",
    mpb.REQUIREMENT_STATE_STALE: "stale",
    mpb.REQUIREMENT_STATE_BLOCKED: "blocked",
}


def _options(ctx: typer.Context) -> Options:
    options = ctx.find_object(Options)
    assert options is not None  # set by the root callback
    return options


@dataclass(frozen=True)
class Observed:
    """A scan of the line, ready to report."""

    root: Path
    workspace: pb.WorkspaceRef
    line: Line
    project: ProjectFile | None
    scan: mpb.ProjectScan


def observe(repository: Path, line: str, *, run_tests: bool) -> Observed:
    """Make the line if needed and scan its worktree (the tests too with ``run_tests``)."""
    try:
        root = repository_root(repository)
        workspace = identify(root)
        mine = load_project(root)
        branch = line or (mine.line if mine is not None else "")
        # The executor's lock: a landing's refresh and scan never interleave with ours.
        with line_lock(common_dir(root)):
            made = ensure_line(root, branch)
            # The line's own project file, as the executor's scan after a
            # landing reads it: the map does not change with who scanned.
            project = load_project(made.worktree)
            profile = get_profile((project.profile if project is not None else "") or None)
            scan = scan_checkout(
                made.worktree,
                profile,
                cache_path=scan_cache_path(root),
                run_tests=run_tests,
                project=project,
            )
    except (NotARepository, LineError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    except InvalidArgument as exc:  # the project file, the profile
        raise CliError(exc.message, EXIT_USAGE) from None
    # The worktree is detached: the map is the line's, so it says so.
    scan.branch = made.branch
    if made.note:
        errors.print(f"note: {made.note}", markup=False)
    return Observed(root, workspace, made, project, scan)


def _requirement_line(requirement: mpb.RequirementStatus, indent: str) -> Text:
    mark, style = MARK.get(requirement.state, ("?", ""))
    word = STATE_WORD.get(requirement.state, "unknown")
    text = Text(f"{indent}{mark} ", style=style)
    text.append(f"{requirement.key:<20} ")
    if requirement.state in (mpb.REQUIREMENT_STATE_MET, mpb.REQUIREMENT_STATE_NOT_NEEDED):
        text.append(word, style="dim")
        if requirement.detail:
            text.append(f": {requirement.detail}", style="dim")
        return text
    text.append(word, style=style)
    if requirement.detail:
        text.append(f": {requirement.detail}")
    if requirement.satisfied_by:
        text.append(f"  → {requirement.satisfied_by}", style="cyan")
    return text


def _component_head(component: mpb.ComponentStatus, indent: str) -> Text:
    facts = component.facts
    text = Text(indent)
    text.append(facts.module, style="bold")
    text.append(f" ({facts.type or 'no type yet'})", style="dim")
    met = sum(
        r.state in (mpb.REQUIREMENT_STATE_MET, mpb.REQUIREMENT_STATE_NOT_NEEDED)
        for r in component.requirements
    )
    if component.done:
        text.append("  done", style="green")
    else:
        text.append(f"  {met} of {len(component.requirements)} met", style="yellow")
    if component.touched_by:
        last = component.touched_by[0]
        text.append(f"  last: {last.type} {last.status.lower()}", style="dim")
    return text


def _grouped(
    the_map: mpb.ProjectMap,
) -> list[tuple[mpb.ComponentStatus | None, list[mpb.ComponentStatus]]]:
    """Contexts, each with its components (components of no listed context last)."""
    contexts = [c for c in the_map.components if c.facts.type == "context"]
    known = {c.facts.module for c in contexts}
    groups: list[tuple[mpb.ComponentStatus | None, list[mpb.ComponentStatus]]] = [
        (c, [m for m in the_map.components if m.facts.context == c.facts.module]) for c in contexts
    ]
    stray = [
        m for m in the_map.components if m.facts.type != "context" and m.facts.context not in known
    ]
    if stray:
        groups.append((None, stray))
    return groups


def print_map(observed: Observed, the_map: mpb.ProjectMap) -> None:
    """Contexts → components → requirements, with what is missing and who gives it."""
    scan = observed.scan
    console.print(
        f"workspace {label(observed.workspace)} · line {observed.line.branch} at "
        f"{observed.line.at[:12]} · {scan.files_seen} files seen, {scan.files_read} read, "
        f"{scan.duration_ms} ms" + (" · tests run" if scan.ran_tests else ""),
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    for problem in the_map.problems:
        console.print(Text(f"problem: {problem}", style="yellow"), soft_wrap=True)
    if not the_map.components:
        console.print(
            "no contexts yet: write a context design (or list contexts in specloom.toml), "
            "or run `specloom next` to see how to start"
        )
        return
    for context, components in _grouped(the_map):
        if context is not None:
            console.print(_component_head(context, ""), soft_wrap=True)
            for requirement in context.requirements:
                console.print(_requirement_line(requirement, "    "), soft_wrap=True)
        else:
            console.print(Text("(components of no known context)", style="bold"))
        for component in components:
            console.print(_component_head(component, "  "), soft_wrap=True)
            if not component.done:
                for requirement in component.requirements:
                    console.print(_requirement_line(requirement, "      "), soft_wrap=True)
    done = sum(c.done for c in the_map.components)
    total = len(the_map.components)
    if done == total:
        console.print(Text(f"{done} of {total} done: every requirement is met", style="green"))
    else:
        console.print(f"{done} of {total} done; `specloom next` says what to run next")


async def _report(client: Client, observed: Observed) -> None:
    await client.report_project_scan(observed.workspace, observed.scan)


def _observed_dict(observed: Observed) -> dict[str, Any]:
    scan = observed.scan
    return {
        "workspace": as_dict(observed.workspace),
        "root": str(observed.root),
        "line": {
            "branch": observed.line.branch,
            "tip": observed.line.tip,
            "worktree": str(observed.line.worktree),
            "at": observed.line.at,
            "created": observed.line.created,
            "dirty": observed.line.dirty,
            "note": observed.line.note,
        },
        "scan": {
            "files_seen": scan.files_seen,
            "files_read": scan.files_read,
            "duration_ms": scan.duration_ms,
            "ran_tests": scan.ran_tests,
            "problems": list(scan.problems),
        },
    }


def status(
    ctx: typer.Context,
    repository: Repository = Path(),
    as_json: JsonFlag = False,
    tests: Annotated[
        bool, typer.Option("--tests", help="Also run the tests, for each component's results.")
    ] = False,
    line: LineOption = "",
) -> None:
    """Where the project stands: contexts, components, what each still needs."""
    observed = observe(repository, line, run_tests=tests)

    async def run(client: Client) -> mpb.ProjectMap:
        await _report(client, observed)
        return await client.project_map(observed.workspace.id)

    the_map = _options(ctx).run(run)
    if as_json:
        print_json({**_observed_dict(observed), "map": as_dict(the_map)})
    else:
        print_map(observed, the_map)


def _next_line(index: int, entry: mpb.NextSession) -> Text:
    text = Text(f"{index + 1}. ")
    text.append(entry.type, style="bold")
    subject = entry_subject(entry)
    if subject:
        text.append(f" {subject}")
    if entry.running_session_id:
        text.append(f"  running: {entry.running_session_id}", style="cyan")
    elif entry.after:
        text.append(f"  after {', '.join(str(i + 1) for i in entry.after)}", style="yellow")
    else:
        text.append("  can start now", style="green")
    if entry.satisfies:
        text.append(f"\n   gives {', '.join(entry.satisfies)}", style="dim")
    if entry.reason:
        text.append(f"\n   {entry.reason}", style="dim")
    return text


def next_sessions(
    ctx: typer.Context,
    repository: Repository = Path(),
    as_json: JsonFlag = False,
    start: Annotated[
        int,
        typer.Option(
            START,
            metavar="[N]",
            min=0,
            max=100,
            help="Start the first N that can start now (alone: 1), on the line.",
        ),
    ] = 0,
    line: LineOption = "",
) -> None:
    """The sessions that would move the project on, in dependency order; --start runs them."""
    observed = observe(repository, line, run_tests=False)

    async def run(
        client: Client,
    ) -> tuple[list[mpb.NextSession], mpb.ProjectMap, list[pb.Session], list[str]]:
        await _report(client, observed)
        planned, the_map = await client.next_sessions(observed.workspace.id)
        # The gateway plans without the project file: its stories and profile here.
        entries = with_project_params(planned, observed.project)
        started: list[pb.Session] = []
        refused: list[str] = []
        if start:
            for index in startable(entries)[:start]:
                entry = entries[index]
                params = start_params(entry, observed.line.branch)
                try:
                    response = await client.start_session(
                        entry.type, params, workspace=observed.workspace
                    )
                except InvalidArgument as exc:
                    refused.append(f"{entry.type} {entry_subject(entry)}: {exc.message}")
                    continue
                started.append(response.session)
        return entries, the_map, started, refused

    entries, the_map, started, refused = _options(ctx).run(run)
    if as_json:
        print_json(
            {
                **_observed_dict(observed),
                "sessions": [as_dict(e) for e in entries],
                "started": [as_dict(s) for s in started],
                "refused": refused,
                "done": bool(the_map.components) and all(c.done for c in the_map.components),
            }
        )
    else:
        _print_next(entries, the_map, started, refused, asked=start)
    if refused:
        raise typer.Exit(EXIT_ERROR)
    raise typer.Exit(EXIT_OK)


def _print_next(
    entries: Sequence[mpb.NextSession],
    the_map: mpb.ProjectMap,
    started: Sequence[pb.Session],
    refused: Sequence[str],
    *,
    asked: int,
) -> None:
    if not entries:
        if the_map.components and all(c.done for c in the_map.components):
            console.print(Text("nothing to run: every requirement is met", style="green"))
        else:
            console.print("nothing to run next; `specloom status` shows where things stand")
        return
    for index, entry in enumerate(entries):
        console.print(_next_line(index, entry), soft_wrap=True)
    for session in started:
        console.print(Text.assemble("started: ", session_line(session)))
    for line in refused:
        errors.print(f"could not start {line}", markup=False)
    if asked and not started and not refused:
        console.print("nothing can start now: each waits for a session still to finish")
    elif not asked:
        ready = len(startable(entries))
        console.print(
            f"{ready} can start now; `specloom next --start` starts the first"
            + (f" (`--start {ready}` all {ready})" if ready > 1 else "")
        )
