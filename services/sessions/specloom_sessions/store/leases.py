"""Executor work: claims under leases, heartbeats, releases, joins, stalled sessions.

A lease is three columns of the pending interaction: owner, epoch (the
fencing token, +1 on every claim) and expiry. Claims never change the
session's version: holding work is not a change of the session, and a
version bump per claim would make every orchestrator's cached head stale.

On PostgreSQL the claim query locks the rows it picks with ``FOR UPDATE
SKIP LOCKED``, so concurrent claimers (any number of gateway replicas)
split the work instead of queueing on each other or handing one
interaction out twice. SQLite has one writer at a time, which gives the
same guarantee.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    exists,
    func,
    or_,
    select,
    tuple_,
    update,
)

from specloom.protoconv import utcnow
from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb
from specloom_sessions.database import Database, Tx
from specloom_sessions.metrics import LEASES_EXPIRED
from specloom_sessions.rows import (
    INTERACTION_COLUMNS,
    SESSION_HEAD_COLUMNS,
    Row,
    interaction_of,
    session_of,
)
from specloom_sessions.store import waiting
from specloom_sessions.store._common import I, S, const
from specloom_sessions.store.dependencies import (
    dependencies_complete,
    dependencies_complete_before,
    waits_on_a_stuck_session,
)
from specloom_sessions.tables import UtcDateTime

UNFINISHED = (pb.SESSION_STATUS_ACTIVE, pb.SESSION_STATUS_PAUSED)


def _of_active_session() -> ColumnElement[bool]:
    """The interaction's session is active, looked up by its primary key.

    A correlated lookup, not a join. With a join, PostgreSQL planned from
    statistics taken while the tables were nearly empty (a fresh database,
    then a spawn of a thousand children) and chose a nested loop over the
    sessions status index: every candidate interaction read every active
    session, 18-28 ms per claim and both cores busy in PostgreSQL. By
    primary key it is one index probe per candidate, whatever the statistics.
    """
    return (
        select(S.c.status).where(S.c.id == I.c.session_id).scalar_subquery()
        == pb.SESSION_STATUS_ACTIVE
    )


@dataclass(frozen=True)
class Claimant:
    """Where and for whom an executor runs commands: what it may claim."""

    workspace_ids: tuple[str, ...] = ()
    """Workspaces it serves; it also claims sessions of no workspace (NULL or '')."""
    pin_to: pb.WorkspaceRef | None = None
    """Its default workspace: unpinned sessions it claims are pinned there."""
    owner: str | None = None
    """Claim only sessions of this user (an executor serving its own user)."""


@dataclass(frozen=True)
class Offer:
    """An executor with a free slot, offered a new session's first command (CreateSession)."""

    executor_id: str
    account_id: str
    project_id: str
    """The executor's scope: only work of this account and project is its."""
    capabilities: frozenset[str]
    ttl_seconds: int
    claimant: Claimant


def offer_takes(offer: Offer, session: Row, first: spb.NewInteraction) -> bool:
    """Whether the claim query (:func:`_claim_query`) would pick ``first`` for ``offer``.

    ``session`` is the row a create is about to insert. These are the
    claim's conditions for a command that was just made: pending, for an
    executor, unleased, of an active session in the executor's scope, a
    capability it has, in a workspace it serves (or none yet), of its user
    when it serves only its own. A new session waits for no sibling, so the
    dependency condition holds. ``tests/sessions/test_start_lease.py``
    compares the two over every combination.
    """
    claimant = offer.claimant
    workspace = session["workspace_id"]
    return (
        not first.HasField("immediate_result")
        and first.dispatch == spb.DISPATCH_EXECUTOR
        and not first.HasField("lease")
        and session["status"] == pb.SESSION_STATUS_ACTIVE
        and (session["account_id"], session["project_id"]) == (offer.account_id, offer.project_id)
        and (not first.required_capability or first.required_capability in offer.capabilities)
        and (not workspace or workspace in claimant.workspace_ids)
        and (claimant.owner is None or session["user_id"] == claimant.owner)
    )


def _claimable_session(workspaces: bool, owner: bool) -> ColumnElement[bool]:
    """The interaction's session is active, in the claimant's workspaces, of its user.

    Still one primary-key probe per candidate (see :func:`_of_active_session`):
    a scalar subquery whose WHERE names only the id, its conditions moved
    into what it selects. With them in the WHERE (or as an ``EXISTS``, which
    PostgreSQL turns into a semi-join) the planner may probe the sessions
    status index instead and read every active session per candidate.
    Binds ``p_workspaces`` (a list) with ``workspaces``, ``p_owner`` with
    ``owner``.
    """
    places = [S.c.workspace_id.is_(None), S.c.workspace_id == ""]
    if workspaces:
        places.append(S.c.workspace_id.in_(bindparam("p_workspaces", expanding=True)))
    conditions = [S.c.status == pb.SESSION_STATUS_ACTIVE, or_(*places)]
    if owner:
        conditions.append(S.c.user_id == bindparam("p_owner"))
    verdict = case((and_(*conditions), 1), else_=0)
    return select(verdict).where(S.c.id == I.c.session_id).scalar_subquery() == 1


_NOW = bindparam("p_now", type_=UtcDateTime)


@functools.lru_cache(maxsize=32)
def _claim_query(capabilities: bool, workspaces: bool, owner: bool, postgres: bool) -> Any:
    """The claim's pick, built once per shape: building it was most of a claim's CPU.

    Binds ``p_account``, ``p_project``, ``p_now``, ``p_limit``, and
    ``p_capabilities`` (a list) with ``capabilities``.
    """
    capable = I.c.required_capability == ""
    if capabilities:
        capable = or_(
            capable, I.c.required_capability.in_(bindparam("p_capabilities", expanding=True))
        )
    picked = (
        select(I.c.session_id, I.c.seq, I.c.lease_owner)
        .where(
            I.c.status == const(pb.INTERACTION_STATUS_PENDING),
            I.c.dispatch == const(spb.DISPATCH_EXECUTOR),
            I.c.account_id == bindparam("p_account"),
            I.c.project_id == bindparam("p_project"),
            capable,
            or_(I.c.lease_owner.is_(None), I.c.lease_expires_at <= _NOW),
            _claimable_session(workspaces, owner),
            # A child waits for the siblings whose work it builds on.
            dependencies_complete(),
        )
        .order_by(I.c.created_at, I.c.session_id, I.c.seq)
        .limit(bindparam("p_limit", type_=Integer))
    )
    return picked.with_for_update(skip_locked=True, of=I) if postgres else picked


@dataclass(frozen=True)
class Assignment:
    """A leased interaction and its session's head."""

    session: pb.Session
    interaction: pb.Interaction


# Built once: a statement built per call cost more CPU than running it.
_HEADS = select(*SESSION_HEAD_COLUMNS).where(S.c.id.in_(bindparam("p_ids", expanding=True)))
_LEASE = (
    update(I)
    .where(tuple_(I.c.session_id, I.c.seq).in_(bindparam("p_keys", expanding=True)))
    .values(
        lease_owner=bindparam("p_owner"),
        lease_epoch=I.c.lease_epoch + 1,
        lease_expires_at=bindparam("p_expires", type_=UtcDateTime),
    )
    .returning(*INTERACTION_COLUMNS)
)
_PIN = (
    update(S)
    .where(S.c.id.in_(bindparam("p_ids", expanding=True)), S.c.workspace_id.is_(None))
    .values(workspace_id=bindparam("p_workspace_id"), workspace=bindparam("p_workspace"))
)


async def _heads(tx: Tx, session_ids: set[str]) -> dict[str, pb.Session]:
    rows = await tx.conn.execute(_HEADS, {"p_ids": sorted(session_ids)})
    return {row["id"]: session_of(row) for row in rows.mappings()}


async def claim_commands(
    db: Database,
    scope: pb.Scope,
    executor_id: str,
    capabilities: Sequence[str],
    limit: int,
    ttl_seconds: int,
    claimant: Claimant | None = None,
) -> list[Assignment]:
    """Lease up to ``limit`` claimable commands of ``scope`` to ``executor_id``, oldest first.

    Claimable: in the claimant's workspaces (or of none), of its user when
    it serves only its own. Sessions of no workspace yet are pinned to the
    claimant's default workspace in the same transaction, so every later
    command of theirs (and every child) runs there too.
    """
    claimant = claimant or Claimant()
    now = utcnow()
    params: dict[str, Any] = {
        "p_account": scope.account_id,
        "p_project": scope.project_id,
        "p_now": now,
        "p_limit": limit,
    }
    if capabilities:
        params["p_capabilities"] = sorted(set(capabilities))
    if claimant.workspace_ids:
        params["p_workspaces"] = sorted(set(claimant.workspace_ids))
    if claimant.owner is not None:
        params["p_owner"] = claimant.owner
    async with db.write() as tx:
        picked = _claim_query(
            bool(capabilities),
            bool(claimant.workspace_ids),
            claimant.owner is not None,
            tx.postgres,
        )
        return await _lease_keys(
            tx,
            picked,
            executor_id,
            ttl_seconds,
            now,
            "executor",
            pin_to=claimant.pin_to,
            params=params,
        )


async def _lease_keys(
    tx: Tx,
    picked: Select[str, int, str | None],
    owner: str,
    ttl_seconds: int,
    now: dt.datetime,
    dispatch: str,
    *,
    pin_to: pb.WorkspaceRef | None = None,
    params: dict[str, Any] | None = None,
) -> list[Assignment]:
    keys = (await tx.conn.execute(picked, params or {})).all()
    if not keys:
        return []
    # Rows with an owner were picked because their lease had lapsed.
    lapsed = sum(1 for key in keys if key[2] is not None)
    if lapsed:
        LEASES_EXPIRED.labels(dispatch).inc(lapsed)
    lease = {
        "p_keys": [(key[0], key[1]) for key in keys],
        "p_owner": owner,
        "p_expires": now + dt.timedelta(seconds=ttl_seconds),
    }
    leased = (await tx.conn.execute(_LEASE, lease)).mappings().all()
    if pin_to is not None:
        await _pin(tx, {row["session_id"] for row in leased}, pin_to)
    heads = await _heads(tx, {row["session_id"] for row in leased})
    ordered: list[Row] = sorted(leased, key=lambda r: (r["created_at"], r["session_id"], r["seq"]))
    return [
        Assignment(session=heads[row["session_id"]], interaction=interaction_of(row))
        for row in ordered
    ]


async def _pin(tx: Tx, session_ids: set[str], workspace: pb.WorkspaceRef) -> None:
    """Pin the sessions of no workspace yet (NULL) to ``workspace``; others stay as they are.

    Like the lease itself this is no change of the session's version: the
    orchestrators' cached heads stay valid (they never write the column), and
    the heads handed out with this claim are read after it.
    """
    await tx.conn.execute(
        _PIN,
        {
            "p_ids": sorted(session_ids),
            "p_workspace_id": workspace.id,
            "p_workspace": workspace.SerializeToString(),
        },
    )


async def claim_joins(
    db: Database, claimer_id: str, limit: int, ttl_seconds: int
) -> list[Assignment]:
    """Lease spawn-children waits none of whose children can make progress, oldest first.

    A child can make progress while it is unfinished, unless it waits for a
    sibling that failed or was cancelled: then only the parent (judging
    its children, then retrying or reporting) or a person can move it, and
    the parent's join must not wait for it forever.
    """
    now = utcnow()
    child = S.alias("child")
    running_child = exists(
        select(child.c.id).where(
            child.c.parent_id == I.c.session_id,
            child.c.status.in_(UNFINISHED),
            ~waits_on_a_stuck_session(child.c.id),
        )
    )
    picked = (
        select(I.c.session_id, I.c.seq, I.c.lease_owner)
        .where(
            I.c.status == const(pb.INTERACTION_STATUS_PENDING),
            I.c.dispatch == const(spb.DISPATCH_JOIN),
            or_(I.c.lease_owner.is_(None), I.c.lease_expires_at <= now),
            _of_active_session(),
            ~running_child,
        )
        .order_by(I.c.created_at, I.c.session_id, I.c.seq)
        .limit(limit)
    )
    async with db.write() as tx:
        if tx.postgres:
            picked = picked.with_for_update(skip_locked=True, of=I)
        return await _lease_keys(tx, picked, claimer_id, ttl_seconds, now, "join")


LeaseKey = tuple[str, int, dt.datetime | None]
"""(interaction id, epoch, expiry as the caller last saw it, or None)."""


def _named(lease: LeaseKey) -> ColumnElement[bool]:
    """The one lease ``lease`` names, as the caller last saw it.

    With an expiry it is a compare-and-set: the lease matches only while
    nobody has renewed it since the caller did. An executor that moved to
    another gateway replica has its leases adopted there (a renewal with a
    new expiry), so the old replica's late heartbeats and its teardown's
    release, which name the old expiry, leave the adoption alone.
    """
    interaction_id, epoch, expires = lease
    return and_(
        I.c.id == interaction_id,
        I.c.lease_epoch == epoch,
        *([I.c.lease_expires_at == expires] if expires is not None else []),
    )


async def renew_leases(
    db: Database, executor_id: str, leases: Sequence[LeaseKey], ttl_seconds: int
) -> tuple[list[tuple[str, int]], list[tuple[str, int]], dt.datetime]:
    """Extend the leases still held; returns (renewed, lost, their new expiry).

    A lease named with its expiry is renewed only if it is still as the
    caller last saw it. A lease named without one is *adopted*: renewed if
    this executor holds it at that epoch, even after a release (which ends
    a lease by expiring it, keeping its holder): an executor that reconnects
    after its old stream's teardown released the command it is still
    running takes it back, unless another executor claimed it meanwhile (a
    new epoch). Another executor — another name, another user — cannot:
    adopting is never a way around the claim's workspace and people rules.
    """
    now = utcnow()
    expires = now + dt.timedelta(seconds=ttl_seconds)
    if not leases:
        return [], [], expires
    named = [_named(lease) for lease in leases]
    async with db.write() as tx:
        renewed = (
            await tx.conn.execute(
                update(I)
                .where(
                    I.c.status == pb.INTERACTION_STATUS_PENDING,
                    I.c.lease_owner == executor_id,
                    or_(*named),
                )
                .values(lease_expires_at=expires)
                .returning(I.c.id, I.c.lease_epoch)
            )
        ).all()
    kept = {(row[0], row[1]) for row in renewed}
    refs = [(interaction_id, epoch) for interaction_id, epoch, _ in leases]
    return (
        [lease for lease in refs if lease in kept],
        [lease for lease in refs if lease not in kept],
        expires,
    )


async def release_leases(
    db: Database,
    executor_id: str,
    interaction_ids: Sequence[str],
    exact: Sequence[LeaseKey] = (),
) -> int:
    """End an executor's leases so others can claim the work.

    A release expires the lease now and keeps its holder and epoch: the
    work is claimable at once, and only its holder can adopt it back (see
    :func:`renew_leases`) until someone claims it. With ``exact``, each named
    lease ends only while its epoch — and its expiry, when given — is what
    the caller last saw: the executor may have reconnected to another
    gateway replica, which renewed the lease (same executor id, later
    expiry), and the old stream's teardown must not take that lease away
    from under it.
    """
    where: list[Any] = [
        I.c.lease_owner == executor_id,
        I.c.status == const(pb.INTERACTION_STATUS_PENDING),
    ]
    if exact:
        where.append(or_(*(_named(lease) for lease in exact)))
    elif interaction_ids:
        where.append(I.c.id.in_(list(interaction_ids)))
    now = utcnow()
    where.append(I.c.lease_expires_at > now)
    async with db.write() as tx:
        released = (
            await tx.conn.execute(
                update(I)
                .where(*where)
                .values(lease_expires_at=now)
                .returning(I.c.account_id, I.c.project_id, I.c.dispatch)
            )
        ).all()
        for account, project, dispatch in released:
            tx.changes.work.add((account, project, dispatch == spb.DISPATCH_JOIN))
    return len(released)


async def find_stalled(db: Database, idle_ms: int, limit: int) -> list[pb.Session]:
    """Executor-driven active sessions with nothing pending, unchanged for ``idle_ms``."""
    cutoff = utcnow() - dt.timedelta(milliseconds=idle_ms)
    query = (
        select(*SESSION_HEAD_COLUMNS)
        .where(
            S.c.status == pb.SESSION_STATUS_ACTIVE,
            S.c.execution_mode.in_([pb.EXECUTION_MODE_AUTO, pb.EXECUTION_MODE_AGENTIC]),
            S.c.pending_seq.is_(None),
            S.c.updated_at <= cutoff,
        )
        .order_by(S.c.updated_at, S.c.id)
        .limit(limit)
    )
    async with db.read() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [session_of(row) for row in rows]


async def find_unclaimed(db: Database, waited_ms: int, limit: int) -> list[Assignment]:
    """Pending executor commands of active sessions waiting ``waited_ms`` for an executor.

    Waiting means never leased since created, or leased once and the lease
    lapsed that long ago with nobody claiming it again.
    """
    cutoff = utcnow() - dt.timedelta(milliseconds=waited_ms)
    waiting_since = func.coalesce(I.c.lease_expires_at, I.c.created_at)
    query = (
        select(*INTERACTION_COLUMNS)
        .where(
            I.c.status == const(pb.INTERACTION_STATUS_PENDING),
            I.c.dispatch == const(spb.DISPATCH_EXECUTOR),
            _of_active_session(),
            waiting_since <= cutoff,
            # Waiting for a dependency is not waiting for an executor.
            dependencies_complete_before(cutoff),
        )
        .order_by(waiting_since, I.c.session_id)
        .limit(limit)
    )
    async with db.read() as conn:
        rows = (await conn.execute(query)).mappings().all()
        if not rows:
            return []
        ids = sorted({row["session_id"] for row in rows})
        head_rows = (
            (await conn.execute(select(*SESSION_HEAD_COLUMNS).where(S.c.id.in_(ids))))
            .mappings()
            .all()
        )
        reasons = await waiting.explain(conn, head_rows)
    heads = {row["id"]: session_of(row) for row in head_rows}
    waiting.fill(list(heads.values()), reasons)
    return [
        Assignment(session=heads[row["session_id"]], interaction=interaction_of(row))
        for row in rows
        if row["session_id"] in heads
    ]
