"""Sessions that wait for siblings: the rows, the claim's gate, the join's view, the wake-up.

A child that builds on its siblings' work is created with the ids of the
siblings it waits for (``NewChild.depends_on``). Its rows in
``session_dependencies`` hold the transitive closure, so every question
asked on the hot paths is one probe by primary key of one session's rows:

- may its commands be claimed? — no dependency that is not COMPLETE;
- can it still make progress? — no dependency FAILED or CANCELLED (else a
  parent's join must not wait for it);
- does completing a session unblock anyone? — an index probe by
  ``depends_on_id``, asked only in the write that completes it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence

from sqlalchemy import ColumnElement, FromClause, exists, insert, literal_column, or_, select

from specloom.errors import InvalidArgument
from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb
from specloom_sessions import tables as t
from specloom_sessions.database import Tx
from specloom_sessions.store._common import I, S, const

D = t.session_dependencies

STUCK = (pb.SESSION_STATUS_FAILED, pb.SESSION_STATUS_CANCELLED)
"""A dependency in one of these will not complete without a person (or a retried spawn)."""

HAS_DEPENDENTS = "has_dependents"
"""Label of the guard's RETURNING column saying whether sessions wait for this one."""


def _none(
    session_id: ColumnElement[str], condition: Callable[[FromClause], ColumnElement[bool]]
) -> ColumnElement[bool]:
    """No dependency of ``session_id`` (a correlated column) meets ``condition``.

    A scalar subquery (``(SELECT 1 … LIMIT 1) IS NULL``), not ``NOT EXISTS``:
    PostgreSQL turns an EXISTS into an anti-join, which it may plan, from
    statistics taken while the table was nearly empty, as a hash of the
    whole table on every claim. A correlated scalar subquery stays a probe
    of the primary key per candidate — an empty one for the common session
    that waits for nobody. (The claim's session check is written this way
    for the same reason.)
    """
    dependency = S.alias("dependency")
    return (
        select(literal_column("1"))
        .select_from(D.join(dependency, dependency.c.id == D.c.depends_on_id))
        .where(D.c.session_id == session_id, condition(dependency))
        .limit(1)
        .scalar_subquery()
        .is_(None)
    )


def dependencies_complete() -> ColumnElement[bool]:
    """The interaction's session waits for no session that is not COMPLETE (claims)."""
    return _none(I.c.session_id, lambda d: d.c.status != const(pb.SESSION_STATUS_COMPLETE))


def dependencies_complete_before(cutoff: dt.datetime) -> ColumnElement[bool]:
    """Every dependency of the interaction's session was COMPLETE by ``cutoff``.

    A command waits for an executor from when its last dependency completed,
    not from when it was created: the unclaimed sweep must not pause a child
    that waited an hour for its dependencies and a second for an executor.
    """
    complete = const(pb.SESSION_STATUS_COMPLETE)
    return _none(I.c.session_id, lambda d: or_(d.c.status != complete, d.c.finished_at > cutoff))


def waits_on_a_stuck_session(session_id: ColumnElement[str]) -> ColumnElement[bool]:
    """Whether ``session_id`` waits (however indirectly) on a FAILED or CANCELLED session."""
    dependency = S.alias("stuck_dependency")
    return exists(
        select(literal_column("1"))
        .select_from(D.join(dependency, dependency.c.id == D.c.depends_on_id))
        .where(
            D.c.session_id == session_id,
            dependency.c.status.in_([const(status) for status in STUCK]),
        )
    )


def has_dependents() -> ColumnElement[bool]:
    """For a RETURNING of ``UPDATE sessions``: whether any session waits for this one."""
    return exists(select(D.c.session_id).where(D.c.depends_on_id == S.c.id)).label(HAS_DEPENDENTS)


async def add_dependencies(tx: Tx, parent_id: str, create: Sequence[spb.NewChild]) -> None:
    """Write the dependency rows (transitive closure) of children created by one step.

    A dependency is a child of ``parent_id`` listed in the same request or
    created before; anything else is ``InvalidArgument`` (and the whole
    step is rolled back). Validation already refused self-dependencies and
    cycles among the request's children.
    """
    waits = {child.id: list(dict.fromkeys(child.depends_on)) for child in create}
    if not any(waits.values()):
        return
    earlier = sorted({d for deps in waits.values() for d in deps if d not in waits})
    closure: dict[str, frozenset[str]] = {}
    if earlier:
        siblings = set(
            (
                await tx.conn.execute(
                    select(S.c.id).where(S.c.parent_id == parent_id, S.c.id.in_(earlier))
                )
            ).scalars()
        )
        strangers = [d for d in earlier if d not in siblings]
        if strangers:
            raise InvalidArgument(
                f"create_children: depends_on names {strangers[0]}, which is not a child "
                f"of session {parent_id}; a child can only wait for its siblings"
            )
        closure = {d: frozenset() for d in earlier}
        rows = await tx.conn.execute(
            select(D.c.session_id, D.c.depends_on_id).where(D.c.session_id.in_(earlier))
        )
        for session_id, depends_on_id in rows:
            closure[session_id] = closure[session_id] | {depends_on_id}
    values = [
        {"session_id": child, "depends_on_id": dependency}
        for child in waits
        for dependency in sorted(_closed(child, waits, closure))
    ]
    if values:
        await tx.conn.execute(insert(D), values)


def _closed(
    child: str, waits: Mapping[str, list[str]], closure: dict[str, frozenset[str]]
) -> frozenset[str]:
    """``child``'s dependencies and theirs (memoized in ``closure``; the graph is acyclic)."""
    if child in closure:
        return closure[child]
    # Iterative post-order: a long chain of children must not hit the
    # recursion limit.
    stack = [child]
    while stack:
        node = stack[-1]
        missing = [d for d in waits.get(node, ()) if d not in closure]
        if missing:
            stack.extend(missing)
            continue
        stack.pop()
        if node in closure:
            continue
        found: set[str] = set()
        for dependency in waits.get(node, ()):
            found.add(dependency)
            found |= closure[dependency]
        closure[node] = frozenset(found)
    return closure[child]
