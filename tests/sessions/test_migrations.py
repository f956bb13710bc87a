"""Migrations build exactly the declared schema on both databases; the service survives restarts."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from pydantic import SecretStr
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.pool import NullPool

from specloom.host import HostSettings
from specloom.process import start_host
from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb
from specloom_sessions.database import sync_url
from specloom_sessions.migrate import alembic_config, upgrade
from specloom_sessions.service import SERVICE
from specloom_sessions.tables import metadata
from tests.fixtures.sessions_server import SessionsUnderTest, start_sessions
from tests.sessions.helpers import create, fetch, ok, pending, scope, step

TABLES = (
    "sessions",
    "interactions",
    "outputs",
    "tokens",
    "session_dependencies",
    "executors",
    "project_scans",
    "project_components",
)
HEAD = "0007"


def _differences(url: str) -> list[object]:
    engine = create_engine(sync_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def _indexes(url: str) -> dict[str, set[str]]:
    engine = create_engine(sync_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            inspector = inspect(conn)
            return {
                table: {
                    i["name"]
                    for i in inspector.get_indexes(table)
                    if i["name"] and not i.get("duplicates_constraint")
                }
                for table in TABLES
            }
    finally:
        engine.dispose()


async def test_migrations_build_the_declared_schema(database_url: str) -> None:
    settings = HostSettings(database_url=database_url)
    assert await SERVICE.admin["migrate"](settings) == HEAD
    assert await SERVICE.admin["migrate"](settings) == HEAD  # idempotent
    assert _differences(database_url) == []
    declared = {
        table.name: {index.name for index in table.indexes if index.name}
        for table in metadata.sorted_tables
    }
    assert _indexes(database_url) == declared

    # Down to nothing and up again.
    engine = create_engine(sync_url(database_url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            command.downgrade(alembic_config(conn), "base")
            conn.commit()
            assert not inspect(conn).has_table("sessions")
    finally:
        engine.dispose()
    assert upgrade(database_url) == HEAD
    assert _differences(database_url) == []


async def test_a_restart_resumes_from_the_database(sessions_service: SessionsUnderTest) -> None:
    where = scope()
    session = await create(sessions_service, where)
    await step(sessions_service, where, session, ok(), next_step=pending("Two"))
    await sessions_service.restart()
    stored = await fetch(sessions_service, where, session.id)
    assert [i.step for i in stored.interactions] == ["Build", "Two"]
    after = await step(sessions_service, where, session, ok(), next_step=pending("Three"))
    assert after.session.version == 3


async def test_migrate_on_start(database_url: str) -> None:
    settings = HostSettings(
        listen="127.0.0.1:0",
        database_url=database_url,
        internal_secret=SecretStr("s"),
        token_pepper=SecretStr("p"),
    )
    host = await start_host([SERVICE], settings, {"sessions_migrate_on_start": True})
    try:
        assert _differences(database_url) == []
    finally:
        await host.stop(0.2)


async def test_the_service_refuses_to_start_without_a_pepper(database_url: str) -> None:
    settings = HostSettings(
        listen="127.0.0.1:0", database_url=database_url, internal_secret=SecretStr("s")
    )
    with pytest.raises(ValueError, match="TOKEN_PEPPER"):
        await start_host([SERVICE], settings)


async def test_the_fixture_serves_a_working_service(database_url: str) -> None:
    service = await start_sessions(database_url)
    try:
        session = await create(service, scope())
        assert session.status == pb.SESSION_STATUS_ACTIVE
    finally:
        await service.stop()


async def test_sessions_from_before_workspaces_belong_to_none(database_url: str) -> None:
    """0003 carries existing sessions over as "no workspace": claimable as before, never pinned."""
    assert upgrade(database_url, "0002") == "0002"
    engine = create_engine(sync_url(database_url), poolclass=NullPool)
    now = dt.datetime.now(dt.UTC)
    now_value = now.replace(tzinfo=None) if database_url.startswith("sqlite") else now
    command = pb.Command(step="Build")
    command.shell.argv.append("make")
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO sessions (id, account_id, project_id, user_id, type, status,"
                    " execution_mode, name, component, params, state, progress,"
                    " definition_version, version, status_reason, interaction_count, pending_seq,"
                    " created_at, updated_at) VALUES ('old-1', 'acme', 'alpha', 'bob', 'Build',"
                    " 1, 3, 'old', :empty, :empty, :empty, :empty, 1, 1, '', 1, 1, :now, :now)"
                ),
                {"empty": b"", "now": now_value},
            )
            conn.execute(
                text(
                    "INSERT INTO interactions (session_id, seq, id, account_id, project_id, step,"
                    " status, dispatch, required_capability, command, lease_epoch, output_bytes,"
                    " output_chunks, created_at) VALUES ('old-1', 1, 'old-1-i1', 'acme', 'alpha',"
                    " 'Build', 1, 1, '', :command, 0, 0, 0, :now)"
                ),
                {"command": command.SerializeToString(), "now": now_value},
            )
    finally:
        engine.dispose()
    assert upgrade(database_url) == HEAD
    assert _differences(database_url) == []
    engine = create_engine(sync_url(database_url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT workspace_id FROM sessions")).scalar_one() == ""
    finally:
        engine.dispose()

    service = await start_sessions(database_url)
    try:
        where = pb.Scope(account_id="acme", project_id="alpha", user_id="alice")
        api = pb.WorkspaceRef(id="ws-0123456789ab", name="api")
        claimed = await service.stub.ClaimCommands(
            spb.ClaimCommandsRequest(
                scope=where,
                executor_id="exec",
                capabilities=["shell"],
                max_commands=5,
                lease_ttl_seconds=30,
                workspace_ids=[api.id],
                default_workspace=api,
            ),
            metadata=service.metadata,
        )
        (assignment,) = claimed.assignments
        assert assignment.session.id == "old-1"
        assert not assignment.session.HasField("workspace")  # never pinned
        stored = await fetch(service, where, "old-1", pb.INTERACTION_VIEW_NONE)
        assert not stored.HasField("workspace")
    finally:
        await service.stop()
