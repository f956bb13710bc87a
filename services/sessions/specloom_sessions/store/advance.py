"""One step's write: complete, state, status, append, children — one transaction.

This is the hot path (one call per workflow step), so every statement is a
primary-key or unique-index access and the cost does not grow with the
history: the session row carries ``interaction_count`` (the next seqs) and
``pending_seq`` (the one-pending rule), so nothing reads earlier
interactions.

The statements, in order:

1. ``UPDATE sessions ... WHERE id, scope, version, status and pending
   conditions RETURNING *`` — takes the row lock, bumps the version and
   checks every session-level rule at once (with the NOTIFY riding in its
   RETURNING on PostgreSQL);
2. ``UPDATE interactions ... WHERE id AND status = pending AND <lease>``
   when completing;
3. ``INSERT`` the appended interactions (and children, rarely).

When 1 or 2 matches no row the transaction is rolled back and
:func:`~specloom_sessions.store.diagnose.diagnose` reads the rows to say
which rule failed — or that the request was an exact repeat, answered as a
replay without writing.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    BindParameter,
    LargeBinary,
    Text,
    and_,
    bindparam,
    func,
    insert,
    literal,
    literal_column,
    or_,
    update,
)
from sqlalchemy.exc import IntegrityError

from specloom.errors import Aborted, InvalidArgument
from specloom.protoconv import utcnow
from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb
from specloom.workflow._proto import child_execution_mode
from specloom_sessions.database import Database, Tx
from specloom_sessions.events import CHANNEL, Changes
from specloom_sessions.rows import (
    FINISHED,
    INTERACTION_COLUMNS,
    SESSION_HEAD_COLUMNS,
    TERMINAL,
    Row,
    interaction_of,
    session_of,
)
from specloom_sessions.store._common import (
    I,
    S,
    children_with_last,
    interaction_values,
    is_pending,
    work_of,
)
from specloom_sessions.store.dependencies import (
    HAS_DEPENDENTS,
    add_dependencies,
    has_dependents,
)
from specloom_sessions.store.diagnose import child_conflict, diagnose
from specloom_sessions.store.step import (
    ALLOWED_FROM,
    Advanced,
    Completion,
    Step,
    completion,
    status_name,
)
from specloom_sessions.store.usage import deltas as usage_deltas
from specloom_sessions.tables import USAGE_COLUMNS, UtcDateTime

__all__ = [
    "Advanced",
    "Completion",
    "Refused",
    "Step",
    "advance",
    "after_guard",
    "completion",
    "guard",
    "precheck",
]

_INSERT_INTERACTION = insert(I)


class Refused(Exception):
    """A rule failed inside the transaction; diagnose after rolling back."""


class _ChildConflict(Exception):
    """A child's id or key already exists."""


def precheck(step: Step) -> None:
    """Refuse a step that contradicts itself, before touching the database."""
    if (
        step.appends_pending
        and step.finish is not None
        and step.finish.status != pb.SESSION_STATUS_ACTIVE
    ):
        raise InvalidArgument(
            "append ends with a pending command, which needs the session ACTIVE, but "
            f"finish sets it {status_name(step.finish.status)}"
        )


async def advance(db: Database, step: Step) -> Advanced:
    """Apply ``step`` in one transaction, or explain why not."""
    precheck(step)
    try:
        async with db.write() as tx:
            return await _apply(tx, step)
    except Refused:
        return await diagnose(db, step)
    except (_ChildConflict, IntegrityError):
        if not step.create_children:
            raise
        raise await child_conflict(db, step) from None


async def _apply(tx: Tx, step: Step) -> Advanced:
    now = utcnow()
    row = await guard(tx, step, now)
    return await after_guard(tx, step, row, now)


async def after_guard(tx: Tx, step: Step, row: Row, now: dt.datetime) -> Advanced:
    """Everything a step writes once its session row passed the guard."""
    done = await _complete(tx, step, now) if step.complete is not None else None
    appended = await _append(tx, step, row, now)
    advanced = Advanced(session=session_of(row), completed=done, appended=appended)
    note_finish(tx, step, row)
    if step.create_children or step.revive_children:
        await _create_children(tx, step, row, now)
        await _revive_children(tx, step, row, now)
        advanced.children = await children_with_last(tx.conn, step.session_id)
    return advanced


def note_finish(tx: Tx, step: Step, row: Row) -> None:
    """Work signals for a step that finished its session (``row``: the guard's RETURNING)."""
    if not step.finishes:
        return
    if row["parent_id"] is not None:
        # The parent's spawn step may now have only terminal children (or
        # only children waiting on this one, which failed).
        tx.changes.work.add((row["account_id"], row["project_id"], True))
    if row.get(HAS_DEPENDENTS):
        # Siblings waiting for this session may now be claimable.
        tx.changes.work.add((row["account_id"], row["project_id"], False))


class _Shape(NamedTuple):
    """What varies between step writes; one prepared statement per shape."""

    check_version: bool
    finish: int | None
    appends: bool
    appends_pending: bool
    completes: bool
    sets_state: bool
    sets_progress: bool
    notifies: bool
    adds_usage: bool = False


def _literals(values: frozenset[int]) -> list[Any]:
    return [literal_column(str(int(value))) for value in sorted(values)]


def _now_param(name: str) -> BindParameter[dt.datetime]:
    return bindparam(name, type_=UtcDateTime)


@functools.lru_cache(maxsize=256)
def _session_update(shape: _Shape) -> Any:
    """``UPDATE sessions`` enforcing every session-level rule of a step in its WHERE.

    Built once per shape and reused, so the hot path binds values instead of
    building (and cache-keying) a statement per call.
    """
    where = [
        S.c.id == bindparam("p_id"),
        S.c.account_id == bindparam("p_account"),
        S.c.project_id == bindparam("p_project"),
    ]
    if shape.check_version:
        where.append(S.c.version == bindparam("p_version", type_=BigInteger))
    # Status constants are literal SQL, not bind parameters: the statement
    # compiles to plain text the pipelined batch can run as is.
    if shape.finish is not None:
        where.append(S.c.status.in_(_literals(ALLOWED_FROM[shape.finish])))
    else:
        where.append(S.c.status.notin_(_literals(TERMINAL)))
    if shape.appends_pending and shape.finish is None:
        where.append(S.c.status == pb.SESSION_STATUS_ACTIVE)
    if shape.completes:
        where.append(S.c.pending_seq.is_not(None))
    elif shape.appends or shape.finish in FINISHED:
        # At most one pending interaction, and it is the newest: nothing is
        # appended behind it and nothing finishes around it.
        where.append(S.c.pending_seq.is_(None))
    values: dict[str, Any] = {"version": S.c.version + 1, "updated_at": _now_param("p_now")}
    if shape.sets_state:
        values["state"] = bindparam("p_state", type_=LargeBinary)
    if shape.sets_progress:
        values["progress"] = bindparam("p_progress", type_=LargeBinary)
    if shape.adds_usage:
        # The step's agent usage, added in the same update: a step refused
        # or rolled back adds nothing, and a replay never reaches here.
        for name in USAGE_COLUMNS:
            values[name] = S.c[name] + bindparam(f"p_{name}", type_=BigInteger)
    if shape.finish is not None:
        values["status"] = shape.finish
        values["status_reason"] = bindparam("p_reason", type_=Text)
        values["finished_at"] = _now_param("p_now") if shape.finish in FINISHED else None
    count = bindparam("p_count", type_=BigInteger)
    if shape.appends:
        values["interaction_count"] = S.c.interaction_count + count
    if shape.appends_pending:
        values["pending_seq"] = S.c.interaction_count + count
    elif shape.completes:
        values["pending_seq"] = None
    returning: list[Any] = list(SESSION_HEAD_COLUMNS)
    if shape.finish == pb.SESSION_STATUS_COMPLETE:
        # Once per session, in the write that completes it: one index probe,
        # no round trip of its own.
        returning.append(has_dependents())
    if shape.notifies:
        # NOTIFY in the RETURNING saves a round trip; it is sent at commit
        # and dropped with a rollback, like any other effect of the write.
        returning.append(
            func.pg_notify(literal(CHANNEL), bindparam("p_payload", type_=Text)).label("notified")
        )
    return update(S).where(*where).values(values).returning(*returning)


async def guard(tx: Tx, step: Step, now: dt.datetime) -> Row:
    """The session-row update that checks every session-level rule (:class:`Refused` if not).

    When it refuses, nothing of the step has been written.
    """
    statement, params = guard_call(tx, step, now)
    result = await tx.conn.execute(statement, params)
    row = result.mappings().first()
    if row is None:
        raise Refused
    return row


def guard_call(
    tx: Tx, step: Step, now: dt.datetime, *, inline: bool = True
) -> tuple[Any, dict[str, Any]]:
    """The guard's statement and parameters (``inline``: NOTIFY in its RETURNING)."""
    changes = Changes(sessions={step.session_id})
    changes.work = work_of(step.scope.account_id, step.scope.project_id, step.append)
    if step.finish is not None and step.finish.status == pb.SESSION_STATUS_ACTIVE:
        # A resumed session's pending command or join is claimable again.
        changes.work |= {
            (step.scope.account_id, step.scope.project_id, False),
            (step.scope.account_id, step.scope.project_id, True),
        }
    if inline:
        payload = tx.inline_payload(changes)
    else:
        tx.changes.update(changes)
        payload = None
    usage = (
        step.complete.result.usage
        if step.complete is not None and step.complete.result.HasField("usage")
        else None
    )
    shape = _Shape(
        check_version=bool(step.expected_version),
        finish=int(step.finish.status) if step.finish is not None else None,
        appends=bool(step.append),
        appends_pending=step.appends_pending,
        completes=step.complete is not None,
        sets_state=step.state is not None,
        sets_progress=step.progress is not None,
        notifies=payload is not None,
        adds_usage=usage is not None,
    )
    params: dict[str, Any] = {
        "p_id": step.session_id,
        "p_account": step.scope.account_id,
        "p_project": step.scope.project_id,
        "p_now": now,
        "p_count": len(step.append),
    }
    if shape.check_version:
        params["p_version"] = step.expected_version
    if step.state is not None:
        params["p_state"] = step.state.SerializeToString()
    if step.progress is not None:
        params["p_progress"] = step.progress.SerializeToString()
    if step.finish is not None:
        params["p_reason"] = step.finish.reason
    if payload is not None:
        params["p_payload"] = payload
    if usage is not None:
        params.update({f"p_{name}": value for name, value in usage_deltas(usage).items()})
    return _session_update(shape), params


@functools.lru_cache(maxsize=2)
def _interaction_completion(manual: bool) -> Any:
    """``UPDATE interactions`` taking the result, if pending and the lease allows it."""
    now = _now_param("p_now")
    if manual:
        # A manual result: fine unless an executor holds a live lease.
        lease = or_(I.c.lease_owner.is_(None), I.c.lease_expires_at <= now)
    else:
        lease = and_(
            I.c.lease_owner.is_not(None),
            I.c.lease_epoch == bindparam("p_epoch", type_=BigInteger),
            I.c.lease_expires_at > now,
        )
    return (
        update(I)
        .where(
            I.c.session_id == bindparam("p_session"),
            I.c.id == bindparam("p_interaction"),
            I.c.status == pb.INTERACTION_STATUS_PENDING,
            lease,
        )
        .values(
            status=pb.INTERACTION_STATUS_COMPLETED,
            result=bindparam("p_result", type_=LargeBinary),
            reported_digest=bindparam("p_digest", type_=LargeBinary),
            completed_at=now,
        )
        .returning(*INTERACTION_COLUMNS)
    )


def completion_call(step: Step, now: dt.datetime) -> tuple[Any, dict[str, Any]]:
    """The completion's statement and parameters (the step must complete)."""
    complete = step.complete
    assert complete is not None
    params: dict[str, Any] = {
        "p_session": step.session_id,
        "p_interaction": complete.interaction_id,
        "p_now": now,
        "p_result": complete.result.SerializeToString(),
        "p_digest": complete.reported_digest,
    }
    if complete.lease_epoch:
        params["p_epoch"] = complete.lease_epoch
    return _interaction_completion(complete.lease_epoch == 0), params


async def _complete(tx: Tx, step: Step, now: dt.datetime) -> pb.Interaction:
    statement, params = completion_call(step, now)
    result = await tx.conn.execute(statement, params)
    row = result.mappings().first()
    if row is None:
        raise Refused
    return interaction_of(row)


def append_values(step: Step, row: Row, now: dt.datetime) -> list[dict[str, Any]]:
    """The ``interactions`` rows a step appends, numbered after the guard's row."""
    first_seq = row["interaction_count"] - len(step.append) + 1
    return [
        interaction_values(
            item,
            session_id=step.session_id,
            seq=first_seq + offset,
            account_id=row["account_id"],
            project_id=row["project_id"],
            now=now,
        )
        for offset, item in enumerate(step.append)
    ]


async def _append(tx: Tx, step: Step, row: Row, now: dt.datetime) -> list[pb.Interaction]:
    if not step.append:
        return []
    values = append_values(step, row, now)
    await tx.conn.execute(_INSERT_INTERACTION, values[0] if len(values) == 1 else values)
    return [interaction_of(v) for v in values]


async def _create_children(tx: Tx, step: Step, parent: Row, now: dt.datetime) -> None:
    if not step.create_children:
        return
    sessions: list[dict[str, Any]] = []
    firsts: list[dict[str, Any]] = []
    account, project = parent["account_id"], parent["project_id"]
    for offset, child in enumerate(step.create_children):
        first = child.first if child.HasField("first") else None
        # Children of one write keep the request's order when listed
        # oldest first.
        created = now + dt.timedelta(microseconds=offset)
        sessions.append(
            {
                "id": child.id,
                "account_id": account,
                "project_id": project,
                "user_id": parent["user_id"],
                "type": child.type,
                "status": pb.SESSION_STATUS_ACTIVE,
                "execution_mode": child_execution_mode(parent["execution_mode"]),
                "parent_id": step.session_id,
                "name": child.name,
                "component": child.component.SerializeToString(),
                "params": child.params.SerializeToString(),
                "state": child.state.SerializeToString(),
                "progress": child.progress.SerializeToString(),
                "definition_version": child.definition_version,
                "version": 1,
                "status_reason": "",
                "idempotency_key": child.key or None,
                "request_digest": None,
                "interaction_count": 1 if first is not None else 0,
                "pending_seq": 1 if first is not None and is_pending(first) else None,
                "created_at": created,
                "updated_at": created,
                "finished_at": None,
                # The parent's workspace, from its row as this write's guard
                # returned it: a child never runs anywhere else.
                "workspace_id": parent["workspace_id"],
                "workspace": parent["workspace"],
            }
        )
        if first is not None:
            firsts.append(
                interaction_values(
                    first,
                    session_id=child.id,
                    seq=1,
                    account_id=account,
                    project_id=project,
                    now=created,
                )
            )
            tx.changes.work |= work_of(account, project, [first])
        tx.changes.sessions.add(child.id)
    try:
        await tx.conn.execute(insert(S), sessions)
    except IntegrityError as exc:
        raise _ChildConflict from exc
    await add_dependencies(tx, step.session_id, step.create_children)
    if firsts:
        await tx.conn.execute(insert(I), firsts)


async def _revive_children(tx: Tx, step: Step, parent: Row, now: dt.datetime) -> None:
    for revival in step.revive_children:
        result = await tx.conn.execute(
            update(S)
            .where(
                S.c.id == revival.session_id,
                S.c.parent_id == step.session_id,
                S.c.status == pb.SESSION_STATUS_FAILED,
                S.c.pending_seq.is_(None),
            )
            .values(
                status=pb.SESSION_STATUS_ACTIVE,
                status_reason="",
                finished_at=None,
                progress=revival.progress.SerializeToString(),
                version=S.c.version + 1,
                interaction_count=S.c.interaction_count + 1,
                updated_at=now,
            )
            .returning(S.c.interaction_count)
        )
        seq = result.scalar()
        if seq is None:
            # It changed since the caller read it (resumed by hand, cancelled):
            # the caller re-reads the children and decides again.
            raise Aborted(
                f"revive_children: child {revival.session_id} of session {step.session_id} "
                "is not a failed child any more; read the children again"
            )
        command = pb.Command(step=f"control:{pb.ControlAction.Name(revival.record.action)}")
        command.control.CopyFrom(revival.record)
        record = spb.NewInteraction(
            step=command.step,
            command=command,
            immediate_result=pb.Result(status=pb.RESULT_STATUS_OK),
        )
        await tx.conn.execute(
            insert(I).values(
                interaction_values(
                    record,
                    session_id=revival.session_id,
                    seq=seq,
                    account_id=parent["account_id"],
                    project_id=parent["project_id"],
                    now=now,
                )
            )
        )
        tx.changes.sessions.add(revival.session_id)
