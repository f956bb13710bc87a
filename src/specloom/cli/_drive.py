"""``specloom session drive``: a person carries out a manual session's commands.

Each pending command is shown; the person then runs it here — with the same
:class:`~specloom.agent.executor.Executor` an agent uses, in this repository,
the AI agent confined (manual is not agentic) — or does it themselves and
reports how it went. Either way the files the step asks for are collected
from this checkout and sent with the result, so the step's judge sees the
work, not an opinion of it.
"""

from __future__ import annotations

import asyncio
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import SecretStr

from specloom.cli._agent import _check_backend, _check_workspace
from specloom.cli._context import Options
from specloom.cli._errors import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PAUSED,
    EXIT_USAGE,
    CliError,
)
from specloom.cli._render import console, errors
from specloom.client import Client, status_name
from specloom.protoconv import struct_to_dict
from specloom.v1 import common_pb2 as pb

if TYPE_CHECKING:
    from specloom.agent.executor import Executor

EXIT_OF_STATUS = {
    pb.SESSION_STATUS_COMPLETE: EXIT_OK,
    pb.SESSION_STATUS_FAILED: EXIT_FAILED,
    pb.SESSION_STATUS_CANCELLED: EXIT_CANCELLED,
    pb.SESSION_STATUS_PAUSED: EXIT_PAUSED,
}
PROMPT_LINES = 40
"""Lines of an agent prompt shown before it is cut (``--full-prompt`` shows all)."""


def describe(interaction: pb.Interaction, *, full_prompt: bool = False) -> list[str]:
    """What a person needs to carry out ``interaction``, as lines."""
    command = interaction.command
    kind = command.WhichOneof("kind") or "?"
    where = command.workdir or "."
    lines = [f"step {interaction.seq}: {interaction.step} ({kind}, in {where})"]
    if kind == "shell":
        lines.append(f"  $ {shlex.join(command.shell.argv)}")
        for key, value in sorted(command.shell.env.items()):
            lines.append(f"    with {key}={value}")
    elif kind == "git":
        for operation in command.git.operations:
            op = operation.WhichOneof("op") or "?"
            detail = str(getattr(operation, op)).strip().replace("\n", "; ")
            lines.append(f"  git {op}: {detail}")
    elif kind == "agent":
        agent = command.agent
        meta = struct_to_dict(command.metadata)
        if agent.model:
            lines.append(f"  model: {agent.model}")
        if agent.allowed_commands:
            lines.append(f"  may run: {', '.join(agent.allowed_commands)}")
        if agent.output_paths:
            lines.append(f"  writes: {', '.join(agent.output_paths)}")
        if agent.resume_conversation_id:
            lines.append(f"  continues conversation {agent.resume_conversation_id}")
        if meta.get("component"):
            lines.append(f"  component: {meta['component']}")
        if agent.system_prompt:
            # The persona: who the agent is for the whole conversation.
            persona = agent.system_prompt.splitlines()
            first = persona if full_prompt else persona[:1]
            lines.append("  system prompt:")
            lines += [f"    {line}" for line in first]
            if len(first) < len(persona):
                lines.append(f"    … {len(persona) - 1} more lines (--full-prompt shows them)")
        prompt = agent.prompt.splitlines()
        shown = prompt if full_prompt else prompt[:PROMPT_LINES]
        lines.append("  prompt:")
        lines += [f"    {line}" for line in shown]
        if len(shown) < len(prompt):
            lines.append(f"    … {len(prompt) - len(shown)} more lines (--full-prompt shows them)")
    elif kind == "noop":
        lines.append("  nothing to run")
    if command.collect_files:
        lines.append(f"  then collects: {', '.join(command.collect_files)}")
    return lines


def _executor(
    root: Path,
    backend: str,
    script: Path | None,
    claude: str,
    anthropic_key: str | None,
    model: str | None,
) -> Executor:
    # Imported here: the agent pulls in git and the backends' SDKs.
    from specloom.agent import AgentSettings
    from specloom.agent.config import build_executor

    settings = AgentSettings(
        workspace=root,
        backends=[backend],
        scripted_file=script.resolve() if script else None,
        claude_executable=claude,
    )
    updates: dict[str, object] = {}
    if anthropic_key:
        updates["anthropic_api_key"] = SecretStr(anthropic_key)
    if model:
        updates["anthropic_model"] = model
    return build_executor(settings.model_copy(update=updates))


async def _print_output(stream: int, data: bytes) -> None:
    target = sys.stderr if stream == pb.OUTPUT_STREAM_STDERR else sys.stdout
    target.write(data.decode("utf-8", errors="replace"))
    target.flush()


def _collected(root: Path, command: pb.Command) -> list[pb.FileContent]:
    """The files the step asks for, read from this checkout (for a result reported by hand)."""
    from specloom.agent.collect import CollectLimits, collect_files
    from specloom.agent.workspace import Workspace

    if not command.collect_files:
        return []
    workdir = Workspace(root).workdir(command.workdir)
    return collect_files(workdir, list(command.collect_files), CollectLimits())


def _choice(report: str | None, run: bool) -> str:
    if report is not None:
        return report
    if run:
        return "run"
    if not sys.stdin.isatty():
        raise CliError(
            "nobody to ask: pass --run (run each command here) or --report ok|error "
            "(you did it yourself)",
            EXIT_USAGE,
        )
    answer = typer.prompt(
        "[r]un it here, report [o]k or [e]rror (you did it), or [q]uit", default="r"
    )
    return {"r": "run", "o": "ok", "e": "error", "q": "quit"}.get(answer.strip()[:1].lower(), "")


def drive(
    ctx: typer.Context,
    session_id: Annotated[str, typer.Argument(metavar="ID")],
    workspace: Annotated[
        Path, typer.Option(help="The session's git repository (its commands run here).")
    ] = Path(),
    run: Annotated[
        bool, typer.Option("--run", help="Run every command here without asking.")
    ] = False,
    report: Annotated[
        str | None,
        typer.Option(
            help="You carried out the pending command: report 'ok' or 'error', then stop."
        ),
    ] = None,
    message: Annotated[str, typer.Option(help="With --report error: what went wrong.")] = "",
    once: Annotated[bool, typer.Option("--once", help="Carry out one command, then stop.")] = False,
    full_prompt: Annotated[
        bool, typer.Option("--full-prompt", help="Show agent prompts whole.")
    ] = False,
    backend: Annotated[
        str,
        typer.Option(help="AI agent backend for agent steps: claude-code, anthropic, scripted."),
    ] = "claude-code",
    script: Annotated[
        Path | None, typer.Option(help="Scripted backend: the recorded edits to replay.")
    ] = None,
    claude: Annotated[str, typer.Option(help="The claude CLI (claude-code backend).")] = "claude",
    anthropic_key: Annotated[
        str | None, typer.Option(envvar="ANTHROPIC_API_KEY", help="API key (anthropic backend).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Default model for agent steps.")] = None,
) -> None:
    """Drive a manual session: show each pending command, run it here or report how it went.

    Exit code: 0 when it completes (or you stop), 6 failed, 7 cancelled, 8 paused.
    """
    options = ctx.find_object(Options)
    assert options is not None
    if report is not None and report not in ("ok", "error"):
        raise CliError(f"--report takes ok or error, got {report!r}", EXIT_USAGE)
    if report == "error" and not message:
        raise CliError("--report error needs --message saying what went wrong", EXIT_USAGE)
    root = _check_workspace(workspace)
    executors: list[Executor] = []

    def executor() -> Executor:
        if not executors:
            _check_backend(backend, script, anthropic_key, claude)
            executors.append(_executor(root, backend, script, claude, anthropic_key, model))
        return executors[0]

    async def loop(client: Client) -> int:
        while True:
            pending = await client.next_command(session_id)
            if not isinstance(pending, pb.Interaction):
                reason = f": {pending.reason}" if pending.reason else ""
                console.print(
                    f"session {session_id} is {status_name(pending.status)}{reason}", soft_wrap=True
                )
                return EXIT_OF_STATUS.get(pending.status, EXIT_OK)
            for line in describe(pending, full_prompt=full_prompt):
                console.print(line, markup=False, soft_wrap=True)
            if pending.command.HasField("spawn_children"):
                console.print(
                    "this step waits for the session's children, which executors run "
                    "(`specloom agent` in this repository); drive again once they finish"
                )
                return EXIT_OK
            choice = await asyncio.to_thread(_choice, report, run)
            if choice == "quit":
                return EXIT_OK
            if choice == "run":
                result = await executor().execute(
                    pending.command,
                    on_output=_print_output,
                    # Manual is not agentic: an agent step run here is confined.
                    execution_mode=pb.EXECUTION_MODE_MANUAL,
                )
            elif choice in ("ok", "error"):
                result = pb.Result(
                    status=pb.RESULT_STATUS_OK if choice == "ok" else pb.RESULT_STATUS_ERROR,
                    error_message=message if choice == "error" else "",
                )
                result.files.extend(await asyncio.to_thread(_collected, root, pending.command))
                result.data.fields["reported_by"].string_value = "person"
            else:
                errors.print("answer r, o, e or q")
                continue
            answer = await client.submit_result(session_id, pending.id, result)
            judged = answer.completed.result
            verdict = {
                pb.RESULT_STATUS_OK: "ok",
                pb.RESULT_STATUS_WARNING: "warning",
                pb.RESULT_STATUS_ERROR: "error",
            }.get(judged.status, "?")
            detail = f": {judged.error_message}" if judged.error_message else ""
            console.print(f"→ {pending.step}: {verdict}{detail}", markup=False, soft_wrap=True)
            if report is not None or once:
                return EXIT_OK

    raise typer.Exit(options.run(loop))
