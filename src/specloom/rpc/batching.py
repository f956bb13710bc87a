"""Turning many concurrent single calls into a few batch calls, with no timer.

Every step of every session crosses two gRPC hops, and on this stack one
hop costs about as much CPU as deciding the step. A :class:`Coalescer`
sits in front of a batch RPC: callers make ordinary single calls; calls
made in the same turn of the event loop leave together, and while
``max_in_flight`` batches are out, new calls queue and leave with the next
batch. At low load a call goes alone and at once; under load batches grow
by themselves. Nothing ever waits for a timer, so batching adds no latency.

A batch is bounded in bytes as well as in calls (``max_batch_bytes``, with
``size`` measuring each request): a batch is one message, and calls that
each fit in a message must not fail together because their sum does not.
A call larger than the budget goes alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, NamedTuple, TypeVar

from opentelemetry.context import Context
from prometheus_client import Histogram

from specloom.rpc.server import MAX_MESSAGE_BYTES
from specloom.rpc.tracing import batch_span, caller_context

BATCH_SIZE = Histogram(
    "specloom_batch_size",
    "Single calls carried per batch call, by coalescer.",
    ["name"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000),
)

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Outcome = TypeVar("Outcome")

ANSWER_BYTES = MAX_MESSAGE_BYTES - 64 * 1024
"""Outcomes one batch answer carries, in bytes (the rest is headroom)."""

SendBatch = Callable[[list[Req]], Awaitable[Sequence[Resp | BaseException]]]


class _Queued(NamedTuple, Generic[Req, Resp]):
    """One single call waiting for its batch."""

    request: Req
    future: asyncio.Future[Resp]
    caller: Context | None
    """The caller's trace context (None: tracing off)."""
    size: int
    """The request's size in bytes (0 when batches are not bounded in bytes)."""


class Coalescer(Generic[Req, Resp]):
    """Single calls in, batch calls out (see the module doc)."""

    def __init__(
        self,
        send: Callable[[list[Req]], Awaitable[Sequence[Resp | BaseException]]],
        *,
        max_batch: int = 256,
        max_in_flight: int = 2,
        name: str = "batch",
        size: Callable[[Req], int] | None = None,
        max_batch_bytes: int = 0,
    ) -> None:
        if max_batch < 1 or max_in_flight < 1:
            raise ValueError("max_batch and max_in_flight must be at least 1")
        if max_batch_bytes < 0 or (max_batch_bytes and size is None):
            raise ValueError("max_batch_bytes needs a size function and must not be negative")
        self._send = send
        self._max_batch = max_batch
        self._size = size if max_batch_bytes else None
        self._max_bytes = max_batch_bytes
        self._max_in_flight = max_in_flight
        self._name = name
        self._queue: list[_Queued[Req, Resp]] = []
        self._in_flight = 0
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._sizes = BATCH_SIZE.labels(name)
        self.batches = 0
        """Batch calls made so far (for tests and metrics)."""
        self.calls = 0
        """Single calls carried so far."""

    async def call(self, request: Req) -> Resp:
        """Send ``request`` (in some batch) and return its own outcome."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Resp] = loop.create_future()
        size = self._size(request) if self._size is not None else 0
        self._queue.append(_Queued(request, future, caller_context(), size))
        self._schedule(loop)
        return await future

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        # call_soon, not now: every call made in this turn of the loop
        # (a wave of reports arriving together) joins the same batch.
        if not self._scheduled and self._queue and self._in_flight < self._max_in_flight:
            self._scheduled = True
            loop.call_soon(self._start)

    def _start(self) -> None:
        self._scheduled = False
        while self._queue and self._in_flight < self._max_in_flight:
            batch = self._queue[: self._take()]
            del self._queue[: len(batch)]
            self._in_flight += 1
            task = asyncio.ensure_future(self._flush(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _take(self) -> int:
        """How many queued calls the next batch carries (at least one)."""
        count = min(len(self._queue), self._max_batch)
        if not self._max_bytes:
            return count
        total = 0
        for index in range(count):
            total += self._queue[index].size
            if total > self._max_bytes:
                return max(index, 1)
        return count

    async def _flush(self, batch: list[_Queued[Req, Resp]]) -> None:
        self.batches += 1
        self.calls += len(batch)
        self._sizes.observe(len(batch))
        try:
            with batch_span(self._name, [queued.caller for queued in batch]):
                outcomes = await self._send([queued.request for queued in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(
                    f"a batch of {len(batch)} calls came back with {len(outcomes)} outcomes"
                )
        except BaseException as exc:
            # The whole batch failed (the peer is unreachable): every caller
            # gets the error its own single call would have got.
            for queued in batch:
                future = queued.future
                if not future.done():
                    future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            for queued, outcome in zip(batch, outcomes, strict=True):
                future = queued.future
                if future.done():
                    continue  # its caller gave up waiting
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
        finally:
            self._in_flight -= 1
            self._schedule(asyncio.get_running_loop())

    async def close(self) -> None:
        """Wait for batches in flight (queued calls are sent first)."""
        while self._tasks or self._queue:
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            else:
                await asyncio.sleep(0)


def fit_answer(
    outcomes: Sequence[Outcome],
    size: Callable[[Outcome], int],
    left_out: Callable[[], Outcome],
    budget: int = ANSWER_BYTES,
) -> list[Outcome]:
    """A batch's outcomes cut to fit in one answer message.

    A batch answer echoes every item with its session head, so twenty small
    writes to large sessions can answer with more than a message carries;
    sent anyway, the whole call would fail after every item was done. The
    outcomes past the budget become ``left_out()`` instead: an error telling
    the caller its item was done and to ask again on its own.
    """
    kept: list[Outcome] = []
    total = 0
    for outcome in outcomes:
        total += size(outcome)
        kept.append(outcome if total <= budget else left_out())
    return kept
