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
from specloom.cli._errors import EXIT_AUTH, EXIT_ERROR, EXIT_USAGE, CliError
from specloom.cli._render import errors
from specloom.logs import configure
from specloom.workspaces import NotARepository

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


def _preflight(root: Path, backend: str, claude: str, key: str | None) -> None:
    """The doctor's checks for this agent; refuses to start with their messages."""
    from specloom.agent.doctor import Status, agent_checks, failed

    checks = agent_checks(
        root, [backend], claude=claude, api_key=key, base_url=os.environ.get("ANTHROPIC_BASE_URL")
    )
    for check in checks:
        if check.status is Status.WARN:
            errors.print(check.line(), markup=False, soft_wrap=True)
    missing = failed(checks)
    if missing:
        lines = "\n".join(check.line() for check in missing)
        raise CliError(f"the agent cannot start:\n{lines}", EXIT_ERROR)


ARGV_IS_PUBLIC = (
    "the agent does not take --token: it runs for hours, and a command line is visible to "
    "every user of this machine (ps, /proc/<pid>/cmdline). Set SPECLOOM_TOKEN in its "
    "environment, or pass --token-file FILE (a file only you can read)"
)


def _refuse_token_on_argv(ctx: typer.Context) -> None:
    source = ctx.find_root().get_parameter_source("token")
    if source is not None and source.name == "COMMANDLINE":
        raise CliError(ARGV_IS_PUBLIC, EXIT_USAGE)


def _token(options: Options, token_file: Path | None) -> str:
    if token_file is not None:
        try:
            token = token_file.expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CliError(f"cannot read --token-file {token_file}: {exc}", EXIT_USAGE) from None
        if not token:
            raise CliError(f"--token-file {token_file} is empty", EXIT_USAGE)
        return token
    resolved = options.resolved_token()
    if not resolved:
        raise CliError(
            "no token: set SPECLOOM_TOKEN, pass --token-file FILE, or run `specloom up` on this "
            f"machine (it writes one to {options.token_file()})",
            EXIT_AUTH,
        )
    return resolved


def agent(
    ctx: typer.Context,
    workspace: Annotated[
        list[Path] | None,
        typer.Option(
            help="A git repository it serves (repeatable; the first is the default). "
            "Each session's commands run in the repository it was started in."
        ),
    ] = None,
    serve: Annotated[
        str,
        typer.Option(
            help="Whose sessions to run: own (your token's user's) or project (every member's)."
        ),
    ] = "own",
    trust: Annotated[
        list[str] | None,
        typer.Option(
            help="A user whose agentic sessions may run unconfined here, besides you "
            "(repeatable). Others' agent steps run confined, as in auto mode."
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            envvar="SPECLOOM_TOKEN_FILE", help="Read the token from this file (not argv)."
        ),
    ] = None,
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
    """Run an executor agent: dial the gateway, run each command in its session's WORKSPACE.

    It first runs the checks of `specloom doctor` that concern it (git, the
    workspace, the backend: the claude CLI installed and logged in, or the
    API key accepted) and refuses to start, saying what to fix, when one fails.
    """
    options = ctx.find_object(Options)
    assert options is not None
    _refuse_token_on_argv(ctx)
    roots = [_check_workspace(path) for path in (workspace or [Path()])]
    if serve not in ("own", "project"):
        raise CliError(f"--serve takes own or project, got {serve!r}", EXIT_USAGE)
    _check_backend(backend, script, anthropic_key, claude)
    for root in roots:
        _preflight(root, backend, claude, anthropic_key)
    token = _token(options, token_file)
    labels: dict[str, str] = {}
    for item in label or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise CliError(f"--label takes key=value, got {item!r}", EXIT_USAGE)
        labels[key] = value
    configure(os.environ.get("SPECLOOM_LOG_FORMAT", "text"), "DEBUG" if options.debug else "INFO")
    # Imported here: the agent pulls in the backends' SDKs, which
    # `specloom --help` and the client commands do not need.
    from specloom.agent import AgentSettings, run_agent

    settings = AgentSettings(
        gateway=options.gateway,
        token=SecretStr(token),
        tls=options.tls or options.ca_file is not None,
        tls_ca_file=options.ca_file,
        workspace=roots[0],
        workspaces=roots[1:],
        serve="project" if serve == "project" else "own",
        trusted_starters=list(trust or []),
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
    from specloom.agent.usage import PricesError, load_prices

    try:
        load_prices(settings.prices_file)
    except PricesError as exc:
        raise CliError(f"{exc} (SPECLOOM_AGENT_PRICES_FILE)", EXIT_USAGE) from None
    try:
        raise typer.Exit(asyncio.run(run_agent(settings)))
    except NotARepository as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
