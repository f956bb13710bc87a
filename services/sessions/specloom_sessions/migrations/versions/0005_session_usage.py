"""AI usage per session: ``sessions.usage_*`` counters.

Every recorded agent result adds its ``Result.usage`` to its session's
counters in the step's own session-row update, so keeping them costs no
statement of its own; a session's total with its descendants is summed at
read time over the subtree (see ``store.usage``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = (
    "usage_input_tokens",
    "usage_output_tokens",
    "usage_cache_creation_tokens",
    "usage_cache_read_tokens",
    "usage_cost_micros",
    "usage_turns",
    "usage_duration_ms",
    "usage_retries",
    "usage_agent_steps",
    "usage_unpriced_steps",
)


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        for name in COLUMNS:
            batch.add_column(
                sa.Column(name, sa.BigInteger(), nullable=False, server_default=sa.text("0"))
            )


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
