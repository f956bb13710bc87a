"""The ``specloom`` command line."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer

from specloom.cli import _serve, _sessions, _tokens, _workspaces
from specloom.cli._context import Options
from specloom.cli._errors import EXIT_ERROR, EXIT_OF_CODE, EXIT_USAGE, HINTS, CliError
from specloom.errors import SpecloomError
from specloom.host import DEFAULT_LISTEN, default_data_dir

app = typer.Typer(
    name="specloom",
    help=(
        "Durable, inspectable AI-assisted development workflows.\n\n"
        "Run `specloom demo` to see one end to end, `specloom up` to serve, "
        "`specloom agent` to execute, `specloom session` to drive sessions."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def root(
    ctx: typer.Context,
    gateway: Annotated[
        str, typer.Option(envvar="SPECLOOM_GATEWAY", help="Gateway address (host:port).")
    ] = DEFAULT_LISTEN,
    token: Annotated[
        str | None,
        typer.Option(envvar="SPECLOOM_TOKEN", help="Bearer token (default: the `up` token file)."),
    ] = None,
    tls: Annotated[bool, typer.Option(help="Connect with TLS (system CAs).")] = False,
    ca_file: Annotated[
        Path | None,
        typer.Option(envvar="SPECLOOM_CA_FILE", help="Connect with TLS, trusting this CA."),
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(envvar="SPECLOOM_DATA_DIR", help="Local data directory.")
    ] = None,
    debug: Annotated[bool, typer.Option(help="Show tracebacks on errors.")] = False,
) -> None:
    """Global options."""
    ctx.obj = Options(
        gateway=gateway,
        token=token,
        tls=tls,
        ca_file=ca_file,
        debug=debug,
        data_dir=data_dir or default_data_dir(),
    )


app.command()(_serve.up)
app.command()(_serve.serve)
app.command()(_serve.migrate)
app.command()(_serve.prune)
app.command()(_sessions.workflows)
app.command()(_tokens.whoami)
app.command()(_workspaces.workspace)
app.command()(_workspaces.executors)
app.command()(_workspaces.clean)
app.add_typer(_sessions.app, name="session")
app.add_typer(_tokens.app, name="token")


def _register_optional() -> None:
    # The agent and the demo live in their own modules; importing them here
    # keeps `specloom --help` fast (they pull in git and agent backends lazily).
    import importlib

    for module, name, command in (
        ("specloom.cli._agent", "agent", "agent"),
        ("specloom.cli._demo", "demo", "demo"),
        ("specloom.cli._doctor", "doctor", "doctor"),
        ("specloom.cli._projectmap", "status", "status"),
        ("specloom.cli._projectmap", "next_sessions", "next"),
    ):
        try:
            app.command(command)(getattr(importlib.import_module(module), name))
        except ModuleNotFoundError:
            continue


GLOBAL_WITH_VALUE = ("--gateway", "--token", "--ca-file", "--data-dir")
GLOBAL_FLAGS = ("--debug", "--no-debug", "--tls", "--no-tls")


def hoist_globals(args: list[str]) -> list[str]:
    """Move global options to the front, so they work after a subcommand too.

    ``specloom session list --token T`` reads as well as
    ``specloom --token T session list``; both mean the same.
    """
    hoisted: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            rest.extend(args[index:])
            break
        name = arg.split("=", 1)[0]
        if name in GLOBAL_WITH_VALUE:
            if "=" in arg:
                hoisted.append(arg)
            elif index + 1 < len(args):
                hoisted.extend(args[index : index + 2])
                index += 1
            else:
                rest.append(arg)  # let the parser report the missing value
        elif arg in GLOBAL_FLAGS:
            hoisted.append(arg)
        else:
            rest.append(arg)
        index += 1
    return hoisted + rest


def optional_count(args: list[str]) -> list[str]:
    """``next --start`` alone as ``next --start=1``, so its count is optional.

    Typer options always take a value; this keeps ``specloom next --start``
    (the common case) and ``specloom next --start 3`` both working.
    """
    if "next" not in args:
        return args
    fixed: list[str] = []
    for index, arg in enumerate(args):
        following = args[index + 1] if index + 1 < len(args) else ""
        fixed.append("--start=1" if arg == "--start" and not following.isdigit() else arg)
    return fixed


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI; one-line errors, tracebacks only under --debug."""
    args = optional_count(hoist_globals(list(sys.argv[1:] if argv is None else argv)))
    _register_optional()
    try:
        result = app(args=args, standalone_mode=False)
    except typer.Exit as done:
        return int(getattr(done, "exit_code", 0))
    except typer.Abort:
        typer.echo("aborted", err=True)
        return EXIT_ERROR
    except typer.TyperException as exc:
        # Usage errors (unknown option, missing argument): typer's own click
        # exceptions, which know how to print themselves with a usage hint.
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            typer.echo(f"error: {exc}", err=True)
        return int(getattr(exc, "exit_code", EXIT_USAGE))
    except CliError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        if _debug_requested(args):
            traceback.print_exc()
        return exc.exit_code
    except SpecloomError as exc:
        hint = HINTS.get(exc.code)
        line = f"error: {exc.message}" + (f" ({hint})" if hint else "")
        typer.echo(line, err=True)
        if _debug_requested(args):
            traceback.print_exc()
        return EXIT_OF_CODE.get(exc.code, EXIT_ERROR)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        typer.echo(f"error: {type(exc).__name__}: {exc} (run with --debug for details)", err=True)
        if _debug_requested(args):
            traceback.print_exc()
        return EXIT_ERROR
    return int(result or 0)
