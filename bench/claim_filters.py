"""The claim query's cost with the workspace and owner filters, on PostgreSQL.

``python -m bench.claim_filters`` builds a scratch database on the server in
``DATABASE_URL`` (default the local one): one project with 20,000 sessions,
2,000 of them active with one unleased executor command each, spread over
two workspaces, no workspace and two users. It then runs the claim's
candidate query (``FOR UPDATE SKIP LOCKED``, rolled back) 300 times per
variant under ``EXPLAIN ANALYZE`` and prints the server's execution time:

- before workspaces (the session-status probe only);
- a project-serving executor of both workspaces (every candidate matches);
- an own-user executor for whom no candidate matches (an empty claim with
  others' work queued: every candidate's session row is probed).

The session check is a primary-key probe per candidate, so a claim that
finds work costs what it did; an empty claim costs one probe per queued
candidate it may not take.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import uuid
from typing import Any

from sqlalchemy import ColumnElement, create_engine, or_, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine, make_url

from specloom_sessions.database import sync_url
from specloom_sessions.migrate import upgrade
from specloom_sessions.store import leases
from specloom_sessions.store._common import I, S, const

SESSIONS = 20_000
ACTIVE_EVERY = 10
RUNS = 300
WORKSPACES = ("ws-0123456789ab", "ws-ba9876543210", None)


def _rows(now: dt.datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    sessions: list[dict[str, Any]] = []
    interactions: list[dict[str, Any]] = []
    for n in range(SESSIONS):
        active = n % ACTIVE_EVERY == 0
        session_id = str(uuid.uuid4())
        sessions.append(
            {
                "id": session_id, "account_id": "a", "project_id": "p",
                "user_id": "bob" if n % 3 == 0 else "alice", "type": "Build",
                "status": 1 if active else 3, "execution_mode": 3, "parent_id": None,
                "name": "x", "component": b"", "params": b"", "state": b"", "progress": b"",
                "definition_version": 1, "version": 1, "status_reason": "",
                "idempotency_key": None, "request_digest": None, "interaction_count": 1,
                "pending_seq": 1 if active else None, "created_at": now, "updated_at": now,
                "finished_at": None if active else now, "workspace_id": WORKSPACES[n % 3],
                "workspace": None,
            }
        )  # fmt: skip
        interactions.append(
            {
                "session_id": session_id, "seq": 1, "id": str(uuid.uuid4()), "account_id": "a",
                "project_id": "p", "step": "Build", "status": 1 if active else 2, "dispatch": 1,
                "required_capability": "", "command": b"", "result": None,
                "reported_digest": None, "lease_owner": None, "lease_epoch": 0,
                "lease_expires_at": None, "output_bytes": 0, "output_chunks": 0,
                "created_at": now - dt.timedelta(microseconds=n), "completed_at": None,
            }
        )  # fmt: skip
    return sessions, interactions


def _sql(check: ColumnElement[bool], params: dict[str, Any], limit: int, now: dt.datetime) -> str:
    query = (
        select(I.c.session_id, I.c.seq, I.c.lease_owner)
        .where(
            I.c.status == const(1),
            I.c.dispatch == const(1),
            I.c.account_id == "a",
            I.c.project_id == "p",
            or_(I.c.lease_owner.is_(None), I.c.lease_expires_at <= now),
            check,
        )
        .order_by(I.c.created_at, I.c.session_id, I.c.seq)
        .limit(limit)
        .with_for_update(skip_locked=True, of=I)
        .params(**params)
    )
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    return str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def _measure(engine: Engine, sql: str) -> tuple[float, float]:
    times: list[float] = []
    with engine.connect() as conn:
        for _ in range(RUNS):
            plan = conn.execute(text("EXPLAIN (ANALYZE, FORMAT JSON) " + sql)).scalar_one()
            times.append(float(plan[0]["Execution Time"]))
        conn.rollback()
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95)]


def main() -> None:
    server = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"bench_claims_{uuid.uuid4().hex[:8]}"
    admin = create_engine(sync_url(server), isolation_level="AUTOCOMMIT")
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        upgrade(url)
        engine = create_engine(sync_url(url))
        now = dt.datetime.now(dt.UTC)
        sessions, interactions = _rows(now)
        with engine.begin() as conn:
            conn.execute(S.insert(), sessions)
            conn.execute(I.insert(), interactions)
            conn.execute(text("ANALYZE"))
        variants: dict[str, tuple[ColumnElement[bool], dict[str, Any]]] = {
            "before workspaces (status probe)": (leases._of_active_session(), {}),
            "project-serving, both workspaces": (
                leases._claimable_session(workspaces=True, owner=False),
                {"p_workspaces": [WORKSPACES[0], WORKSPACES[1]]},
            ),
            "own user, nothing of theirs queued": (
                leases._claimable_session(workspaces=True, owner=True),
                {"p_workspaces": [WORKSPACES[1]], "p_owner": "bob"},
            ),
        }
        queued = SESSIONS // ACTIVE_EVERY
        print(f"{queued} claimable commands queued in one project; {RUNS} runs each")
        for limit in (1, 8):
            for label, (check, params) in variants.items():
                median, p95 = _measure(engine, _sql(check, params, limit, now))
                print(f"LIMIT {limit}  {label:38s} median {median:.3f} ms  p95 {p95:.3f} ms")
        engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
