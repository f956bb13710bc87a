"""Why a step was refused — or that it was an exact repeat, answered as a replay.

Runs after the step's transaction rolled back, on a fresh snapshot. The
repeat check comes before the version check, so a result resent after the
session moved on is still recognised.
"""

from __future__ import annotations

from sqlalchemy import and_, or_, select

from specloom.errors import Aborted, FailedPrecondition, NotFound
from specloom.protoconv import utcnow
from specloom.v1 import common_pb2 as pb
from specloom_sessions.database import Database
from specloom_sessions.rows import INTERACTION_COLUMNS, TERMINAL, Row, interaction_of, session_of
from specloom_sessions.store._common import I, S, head_row
from specloom_sessions.store.step import ALLOWED_FROM, Advanced, Completion, Step, status_name


async def diagnose(db: Database, step: Step) -> Advanced:
    """Say which rule refused ``step`` — or answer an exact repeat as a replay."""
    sid = step.session_id
    async with db.read(snapshot=True) as conn:
        head = await head_row(conn, step.scope, sid)
        if head is None:
            raise NotFound(f"session {sid} not found")
        target: Row | None = None
        if step.complete is not None:
            iid = step.complete.interaction_id
            found = await conn.execute(
                select(*INTERACTION_COLUMNS).where(I.c.session_id == sid, I.c.id == iid)
            )
            target = found.mappings().first()
            if target is None:
                raise NotFound(f"interaction {iid} not found in session {sid}")
    status = head["status"]
    if target is not None and step.complete is not None:
        iid = step.complete.interaction_id
        if target["status"] == pb.INTERACTION_STATUS_COMPLETED:
            if target["reported_digest"] == step.complete.reported_digest:
                return Advanced(
                    session=session_of(head), completed=interaction_of(target), replayed=True
                )
            raise FailedPrecondition(
                f"interaction {iid} already has a different result; only the pending "
                "interaction takes a result"
            )
        if target["status"] == pb.INTERACTION_STATUS_ABANDONED:
            raise FailedPrecondition(
                f"interaction {iid} was abandoned (session {sid} is {status_name(status)}); "
                "it takes no result"
            )
    if status in TERMINAL:
        raise FailedPrecondition(f"session {sid} is {status_name(status)}; it takes no more steps")
    if step.expected_version and head["version"] != step.expected_version:
        raise Aborted(
            f"session {sid} is at version {head['version']}, not {step.expected_version}; "
            "read it again"
        )
    if step.finish is not None and status not in ALLOWED_FROM[step.finish.status]:
        raise FailedPrecondition(
            f"session {sid} is {status_name(status)}; it cannot become "
            f"{status_name(step.finish.status)}"
        )
    if step.appends_pending and step.finish is None and status != pb.SESSION_STATUS_ACTIVE:
        raise FailedPrecondition(
            f"session {sid} is {status_name(status)}; a new command needs it active"
        )
    if target is not None and step.complete is not None:
        lease_refusal(step.complete, target)
    elif head["pending_seq"] is not None and (step.append or step.finishes):
        raise FailedPrecondition(
            f"session {sid} has a pending interaction (seq {head['pending_seq']}); "
            "its result comes first"
        )
    raise Aborted(f"session {sid} changed while this write was applied; read it again")


def lease_refusal(complete: Completion, target: Row) -> None:
    """Raise the lease rule ``complete`` broke, if any."""
    iid = complete.interaction_id
    owner, epoch, expires = target["lease_owner"], target["lease_epoch"], target["lease_expires_at"]
    live = owner is not None and expires is not None and expires > utcnow()
    if complete.lease_epoch == 0:
        if live:
            raise FailedPrecondition(
                f"interaction {iid} is leased to an executor; a result without its lease "
                "epoch is refused"
            )
        return
    if owner is None or epoch != complete.lease_epoch:
        raise FailedPrecondition(
            f"lease epoch {complete.lease_epoch} of interaction {iid} is not held "
            "(released or claimed again); the result is refused"
        )
    if not live:
        raise FailedPrecondition(
            f"the lease (epoch {epoch}) on interaction {iid} expired; the result is refused"
        )


async def child_conflict(db: Database, step: Step) -> Exception:
    """The error for children whose id or key already exists."""
    ids = [child.id for child in step.create_children]
    keys = [child.key for child in step.create_children if child.key]
    async with db.read() as conn:
        clash = (
            await conn.execute(
                select(S.c.id, S.c.parent_id, S.c.idempotency_key).where(
                    or_(
                        S.c.id.in_(ids),
                        and_(S.c.parent_id == step.session_id, S.c.idempotency_key.in_(keys)),
                    )
                )
            )
        ).first()
    if clash is None:
        return Aborted(f"children of session {step.session_id} changed meanwhile; read again")
    if clash.parent_id == step.session_id and clash.idempotency_key in keys:
        return FailedPrecondition(
            f"session {step.session_id} already has a child for key {clash.idempotency_key!r} "
            f"({clash.id}); a retried spawn reuses it"
        )
    return FailedPrecondition(f"create_children: session id {clash.id} already exists")
