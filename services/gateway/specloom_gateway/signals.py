"""The gateway's subscription to Sessions' work signals (``WatchWork``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from specloom.errors import SpecloomError
from specloom.v1 import sessions_pb2 as spb
from specloom_gateway.hub import ScopeKey
from specloom_gateway.upstream import Upstream

log = logging.getLogger("specloom.gateway.signals")

MAX_BACKOFF = 10.0


async def watch_work(
    upstream: Upstream,
    on_work: Callable[[ScopeKey | None], None],
    on_join: Callable[[], None],
) -> None:
    """Forward work signals forever, resubscribing with backoff when the stream breaks.

    Signals sent while the stream was down are lost, so every (re)subscription
    is followed by a claim for every scope and a join pass: nothing waits
    for the next sweep.
    """
    delay = 0.1
    while True:
        try:
            stream = upstream.stream(
                upstream.sessions.WatchWork, spb.WatchWorkRequest(), wait_for_ready=True
            )
            first = True
            async for signal in stream:
                if first:
                    first = False
                    delay = 0.1
                    on_work(None)
                    on_join()
                if signal.join:
                    on_join()
                if signal.account_id:
                    on_work((signal.account_id, signal.project_id))
                elif not signal.join:
                    # A periodic nudge names no scope: anything may be claimable.
                    on_work(None)
                    on_join()
            log.info("work signal stream ended; subscribing again")
        except SpecloomError as exc:
            log.warning("work signal stream failed (%s); retrying in %.1f s", exc.message, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_BACKOFF)
        on_work(None)
        on_join()
