"""Server-sent events: the wire format, and the count of open streams.

A live page holds one ``EventSource`` on the server; each message names a
fragment event (``replace``: elements that take the place of those with the
same id; ``output``: text to append to a step's output) and carries HTML or
JSON. Comments every :data:`KEEPALIVE_SECONDS` keep proxies from closing an
idle stream and let the server notice a browser that went away.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

KEEPALIVE_SECONDS = 15.0
RETRY_MS = 3000
"""How long a browser waits before re-opening a stream the server ended without ``end``."""


def message(event: str, data: str) -> str:
    """One event; every line of ``data`` becomes a ``data:`` line."""
    lines = data.splitlines() or [""]
    return f"event: {event}\n" + "".join(f"data: {line}\n" for line in lines) + "\n"


def json_message(event: str, payload: Any) -> str:
    """One event carrying JSON."""
    return message(event, json.dumps(payload, separators=(",", ":")))


def opening() -> str:
    """The first bytes of every stream: the reconnect delay."""
    return f"retry: {RETRY_MS}\n\n"


KEEPALIVE = ": keepalive\n\n"


class StreamLimit:
    """Counts open live streams, refuses past the limit, and ends them all at shutdown."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self.closing = asyncio.Event()
        self._wakers: set[Callable[[], None]] = set()

    def acquire(self) -> bool:
        """Take a slot; False when the console serves its maximum already."""
        if self.closing.is_set() or self.open >= self.limit:
            return False
        self.open += 1
        return True

    def release(self) -> None:
        """Give a slot back."""
        self.open -= 1

    def on_close(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call ``wake`` when shutdown begins; returns the function that unregisters it."""
        self._wakers.add(wake)
        return lambda: self._wakers.discard(wake)

    def close(self) -> None:
        """Shutdown: every stream ends at its next wake-up."""
        self.closing.set()
        for wake in list(self._wakers):
            wake()
