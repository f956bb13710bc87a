"""``specloom token …`` and ``specloom whoami``."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Any

import typer
from rich.table import Table

from specloom.cli._context import Options
from specloom.cli._render import as_dict, console, id_column, print_json
from specloom.client import Client
from specloom.host import HostSettings, discover
from specloom.protoconv import from_timestamp
from specloom.v1 import common_pb2 as pb
from specloom.v1 import tokens_pb2 as tpb

app = typer.Typer(help="Create, list and revoke bearer tokens.", no_args_is_help=True)


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
    console.print(f"revoked {info.id} ({info.name or 'unnamed'})", markup=False)


@app.command("list")
def list_tokens(
    ctx: typer.Context,
    include_inactive: Annotated[
        bool, typer.Option("--all", help="Include revoked and expired tokens.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the tokens of your account (admin): id, scope, name, state. Never secrets."""
    tokens = _options(ctx).run(lambda client: client.list_tokens(include_inactive=include_inactive))
    if as_json:
        print_json([as_dict(info) for info in tokens])
        return
    if not tokens:
        console.print("no tokens")
        return
    table = Table(show_edge=False, pad_edge=False)
    id_column(table, (info.id for info in tokens))  # whole, for `token revoke ID`
    for column in ("project", "user", "role", "name", "created", "state"):
        table.add_column(column)
    now = dt.datetime.now(dt.UTC)
    for info in tokens:
        table.add_row(
            info.id,
            info.scope.project_id,
            info.scope.user_id,
            "admin" if info.admin else "member",
            info.name,
            from_timestamp(info.created_at).strftime("%Y-%m-%d %H:%M"),
            _state(info, now),
        )
    console.print(table)


def _state(info: tpb.TokenInfo, now: dt.datetime) -> str:
    if info.HasField("revoked_at"):
        return "revoked " + from_timestamp(info.revoked_at).strftime("%Y-%m-%d %H:%M")
    if info.HasField("expires_at"):
        expires = from_timestamp(info.expires_at)
        word = "expired" if expires <= now else "expires"
        return f"{word} {expires.strftime('%Y-%m-%d %H:%M')}"
    return "valid"


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
