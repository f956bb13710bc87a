"""A live session page: the stream that keeps it current without reloading it.

A session page follows ``WatchSession`` (children and output included)
and sends only what changed: the header, each changed step row, the
children tree, output chunks. A fragment equal to the last one sent is
not sent again. (The sessions list and the executors page are polled
instead: :mod:`feeds`.)

A watch ends when the session stops for a person (paused, failed) as well
as when it finishes; an open page on a stopped session re-reads its head
(:data:`STOPPED_POLL_SECONDS`) and watches again once it moves.

What a session waits for (``waiting_for``: no live executor could run its
step) changes without an event: an executor connecting, claiming or going
away writes nothing to the session. So while the session has a step
pending, its head is re-read now and then (:data:`WAITING_POLL_SECONDS`
while it waits, :data:`RUNNING_POLL_SECONDS` while it runs) and the header
and the step row follow.

The stream acts with the token of the browser it serves, through the
public API, so a revoked token ends it at the next call.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from specloom.errors import NotFound, SpecloomError, Unauthenticated, Unavailable
from specloom.protoconv import utcnow
from specloom.v1 import common_pb2 as pb
from specloom_web import render, sse
from specloom_web.gateway import Gateway
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
WAITING_POLL_SECONDS = 2.0
"""How often a session (or child) shown waiting for an executor is re-read."""
RUNNING_POLL_SECONDS = 10.0
"""How often a session with a step running is re-read, to notice its executor leaving."""
STOPPED_POLL_SECONDS = 3.0
"""How often a paused or failed session (its watch ended) is re-read for a move."""


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

    def pending(self) -> bool:
        """Whether the watched session is active with a step pending."""
        return (
            self.root is not None
            and self.root.status == pb.SESSION_STATUS_ACTIVE
            and any(i.status == pb.INTERACTION_STATUS_PENDING for i in self.interactions.values())
        )

    def reread(self, head: pb.Session) -> bool:
        """Take what a re-read head waits for; True when that changes what is shown.

        Only at the version already known: a newer head comes with its own
        event, and an older one is stale.
        """
        known = self.root if head.id == self.root_id else self.children.get(head.id)
        if known is None or known.version != head.version:
            return False
        if known.waiting_for == head.waiting_for:
            return False
        known.waiting_for = head.waiting_for
        if head.id == self.root_id:
            self.dirty_header = True
            self.dirty_steps.update(
                seq
                for seq, i in self.interactions.items()
                if i.status == pb.INTERACTION_STATUS_PENDING
            )
        else:
            self.dirty_children = True
        return True

    def full(self) -> pb.Session:
        assert self.root is not None
        session = pb.Session()
        session.CopyFrom(self.root)
        session.interactions.extend(self.interactions[seq] for seq in sorted(self.interactions))
        return session


class SessionStream:
    """One browser's live session page."""

    def __init__(
        self,
        gateway: Gateway,
        token: str,
        session_id: str,
        csrf: str,
        shown_version: int = 0,
        shown_waiting: bool = False,
    ) -> None:
        self._gateway = gateway
        self._shown_version = shown_version
        """The version the page was rendered at: its snapshot is not sent again."""
        self._shown_waiting = shown_waiting
        """Whether the page showed the session waiting (that is not versioned)."""
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
        poller = asyncio.create_task(self._poll_waiting())
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
                unchanged = (
                    bool(self._shown_version)
                    and current == self._shown_version
                    and root is not None
                    and bool(root.waiting_for) == self._shown_waiting
                )
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
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await poller

    async def _poll_waiting(self) -> None:
        """Re-read what the session and its children wait for (claims send no event)."""
        model = self._model
        root_read = time.monotonic()
        while True:
            await asyncio.sleep(WAITING_POLL_SECONDS)
            ids = [c.id for c in model.children.values() if c.waiting_for]
            if model.pending() and model.root is not None:
                due = time.monotonic() - root_read >= RUNNING_POLL_SECONDS
                if model.root.waiting_for or due:
                    root_read = time.monotonic()
                    ids.insert(0, model.root_id)
            changed = False
            for session_id in ids:
                try:
                    head = await self._client.get_session(session_id, pb.INTERACTION_VIEW_NONE)
                except SpecloomError:
                    continue  # the watch itself reports a lost token or gateway
                changed = model.reread(head) or changed
            if changed:
                self._changed.set()

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
            while True:
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
                if not await self._moved_again():
                    break
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

    async def _moved_again(self) -> bool:
        """After a watch ended: wait until a stopped session moves; False once it is over.

        A watch ends when the session finishes, and also when it stops for a
        person (paused, or failed: only a resume, retry or cancel moves it
        then). The page stays open on such a session, so its head is re-read
        every :data:`STOPPED_POLL_SECONDS` and the watch opened again once its
        version moved (by whoever moved it: this page, the CLI, a teammate).
        """
        root = self._model.root
        if root is None or root.status in (pb.SESSION_STATUS_COMPLETE, pb.SESSION_STATUS_CANCELLED):
            return False
        while True:
            await asyncio.sleep(STOPPED_POLL_SECONDS)
            head = await self._client.get_session(root.id, pb.INTERACTION_VIEW_NONE)
            if head.version != root.version:
                return True

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
            rows = {
                row.seq: row for row in steps_of(session.interactions, now, session.waiting_for)
            }
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
