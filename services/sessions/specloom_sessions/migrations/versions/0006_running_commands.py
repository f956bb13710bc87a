"""Executor presence lists its running commands: ``executors.running_commands``.

Presence rows live a few heartbeats, so existing rows simply start with an
empty list and are rewritten with the next refresh of their stream.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("executors") as batch:
        batch.add_column(
            sa.Column("running_commands", sa.Text(), nullable=False, server_default=sa.text("'[]'"))
        )


def downgrade() -> None:
    with op.batch_alter_table("executors") as batch:
        batch.drop_column("running_commands")
