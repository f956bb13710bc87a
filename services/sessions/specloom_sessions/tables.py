"""The schema: SQLAlchemy Core tables, the same on SQLite and PostgreSQL.

Protobuf values (commands, results, Structs, components) are stored as
serialized bytes: the service never queries inside them, and bytes
round-trip faster and exactly (no JSON number or key-order drift).

Migrations in ``migrations/versions`` must produce exactly this schema; a
test compares the two on both databases.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.types import TypeDecorator

ID = 64
"""Longest id (sessions, interactions, tokens, executors)."""
SCOPE_PART = 128
NAME = 200

# Integer codes of the proto enums, for partial-index predicates that must be
# literal SQL.
PENDING = 1
DISPATCH_EXECUTOR = 1
DISPATCH_JOIN = 2

USAGE_COLUMNS = (
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
"""``sessions`` columns summing ``Result.usage``, in :data:`USAGE_FIELDS` order."""

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every dialect.

    SQLite has no time zone type and hands back naive values; storing UTC
    always keeps its text comparisons (lease expiry, cursors) correct.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if not isinstance(value, dt.datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use UTC")
        when: dt.datetime = value.astimezone(dt.UTC)
        return when.replace(tzinfo=None) if dialect.name == "sqlite" else when

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


sessions = Table(
    "sessions",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("account_id", String(SCOPE_PART), nullable=False),
    Column("project_id", String(SCOPE_PART), nullable=False),
    Column("user_id", String(SCOPE_PART), nullable=False),
    Column("type", String(NAME), nullable=False),
    Column("status", SmallInteger, nullable=False),
    Column("execution_mode", SmallInteger, nullable=False),
    Column(
        "parent_id",
        String(ID),
        ForeignKey("sessions.id", ondelete="CASCADE"),
        nullable=True,
    ),
    Column("name", Text, nullable=False),
    Column("component", LargeBinary, nullable=False),
    Column("params", LargeBinary, nullable=False),
    Column("state", LargeBinary, nullable=False),
    Column("progress", LargeBinary, nullable=False),
    Column("definition_version", Integer, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("status_reason", Text, nullable=False),
    Column("idempotency_key", String(NAME), nullable=True),
    Column("request_digest", LargeBinary, nullable=True),
    Column("interaction_count", BigInteger, nullable=False),
    # Seq of the pending interaction (NULL: none). Kept in the row so the
    # one-pending rule is a WHERE clause of the step's UPDATE, not a read.
    Column("pending_seq", BigInteger, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=True),
    # AI usage of the session's own agent steps, added by each step's
    # session-row update (no statement of its own); totals over a subtree
    # are summed at read time. Cost in micro-dollars: integer sums are exact.
    *(Column(name, BigInteger, nullable=False, server_default=text("0")) for name in USAGE_COLUMNS),
    # Where the session's commands run: a workspace id; NULL while not yet
    # pinned (its first claim by an executor with workspaces pins it); ''
    # for no workspace at all (sessions from before workspaces existed).
    # Read by the claim's per-candidate probe of this row, never searched.
    Column("workspace_id", String(ID), nullable=True),
    # The whole WorkspaceRef (name, root commit, remote), for people.
    Column("workspace", LargeBinary, nullable=True),
    Index("ix_sessions_scope_created", "account_id", "project_id", "created_at", "id"),
    Index("ix_sessions_parent_created", "parent_id", "created_at", "id"),
    Index(
        "uq_sessions_scope_key",
        "account_id",
        "project_id",
        "idempotency_key",
        unique=True,
        sqlite_where=text("parent_id IS NULL AND idempotency_key IS NOT NULL"),
        postgresql_where=text("parent_id IS NULL AND idempotency_key IS NOT NULL"),
    ),
    Index(
        "uq_sessions_parent_key",
        "parent_id",
        "idempotency_key",
        unique=True,
        sqlite_where=text("parent_id IS NOT NULL AND idempotency_key IS NOT NULL"),
        postgresql_where=text("parent_id IS NOT NULL AND idempotency_key IS NOT NULL"),
    ),
    Index("ix_sessions_status_updated", "status", "execution_mode", "updated_at"),
    Index(
        "ix_sessions_finished_roots",
        "finished_at",
        sqlite_where=text("parent_id IS NULL AND finished_at IS NOT NULL"),
        postgresql_where=text("parent_id IS NULL AND finished_at IS NOT NULL"),
    ),
)

interactions = Table(
    "interactions",
    metadata,
    Column(
        "session_id",
        String(ID),
        ForeignKey("sessions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("id", String(ID), nullable=False, unique=True),
    # The session's scope, copied so a claim filters and orders on one
    # index of this table.
    Column("account_id", String(SCOPE_PART), nullable=False),
    Column("project_id", String(SCOPE_PART), nullable=False),
    Column("step", String(NAME), nullable=False),
    Column("status", SmallInteger, nullable=False),
    Column("dispatch", SmallInteger, nullable=False),
    Column("required_capability", String(ID), nullable=False),
    Column("command", LargeBinary, nullable=False),
    Column("result", LargeBinary, nullable=True),
    Column("reported_digest", LargeBinary, nullable=True),
    Column("lease_owner", String(ID), nullable=True),
    Column("lease_epoch", BigInteger, nullable=False),
    Column("lease_expires_at", UtcDateTime, nullable=True),
    Column("output_bytes", BigInteger, nullable=False),
    Column("output_chunks", BigInteger, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("completed_at", UtcDateTime, nullable=True),
    # Ordered as the claims read (oldest first, then session and seq), so a
    # claim walks the index and stops at its LIMIT instead of sorting every
    # candidate of the scope: a spawn's children share one created_at.
    Index(
        "ix_interactions_claimable",
        "account_id",
        "project_id",
        "created_at",
        "session_id",
        "seq",
        sqlite_where=text(f"status = {PENDING} AND dispatch = {DISPATCH_EXECUTOR}"),
        postgresql_where=text(f"status = {PENDING} AND dispatch = {DISPATCH_EXECUTOR}"),
    ),
    Index(
        "ix_interactions_joins",
        "created_at",
        "session_id",
        "seq",
        sqlite_where=text(f"status = {PENDING} AND dispatch = {DISPATCH_JOIN}"),
        postgresql_where=text(f"status = {PENDING} AND dispatch = {DISPATCH_JOIN}"),
    ),
    Index(
        "ix_interactions_lease_owner",
        "lease_owner",
        sqlite_where=text(f"status = {PENDING} AND lease_owner IS NOT NULL"),
        postgresql_where=text(f"status = {PENDING} AND lease_owner IS NOT NULL"),
    ),
)

# Which sessions a session waits for: siblings (children of one parent) whose
# work it builds on. The transitive closure is stored, so "waits on a failed
# session, however indirectly" is one probe by primary key, as is "may run"
# (no row whose dependency is not complete) in the claim.
session_dependencies = Table(
    "session_dependencies",
    metadata,
    Column(
        "session_id",
        String(ID),
        ForeignKey("sessions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column(
        "depends_on_id",
        String(ID),
        ForeignKey("sessions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    # Completing a session looks up its dependents (to wake their claims).
    Index("ix_session_dependencies_depends_on", "depends_on_id"),
)

outputs = Table(
    "outputs",
    metadata,
    Column("session_id", String(ID), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("stream", SmallInteger, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    ForeignKeyConstraint(
        ["session_id", "seq"],
        ["interactions.session_id", "interactions.seq"],
        ondelete="CASCADE",
        name="fk_outputs_interaction",
    ),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("secret_hash", LargeBinary, nullable=False),
    Column("account_id", String(SCOPE_PART), nullable=False),
    Column("project_id", String(SCOPE_PART), nullable=False),
    Column("user_id", String(SCOPE_PART), nullable=False),
    Column("admin", Boolean, nullable=False),
    Column("name", String(NAME), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
    Index("ix_tokens_account_created", "account_id", "created_at"),
)

# One row per open executor stream, written by the gateway that holds the
# stream (register, throttled heartbeats, teardown). A row whose gateway
# died without its teardown simply stops being live at ``expires_at``.
# Lists are JSON: nothing queries inside them, and people read them in psql.
executors = Table(
    "executors",
    metadata,
    Column("connection_id", String(ID), primary_key=True),
    Column("executor_id", String(ID), nullable=False),
    Column("account_id", String(SCOPE_PART), nullable=False),
    Column("project_id", String(SCOPE_PART), nullable=False),
    Column("user_id", String(SCOPE_PART), nullable=False),
    Column("name", String(NAME), nullable=False),
    Column("serve", SmallInteger, nullable=False),
    Column("workspaces", Text, nullable=False),
    Column("capabilities", Text, nullable=False),
    Column("labels", Text, nullable=False),
    Column("agent_version", String(NAME), nullable=False),
    Column("slots", Integer, nullable=False),
    Column("running", Integer, nullable=False),
    # The commands held, as the gateway last wrote them (JSON list of
    # {session_id, interaction_id, step, since}); for people, never queried.
    Column("running_commands", Text, nullable=False, server_default=text("'[]'")),
    Column("gateway_id", String(ID), nullable=False),
    Column("connected_at", UtcDateTime, nullable=False),
    Column("seen_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Index("ix_executors_scope", "account_id", "project_id", "expires_at"),
)

# The project map (issue 18): the latest scan of each workspace, replaced
# whole by each RecordProjectScan. Facts are proto bytes, like every other
# message the service keeps; the requirements are judged from them when the
# map is read, so a change of the declared requirements needs no migration.
project_scans = Table(
    "project_scans",
    metadata,
    Column("account_id", String(SCOPE_PART), primary_key=True),
    Column("project_id", String(SCOPE_PART), primary_key=True),
    Column("workspace_id", String(ID), primary_key=True),
    # The scan's header: a ProjectScan without its components.
    Column("scan", LargeBinary, nullable=False),
    # The session whose Finalize the scan followed ('' for a person's scan).
    Column("session_id", String(ID), nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
)

project_components = Table(
    "project_components",
    metadata,
    Column("account_id", String(SCOPE_PART), primary_key=True),
    Column("project_id", String(SCOPE_PART), primary_key=True),
    Column("workspace_id", String(ID), primary_key=True),
    Column("module", String(NAME), primary_key=True),
    # Its place in the scan (contexts first, then each context's components).
    Column("position", Integer, nullable=False),
    # The ComponentFacts, serialized.
    Column("facts", LargeBinary, nullable=False),
    Column("observed_at", UtcDateTime, nullable=False),
)
