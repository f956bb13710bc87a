"""Sessions: create (idempotent), read, list, children, cancel a tree."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, Text, bindparam, cast, func, insert, literal, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from specloom.errors import Aborted, AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from specloom.ids import new_id
from specloom.protoconv import from_timestamp, utcnow
from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb
from specloom_sessions.database import Database, Tx
from specloom_sessions.events import CHANNEL, Changes
from specloom_sessions.rows import (
    INTERACTION_COLUMNS,
    SESSION_HEAD_COLUMNS,
    TERMINAL,
    interaction_of,
    session_of,
    workspace_values,
)
from specloom_sessions.store import waiting
from specloom_sessions.store._common import (
    I,
    S,
    children_rows,
    children_with_last,
    head_row,
    in_scope,
    interaction_values,
    is_pending,
    last_of,
    with_last,
    work_of,
)
from specloom_sessions.store.leases import Offer, offer_takes
from specloom_sessions.store.usage import total_usage as subtree_usage

DEFAULT_PAGE = 50
MAX_PAGE = 500

# The orchestrators' read of a session head, built once (hot on cache misses).
_FETCH_LAST = with_last(select(*SESSION_HEAD_COLUMNS)).where(
    S.c.id == bindparam("p_id"),
    S.c.account_id == bindparam("p_account"),
    S.c.project_id == bindparam("p_project"),
)

# A session by its idempotency key, of a parent or at the top (built once:
# building it per call cost more than running it).
_BY_KEY = {
    child: with_last(select(*SESSION_HEAD_COLUMNS)).where(
        S.c.account_id == bindparam("p_account"),
        S.c.project_id == bindparam("p_project"),
        S.c.idempotency_key == bindparam("p_key"),
        S.c.parent_id == bindparam("p_parent") if child else S.c.parent_id.is_(None),
    )
    for child in (False, True)
}
# A taken id or idempotency key inserts nothing (no error, which would
# abort the transaction and be logged by the server): the caller then looks.
_INSERT_SESSION = {
    True: postgresql.insert(S).on_conflict_do_nothing().returning(S.c.id),
    False: sqlite.insert(S).on_conflict_do_nothing().returning(S.c.id),
}
_BY_ID = select(S.c.id).where(S.c.id == bindparam("p_id"))
_INSERT_INTERACTION = insert(I)


async def create_session(
    db: Database, request: spb.CreateSessionRequest, offer: Offer | None = None
) -> tuple[pb.Session, bool]:
    """Create a session with its first interaction; the same key returns the existing one.

    With ``offer`` the first command is leased to the offered executor in
    the same transaction when the claim would have given it to it
    (:func:`~specloom_sessions.store.leases.offer_takes`).
    """
    key = request.idempotency_key or None
    digest = _request_digest(request)
    # The insert goes first: a new key (nearly every start) then costs no
    # read, and a taken one (a retried start) inserts nothing.
    try:
        return await _insert(db, request, key, digest, offer), True
    except _Taken:
        pass
    if key is not None:
        existing = await _by_key(db, request, key, digest)
        if existing is not None:
            return existing, False
    if request.id and await _exists(db, request.id):
        raise AlreadyExists(f"a session with id {request.id} already exists")
    # What it conflicted with was deleted since (retention removes old sessions).
    raise Aborted("the session's id or idempotency key was in use a moment ago; retry")


class _Taken(Exception):
    """The session's id or idempotency key is already in use (nothing was inserted)."""


def _request_digest(request: spb.CreateSessionRequest) -> bytes:
    """What a repeat of ``request`` under the same idempotency key must match.

    The whole request, so a key reused for anything else is recognised —
    except what differs between two attempts of one start: an id the caller
    chose (and the first command and its state, which name it) and the
    executor offered. Such a request then digests as one without them did
    (a create before the first command came with it), so a start retried
    across that change still finds its session.
    """
    if request.id or request.HasField("claim"):
        stripped = spb.CreateSessionRequest()
        stripped.CopyFrom(request)
        stripped.ClearField("claim")
        if request.id:
            stripped.ClearField("id")
            stripped.ClearField("first")
            stripped.ClearField("first_state")
        request = stripped
    return hashlib.sha256(request.SerializeToString(deterministic=True)).digest()


async def _exists(db: Database, session_id: str) -> bool:
    async with db.read() as conn:
        found = await conn.execute(_BY_ID, {"p_id": session_id})
        return found.first() is not None


async def _by_key(
    db: Database, request: spb.CreateSessionRequest, key: str, digest: bytes
) -> pb.Session | None:
    params = {
        "p_key": key,
        "p_account": request.scope.account_id,
        "p_project": request.scope.project_id,
    }
    if request.parent_id:
        params["p_parent"] = request.parent_id
    async with db.read() as conn:
        found = await conn.execute(_BY_KEY[bool(request.parent_id)], params)
        row = found.mappings().first()
    if row is None:
        return None
    if row["request_digest"] != digest:
        raise AlreadyExists(
            f"idempotency_key {key!r} was already used for a different request "
            f"(session {row['id']})"
        )
    session = session_of(row)
    last = last_of(row)
    if last is not None:
        session.interactions.append(interaction_of(last))
    return session


async def _insert(
    db: Database,
    request: spb.CreateSessionRequest,
    key: str | None,
    digest: bytes,
    offer: Offer | None,
) -> pb.Session:
    scope = request.scope
    now = utcnow()
    session_id = request.id or new_id()
    first = request.first if request.HasField("first") else None
    values: dict[str, Any] = {
        "id": session_id,
        "account_id": scope.account_id,
        "project_id": scope.project_id,
        "user_id": scope.user_id,
        "type": request.type,
        "status": pb.SESSION_STATUS_ACTIVE,
        "execution_mode": int(request.execution_mode),
        "parent_id": request.parent_id or None,
        "name": request.name,
        "component": request.component.SerializeToString(),
        "params": request.params.SerializeToString(),
        "state": (
            request.first_state if request.HasField("first_state") else request.state
        ).SerializeToString(),
        "progress": request.progress.SerializeToString(),
        "definition_version": request.definition_version,
        "version": 1,
        "status_reason": "",
        "idempotency_key": key,
        "request_digest": digest,
        "interaction_count": 1 if first is not None else 0,
        "pending_seq": 1 if first is not None and is_pending(first) else None,
        "created_at": now,
        "updated_at": now,
        "finished_at": None,
        **workspace_values(request.workspace if request.HasField("workspace") else None),
    }
    async with db.write() as tx:
        if request.parent_id:
            parent = await head_row(tx.conn, scope, request.parent_id, lock=tx.postgres)
            if parent is None:
                raise NotFound(f"parent session {request.parent_id} not found")
            if parent["status"] in TERMINAL:
                raise FailedPrecondition(
                    f"parent session {request.parent_id} is finished; it takes no new children"
                )
            # A child runs where its parent runs: from the parent's row,
            # never from the request.
            values["workspace_id"] = parent["workspace_id"]
            values["workspace"] = parent["workspace"]
            tx.changes.sessions.add(request.parent_id)
        taker = offer if first is not None and offer and offer_takes(offer, values, first) else None
        if taker and values["workspace_id"] is None and taker.claimant.pin_to is not None:
            # Pinned where the executor works, as its claim would have pinned it.
            values.update(workspace_values(taker.claimant.pin_to))
        session = session_of(values)
        changes = Changes(sessions={session_id})
        row = None
        if first is not None:
            row = interaction_values(
                first,
                session_id=session_id,
                seq=1,
                account_id=scope.account_id,
                project_id=scope.project_id,
                now=now,
            )
            if taker is not None:
                # As a claim leases it (epoch 1: the first lease), so nothing
                # is left for a claim to find and no work signal is sent.
                row["lease_owner"] = taker.executor_id
                row["lease_epoch"] = 1
                row["lease_expires_at"] = now + dt.timedelta(seconds=taker.ttl_seconds)
            else:
                changes.work |= work_of(scope.account_id, scope.project_id, [first])
            session.interactions.append(interaction_of(row))
        if tx.postgres and not request.parent_id:
            await _insert_at_once(tx, values, row, changes)
        else:
            inserted = await tx.conn.execute(_INSERT_SESSION[tx.postgres], values)
            if inserted.first() is None:
                raise _Taken
            if row is not None:
                await tx.conn.execute(_INSERT_INTERACTION, row)
            tx.changes.update(changes)
    return session


async def _insert_at_once(
    tx: Tx, values: dict[str, Any], row: dict[str, Any] | None, changes: Changes
) -> None:
    """A top-level session and its first interaction in one statement (PostgreSQL).

    Statement by statement a create was four round trips in the
    transaction (session, interaction, NOTIFY, COMMIT); here the session's
    insert is a CTE the interaction's insert selects from — nothing of it
    is inserted when the session's id or key is taken — with the NOTIFY in
    its RETURNING, so the create is one statement and the COMMIT.
    """
    payload = tx.inline_payload(changes)
    statement = _insert_statement(
        tuple(values), tuple(row) if row is not None else None, payload is not None
    )
    params = {f"s_{name}": value for name, value in values.items()}
    if row is not None:
        params.update({f"i_{name}": value for name, value in row.items()})
    if payload is not None:
        params["p_payload"] = payload
    if (await tx.conn.execute(statement, params)).first() is None:
        raise _Taken


@functools.lru_cache(maxsize=16)
def _insert_statement(
    session_columns: tuple[str, ...], interaction_columns: tuple[str, ...] | None, notifies: bool
) -> Any:
    """The statement of :func:`_insert_at_once`, built once per shape.

    Binds ``s_<column>`` for the session, ``i_<column>`` for the
    interaction, ``p_payload`` when it ``notifies``; returns one row when
    it inserted.
    """
    session = (
        postgresql.insert(S)
        .values({name: bindparam(f"s_{name}", type_=S.c[name].type) for name in session_columns})
        .on_conflict_do_nothing()
    )
    notify = (
        [func.pg_notify(literal(CHANNEL), bindparam("p_payload", type_=Text))] if notifies else []
    )
    if interaction_columns is None:
        return session.returning(S.c.id, *notify)
    created = session.returning(S.c.id).cte("created")
    # Typed explicitly: an untyped NULL in a select list is text to PostgreSQL.
    picked = select(
        *(
            cast(bindparam(f"i_{name}", type_=I.c[name].type), I.c[name].type).label(name)
            for name in interaction_columns
        )
    ).select_from(created)
    return insert(I).from_select(list(interaction_columns), picked).returning(I.c.seq, *notify)


async def fetch_session(
    db: Database,
    scope: pb.Scope,
    session_id: str,
    view: int,
    *,
    total_usage: bool = False,
    explain: bool = False,
) -> pb.Session:
    """One session with the requested amount of history (and its subtree's usage;
    ``explain``: its ``waiting_for``)."""
    session = await _fetch_session(db, scope, session_id, view, explain=explain)
    if total_usage:
        async with db.read() as conn:
            session.total_usage.CopyFrom(await subtree_usage(conn, session_id))
    return session


async def _fetch_session(
    db: Database, scope: pb.Scope, session_id: str, view: int, *, explain: bool = False
) -> pb.Session:
    if view == pb.INTERACTION_VIEW_LAST:
        params = {"p_id": session_id, "p_account": scope.account_id, "p_project": scope.project_id}
        async with db.read() as conn:
            row = (await conn.execute(_FETCH_LAST, params)).mappings().first()
            if row is None:
                raise NotFound(f"session {session_id} not found")
            reasons = await waiting.explain(conn, [row]) if explain else {}
        session = session_of(row)
        session.waiting_for = reasons.get(session_id, "")
        last = last_of(row)
        if last is not None:
            session.interactions.append(interaction_of(last))
        return session
    async with db.read(snapshot=view != pb.INTERACTION_VIEW_NONE) as conn:
        head = await head_row(conn, scope, session_id)
        if head is None:
            raise NotFound(f"session {session_id} not found")
        session = session_of(head)
        if explain:
            session.waiting_for = (await waiting.explain(conn, [head])).get(session_id, "")
        if view != pb.INTERACTION_VIEW_NONE:
            rows = await conn.execute(
                select(*INTERACTION_COLUMNS).where(I.c.session_id == session_id).order_by(I.c.seq)
            )
            session.interactions.extend(interaction_of(r) for r in rows.mappings())
    return session


async def fetch_children(
    db: Database, scope: pb.Scope, parent_id: str, view: int, *, explain: bool = False
) -> list[pb.Session]:
    """The children of a session in ``scope``, oldest first (``explain``: their ``waiting_for``)."""
    async with db.read(snapshot=view != pb.INTERACTION_VIEW_NONE or explain) as conn:
        if await head_row(conn, scope, parent_id) is None:
            raise NotFound(f"session {parent_id} not found")
        if view == pb.INTERACTION_VIEW_LAST and not explain:
            return await children_with_last(conn, parent_id)
        rows = await children_rows(conn, parent_id)
        if view == pb.INTERACTION_VIEW_LAST:
            children = await children_with_last(conn, parent_id)
        else:
            children = [session_of(row) for row in rows]
        if explain:
            waiting.fill(children, await waiting.explain(conn, rows))
        if view in (pb.INTERACTION_VIEW_NONE, pb.INTERACTION_VIEW_LAST) or not children:
            return children
        by_id = {child.id: child for child in children}
        history = await conn.execute(
            select(*INTERACTION_COLUMNS)
            .join(S, S.c.id == I.c.session_id)
            .where(S.c.parent_id == parent_id)
            .order_by(I.c.session_id, I.c.seq)
        )
        for row in history.mappings():
            by_id[row["session_id"]].interactions.append(interaction_of(row))
        return children


@dataclass(frozen=True)
class Page:
    """One page of a listing."""

    sessions: list[pb.Session]
    next_token: str


def _cursor(created_at: dt.datetime, session_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), session_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _parse_cursor(token: str) -> tuple[dt.datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        created, session_id = json.loads(raw)
        when = dt.datetime.fromisoformat(created)
        if when.tzinfo is None or not isinstance(session_id, str):
            raise ValueError("incomplete cursor")
        return when, session_id
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidArgument("page_token is not a cursor this service issued") from exc


def _filtered(query: Select[Any], scope: pb.Scope, where: pb.SessionFilter) -> Select[Any]:
    query = query.where(in_scope(scope))
    if where.statuses:
        query = query.where(S.c.status.in_([int(s) for s in where.statuses]))
    if where.types:
        query = query.where(S.c.type.in_(list(where.types)))
    if where.parent_id:
        query = query.where(S.c.parent_id == where.parent_id)
    if where.top_level_only:
        query = query.where(S.c.parent_id.is_(None))
    if where.HasField("created_after"):
        query = query.where(S.c.created_at >= from_timestamp(where.created_after))
    if where.HasField("created_before"):
        query = query.where(S.c.created_at < from_timestamp(where.created_before))
    if where.user_id:
        query = query.where(S.c.user_id == where.user_id)
    if where.workspace_id:
        # Like the user and type filters: read off the scope's created-at
        # index, not an index of its own (a project has few workspaces).
        query = query.where(S.c.workspace_id == where.workspace_id)
    return query


async def query_sessions(
    db: Database,
    scope: pb.Scope,
    where: pb.SessionFilter,
    page_size: int,
    page_token: str,
    *,
    explain: bool = False,
) -> Page:
    """Sessions in ``scope`` matching ``where``, newest first, from the cursor on."""
    size = page_size or DEFAULT_PAGE
    query = _filtered(select(*SESSION_HEAD_COLUMNS), scope, where)
    if page_token:
        created, after_id = _parse_cursor(page_token)
        query = query.where(tuple_(S.c.created_at, S.c.id) < tuple_(created, after_id))
    query = query.order_by(S.c.created_at.desc(), S.c.id.desc()).limit(size + 1)
    async with db.read() as conn:
        rows = (await conn.execute(query)).mappings().all()
        more = len(rows) > size
        rows = rows[:size]
        reasons = await waiting.explain(conn, rows) if explain else {}
    token = _cursor(rows[-1]["created_at"], rows[-1]["id"]) if more and rows else ""
    sessions = [session_of(row) for row in rows]
    waiting.fill(sessions, reasons)
    return Page(sessions, token)


async def cancel_tree(
    db: Database, scope: pb.Scope, session_id: str, reason: str
) -> tuple[pb.Session, list[str]]:
    """Cancel a session and every descendant; their pending interactions are abandoned."""
    now = utcnow()
    reason = reason or "cancelled"
    async with db.write() as tx:
        root = await head_row(tx.conn, scope, session_id)
        if root is None:
            raise NotFound(f"session {session_id} not found")
        if root["status"] == pb.SESSION_STATUS_COMPLETE:
            raise FailedPrecondition(f"session {session_id} is complete; it cannot be cancelled")
        live = select(S.c.id, S.c.pending_seq).where(
            S.c.id.in_(select(_tree(session_id).c.id)),
            S.c.status.notin_([int(s) for s in TERMINAL]),
            in_scope(scope),
        )
        if tx.postgres:
            # Lock the tree first: a step committing meanwhile is then seen
            # with its new pending interaction, which is abandoned below.
            live = live.order_by(S.c.id).with_for_update(of=S)
        rows = (await tx.conn.execute(live)).all()
        cancelled = [row.id for row in rows]
        pending = [(row.id, row.pending_seq) for row in rows if row.pending_seq is not None]
        if pending:
            await tx.conn.execute(
                update(I)
                .where(
                    tuple_(I.c.session_id, I.c.seq).in_(pending),
                    I.c.status == pb.INTERACTION_STATUS_PENDING,
                )
                .values(status=pb.INTERACTION_STATUS_ABANDONED, completed_at=now)
            )
        if cancelled:
            await tx.conn.execute(
                update(S)
                .where(S.c.id.in_(cancelled))
                .values(
                    status=pb.SESSION_STATUS_CANCELLED,
                    status_reason=reason,
                    version=S.c.version + 1,
                    pending_seq=None,
                    updated_at=now,
                    finished_at=now,
                )
            )
        head = await head_row(tx.conn, scope, session_id)
        assert head is not None
        tx.changes.sessions.update(cancelled)
        if cancelled and root["parent_id"] is not None:
            # The parent's spawn step may now have only terminal children.
            tx.changes.work.add((scope.account_id, scope.project_id, True))
    descendants = sorted(set(cancelled) - {session_id})
    return session_of(head), descendants


def _tree(root_id: str) -> Any:
    """A recursive CTE of ``root_id`` and every descendant."""
    tree = select(S.c.id).where(S.c.id == root_id).cte("tree", recursive=True)
    return tree.union_all(select(S.c.id).where(S.c.parent_id == tree.c.id))


def roots_tree(roots: Select[Any]) -> Any:
    """A recursive CTE of the sessions ``roots`` selects and all their descendants."""
    tree = roots.cte("tree", recursive=True)
    return tree.union_all(select(S.c.id).where(S.c.parent_id == tree.c.id))
