"""Live pages: the streams that keep an open page current without reloading it.

- The sessions list has no watch call in the API, so it is polled: one
  :class:`ListFeed` per (token, filters, page) lists the page every
  ``web_list_refresh_seconds`` while at least one browser shows it, and
  sends the table body only when a session on it changed (ids and versions
  differ). A hundred tabs on the same list cost one listing per interval.
- A session page follows ``WatchSession`` (children and output included)
  and sends only what changed: the header, each changed step row, the
  children tree, output chunks. A fragment equal to the last one sent is
  not sent again.

Every stream acts with the token of the browser it serves, through the
public API, so a revoked token ends its streams at the next call.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from specloom.errors import NotFound, SpecloomError, Unauthenticated, Unavailable
from specloom.protoconv import utcnow
from specloom.v1 import common_pb2 as pb
from specloom_web import render, sse
from specloom_web.gateway import Gateway
from specloom_web.listing import ListQuery, fetch, rows_html
from specloom_web.present import header, status_name, steps_of
from specloom_web.session_view import (
    Node,
    load_tree,
    parent_types,
    read_output,
    retry_steps,
    tree_of,
)

log = logging.getLogger("specloom.web.live")

DEBOUNCE_SECONDS = 0.1
"""A burst of watch events (a step completing writes several) is sent as one update."""
MAX_PENDING_OUTPUT = 256 * 1024
"""Output waiting to be sent per step; a browser that cannot keep up sees the newest."""


# -- the sessions list ---------------------------------------------------------------


@dataclass(eq=False)
class _Slot:
    """One browser's mailbox: the newest message, and a wake-up."""

    wake: asyncio.Event = field(default_factory=asyncio.Event)
    value: str | None = None
    ended: bool = False

    def put(self, value: str, *, end: bool = False) -> None:
        self.value = value
        self.ended = self.ended or end
        self.wake.set()


class ListFeed:
    """One poller of one list page for one token, shared by every browser showing it."""

    def __init__(
        self,
        gateway: Gateway,
        token: str,
        query: ListQuery,
        refresh: float,
        page_size: int,
        on_idle: Callable[[], None],
    ) -> None:
        self._gateway = gateway
        self._token = token
        self._query = query
        self._refresh = refresh
        self._page_size = page_size
        self._on_idle = on_idle
        self._slots: set[_Slot] = set()
        self._last: str | None = None
        self._task: asyncio.Task[None] | None = None

    def join(self) -> _Slot:
        slot = _Slot()
        if self._last is not None:
            slot.put(self._last)
        self._slots.add(slot)
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        return slot

    def leave(self, slot: _Slot) -> None:
        self._slots.discard(slot)
        if not self._slots and self._task is not None:
            self._task.cancel()
            self._task = None
            self._on_idle()

    def _publish(self, message: str, *, end: bool = False) -> None:
        for slot in self._slots:
            slot.put(message, end=end)

    async def _run(self) -> None:
        digest: tuple[object, ...] | None = None
        client = self._gateway.client(self._token)
        while True:
            try:
                sessions, next_token = await fetch(client, self._query, self._page_size)
            except Unauthenticated:
                self._publish(sse.message("signedout", "/signin"), end=True)
                return
            except Unavailable:
                self._publish(sse.message("state", "gateway unreachable; retrying"))
                await asyncio.sleep(self._refresh * 2)
                continue
            except SpecloomError as exc:
                self._publish(sse.message("state", str(exc)), end=True)
                return
            seen = (next_token, *((s.id, s.version) for s in sessions))
            if seen != digest:
                digest = seen
                self._last = sse.message("replace", rows_html(sessions, self._query))
                self._publish(self._last)
            await asyncio.sleep(self._refresh)


class ListFeeds:
    """The shared pollers, by (token, query)."""

    def __init__(self, gateway: Gateway, refresh: float, page_size: int) -> None:
        self._gateway = gateway
        self._refresh = refresh
        self._page_size = page_size
        self._feeds: dict[tuple[str, ListQuery], ListFeed] = {}

    def __len__(self) -> int:
        return len(self._feeds)

    def _forget(self, key: tuple[str, ListQuery]) -> None:
        self._feeds.pop(key, None)

    async def stream(
        self, token: str, query: ListQuery, limit: sse.StreamLimit
    ) -> AsyncIterator[str]:
        """The SSE text of one browser's live list, until it leaves or shutdown."""
        key = (token, query)
        feed = self._feeds.get(key)
        if feed is None:
            feed = ListFeed(
                self._gateway,
                token,
                query,
                self._refresh,
                self._page_size,
                on_idle=lambda: self._forget(key),
            )
            self._feeds[key] = feed
        slot = feed.join()
        unregister = limit.on_close(lambda: slot.put(sse.message("end", "shutdown"), end=True))
        try:
            yield sse.opening()
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(slot.wake.wait(), sse.KEEPALIVE_SECONDS)
                if not slot.wake.is_set():
                    yield sse.KEEPALIVE
                    continue
                slot.wake.clear()
                value, slot.value = slot.value, None
                if value is not None:
                    yield value
                if slot.ended:
                    return
        finally:
            unregister()
            feed.leave(slot)


# -- a session ------------------------------------------------------------------------


@dataclass
class _SessionModel:
    """What the stream knows of the watched session, from its events."""

    root_id: str
    root: pb.Session | None = None
    interactions: dict[int, pb.Interaction] = field(default_factory=dict)
    children: dict[str, pb.Session] = field(default_factory=dict)
    known_tree: list[Node] = field(default_factory=list)
    dirty_header: bool = False
    dirty_steps: set[int] = field(default_factory=set)
    dirty_children: bool = False
    output: dict[str, list[pb.OutputChunk]] = field(default_factory=dict)
    output_next: dict[str, int] = field(default_factory=dict)
    pending_bytes: int = 0

    def apply(self, event: pb.SessionEvent) -> None:
        which = event.WhichOneof("event")
        if event.session_id != self.root_id:
            if which in ("snapshot", "session"):
                head = event.snapshot if which == "snapshot" else event.session
                self.children[event.session_id] = head
                self.dirty_children = True
            return
        if which == "snapshot":
            self.root = pb.Session()
            self.root.CopyFrom(event.snapshot)
            self.interactions = {i.seq: i for i in event.snapshot.interactions}
            del self.root.interactions[:]
            self.dirty_header = True
            self.dirty_steps.update(self.interactions)
        elif which == "session":
            previous = self.root
            self.root = event.session
            if previous is not None and not self.root.HasField("total_usage"):
                # Heads on the watch carry their own usage, not the subtree's sum.
                self.root.total_usage.CopyFrom(previous.total_usage)
            self.dirty_header = True
        elif which == "interaction":
            self.interactions[event.interaction.seq] = event.interaction
            self.dirty_steps.add(event.interaction.seq)
            self.dirty_header = True
        elif which == "output":
            chunk = event.output
            if chunk.index < self.output_next.get(chunk.interaction_id, 0):
                return  # already sent with the stored output
            pending = self.output.setdefault(chunk.interaction_id, [])
            pending.append(chunk)
            self.pending_bytes += len(chunk.data)
            while self.pending_bytes > MAX_PENDING_OUTPUT and len(pending) > 1:
                self.pending_bytes -= len(pending.pop(0).data)

    def full(self) -> pb.Session:
        assert self.root is not None
        session = pb.Session()
        session.CopyFrom(self.root)
        session.interactions.extend(self.interactions[seq] for seq in sorted(self.interactions))
        return session


class SessionStream:
    """One browser's live session page."""

    def __init__(
        self, gateway: Gateway, token: str, session_id: str, csrf: str, shown_version: int = 0
    ) -> None:
        self._gateway = gateway
        self._shown_version = shown_version
        """The version the page was rendered at: its snapshot is not sent again."""
        self._token = token
        self._client = gateway.client(token)
        self._model = _SessionModel(session_id)
        self._csrf = csrf
        self._sent: dict[str, str] = {}
        self._changed = asyncio.Event()
        self._done: str | None = None
        self._retry_steps: list[str] = []

    async def stream(self, limit: sse.StreamLimit) -> AsyncIterator[str]:
        """The SSE text until the session ends, the browser leaves, or shutdown."""
        reader = asyncio.create_task(self._read())
        unregister = limit.on_close(lambda: self._finish("end"))
        try:
            yield sse.opening()
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), sse.KEEPALIVE_SECONDS)
                if not self._changed.is_set():
                    yield sse.KEEPALIVE
                    continue
                await asyncio.sleep(DEBOUNCE_SECONDS)
                self._changed.clear()
                await self._refresh_total_usage()
                # The page was rendered at some version: while the session is
                # still at it, the first update would repeat what the page shows.
                # Remember it (so only later changes go out) without sending it,
                # rather than replace the page under the reader. Compared with
                # the version the update is rendered from, not the snapshot's:
                # changes folded in since must go out.
                root = self._model.root
                current = root.version if root is not None else -1
                unchanged = bool(self._shown_version) and current == self._shown_version
                self._shown_version = 0
                updates = self._updates(utcnow())
                if unchanged:
                    updates = [u for u in updates if not _rendered_by_page(u)]
                for text in updates:
                    yield text
                if self._done is not None:
                    yield sse.message(self._done, "")
                    return
        finally:
            unregister()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def _refresh_total_usage(self) -> None:
        """Re-read the usage summed with the children when a child moved.

        Watch events carry each session's own usage; the sum over a subtree
        comes only with GetSession (one call per batch of child changes).
        """
        model = self._model
        if model.root is None or not model.children:
            return
        if not model.dirty_children and model.root.HasField("total_usage"):
            return
        try:
            head = await self._client.get_session(model.root_id, pb.INTERACTION_VIEW_NONE)
        except SpecloomError:
            return  # the stream itself reports a lost token or gateway
        model.root.total_usage.CopyFrom(head.total_usage)
        model.dirty_header = True

    def _finish(self, how: str) -> None:
        if self._done is None:
            self._done = how
        self._changed.set()

    async def _read(self) -> None:
        model = self._model
        try:
            workflows = await self._gateway.workflows(self._token)
            parents = parent_types(workflows)
            first = True
            async for event in self._client.watch(
                model.root_id, include_children=True, include_output=True
            ):
                model.apply(event)
                if first and model.root is not None:
                    first = False
                    self._retry_steps = retry_steps(workflows, model.root)
                    if model.root.type in parents:
                        model.known_tree = await load_tree(self._client, model.root_id, parents)
                    await self._stored_output()
                self._changed.set()
            self._finish("end")
        except Unauthenticated:
            self._finish("signedout")
        except NotFound:
            self._finish("end")
        except Unavailable:
            # No "end": the browser re-opens the stream after the retry delay.
            self._finish("close")
        except SpecloomError as exc:
            log.warning("live session stream of %s stopped: %s", model.root_id, exc)
            self._finish("end")

    async def _stored_output(self) -> None:
        """Output of running steps stored before the watch began (the watch sends only newer)."""
        for interaction in self._model.interactions.values():
            if interaction.status != pb.INTERACTION_STATUS_PENDING:
                continue
            output = await read_output(self._client, self._model.root_id, interaction.id)
            self._model.output_next[interaction.id] = output.next_index
            self._model.output[interaction.id] = []
            self._sent[f"output-replace-{interaction.id}"] = sse.json_message(
                "output",
                {
                    "id": interaction.id,
                    "text": output.text,
                    "next": output.next_index,
                    "replace": True,
                },
            )

    def _send(self, key: str, html: str) -> str | None:
        if self._sent.get(key) == html:
            return None
        self._sent[key] = html
        return sse.message("replace", html)

    def _updates(self, now: dt.datetime) -> list[str]:
        model = self._model
        out: list[str] = []
        if model.root is None:
            return out
        for key in [k for k in self._sent if k.startswith("output-replace-")]:
            out.append(self._sent.pop(key))
        session = model.full()
        # Steps and children first, the header (with the status) last: a reader
        # who sees the new status sees the steps that led to it.
        if model.dirty_steps:
            rows = {row.seq: row for row in steps_of(session.interactions, now)}
            for seq in sorted(model.dirty_steps):
                if seq in rows:
                    message = self._send(
                        f"step-{seq}", render.fragment("step_row", session.id, rows[seq])
                    )
                    if message:
                        out.append(message)
            model.dirty_steps.clear()
        if model.dirty_children:
            model.dirty_children = False
            ordered = ordered_children(list(model.children.values()))
            nodes = tree_of(ordered, model.known_tree)
            message = self._send("children", render.fragment("children", nodes))
            if message:
                out.append(message)
        if model.dirty_header:
            model.dirty_header = False
            h = header(session, now)
            for key, html in (
                ("header", render.fragment("header", h)),
                (
                    "actions",
                    render.fragment(
                        "actions",
                        session.id,
                        status_name(session.status),
                        # Retry waits for a running step's result (the API refuses it).
                        [] if _running(session) else self._retry_steps,
                        self._csrf,
                    ),
                ),
            ):
                message = self._send(key, html)
                if message:
                    out.append(message)
        for interaction_id, chunks in model.output.items():
            if not chunks:
                continue
            text = b"".join(c.data for c in chunks).decode("utf-8", errors="replace")
            next_index = chunks[-1].index + 1
            model.output_next[interaction_id] = next_index
            out.append(
                sse.json_message(
                    "output",
                    {
                        "id": interaction_id,
                        "text": text,
                        "next": next_index,
                        "first": chunks[0].index,
                    },
                )
            )
            chunks.clear()
        model.pending_bytes = 0
        return out


def _running(session: pb.Session) -> bool:
    return any(i.status == pb.INTERACTION_STATUS_PENDING for i in session.interactions)


def _rendered_by_page(message: str) -> bool:
    """Header, actions and step rows: what a page rendered at the snapshot's version shows.

    Children are sent anyway: their versions are not the session's, and they
    may have moved between the page's render and the watch's start.
    """
    return message.startswith("event: replace") and 'id="children"' not in message


def ordered_children(children: Sequence[pb.Session]) -> list[pb.Session]:
    """Children oldest first, as the API lists them."""
    return sorted(children, key=lambda c: (c.created_at.seconds, c.created_at.nanos, c.id))
