"""Polled live pages: one poller per (token, view), shared by every browser showing it.

The sessions list and the executors page have no watch call in the API, so
they are polled: a :class:`Feed` asks the gateway every
``web_list_refresh_seconds`` while at least one browser shows its view, and
sends the view's HTML only when what decides it changed (its digest). A
hundred tabs on the same list cost one listing per interval.

Every poll acts with the token of the browsers it serves, through the public
API, so a revoked token ends its streams at the next call.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass, field

from specloom.client import Client
from specloom.errors import SpecloomError, Unauthenticated, Unavailable
from specloom_web import sse
from specloom_web.gateway import Gateway

Poll = Callable[[Client], Awaitable[tuple[object, Callable[[], str]]]]
"""One look at a view: its digest, and how to render it (called only when the digest changed)."""


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


class Feed:
    """One poller of one view for one token, shared by every browser showing it."""

    def __init__(
        self,
        gateway: Gateway,
        token: str,
        poll: Poll,
        refresh: float,
        on_idle: Callable[[], None],
    ) -> None:
        self._gateway = gateway
        self._token = token
        self._poll = poll
        self._refresh = refresh
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
        seen: object = None
        first = True
        client = self._gateway.client(self._token)
        while True:
            try:
                digest, render = await self._poll(client)
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
            if first or digest != seen:
                first, seen = False, digest
                self._last = sse.message("replace", render())
                self._publish(self._last)
            await asyncio.sleep(self._refresh)


class Feeds:
    """The shared pollers, by (token, view key)."""

    def __init__(self, gateway: Gateway, refresh: float) -> None:
        self._gateway = gateway
        self._refresh = refresh
        self._feeds: dict[tuple[str, Hashable], Feed] = {}

    def __len__(self) -> int:
        return len(self._feeds)

    def _forget(self, key: tuple[str, Hashable]) -> None:
        self._feeds.pop(key, None)

    async def stream(
        self, token: str, view: Hashable, poll: Poll, limit: sse.StreamLimit
    ) -> AsyncIterator[str]:
        """The SSE text of one browser's live view, until it leaves or shutdown.

        ``view`` names what ``poll`` looks at: browsers with the same token
        and view share one poller (the first one's ``poll`` is used).
        """
        key = (token, view)
        feed = self._feeds.get(key)
        if feed is None:
            feed = Feed(
                self._gateway, token, poll, self._refresh, on_idle=lambda: self._forget(key)
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
