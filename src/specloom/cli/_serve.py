"""Server-side commands: ``up`` (everything, one process), ``serve`` (one service), admin."""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import SecretStr

from specloom.cli._context import TOKEN_FILE_NAME, Options
from specloom.cli._errors import EXIT_USAGE, CliError
from specloom.cli._render import console, errors, print_json
from specloom.host import DEFAULT_LISTEN, HostSettings, ServiceSpec, discover, new_secret
from specloom.logs import configure
from specloom.process import start_host
from specloom.rpc.server import stop_signals

SERVICE_NAMES = ("sessions", "context_design", "coding", "gateway", "web")
DEFAULT_WEB_LISTEN = "127.0.0.1:7421"
log = logging.getLogger("specloom.up")


def _specs() -> dict[str, ServiceSpec]:
    specs = discover()
    missing = [name for name in SERVICE_NAMES if name not in specs]
    if missing:
        raise CliError(
            f"services not installed: {', '.join(missing)}; reinstall specloom (pip install -e .)"
        )
    return specs


def _secret_file(path: Path) -> str:
    """A secret kept in a private file, created on first use."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = new_secret()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")


async def _up(
    listen: str,
    data_dir: Path,
    token_file: Path,
    token_exists: bool,
    ready_file: Path | None,
    web: dict[str, Any],
    json_logs: bool,
) -> None:
    started = time.perf_counter()
    specs = _specs()
    settings = HostSettings(
        listen=listen,
        data_dir=data_dir,
        database_url=os.environ.get("SPECLOOM_DATABASE_URL")
        or f"sqlite+aiosqlite:///{data_dir / 'specloom.db'}",
        # One process: the internal credential only has to outlive it. The
        # pepper must outlive restarts, or every token stops verifying.
        internal_secret=SecretStr(new_secret()),
        token_pepper=SecretStr(_secret_file(data_dir / "pepper")),
    )
    sessions = specs["sessions"]
    await sessions.admin["migrate"](settings)
    first_token = None
    if not token_exists:
        user = getpass.getuser() or "admin"
        first_token = await sessions.admin["issue-token"](
            settings,
            account_id="local",
            project_id="default",
            user_id=user,
            admin=True,
            name="first admin token (specloom up)",
        )
        _write_private(token_file, str(first_token))
    host = await start_host(
        [specs[name] for name in SERVICE_NAMES], settings, web, self_hosted=True
    )
    elapsed = time.perf_counter() - started
    say = _Banner(json_logs)
    say(
        f"specloom is up on {host.address} in {elapsed:.2f} s "
        f"(data in {data_dir}; every service in this process)"
    )
    web_url = host.endpoints.get("web")
    if web_url:
        say(f"web console: {web_url}  (sign in with a token)")
    if first_token is not None and not json_logs:
        say(f"first admin token (shown once, also saved to {token_file}):")
        # Printed raw: rich would wrap it at the terminal width and break copy-paste.
        print(f"  {first_token}", flush=True)
    elif first_token is not None:
        # Never into a log stream: the token stays in its private file.
        say(f"first admin token written to {token_file}")
    else:
        say(f"admin token: {token_file}")
    if ready_file is not None:
        lines = f"{host.address}\n" + (f"web {web_url}\n" if web_url else "")
        ready_file.write_text(lines)  # noqa: ASYNC240 - once, at start
    stop = stop_signals()
    await stop.wait()
    say("stopping: draining streams…")
    await host.stop()


class _Banner:
    """What `up` tells the person who started it: printed for a terminal, or a
    log record when logs are JSON (a collector reading the process's output
    expects one JSON object per line, and nothing else)."""

    def __init__(self, json_logs: bool) -> None:
        self._json = json_logs

    def __call__(self, text: str) -> None:
        if self._json:
            log.info("%s", text)
        else:
            console.print(text, markup=False)


def up(
    ctx: typer.Context,
    listen: Annotated[str, typer.Option(help="Address to serve on.")] = DEFAULT_LISTEN,
    data_dir: Annotated[
        Path | None, typer.Option(help="SQLite file, pepper and first token live here.")
    ] = None,
    token_file: Annotated[
        Path | None, typer.Option(help="Where the first admin token is written (or read).")
    ] = None,
    ready_file: Annotated[
        Path | None, typer.Option(help="Write the bound address here once serving.", hidden=True)
    ] = None,
    web_listen: Annotated[
        str | None,
        typer.Option(
            help=f"Address of the web console (default {DEFAULT_WEB_LISTEN}, or a free port "
            "when that one is taken); 'off' serves none."
        ),
    ] = None,
) -> None:
    """Run every service in one process on one port, with an embedded SQLite database."""
    options = ctx.find_object(Options)
    assert options is not None
    directory = data_dir or options.data_dir
    log_format = os.environ.get("SPECLOOM_LOG_FORMAT", "text")
    configure(log_format, "DEBUG" if options.debug else "INFO")
    if not options.debug:
        logging.getLogger("alembic").setLevel(logging.WARNING)
    directory.mkdir(parents=True, exist_ok=True)
    tokens = token_file or directory / TOKEN_FILE_NAME
    web: dict[str, Any] = {"web_listen": web_listen} if web_listen else {}
    if not web_listen and not os.environ.get("SPECLOOM_WEB_LISTEN"):
        web = {"web_listen": DEFAULT_WEB_LISTEN, "web_listen_fallback": True}
    asyncio.run(
        _up(
            listen,
            directory,
            tokens,
            tokens.exists(),
            ready_file,
            web,
            json_logs=log_format == "json",
        )
    )


async def _serve(spec: ServiceSpec, settings: HostSettings, overrides: dict[str, Any]) -> None:
    host = await start_host([spec], settings, overrides)
    errors.print(f"specloom {spec.name} serving on {host.address}")
    for name, url in host.endpoints.items():
        errors.print(f"specloom {spec.name}: {name} on {url}")
    await stop_signals().wait()
    await host.stop()


def serve(
    service: Annotated[
        str, typer.Argument(help="sessions, context_design, coding, gateway or web.")
    ],
    listen: Annotated[str | None, typer.Option(help="Overrides SPECLOOM_LISTEN.")] = None,
    database_url: Annotated[
        str | None, typer.Option(help="Overrides SPECLOOM_DATABASE_URL (sessions).")
    ] = None,
    sessions_address: Annotated[
        str | None, typer.Option(help="Overrides SPECLOOM_SESSIONS_ADDRESS.")
    ] = None,
    orchestrator: Annotated[
        list[str] | None,
        typer.Option(help="Orchestrator address (gateway; repeatable). Overrides the env."),
    ] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Serve Prometheus metrics.")] = None,
) -> None:
    """Run one service alone (what a Kubernetes pod runs). Configured by SPECLOOM_* variables."""
    specs = _specs()
    spec = specs.get(service.replace("-", "_"))
    if spec is None:
        raise CliError(
            f"unknown service {service!r}; choose one of: {', '.join(SERVICE_NAMES)}", EXIT_USAGE
        )
    updates: dict[str, Any] = {}
    if listen:
        updates["listen"] = listen
    if database_url:
        updates["database_url"] = database_url
    if sessions_address:
        updates["sessions_address"] = sessions_address
    if orchestrator:
        updates["orchestrator_addresses"] = orchestrator
    if metrics_port is not None:
        updates["metrics_port"] = metrics_port
    settings = HostSettings().model_copy(update=updates)
    configure(settings.log_format, settings.log_level)
    asyncio.run(_serve(spec, settings, updates))


def migrate(
    database_url: Annotated[
        str | None, typer.Option(help="Overrides SPECLOOM_DATABASE_URL.")
    ] = None,
) -> None:
    """Apply database migrations (run before starting new versions of the services)."""
    settings = HostSettings()
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    result = asyncio.run(_specs()["sessions"].admin["migrate"](settings))
    console.print(f"migrations applied{f': {result}' if result else ''}", markup=False)


def prune(
    older_than_days: Annotated[int, typer.Option(min=1, help="Finished more than N days ago.")],
    dry_run: Annotated[bool, typer.Option(help="Count only.")] = False,
    database_url: Annotated[
        str | None, typer.Option(help="Overrides SPECLOOM_DATABASE_URL.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Delete finished sessions older than N days, with their history and output."""
    settings = HostSettings()
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    counts = asyncio.run(
        _specs()["sessions"].admin["prune"](
            settings, older_than_days=older_than_days, dry_run=dry_run
        )
    )
    if as_json:
        print_json(counts)
    else:
        verb = "would delete" if dry_run else "deleted"
        console.print(f"{verb}: {counts}", markup=False)
