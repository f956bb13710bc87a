"""Initial schema: sessions, interactions, outputs, tokens.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

PENDING = 1
DISPATCH_EXECUTOR = 1
DISPATCH_JOIN = 2


def _where(condition: str) -> dict[str, Any]:
    return {"sqlite_where": sa.text(condition), "postgresql_where": sa.text(condition)}


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("project_id", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("type", sa.String(200), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("execution_mode", sa.SmallInteger(), nullable=False),
        sa.Column("parent_id", sa.String(64), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("component", sa.LargeBinary(), nullable=False),
        sa.Column("params", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.Column("progress", sa.LargeBinary(), nullable=False),
        sa.Column("definition_version", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("request_digest", sa.LargeBinary(), nullable=True),
        sa.Column("interaction_count", sa.BigInteger(), nullable=False),
        sa.Column("pending_seq", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["sessions.id"],
            name="fk_sessions_parent_id_sessions",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_sessions_scope_created",
        "sessions",
        ["account_id", "project_id", "created_at", "id"],
    )
    op.create_index("ix_sessions_parent_created", "sessions", ["parent_id", "created_at", "id"])
    op.create_index(
        "uq_sessions_scope_key",
        "sessions",
        ["account_id", "project_id", "idempotency_key"],
        unique=True,
        **_where("parent_id IS NULL AND idempotency_key IS NOT NULL"),
    )
    op.create_index(
        "uq_sessions_parent_key",
        "sessions",
        ["parent_id", "idempotency_key"],
        unique=True,
        **_where("parent_id IS NOT NULL AND idempotency_key IS NOT NULL"),
    )
    op.create_index(
        "ix_sessions_status_updated", "sessions", ["status", "execution_mode", "updated_at"]
    )
    op.create_index(
        "ix_sessions_finished_roots",
        "sessions",
        ["finished_at"],
        **_where("parent_id IS NULL AND finished_at IS NOT NULL"),
    )

    op.create_table(
        "interactions",
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("project_id", sa.String(128), nullable=False),
        sa.Column("step", sa.String(200), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("dispatch", sa.SmallInteger(), nullable=False),
        sa.Column("required_capability", sa.String(64), nullable=False),
        sa.Column("command", sa.LargeBinary(), nullable=False),
        sa.Column("result", sa.LargeBinary(), nullable=True),
        sa.Column("reported_digest", sa.LargeBinary(), nullable=True),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_epoch", sa.BigInteger(), nullable=False),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("output_bytes", sa.BigInteger(), nullable=False),
        sa.Column("output_chunks", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("session_id", "seq", name="pk_interactions"),
        sa.UniqueConstraint("id", name="uq_interactions_id"),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name="fk_interactions_session_id_sessions",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_interactions_claimable",
        "interactions",
        ["account_id", "project_id", "created_at"],
        **_where(f"status = {PENDING} AND dispatch = {DISPATCH_EXECUTOR}"),
    )
    op.create_index(
        "ix_interactions_joins",
        "interactions",
        ["created_at"],
        **_where(f"status = {PENDING} AND dispatch = {DISPATCH_JOIN}"),
    )
    op.create_index(
        "ix_interactions_lease_owner",
        "interactions",
        ["lease_owner"],
        **_where(f"status = {PENDING} AND lease_owner IS NOT NULL"),
    )

    op.create_table(
        "outputs",
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("stream", sa.SmallInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "seq", "idx", name="pk_outputs"),
        sa.ForeignKeyConstraint(
            ["session_id", "seq"],
            ["interactions.session_id", "interactions.seq"],
            name="fk_outputs_interaction",
            ondelete="CASCADE",
        ),
    )

    op.create_table(
        "tokens",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(), nullable=False),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("project_id", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("admin", sa.Boolean(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tokens"),
    )
    op.create_index("ix_tokens_account_created", "tokens", ["account_id", "created_at"])


def downgrade() -> None:
    op.drop_table("tokens")
    op.drop_table("outputs")
    op.drop_table("interactions")
    op.drop_table("sessions")
