"""``specloom doctor``: what this machine still needs to run sessions, and how to fix it."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from specloom.cli._context import Options
from specloom.cli._render import console
from specloom.errors import SpecloomError
from specloom.protoconv import from_timestamp

if TYPE_CHECKING:
    from specloom.agent.doctor import Check

MAX_SKEW_SECONDS = 10.0
"""Clock difference with the gateway past which the check fails: leases,
time limits and the times people read are the gateway's."""


async def server_checks(options: Options) -> list[Check]:
    """The gateway reachable with this token, and the clocks in step."""
    from specloom.agent.doctor import Check, Status

    token = options.resolved_token()
    if not token:
        return [
            Check(
                "server",
                Status.FAIL,
                f"no token for {options.gateway}",
                "pass --token, set SPECLOOM_TOKEN, or run `specloom up` on this machine "
                "(it writes ~/.local/share/specloom/admin.token)",
            ),
            Check("clock", Status.SKIP, "needs the server"),
        ]
    sent = time.time()
    try:
        async with options.client() as client:
            answer = await client.whoami_with_time()
    except SpecloomError as exc:
        fix = (
            "the token was refused: ask for a new one (specloom token create) or pass --token"
            if exc.code in ("UNAUTHENTICATED", "PERMISSION_DENIED")
            else "start it (`specloom up`) or pass --gateway HOST:PORT (and --tls if it uses TLS)"
        )
        return [
            Check("server", Status.FAIL, f"{options.gateway}: {exc.message}", fix),
            Check("clock", Status.SKIP, "needs the server"),
        ]
    received = time.time()
    scope = answer.info.scope
    checks = [
        Check(
            "server",
            Status.OK,
            f"{options.gateway} as {scope.user_id} in {scope.account_id}/{scope.project_id}",
        )
    ]
    if not answer.HasField("server_time"):
        checks.append(Check("clock", Status.SKIP, "the gateway does not report its time"))
        return checks
    server = from_timestamp(answer.server_time).timestamp()
    checks.append(skew_check(sent, received, server))
    return checks


def skew_check(sent: float, received: float, server: float) -> Check:
    """The clock check from one round trip: the server read ``server`` between the two."""
    from specloom.agent.doctor import Check, Status

    skew = server - (sent + received) / 2
    bound = (received - sent) / 2
    detail = f"{skew:+.1f} s against the gateway (±{bound:.2f} s)"
    if abs(skew) - bound > MAX_SKEW_SECONDS:
        return Check(
            "clock",
            Status.FAIL,
            detail,
            "synchronise the clock (timedatectl set-ntp true, or your OS's time settings)",
        )
    return Check("clock", Status.OK, detail)


def doctor(
    ctx: typer.Context,
    workspace: Annotated[Path, typer.Option(help="Your project's git repository.")] = Path(),
    profile: Annotated[str, typer.Option(help="Project profile: python or elixir.")] = "python",
    backend: Annotated[
        list[str] | None,
        typer.Option(help="Agent backend(s) to check: claude-code, anthropic (repeatable)."),
    ] = None,
    claude: Annotated[str, typer.Option(help="The claude CLI (claude-code backend).")] = "claude",
    anthropic_key: Annotated[
        str | None, typer.Option(envvar="ANTHROPIC_API_KEY", help="API key to check.")
    ] = None,
) -> None:
    """Check this machine: git, the test runner, the workspace, the agent backends, the server.

    Prints one line per check with a fix for anything missing; exits 1 when
    something must be fixed, 0 when the machine is ready.
    """
    from specloom.agent.doctor import failed, local_checks

    options = ctx.find_object(Options)
    assert options is not None
    chosen = backend or ["claude-code"]
    root = workspace.expanduser().resolve()
    checks = list(
        local_checks(
            root,
            chosen,
            profile,
            claude=claude,
            api_key=anthropic_key,
            base_url=os.environ.get("ANTHROPIC_BASE_URL"),
        )
    )
    checks += asyncio.run(server_checks(options))
    for check in checks:
        console.print(check.line(), markup=False, soft_wrap=True)
    missing = failed(checks)
    if missing:
        console.print(f"{len(missing)} thing(s) to fix before this machine can run sessions")
        raise typer.Exit(1)
    console.print("ready")


__all__ = ["doctor", "server_checks", "skew_check"]
