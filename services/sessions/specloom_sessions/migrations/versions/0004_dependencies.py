"""Dependencies between sibling sessions: ``session_dependencies``.

A child that builds on siblings' work (a component whose design names
another component of its context) waits for them: its commands are not
claimable until every session it depends on is complete. Rows hold the
transitive closure.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "session_dependencies",
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("depends_on_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "depends_on_id", name="pk_session_dependencies"),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name="fk_session_dependencies_session_id_sessions",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["depends_on_id"],
            ["sessions.id"],
            name="fk_session_dependencies_depends_on_id_sessions",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_session_dependencies_depends_on", "session_dependencies", ["depends_on_id"])


def downgrade() -> None:
    op.drop_index("ix_session_dependencies_depends_on", table_name="session_dependencies")
    op.drop_table("session_dependencies")
