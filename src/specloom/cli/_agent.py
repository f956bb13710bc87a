"""``specloom agent``: run an executor on this machine."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path
from typing import Annotated

import typer
from pydantic import SecretStr

from specloom.cli._context import Options
from specloom.cli._errors import EXIT_USAGE, CliError
from specloom.logs import configure

BACKENDS = ("claude-code", "anthropic", "scripted")


def _check_workspace(path: Path) -> Path:
    workspace = path.expanduser().resolve()
    if not workspace.is_dir():
        raise CliError(f"workspace {workspace} does not exist; pass --workspace DIR", EXIT_USAGE)
    inside = subprocess.run(
        ["git", "-C", str(workspace), "rev-parse", "--is-inside-work-tree"],
        capture_output=True,
        text=True,
        check=False,
    )
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        raise CliError(
            f"workspace {workspace} is not a git repository; run `git init` there "
            "(and commit once), or pass --workspace pointing at your project",
            EXIT_USAGE,
        )
    return workspace


def _check_backend(backend: str, script: Path | None, key: str | None, claude: str) -> None:
    if backend not in BACKENDS:
        raise CliError(
            f"unknown backend {backend!r}; use one of: {', '.join(BACKENDS)}", EXIT_USAGE
        )
    if backend == "scripted" and (script is None or not script.is_file()):
        raise CliError(
            "the scripted backend replays a script: pass --script FILE (a JSON script of edits)",
            EXIT_USAGE,
        )
    if backend == "anthropic" and not (key or os.environ.get("ANTHROPIC_API_KEY")):
        raise CliError(
            "the anthropic backend needs an API key: set ANTHROPIC_API_KEY or pass --anthropic-key",
            EXIT_USAGE,
        )
    if backend == "claude-code" and shutil.which(claude) is None and not Path(claude).is_file():
        raise CliError(
            f"the claude-code backend runs the `{claude}` CLI, which is not on PATH; install it "
            "(npm install -g @anthropic-ai/claude-code) or pass --claude PATH",
            EXIT_USAGE,
        )


def agent(
    ctx: typer.Context,
    workspace: Annotated[
        Path, typer.Option(help="Your project's git repository; commands run inside it.")
    ] = Path(),
    backend: Annotated[
        str, typer.Option(help="AI agent backend: claude-code, anthropic or scripted.")
    ] = "claude-code",
    script: Annotated[
        Path | None, typer.Option(help="Scripted backend: the recorded edits to replay.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Executor name (default: host name).")] = None,
    max_parallel: Annotated[int, typer.Option(min=1, max=256, help="Commands at once.")] = 4,
    label: Annotated[
        list[str] | None, typer.Option(help="key=value label sent at registration (repeatable).")
    ] = None,
    anthropic_key: Annotated[
        str | None, typer.Option(envvar="ANTHROPIC_API_KEY", help="API key (anthropic backend).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Default model for agent steps.")] = None,
    claude: Annotated[str, typer.Option(help="The claude CLI (claude-code backend).")] = "claude",
) -> None:
    """Run an executor agent: dial the gateway, run each command in WORKSPACE, stream results."""
    options = ctx.find_object(Options)
    assert options is not None
    root = _check_workspace(workspace)
    _check_backend(backend, script, anthropic_key, claude)
    token = options.require_token()
    labels: dict[str, str] = {}
    for item in label or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise CliError(f"--label takes key=value, got {item!r}", EXIT_USAGE)
        labels[key] = value
    configure(os.environ.get("SPECLOOM_LOG_FORMAT", "text"), "DEBUG" if options.debug else "INFO")
    # Imported here: the agent pulls in git and the backends' SDKs, which
    # `specloom --help` and the client commands do not need.
    from specloom.agent import AgentSettings, run_agent

    settings = AgentSettings(
        gateway=options.gateway,
        token=SecretStr(token),
        tls=options.tls or options.ca_file is not None,
        tls_ca_file=options.ca_file,
        workspace=root,
        backends=[backend],
        scripted_file=script.resolve() if script else None,
        max_parallel=max_parallel,
        labels=labels,
        claude_executable=claude,
    )
    updates: dict[str, object] = {}
    if name:
        updates["name"] = name
    if anthropic_key:
        updates["anthropic_api_key"] = SecretStr(anthropic_key)
    if model:
        updates["anthropic_model"] = model
    settings = settings.model_copy(update=updates)
    raise typer.Exit(asyncio.run(run_agent(settings)))
