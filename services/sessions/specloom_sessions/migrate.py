"""Alembic, run programmatically (no alembic.ini): ``specloom migrate`` and startup.

Migrations run on a synchronous engine in a worker thread. On PostgreSQL a
session-level advisory lock makes concurrent starters (several replicas
with ``migrate_on_start``) take turns instead of racing on the DDL.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, create_engine, event, func, select
from sqlalchemy.pool import NullPool

from specloom_sessions.database import sync_url

SCRIPTS = Path(__file__).parent / "migrations"
ADVISORY_LOCK = 0x5E55_1095
"""Key of the PostgreSQL advisory lock held while migrating."""


def alembic_config(connection: Connection) -> Config:
    """An Alembic config that runs the service's scripts on ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = connection
    return config


def _engine(url: str) -> Engine:
    engine = create_engine(sync_url(url), poolclass=NullPool)
    if engine.dialect.name == "sqlite":
        # pysqlite would commit before every DDL statement; with BEGIN
        # emitted here a migration that fails halfway leaves nothing behind.
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, record: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def upgrade(url: str, revision: str = "head") -> str:
    """Migrate the database at ``url`` to ``revision``; returns the revision reached."""
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(select(func.pg_advisory_lock(ADVISORY_LOCK)))
                conn.commit()
            command.upgrade(alembic_config(conn), revision)
            conn.commit()
            return MigrationContext.configure(conn).get_current_revision() or "base"
    finally:
        engine.dispose()


async def migrate(url: str, revision: str = "head") -> str:
    """:func:`upgrade` without blocking the event loop."""
    return await asyncio.to_thread(upgrade, url, revision)
