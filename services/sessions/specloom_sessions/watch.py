"""Watch streams: a session's changes as events, and work signals for gateways.

A session stream subscribes to the hub *before* reading its snapshot, so a
commit after the snapshot always produces a notification. Each watched
session keeps a cursor (version seen, highest seq seen, seqs seen pending,
output chunks seen per interaction); a notification only says "re-read
this", and the re-read starts at the cursor. Coalesced or duplicated
notifications therefore never lose or repeat an event, and the stream
holds no database connection while it waits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from specloom.errors import NotFound
from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb
from specloom_sessions import tables as t
from specloom_sessions.database import Database
from specloom_sessions.events import HubClosed, SessionFeed
from specloom_sessions.rows import (
    INTERACTION_COLUMNS,
    TERMINAL,
    Row,
    interaction_of,
    session_of,
)
from specloom_sessions.store import waiting
from specloom_sessions.store._common import I, S, children_rows, head_row
from specloom_sessions.store.outputs import chunk_of

O = t.outputs  # noqa: E741 - the table, as in SQL

ENDS_A_WATCH = frozenset({*TERMINAL, pb.SESSION_STATUS_FAILED, pb.SESSION_STATUS_PAUSED})
"""Statuses after which a watch ends: finished, or waiting for a person (a
failed or paused session changes only when someone resumes it; they watch
again then). A stream kept open on them would wait for nothing, forever."""


@dataclass
class _Cursor:
    version: int = 0
    last_seq: int = 0
    open: set[int] = field(default_factory=set)
    """Seqs seen pending: re-read until they complete or are abandoned."""
    output: dict[int, int] = field(default_factory=dict)
    """Next output chunk index per seq (absent: 0)."""
    status: int = 0


def _event(session_id: str, version: int) -> pb.SessionEvent:
    return pb.SessionEvent(session_id=session_id, version=version)


class SessionWatch:
    """One StreamSessionEvents call."""

    def __init__(
        self,
        db: Database,
        scope: pb.Scope,
        session_id: str,
        *,
        include_children: bool,
        include_output: bool,
        explain_waiting: bool = False,
    ) -> None:
        self._db = db
        self._explain = explain_waiting
        self._scope = scope
        self._root = session_id
        self._children = include_children
        self._output = include_output
        self._cursors: dict[str, _Cursor] = {}

    async def events(self) -> AsyncIterator[pb.SessionEvent]:
        """The snapshot, then every change until the session is complete,
        cancelled, failed or paused (:data:`ENDS_A_WATCH`)."""
        with self._db.hub.session_feed() as feed:
            feed.watched.add(self._root)
            async with self._db.read(snapshot=True) as conn:
                first = await self._snapshot(conn, feed)
            for event in first:
                yield event
            while not self._ended():
                try:
                    sessions, outputs, resync = await feed.wait()
                except HubClosed:
                    return
                if resync:
                    sessions = set(self._cursors)
                    outputs = {(sid, seq) for sid, cur in self._cursors.items() for seq in cur.open}
                async with self._db.read(snapshot=True) as conn:
                    events = await self._refresh(conn, feed, sessions, outputs)
                for event in events:
                    yield event

    def _ended(self) -> bool:
        root = self._cursors.get(self._root)
        return root is None or root.status in ENDS_A_WATCH

    async def _snapshot(self, conn: AsyncConnection, feed: SessionFeed) -> list[pb.SessionEvent]:
        head = await head_row(conn, self._scope, self._root)
        if head is None:
            raise NotFound(f"session {self._root} not found")
        snapshot = session_of(head)
        snapshot.waiting_for = (await self._waiting(conn, [head])).get(head["id"], "")
        cursor = self._cursor_of(head)
        rows = await conn.execute(
            select(*INTERACTION_COLUMNS).where(I.c.session_id == self._root).order_by(I.c.seq)
        )
        for row in rows.mappings():
            snapshot.interactions.append(interaction_of(row))
            self._saw(cursor, row, output_baseline=True)
        event = _event(self._root, head["version"])
        event.snapshot.CopyFrom(snapshot)
        events = [event]
        if self._children:
            children = await children_rows(conn, self._root)
            reasons = await self._waiting(conn, children)
            for child in children:
                events.append(self._adopt(feed, child, reasons.get(child["id"], "")))
            await self._output_baseline(conn)
        return events

    async def _waiting(self, conn: AsyncConnection, rows: Sequence[Row]) -> dict[str, str]:
        return await waiting.explain(conn, rows) if self._explain else {}

    def _cursor_of(self, head: Row) -> _Cursor:
        cursor = _Cursor(
            version=head["version"], last_seq=head["interaction_count"], status=head["status"]
        )
        if head["pending_seq"] is not None:
            cursor.open.add(head["pending_seq"])
        self._cursors[head["id"]] = cursor
        return cursor

    @staticmethod
    def _saw(cursor: _Cursor, row: Row, *, output_baseline: bool = False) -> None:
        cursor.last_seq = max(cursor.last_seq, row["seq"])
        if row["status"] == pb.INTERACTION_STATUS_PENDING:
            cursor.open.add(row["seq"])
        else:
            cursor.open.discard(row["seq"])
        if output_baseline and row["output_chunks"]:
            # Output stored before the snapshot is not streamed (FetchOutput has it).
            cursor.output[row["seq"]] = row["output_chunks"]

    def _adopt(self, feed: SessionFeed, child: Row, waiting_for: str) -> pb.SessionEvent:
        """Watch a child that existed at subscription, from its current state on."""
        feed.watched.add(child["id"])
        self._cursor_of(child)
        event = _event(child["id"], child["version"])
        event.session.CopyFrom(session_of(child))
        event.session.waiting_for = waiting_for
        return event

    async def _output_baseline(self, conn: AsyncConnection) -> None:
        # Output stored before the subscription is not replayed for children
        # either: start each of their interactions at its current chunk count.
        children = [sid for sid in self._cursors if sid != self._root]
        if not children:
            return
        rows = await conn.execute(
            select(I.c.session_id, I.c.seq, I.c.output_chunks).where(
                I.c.session_id.in_(children), I.c.output_chunks > 0
            )
        )
        for session_id, seq, chunks in rows:
            self._cursors[session_id].output[seq] = chunks

    async def _refresh(
        self,
        conn: AsyncConnection,
        feed: SessionFeed,
        sessions: Iterable[str],
        outputs: Iterable[tuple[str, int]],
    ) -> list[pb.SessionEvent]:
        events: list[pb.SessionEvent] = []
        for session_id in sorted(sessions, key=lambda s: (s != self._root, s)):
            events.extend(await self._refresh_session(conn, feed, session_id))
        if self._output:
            for session_id, seq in sorted(outputs):
                events.extend(await self._refresh_output(conn, session_id, seq))
        return events

    async def _refresh_session(
        self, conn: AsyncConnection, feed: SessionFeed, session_id: str
    ) -> list[pb.SessionEvent]:
        head = await head_row(conn, self._scope, session_id)
        if head is None:  # pruned
            self._cursors.pop(session_id, None)
            feed.watched.discard(session_id)
            return []
        cursor = self._cursors.setdefault(session_id, _Cursor())
        events: list[pb.SessionEvent] = []
        if head["version"] > cursor.version:
            version = head["version"]
            start = min(cursor.open | {cursor.last_seq + 1})
            rows = await conn.execute(
                select(*INTERACTION_COLUMNS)
                .where(I.c.session_id == session_id, I.c.seq >= start)
                .order_by(I.c.seq)
            )
            for row in rows.mappings():
                changed = row["seq"] > cursor.last_seq or (
                    row["seq"] in cursor.open and row["status"] != pb.INTERACTION_STATUS_PENDING
                )
                if changed:
                    event = _event(session_id, version)
                    event.interaction.CopyFrom(interaction_of(row))
                    events.append(event)
                self._saw(cursor, row)
            # The head comes last: its status is the state after these changes.
            event = _event(session_id, version)
            event.session.CopyFrom(session_of(head))
            event.session.waiting_for = (await self._waiting(conn, [head])).get(session_id, "")
            events.append(event)
            cursor.version = version
            cursor.status = head["status"]
        if session_id == self._root and self._children:
            child_ids = await conn.execute(
                select(S.c.id).where(S.c.parent_id == self._root).order_by(S.c.created_at, S.c.id)
            )
            for child_id in child_ids.scalars().all():
                if child_id not in self._cursors:
                    feed.watched.add(child_id)
                    events.extend(await self._refresh_session(conn, feed, child_id))
        return events

    async def _refresh_output(
        self, conn: AsyncConnection, session_id: str, seq: int
    ) -> list[pb.SessionEvent]:
        cursor = self._cursors.get(session_id)
        if cursor is None:
            return []
        start = cursor.output.get(seq, 0)
        rows = await conn.execute(
            select(*O.c, I.c.id.label("interaction_id"))
            .join(I, (I.c.session_id == O.c.session_id) & (I.c.seq == O.c.seq))
            .where(O.c.session_id == session_id, O.c.seq == seq, O.c.idx >= start)
            .order_by(O.c.idx)
        )
        events = []
        for row in rows.mappings():
            event = _event(session_id, cursor.version)
            event.output.CopyFrom(chunk_of(row, row["interaction_id"]))
            events.append(event)
            cursor.output[seq] = row["idx"] + 1
        return events


async def work_signals(db: Database, nudge_seconds: float) -> AsyncIterator[spb.WatchWorkResponse]:
    """Signals that work may be claimable: one "anything" at once, then changes and nudges."""
    with db.hub.work_feed() as feed:
        # The subscriber cannot know what became claimable before it
        # subscribed, so the first signal says "look at everything".
        yield spb.WatchWorkResponse(join=True)
        while True:
            try:
                signals = await feed.wait(nudge_seconds)
            except HubClosed:
                return
            if not signals:
                # Leases expire silently; the nudge makes that work reclaimable.
                yield spb.WatchWorkResponse(join=True)
                continue
            for account, project, join in sorted(signals):
                yield spb.WatchWorkResponse(account_id=account, project_id=project, join=join)
