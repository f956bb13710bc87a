"""The project map's facts: the latest scan of each workspace, and who touched what.

A scan replaces its workspace's facts whole, in one transaction: a
component the scan no longer finds is gone from the map. Test evidence is
the one fact a scan may lack while still being true: a scan that did not
run the tests keeps a component's last known run when that run was of the
files as they are now (its ``files_digest`` matches), so a coding
session's passing run survives the next plain ``specloom status``.

The sessions that touched a component are not stored here: they are the
workspace's sessions whose subject (their component's module, else their
name) is the component's module, read when the facts are, so they are
never out of date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from specloom.projectmap import files_digest
from specloom.protoconv import to_timestamp, utcnow
from specloom.v1 import common_pb2 as pb
from specloom.v1 import projectmap_pb2 as mpb
from specloom.v1 import sessions_pb2 as spb
from specloom_sessions import tables as t
from specloom_sessions.database import Database, Tx
from specloom_sessions.rows import Row
from specloom_sessions.store._common import S, in_scope

P = t.project_scans
C = t.project_components

TOUCHES = 10
"""Sessions listed per component, newest first."""
MAX_UNFINISHED = 1000
"""Unfinished sessions listed per workspace, newest first."""
MAX_SESSIONS_READ = 20_000
"""The workspace's newest sessions read to find each component's (older ones are not listed)."""
UNFINISHED = (pb.SESSION_STATUS_ACTIVE, pb.SESSION_STATUS_PAUSED)
"""A session that may still do something: running, or paused by a person."""
_STATUS_PREFIX = "SESSION_STATUS_"


def _where(scope: pb.Scope, workspace_id: str, table: Any) -> Any:
    return (
        (table.c.account_id == scope.account_id)
        & (table.c.project_id == scope.project_id)
        & (table.c.workspace_id == workspace_id)
    )


def _header(scan: mpb.ProjectScan) -> bytes:
    """The scan without its components (they have rows of their own)."""
    head = mpb.ProjectScan()
    head.CopyFrom(scan)
    del head.components[:]
    return head.SerializeToString()


def _kept_evidence(new: mpb.ComponentFacts, old: mpb.ComponentFacts | None) -> None:
    """Give ``new`` the last known test run of ``old`` when it is of the same files."""
    if new.HasField("tests") or old is None or not old.HasField("tests"):
        return
    if old.tests.files_digest and old.tests.files_digest == files_digest(
        new.code.digest, new.test.digest
    ):
        new.tests.CopyFrom(old.tests)


async def _lock_header(tx: Tx, scope: pb.Scope, workspace_id: str, values: dict[str, Any]) -> None:
    """Write the header row first: on PostgreSQL its row lock orders concurrent scans."""
    keys = {
        "account_id": scope.account_id,
        "project_id": scope.project_id,
        "workspace_id": workspace_id,
    }
    dialect: Any = postgresql if tx.postgres else sqlite
    statement = dialect.insert(P).values(**keys, **values)
    await tx.conn.execute(statement.on_conflict_do_update(index_elements=list(keys), set_=values))


async def record_scan(
    db: Database,
    scope: pb.Scope,
    workspace_id: str,
    scan: mpb.ProjectScan,
    session_id: str,
) -> int:
    """Replace the workspace's facts with ``scan``'s; returns the component records written."""
    now = utcnow()
    observed = scan.scanned_at.ToDatetime(dt.UTC) if scan.HasField("scanned_at") else now
    async with db.write() as tx:
        await _lock_header(
            tx,
            scope,
            workspace_id,
            {"scan": _header(scan), "session_id": session_id, "recorded_at": now},
        )
        old: dict[str, mpb.ComponentFacts] = {}
        rows = await tx.conn.execute(
            select(C.c.module, C.c.facts).where(_where(scope, workspace_id, C))
        )
        for module, raw in rows:
            old[module] = mpb.ComponentFacts.FromString(raw)
        await tx.conn.execute(delete(C).where(_where(scope, workspace_id, C)))
        values: list[dict[str, Any]] = []
        for position, component in enumerate(scan.components):
            facts = mpb.ComponentFacts()
            facts.CopyFrom(component)
            _kept_evidence(facts, old.get(facts.module))
            values.append(
                {
                    "account_id": scope.account_id,
                    "project_id": scope.project_id,
                    "workspace_id": workspace_id,
                    "module": facts.module,
                    "position": position,
                    "facts": facts.SerializeToString(),
                    "observed_at": observed,
                }
            )
        if values:
            await tx.conn.execute(insert(C), values)
    return len(values)


def _status_name(status: int) -> str:
    return pb.SessionStatus.Name(status).removeprefix(_STATUS_PREFIX)  # type: ignore[arg-type]


def subject_of(row: Row) -> str:
    """What a session worked on: its component's module, else its name (a context's)."""
    raw = row["component"]
    if raw:
        module = pb.Component.FromString(raw).module_name
        if module:
            return str(module)
    return str(row["name"])


def touch_of(row: Row) -> mpb.SessionTouch:
    """A ``sessions`` row (id, type, status, name, component, updated_at) as a SessionTouch."""
    touch = mpb.SessionTouch(
        session_id=row["id"],
        type=row["type"],
        status=_status_name(row["status"]),
        subject=subject_of(row),
    )
    stamp = to_timestamp(row["updated_at"])
    if stamp is not None:
        touch.updated_at.CopyFrom(stamp)
    return touch


_TOUCH_COLUMNS = (S.c.id, S.c.type, S.c.status, S.c.name, S.c.updated_at)


async def _touches(
    conn: AsyncConnection, scope: pb.Scope, workspace_id: str, modules: Sequence[str]
) -> dict[str, list[mpb.SessionTouch]]:
    """Case-folded module → its sessions, newest first, at most :data:`TOUCHES` each.

    A session's subject is its component's module (a component session: a
    child's display name is the short one, ``stock``), else its name (a
    context session: the context as its params named it, ``Inventory``);
    compared without regard to case. The workspace's newest
    :data:`MAX_SESSIONS_READ` sessions are read: the component is proto
    bytes, never queried inside.
    """
    wanted = {m.casefold() for m in modules}
    found: dict[str, list[mpb.SessionTouch]] = {}
    rows = await conn.execute(
        select(*_TOUCH_COLUMNS, S.c.component)
        .where(in_scope(scope), S.c.workspace_id == workspace_id)
        .order_by(S.c.updated_at.desc(), S.c.id.desc())
        .limit(MAX_SESSIONS_READ)
    )
    for row in rows.mappings():
        key = subject_of(row).casefold()
        if key not in wanted:
            continue
        listed = found.setdefault(key, [])
        if len(listed) < TOUCHES:
            listed.append(touch_of(row))
    return found


async def _unfinished(
    conn: AsyncConnection, scope: pb.Scope, workspace_id: str
) -> list[mpb.SessionTouch]:
    rows = await conn.execute(
        select(*_TOUCH_COLUMNS, S.c.component)
        .where(
            in_scope(scope),
            S.c.workspace_id == workspace_id,
            S.c.status.in_([int(s) for s in UNFINISHED]),
        )
        .order_by(S.c.updated_at.desc(), S.c.id.desc())
        .limit(MAX_UNFINISHED)
    )
    return [touch_of(row) for row in rows.mappings()]


async def fetch_facts(
    db: Database, scope: pb.Scope, workspace_id: str
) -> spb.FetchProjectFactsResponse:
    """The workspace's recorded facts, each with its sessions, and its unfinished sessions."""
    answer = spb.FetchProjectFactsResponse()
    async with db.read(snapshot=True) as conn:
        header = (
            await conn.execute(select(P.c.scan).where(_where(scope, workspace_id, P)))
        ).first()
        rows = (
            await conn.execute(
                select(C.c.facts, C.c.observed_at)
                .where(_where(scope, workspace_id, C))
                .order_by(C.c.position)
            )
        ).all()
        components = [(mpb.ComponentFacts.FromString(raw), when) for raw, when in rows]
        touches = await _touches(conn, scope, workspace_id, [f.module for f, _ in components])
        answer.unfinished.extend(await _unfinished(conn, scope, workspace_id))
    if header is not None:
        answer.scanned = True
        answer.last_scan.ParseFromString(header[0])
    for facts, when in components:
        stored = answer.components.add(facts=facts)
        stamp = to_timestamp(when)
        if stamp is not None:
            stored.observed_at.CopyFrom(stamp)
        stored.touched_by.extend(touches.get(facts.module.casefold(), []))
    return answer
