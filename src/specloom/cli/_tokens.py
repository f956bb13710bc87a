"""``specloom token …`` and ``specloom whoami``."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from specloom.cli._context import Options
from specloom.cli._render import as_dict, console, print_json
from specloom.client import Client
from specloom.host import HostSettings, discover
from specloom.v1 import common_pb2 as pb

app = typer.Typer(help="Create and revoke bearer tokens.", no_args_is_help=True)


def _options(ctx: typer.Context) -> Options:
    options = ctx.find_object(Options)
    assert options is not None
    return options


@app.command()
def create(
    ctx: typer.Context,
    account: Annotated[str, typer.Option(help="Account of the new token.")],
    project: Annotated[str, typer.Option(help="Project of the new token.")],
    user: Annotated[str, typer.Option(help="User the token acts as.")],
    admin: Annotated[bool, typer.Option(help="May create and revoke tokens.")] = False,
    name: Annotated[str, typer.Option(help="A label, e.g. 'ci' or 'alice laptop'.")] = "",
    ttl: Annotated[int, typer.Option(min=0, help="Lifetime in seconds (0: no expiry).")] = 0,
    direct: Annotated[
        bool,
        typer.Option(
            help="Write straight to the database (SPECLOOM_DATABASE_URL, SPECLOOM_TOKEN_PEPPER) "
            "instead of asking the gateway: the bootstrap path on a new cluster."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create a token. The secret is printed once; only its hash is stored."""
    if direct:
        token = asyncio.run(
            discover()["sessions"].admin["issue-token"](
                HostSettings(),
                account_id=account,
                project_id=project,
                user_id=user,
                admin=admin,
                name=name,
                ttl_seconds=ttl,
            )
        )
        if as_json:
            print_json({"token": str(token)})
        else:
            print(str(token), flush=True)
        return
    options = _options(ctx)
    scope = pb.Scope(account_id=account, project_id=project, user_id=user)

    async def run(client: Client) -> Any:
        return await client.create_token(scope, admin=admin, name=name, ttl_seconds=ttl)

    response = options.run(run)
    if as_json:
        print_json({"token": response.token, "info": as_dict(response.info)})
    else:
        print(response.token, flush=True)  # raw: no wrapping, pipeable
        errors_hint = f"id {response.info.id}; store it now: it is not shown again"
        typer.echo(errors_hint, err=True)


@app.command()
def revoke(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(metavar="ID", help="The token's id.")],
) -> None:
    """Revoke a token; it stops working on its next call."""
    info = _options(ctx).run(lambda client: client.revoke_token(token_id))
    console.print(f"revoked {info.id} ({info.name or 'unnamed'})")


def whoami(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show the token in use: its scope and whether it is an admin token."""
    info = _options(ctx).run(lambda client: client.whoami())
    if as_json:
        print_json(as_dict(info))
        return
    role = "admin" if info.admin else "member"
    console.print(
        f"{info.id} ({info.name or 'unnamed'}): account {info.scope.account_id}, "
        f"project {info.scope.project_id}, user {info.scope.user_id}, {role}"
    )
