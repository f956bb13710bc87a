"""The Sessions service as a process hosts it: SessionsService and TokensService.

``setup`` is what ``specloom serve sessions``, ``specloom up`` and the test
fixtures run. The admin commands (``migrate``, ``prune``, ``issue-token``)
work on the database directly, without a server: the bootstrap path for
the first admin token and for maintenance jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from specloom.host import HostSettings, ServiceContext, ServiceSpec
from specloom.rpc.server import GrpcServer
from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2_grpc as spb_grpc
from specloom.v1 import tokens_pb2_grpc as tpb_grpc
from specloom.validate import require_scope
from specloom_sessions.config import SessionsSettings, database_url
from specloom_sessions.database import Database, libpq_url, redacted
from specloom_sessions.events import PgListener
from specloom_sessions.metrics import refresh_forever
from specloom_sessions.migrate import migrate
from specloom_sessions.servicer import MAX_RETENTION_DAYS, SessionsServicer
from specloom_sessions.store import retention
from specloom_sessions.store import tokens as token_store
from specloom_sessions.tokens_servicer import TokensServicer

log = logging.getLogger("specloom.sessions")

SESSIONS_SERVICE = "specloom.v1.SessionsService"
TOKENS_SERVICE = "specloom.v1.TokensService"


def pepper_of(settings: HostSettings) -> bytes:
    """The token pepper; refusing to run without one (tokens would be unverifiable)."""
    if settings.token_pepper is None or not settings.token_pepper.get_secret_value():
        raise ValueError(
            "SPECLOOM_TOKEN_PEPPER is not set: the sessions service needs it to hash tokens "
            "(keep it stable: changing it invalidates every token)"
        )
    return settings.token_pepper.get_secret_value().encode()


async def setup(server: GrpcServer, ctx: ServiceContext) -> None:
    """Open the database, start change notification, register both servicers."""
    settings = ctx.settings_for(SessionsSettings)
    pepper = pepper_of(ctx.settings)
    url = database_url(ctx.settings)
    if settings.sessions_migrate_on_start:
        revision = await migrate(url)
        log.info("sessions database at migration %s", revision)
    db = Database.open(url, settings)
    ctx.resources.push_async_callback(db.close)
    # A stop begins: end watch streams at once (clients re-open them on
    # another replica) instead of holding the shutdown for the whole grace.
    server.on_stop(db.hub.close)
    if db.postgres:
        listener = PgListener(libpq_url(url), db.hub)
        await listener.start()
        ctx.resources.push_async_callback(listener.close)
    log.info("sessions database: %s", redacted(url))
    if ctx.settings.metrics_port is not None:
        gauges = asyncio.create_task(
            refresh_forever(db, settings.sessions_metrics_interval_seconds)
        )
        ctx.resources.push_async_callback(_cancel, gauges)
    sessions = SessionsServicer(db, settings)
    tokens = TokensServicer(db, pepper)
    server.add(
        SESSIONS_SERVICE, lambda s: spb_grpc.add_SessionsServiceServicer_to_server(sessions, s)
    )
    server.add(TOKENS_SERVICE, lambda s: tpb_grpc.add_TokensServiceServicer_to_server(tokens, s))


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@asynccontextmanager
async def _database(settings: HostSettings) -> AsyncIterator[Database]:
    db = Database.open(database_url(settings), SessionsSettings())
    try:
        yield db
    finally:
        await db.close()


async def admin_migrate(settings: HostSettings, **_: Any) -> str:
    """Apply every migration; returns the revision reached."""
    return await migrate(database_url(settings))


async def admin_prune(
    settings: HostSettings, *, older_than_days: int, dry_run: bool = False, **_: Any
) -> dict[str, int]:
    """Delete (or count) finished top-level sessions older than N days, with their trees."""
    if not 1 <= older_than_days <= MAX_RETENTION_DAYS:
        raise ValueError(f"older_than_days must be between 1 and {MAX_RETENTION_DAYS}")
    async with _database(settings) as db:
        pruned = await retention.prune_sessions(db, older_than_days, dry_run=dry_run)
    return {
        "sessions": pruned.sessions,
        "interactions": pruned.interactions,
        "output_chunks": pruned.output_chunks,
    }


async def admin_issue_token(
    settings: HostSettings,
    *,
    account_id: str,
    project_id: str,
    user_id: str,
    admin: bool = False,
    name: str = "",
    ttl_seconds: int = 0,
    **_: Any,
) -> str:
    """Issue a token straight into the database; returns the token string (shown once)."""
    scope = require_scope(pb.Scope(account_id=account_id, project_id=project_id, user_id=user_id))
    async with _database(settings) as db:
        token, _info = await token_store.issue_token(
            db, pepper_of(settings), scope, admin=admin, name=name, ttl_seconds=ttl_seconds
        )
    return token


SERVICE = ServiceSpec(
    name="sessions",
    summary="sessions, interactions, outputs, leases and tokens (PostgreSQL or SQLite)",
    setup=setup,
    admin={
        "migrate": admin_migrate,
        "prune": admin_prune,
        "issue-token": admin_issue_token,
    },
)
