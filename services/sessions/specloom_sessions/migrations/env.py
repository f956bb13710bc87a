"""Alembic environment: always handed a connection by :mod:`specloom_sessions.migrate`."""

from __future__ import annotations

from alembic import context

from specloom_sessions.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite alters tables by copying them; batch mode does that for us.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    # SQLite does transactional DDL too once the driver stops committing on
    # its own (see migrate._engine): each upgrade is all or nothing.
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
