"""``specloom workspace``, ``specloom executors`` and ``specloom clean``: where work runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from specloom.cleanup import Decision, GitError, decide, find_leftovers, remove
from specloom.cli._context import Options
from specloom.cli._errors import EXIT_ERROR, EXIT_OK, EXIT_USAGE, CliError
from specloom.cli._render import as_dict, console, executors_table, print_json
from specloom.client import Client
from specloom.v1 import common_pb2 as pb
from specloom.workspaces import NotARepository, identify, repository_root

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
Repository = Annotated[
    Path, typer.Option(help="The repository (default: the one of the current directory).")
]


def _options(ctx: typer.Context) -> Options:
    options = ctx.find_object(Options)
    assert options is not None  # set by the root callback
    return options


def _root(path: Path) -> Path:
    try:
        return repository_root(path)
    except NotARepository as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def workspace(repository: Repository = Path(), as_json: JsonFlag = False) -> None:
    """Print this repository's workspace identity (made on first use, kept in .specloom/)."""
    root = _root(repository)
    try:
        ref = identify(root)
    except NotARepository as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    if as_json:
        print_json({**as_dict(ref), "root": str(root)})
        return
    console.print(f"workspace:   {ref.id}")
    console.print(f"name:        {ref.name}")
    console.print(f"root:        {root}")
    console.print(f"root commit: {ref.root_commit or '(none yet)'}")
    console.print(f"remote:      {ref.remote or '(none)'}")


def executors(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List the executors connected for this project: where they run, for whom, how busy."""
    found = _options(ctx).run(lambda client: client.executors())
    if as_json:
        print_json([as_dict(e) for e in found])
    elif found:
        console.print(executors_table(found))
    else:
        console.print("no executors connected; start one in your repository with `specloom agent`")


async def _all_sessions(client: Client) -> list[pb.Session]:
    found: list[pb.Session] = []
    token = ""
    while True:
        page, token = await client.list_sessions(page_size=500, page_token=token)
        found.extend(page)
        if not token:
            return found


def _line(root: Path, decision: Decision, dry_run: bool) -> str:
    what = decision.leftover.describe(root)
    if decision.remove:
        verb = "would remove" if dry_run else "removing"
        return f"{verb} {what} ({decision.reason})"
    return f"keeping {what}: {decision.reason}"


def clean(
    ctx: typer.Context,
    repository: Repository = Path(),
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would go; remove nothing.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            help="Also remove failed sessions' work, unmerged branches and uncommitted changes "
            "(never a running or paused session's)."
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Remove the worktrees and branches of finished sessions, listing each.

    Only what every owning session finished (complete or cancelled) and whose
    commits another branch, tag or remote holds; --force drops those two checks.
    """
    root = _root(repository)
    sessions = _options(ctx).run(_all_sessions)
    try:
        decisions = decide(root, find_leftovers(root, sessions), force=force)
    except GitError as exc:
        raise CliError(str(exc), EXIT_ERROR) from None
    if as_json:
        rows: list[dict[str, Any]] = [
            {
                "branch": d.leftover.branch,
                "worktree": str(d.leftover.worktree) if d.leftover.worktree else "",
                "sessions": [s.id for s in d.leftover.sessions],
                "remove": d.remove,
                "reason": d.reason,
            }
            for d in decisions
        ]
        print_json({"dry_run": dry_run, "leftovers": rows})
    else:
        for decision in decisions:
            # One line each, never wrapped: scripts grep these.
            console.print(_line(root, decision, dry_run), highlight=False, soft_wrap=True)
        if not decisions:
            console.print("nothing to clean: no session worktrees or branches here")
    if dry_run:
        raise typer.Exit(EXIT_OK)
    failures = remove(root, decisions, lambda line: None)
    for failure in failures:
        console.print(f"could not remove {failure}", markup=False, soft_wrap=True)
    raise typer.Exit(EXIT_ERROR if failures else EXIT_OK)
