"""Change notification: which sessions changed, which output grew, where work appeared.

Notifications carry ids only. A watcher that hears "session X changed"
re-reads X from the database from where it last was (by version and
``seq``), so a notification can be coalesced, duplicated or arrive late
without an event being lost or repeated, and nothing depends on
PostgreSQL's 8 kB payload limit.

Transport: on PostgreSQL every write sends ``pg_notify`` inside its own
transaction (delivered at commit, dropped on rollback) and each process
LISTENs on one channel, so watchers on any replica hear every write. On
SQLite (one process) writes publish to the in-process :class:`Hub` after
commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field

import psycopg

log = logging.getLogger("specloom.sessions.events")

CHANNEL = "specloom_sessions"
"""The one LISTEN/NOTIFY channel."""
MAX_PAYLOAD = 7000
"""Bytes per NOTIFY payload (PostgreSQL's limit is 8000); larger change sets are split."""


@dataclass
class Changes:
    """What one transaction changed, by id."""

    sessions: set[str] = field(default_factory=set)
    """Sessions whose head or history changed."""
    outputs: set[tuple[str, int]] = field(default_factory=set)
    """(session id, interaction seq) pairs that got output."""
    work: set[tuple[str, str, bool]] = field(default_factory=set)
    """(account, project, join) where work may have become claimable."""

    def __bool__(self) -> bool:
        return bool(self.sessions or self.outputs or self.work)

    def update(self, other: Changes) -> None:
        """Add ``other`` into this set."""
        self.sessions |= other.sessions
        self.outputs |= other.outputs
        self.work |= other.work

    def payloads(self) -> list[str]:
        """NOTIFY payloads (JSON), each under :data:`MAX_PAYLOAD` bytes."""
        items: list[tuple[str, object]] = [("s", s) for s in sorted(self.sessions)]
        items += [("o", [s, q]) for s, q in sorted(self.outputs)]
        items += [("w", [a, p, j]) for a, p, j in sorted(self.work)]
        payloads: list[str] = []
        batch: dict[str, list[object]] = {}
        size = 2
        for key, value in items:
            cost = len(json.dumps(value)) + 8
            if batch and size + cost > MAX_PAYLOAD:
                payloads.append(json.dumps(batch, separators=(",", ":")))
                batch, size = {}, 2
            batch.setdefault(key, []).append(value)
            size += cost
        if batch:
            payloads.append(json.dumps(batch, separators=(",", ":")))
        return payloads

    @classmethod
    def parse(cls, payload: str) -> Changes:
        """The changes of one payload (ValueError when malformed)."""
        data = json.loads(payload)
        if not isinstance(data, dict):
            raise ValueError("payload is not an object")
        changes = cls()
        changes.sessions = {str(s) for s in data.get("s", [])}
        changes.outputs = {(str(s), int(q)) for s, q in data.get("o", [])}
        changes.work = {(str(a), str(p), bool(j)) for a, p, j in data.get("w", [])}
        return changes


class HubClosed(Exception):
    """The server is shutting down: watch streams end so clients reconnect elsewhere."""


class SessionFeed:
    """One watcher's view of the hub: which of its sessions are dirty."""

    def __init__(self) -> None:
        self.closed = False
        self.watched: set[str] = set()
        self.sessions: set[str] = set()
        self.outputs: set[tuple[str, int]] = set()
        self.resync = False
        self._wake = asyncio.Event()

    def mark(self, changes: Changes) -> None:
        hit = False
        for session_id in changes.sessions & self.watched:
            self.sessions.add(session_id)
            hit = True
        for session_id, seq in changes.outputs:
            if session_id in self.watched:
                self.outputs.add((session_id, seq))
                hit = True
        if hit:
            self._wake.set()

    def mark_all(self) -> None:
        self.resync = True
        self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def wait(self) -> tuple[set[str], set[tuple[str, int]], bool]:
        """Wait for something to re-read; returns and clears the dirty sets.

        Raises :class:`HubClosed` once the server is shutting down.
        """
        await self._wake.wait()
        if self.closed:
            raise HubClosed
        self._wake.clear()
        dirty = (self.sessions, self.outputs, self.resync)
        self.sessions, self.outputs, self.resync = set(), set(), False
        return dirty


class WorkFeed:
    """One WatchWork stream's pending signals (coalesced)."""

    def __init__(self) -> None:
        self.signals: set[tuple[str, str, bool]] = set()
        self.closed = False
        self._wake = asyncio.Event()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    def mark(self, signals: Iterable[tuple[str, str, bool]]) -> None:
        before = len(self.signals)
        self.signals.update(signals)
        if len(self.signals) != before:
            self._wake.set()

    async def wait(self, nudge_after: float) -> set[tuple[str, str, bool]]:
        """Signals since the last call; empty after ``nudge_after`` seconds without any."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), nudge_after)
        if self.closed:
            raise HubClosed
        self._wake.clear()
        signals, self.signals = self.signals, set()
        return signals


class Hub:
    """In-process fan-out of changes to watch streams."""

    def __init__(self) -> None:
        self._session_feeds: set[SessionFeed] = set()
        self._work_feeds: set[WorkFeed] = set()
        self.closed = False

    def close(self) -> None:
        """End every watch stream now (a graceful stop begins).

        Watches live as long as their clients like; left alone they would
        hold the server's shutdown for the whole grace period. Ending them
        lets clients reconnect to another replica right away.
        """
        self.closed = True
        for feed in self._session_feeds:
            feed.close()
        for work_feed in self._work_feeds:
            work_feed.close()

    def publish(self, changes: Changes) -> None:
        """Deliver ``changes`` to every interested feed."""
        if changes.sessions or changes.outputs:
            for feed in self._session_feeds:
                feed.mark(changes)
        if changes.work:
            for work_feed in self._work_feeds:
                work_feed.mark(changes.work)

    def resync(self) -> None:
        """Notifications may have been missed: every watcher re-reads everything."""
        for feed in self._session_feeds:
            feed.mark_all()
        for work_feed in self._work_feeds:
            work_feed.mark([("", "", True)])

    @contextlib.contextmanager
    def session_feed(self) -> Iterator[SessionFeed]:
        """A feed registered for the duration of the block."""
        feed = SessionFeed()
        if self.closed:
            feed.close()
        self._session_feeds.add(feed)
        try:
            yield feed
        finally:
            self._session_feeds.discard(feed)

    @contextlib.contextmanager
    def work_feed(self) -> Iterator[WorkFeed]:
        """A work feed registered for the duration of the block."""
        feed = WorkFeed()
        if self.closed:
            feed.close()
        self._work_feeds.add(feed)
        try:
            yield feed
        finally:
            self._work_feeds.discard(feed)


class PgListener:
    """LISTENs on :data:`CHANNEL` and publishes what it hears to the hub."""

    def __init__(self, conninfo: str, hub: Hub) -> None:
        self._conninfo = conninfo
        self._hub = hub
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    async def start(self, within: float = 10.0) -> None:
        """Start listening; returns once LISTEN is in effect."""
        self._task = asyncio.create_task(self._run(), name="sessions-pg-listener")
        waiter = asyncio.create_task(self._listening.wait())
        done, _ = await asyncio.wait(
            {waiter, self._task}, timeout=within, return_when=asyncio.FIRST_COMPLETED
        )
        if waiter not in done:
            waiter.cancel()
            if self._task in done:
                self._task.result()  # raises what broke it
            raise TimeoutError("could not LISTEN on the sessions database")

    async def close(self) -> None:
        """Stop listening."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        backoff = 0.1
        first = True
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self._listening.set()
                    if not first:
                        # Writes committed while we were away were not heard.
                        self._hub.resync()
                    first = False
                    backoff = 0.1
                    async for notify in _notifies(conn):
                        try:
                            self._hub.publish(Changes.parse(notify))
                        except (ValueError, TypeError):
                            log.warning("ignoring a malformed notification on %s", CHANNEL)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the connection dropped: reconnect
                if first and not self._listening.is_set() and backoff >= 3.2:
                    raise
                log.warning("sessions LISTEN connection lost (%s); reconnecting", exc)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)


async def _notifies(conn: psycopg.AsyncConnection[object]) -> AsyncIterator[str]:
    async for notify in conn.notifies():
        yield notify.payload
