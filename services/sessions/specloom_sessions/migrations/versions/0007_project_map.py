"""The project map: ``project_scans`` (one header per workspace) and ``project_components``.

Both start empty: a workspace's map appears with its first scan.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "project_scans",
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("project_id", sa.String(128), nullable=False),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("scan", sa.LargeBinary(), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "account_id", "project_id", "workspace_id", name="pk_project_scans"
        ),
    )
    op.create_table(
        "project_components",
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("project_id", sa.String(128), nullable=False),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("module", sa.String(200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("facts", sa.LargeBinary(), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "account_id", "project_id", "workspace_id", "module", name="pk_project_components"
        ),
    )


def downgrade() -> None:
    op.drop_table("project_components")
    op.drop_table("project_scans")
