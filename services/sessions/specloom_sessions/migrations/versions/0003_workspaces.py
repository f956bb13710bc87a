"""Workspaces: ``sessions.workspace_id``/``workspace`` and the ``executors`` presence table.

Sessions that exist before this migration belong to no workspace
(``workspace_id = ''``): any executor of their project may still claim their
commands, as before, and they are never pinned. Sessions created afterwards
start with the workspace they were given, or NULL until their first claim.

On PostgreSQL the column is added with a constant default and the default
dropped at once: since PostgreSQL 11 that fills existing rows without
rewriting the table. SQLite cannot drop a default without rebuilding the
table, so there the existing rows are updated instead (an embedded, one-
machine database).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.add_column(
            "sessions",
            sa.Column("workspace_id", sa.String(64), nullable=True, server_default=""),
        )
        op.alter_column("sessions", "workspace_id", server_default=None)
    else:
        op.add_column("sessions", sa.Column("workspace_id", sa.String(64), nullable=True))
        op.execute("UPDATE sessions SET workspace_id = ''")
    op.add_column("sessions", sa.Column("workspace", sa.LargeBinary(), nullable=True))
    op.create_table(
        "executors",
        sa.Column("connection_id", sa.String(64), nullable=False),
        sa.Column("executor_id", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("project_id", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("serve", sa.SmallInteger(), nullable=False),
        sa.Column("workspaces", sa.Text(), nullable=False),
        sa.Column("capabilities", sa.Text(), nullable=False),
        sa.Column("labels", sa.Text(), nullable=False),
        sa.Column("agent_version", sa.String(200), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("running", sa.Integer(), nullable=False),
        sa.Column("gateway_id", sa.String(64), nullable=False),
        sa.Column("connected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("connection_id", name="pk_executors"),
    )
    op.create_index("ix_executors_scope", "executors", ["account_id", "project_id", "expires_at"])


def downgrade() -> None:
    op.drop_index("ix_executors_scope", table_name="executors")
    op.drop_table("executors")
    # SQLite 3.35+ drops columns in place (no table rebuild).
    op.drop_column("sessions", "workspace")
    op.drop_column("sessions", "workspace_id")
