"""Claim indexes in the claims' own order: (…, created_at, session_id, seq).

Claims read ``ORDER BY created_at, session_id, seq … LIMIT n``. With the
index ending at ``created_at`` PostgreSQL read and sorted every unleased
candidate of the scope on each claim; a spawn's children all share one
``created_at``, so a thousand of them cost a thousand-row sort per claim.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

PENDING = 1
DISPATCH_EXECUTOR = 1
DISPATCH_JOIN = 2
CLAIMABLE = f"status = {PENDING} AND dispatch = {DISPATCH_EXECUTOR}"
JOINS = f"status = {PENDING} AND dispatch = {DISPATCH_JOIN}"


def _where(condition: str) -> dict[str, Any]:
    return {"sqlite_where": sa.text(condition), "postgresql_where": sa.text(condition)}


def _replace(name: str, columns: list[str], condition: str) -> None:
    op.drop_index(name, table_name="interactions")
    op.create_index(name, "interactions", columns, **_where(condition))


def upgrade() -> None:
    _replace(
        "ix_interactions_claimable",
        ["account_id", "project_id", "created_at", "session_id", "seq"],
        CLAIMABLE,
    )
    _replace("ix_interactions_joins", ["created_at", "session_id", "seq"], JOINS)


def downgrade() -> None:
    _replace("ix_interactions_claimable", ["account_id", "project_id", "created_at"], CLAIMABLE)
    _replace("ix_interactions_joins", ["created_at"], JOINS)
