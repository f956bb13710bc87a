"""``specloom session …`` and ``specloom workflows``: the client commands for people."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from specloom.cli._context import Options
from specloom.cli._errors import EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, CliError
from specloom.cli._render import (
    as_dict,
    console,
    errors,
    history_table,
    print_json,
    print_json_line,
    session_header,
    session_line,
    sessions_table,
    usage_line,
    workflows_table,
)
from specloom.cli._watch import watch
from specloom.client import Client
from specloom.protoconv import JsonValue
from specloom.v1 import common_pb2 as pb
from specloom.workspaces import NotARepository, identify, is_workspace_id

app = typer.Typer(help="Start, inspect, watch and steer sessions.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _options(ctx: typer.Context) -> Options:
    options = ctx.find_object(Options)
    assert options is not None  # set by the root callback
    return options


def _param(text: str) -> tuple[str, JsonValue]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise CliError(f"--param takes key=value, got {text!r}", EXIT_USAGE)
    try:
        value: JsonValue = json.loads(raw)
    except json.JSONDecodeError:
        value = raw  # a bare word is a string
    return key.strip(), value


def _params(
    context: str | None,
    component: str | None,
    pairs: list[str],
    params_file: Path | None,
    profile: str | None,
) -> dict[str, JsonValue]:
    params: dict[str, JsonValue] = {}
    if params_file is not None:
        try:
            loaded = json.loads(params_file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CliError(f"cannot read --params-file {params_file}: {exc}", EXIT_USAGE) from exc
        if not isinstance(loaded, dict):
            raise CliError(f"--params-file {params_file} must hold a JSON object", EXIT_USAGE)
        params.update(loaded)
    for pair in pairs:
        key, value = _param(pair)
        params[key] = value
    if context:
        params["context"] = context
    if component:
        params["component"] = component
    if profile:
        params["profile"] = profile
    return params


def _workspace(workspace_id: str) -> pb.WorkspaceRef | None:
    """The workspace a new session belongs to: named, or the current directory's repository."""
    if workspace_id:
        if not is_workspace_id(workspace_id):
            raise CliError(
                f'--workspace-id {workspace_id!r} is not a workspace id ("ws-" and 12 hex '
                "digits; `specloom workspace` prints this repository's)",
                EXIT_USAGE,
            )
        return pb.WorkspaceRef(id=workspace_id)
    try:
        return identify(Path.cwd())
    except NotARepository:
        return None


@app.command()
def start(
    ctx: typer.Context,
    session_type: Annotated[str, typer.Argument(metavar="TYPE", help="See `specloom workflows`.")],
    context: Annotated[str | None, typer.Option(help="Context name (context sessions).")] = None,
    component: Annotated[
        str | None, typer.Option(help="Component module name (component sessions).")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Extra key=value (JSON values ok).")
    ] = None,
    params_file: Annotated[Path | None, typer.Option(help="JSON object of params.")] = None,
    profile: Annotated[str | None, typer.Option(help="Project profile: python, elixir.")] = None,
    mode: Annotated[str, typer.Option(help="agentic, auto or manual.")] = "agentic",
    key: Annotated[str, typer.Option(help="Idempotency key: the same key starts once.")] = "",
    workspace_id: Annotated[
        str,
        typer.Option(
            help="Run it in this workspace (`specloom workspace` prints one) instead of "
            "the repository of the current directory."
        ),
    ] = "",
    follow: Annotated[bool, typer.Option("--watch", help="Follow it until it stops.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Start a session in the repository of the current directory (its workspace)."""
    options = _options(ctx)
    params = _params(context, component, param or [], params_file, profile)
    workspace = _workspace(workspace_id)

    async def run(client: Client) -> int:
        response = await client.start_session(
            session_type, params, mode=mode, idempotency_key=key, workspace=workspace
        )
        session = response.session
        if workspace is None and response.created:
            errors.print(
                "note: not run in a git repository, so the session belongs to no workspace "
                "yet: the first agent with a repository to claim it runs it there"
            )
        if as_json and not follow:
            print_json({**as_dict(session), "created": response.created})
        elif not as_json:
            verb = "started" if response.created else "already started (same --key)"
            console.print(Text.assemble(f"{verb}: ", session_line(session)))
        if follow:
            return await watch(client, session.id, as_json=as_json)
        return EXIT_OK

    raise typer.Exit(options.run(run))


@app.command("list")
def list_sessions(
    ctx: typer.Context,
    status: Annotated[list[str] | None, typer.Option(help="Only this status (repeatable).")] = None,
    session_type: Annotated[
        list[str] | None, typer.Option("--type", help="Only this type.")
    ] = None,
    parent: Annotated[str, typer.Option(help="Only children of this session.")] = "",
    top_level: Annotated[bool, typer.Option(help="Only sessions without a parent.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """List sessions, newest first."""
    options = _options(ctx)

    async def run(client: Client) -> list[Any]:
        found: list[Any] = []
        token = ""
        while len(found) < limit:
            page, token = await client.list_sessions(
                statuses=status or [],
                types=session_type or [],
                parent_id=parent,
                top_level_only=top_level,
                page_size=min(500, limit - len(found)),
                page_token=token,
            )
            found.extend(page)
            if not token:
                break
        return found

    sessions = options.run(run)
    if as_json:
        print_json([as_dict(s) for s in sessions])
    elif sessions:
        console.print(sessions_table(sessions))
    else:
        console.print("no sessions")


@app.command()
def show(
    ctx: typer.Context,
    session_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: JsonFlag = False,
) -> None:
    """Show a session's step history (durations, outcomes, reasons) and its children."""
    options = _options(ctx)

    async def run(client: Client) -> tuple[Any, list[Any]]:
        session = await client.get_session(session_id)
        return session, await client.children(session_id)

    session, children = options.run(run)
    if as_json:
        print_json({**as_dict(session), "children": [as_dict(c) for c in children]})
        return
    console.print(session_header(session))
    console.print(history_table(session))
    if session.usage.agent_steps:
        console.print(usage_line("usage, this session", session.usage))
        notes = {i.result.usage.note for i in session.interactions if i.result.usage.note}
        for note in sorted(notes):
            console.print(f"  note: {note}")
    if session.total_usage.agent_steps > session.usage.agent_steps:
        console.print(usage_line("usage, with its children", session.total_usage))
    if children:
        console.print(sessions_table(children))


@app.command()
def output(
    ctx: typer.Context,
    session_id: Annotated[str, typer.Argument(metavar="ID")],
    step: Annotated[
        int | None,
        typer.Option(
            "--step", min=1, help="Only this step (its # in `session show`): raw, pipeable."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON chunk per line.")] = False,
) -> None:
    """Print the full stored output of a session's steps (or of one step).

    Without --step every step that has output is printed, each after a
    `==> #N Step <==` line; with it, only that step's bytes, as stored.
    """
    options = _options(ctx)

    async def run(client: Client) -> None:
        session = await client.get_session(session_id)
        steps = [i for i in session.interactions if step is None or i.seq == step]
        if step is not None and not steps:
            raise CliError(
                f"session {session_id} has no step #{step} (it has "
                f"{len(session.interactions)}; see `specloom session show {session_id}`)",
                EXIT_NOT_FOUND,
            )
        for interaction in steps:
            await _print_output(
                client, session_id, interaction, header=step is None, as_json=as_json
            )

    options.run(run)


async def _print_output(
    client: Client, session_id: str, interaction: pb.Interaction, *, header: bool, as_json: bool
) -> None:
    """Page through one step's stored output onto stdout."""
    out = sys.stdout.buffer
    after: int | None = None
    printed = False
    while True:
        chunks, more = await client.read_output(session_id, interaction.id, after_index=after)
        for chunk in chunks:
            if as_json:
                text = chunk.data.decode("utf-8", errors="replace")
                line = {**as_dict(chunk), "text": text, "seq": interaction.seq}
                print_json_line({**line, "step": interaction.step})
                continue
            if header and not printed:
                out.write(f"==> #{interaction.seq} {interaction.step} <==\n".encode())
            printed = True
            out.write(chunk.data)
        if not chunks or not more:
            break
        after = chunks[-1].index
    if header and printed:
        out.write(b"\n")
    out.flush()


@app.command("watch")
def watch_command(
    ctx: typer.Context,
    session_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON event per line.")] = False,
) -> None:
    """Follow a session live until it completes, fails, is cancelled or pauses.

    Exit code: 0 complete, 6 failed, 7 cancelled, 8 paused.
    """
    options = _options(ctx)
    raise typer.Exit(options.run(lambda client: watch(client, session_id, as_json=as_json)))


def _steer(ctx: typer.Context, verb: str, session_id: str, *args: str) -> None:
    options = _options(ctx)

    async def run(client: Client) -> Any:
        method = getattr(client, verb)
        return await method(session_id, *args)

    session = options.run(run)
    console.print(session_line(session), markup=False)


@app.command()
def cancel(
    ctx: typer.Context,
    session_id: Annotated[str, typer.Argument(metavar="ID")],
    reason: Annotated[str, typer.Option(help="Recorded with the cancellation.")] = "",
) -> None:
    """Cancel a session and all its children."""
    _steer(ctx, "cancel", session_id, reason)


@app.command()
def pause(
    ctx: typer.Context,
    session_id: Annotated[str, typer.Argument(metavar="ID")],
    reason: Annotated[str, typer.Option(help="Recorded in the history.")] = "",
) -> None:
    """Pause a session (the running step finishes first)."""
    _steer(ctx, "pause", session_id, reason)


@app.command()
def resume(
    ctx: typer.Context,
    session_id: Annotated[str, typer.Argument(metavar="ID")],
    reason: Annotated[str, typer.Option(help="Recorded in the history.")] = "",
) -> None:
    """Resume a paused or failed session (loop counters restart)."""
    _steer(ctx, "resume", session_id, reason)


@app.command()
def retry(
    ctx: typer.Context,
    session_id: Annotated[str, typer.Argument(metavar="ID")],
    from_step: Annotated[str, typer.Option("--from", help="Step to run next.")],
    reason: Annotated[str, typer.Option(help="Recorded in the history.")] = "",
) -> None:
    """Run a session again from a named step."""
    _steer(ctx, "retry", session_id, from_step, reason)


def workflows(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List the session types the server runs, with their steps and required params."""
    options = _options(ctx)
    described = options.run(lambda client: client.describe())
    if as_json:
        print_json([as_dict(w) for w in described])
    else:
        console.print(workflows_table(described))


def _register_drive() -> None:
    # In its own module: driving pulls in the executor (git, the backends).
    from specloom.cli._drive import drive

    app.command("drive")(drive)


_register_drive()
