"""Command output from executors, written to Sessions in bounded batches.

Executors send many small chunks; writing each one would cost a database
transaction per line. Chunks of one interaction are buffered and written
together when the buffer is large enough, on a timer, and always before the
interaction's result is reported (so a finished step's output is complete
when its result becomes visible). Writes of one interaction are serialised
by a lock: two overlapping writes could otherwise store chunks out of order.

Two bounds keep a burst from being lost:

- every ``AppendOutput`` carries at most about ``flush_bytes``: a flush
  empties the buffer in as many writes as it takes, never in one write past
  the message cap;
- a stream holds at most ``limit_bytes`` unwritten: past that, :meth:`add`
  waits for the writes to catch up. The stream's reader is the one waiting,
  so the executor's further messages wait in gRPC's flow control and the
  executor's sender blocks — back-pressure down to the command's pipe,
  instead of a buffer that grows with whatever the executor sends.

Output is best-effort: a failed write is logged and its chunks dropped,
never allowed to fail the command. But a cut never goes unsaid: when
Sessions' per-interaction cap is reached it stores a marker itself; when
chunks were dropped here, :meth:`finish` stores a marker saying how many
bytes and why; either way the result is reported with ``output_truncated``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from specloom.errors import SpecloomError
from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb
from specloom_gateway.upstream import Upstream

log = logging.getLogger("specloom.gateway.output")

_PASSING = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "ABORTED"})
"""Failures of Sessions that pass (a restart): worth waiting out for a marker."""


@dataclass
class _Pending:
    session_id: str
    parts: list[spb.OutputPart] = field(default_factory=list)
    size: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    capped: bool = False
    """Sessions said the interaction's output cap is reached (and marked it)."""
    dropped: int = 0
    """Bytes dropped here (failed writes, past the cap)."""
    reason: str = ""
    """Why the first dropped bytes were dropped."""


class OutputBuffer:
    """Buffered output of the commands one executor stream is running."""

    def __init__(
        self,
        upstream: Upstream,
        scope: pb.Scope,
        *,
        flush_bytes: int,
        chunk_bytes: int,
        limit_bytes: int,
    ) -> None:
        self._upstream = upstream
        self._scope = scope
        self._flush_bytes = flush_bytes
        self._chunk_bytes = chunk_bytes
        self._limit = max(limit_bytes, flush_bytes)
        self._pending: dict[str, _Pending] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._buffered = 0
        """Bytes buffered over every interaction of the stream."""
        self._drained = asyncio.Event()
        self._drained.set()
        self.cut: set[str] = set()
        """Interactions whose output was cut (their result says so)."""

    async def add(self, session_id: str, interaction_id: str, stream: int, data: bytes) -> None:
        """Buffer a chunk; starts a write when the buffer is full; waits while
        the stream has more than its limit unwritten (back-pressure)."""
        if not data:
            return
        pending = self._pending.get(interaction_id)
        if pending is None:
            pending = self._pending[interaction_id] = _Pending(session_id)
        if pending.capped:
            # Sessions keeps no more of this interaction: do not send it.
            pending.dropped += len(data)
            return
        # A chunk larger than the agreed size is split rather than refused:
        # Sessions stores chunks, and huge ones make reads lumpy.
        for start in range(0, len(data), self._chunk_bytes):
            piece = data[start : start + self._chunk_bytes]
            pending.parts.append(spb.OutputPart(stream=stream, data=piece))  # type: ignore[arg-type]
            pending.size += len(piece)
            self._buffered += len(piece)
        if pending.size >= self._flush_bytes and not pending.lock.locked():
            task = asyncio.create_task(self.flush(interaction_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        while self._buffered > self._limit:
            self._drained.clear()
            await self._drained.wait()

    def _taken(self, size: int) -> None:
        self._buffered -= size
        if self._buffered <= self._limit:
            self._drained.set()

    async def flush(self, interaction_id: str) -> None:
        """Write what is buffered for one interaction (no-op when nothing is)."""
        pending = self._pending.get(interaction_id)
        if pending is None:
            return
        async with pending.lock:
            # Chunks added while a write is out join the next one: the loop
            # ends when the buffer is empty, each write at most flush_bytes.
            while pending.parts:
                count, size = 0, 0
                while count < len(pending.parts) and (not count or size < self._flush_bytes):
                    size += len(pending.parts[count].data)
                    count += 1
                parts = pending.parts[:count]
                del pending.parts[:count]
                pending.size -= size
                try:
                    await self._write(interaction_id, pending, parts, size)
                finally:
                    self._taken(size)

    async def _write(
        self, interaction_id: str, pending: _Pending, parts: list[spb.OutputPart], size: int
    ) -> None:
        if pending.capped:
            pending.dropped += size
            return
        try:
            response = await self._upstream.call(
                self._upstream.sessions.AppendOutput,
                spb.AppendOutputRequest(
                    scope=self._scope,
                    session_id=pending.session_id,
                    interaction_id=interaction_id,
                    parts=parts,
                ),
            )
        except SpecloomError as exc:
            log.warning(
                "dropped %d output bytes of interaction %s: %s",
                size,
                interaction_id,
                exc.message,
            )
            if not pending.dropped:
                pending.reason = f"{exc.code}: {exc.message}"
            pending.dropped += size
            self.cut.add(interaction_id)
            return
        if response.truncated:
            # Sessions stored what fitted under its cap and a marker saying so.
            pending.capped = True
            self.cut.add(interaction_id)

    async def flush_all(self) -> None:
        """Write everything buffered."""
        await asyncio.gather(*(self.flush(key) for key in list(self._pending)))

    async def finish(self, interaction_id: str) -> bool:
        """Write what is left of one interaction's output, before its result.

        Returns whether its output was cut (the result then says so). What
        it knows of the cut is kept until :meth:`forget`: a result refused
        for a passing reason is reported again and must say it again.
        """
        await self.flush(interaction_id)
        pending = self._pending.get(interaction_id)
        if pending is not None and pending.dropped and not pending.capped:
            await self._mark(interaction_id, pending)
        if (
            pending is not None
            and not pending.parts
            and not pending.dropped
            and not pending.lock.locked()
        ):
            del self._pending[interaction_id]
        return interaction_id in self.cut

    async def _mark(self, interaction_id: str, pending: _Pending) -> None:
        """Store a line saying how much output was lost here, and why."""
        note = (
            f"\n[specloom: {pending.dropped} bytes of output were not stored here "
            f"({pending.reason})]\n"
        ).encode()
        try:
            await self._upstream.call(
                self._upstream.sessions.AppendOutput,
                spb.AppendOutputRequest(
                    scope=self._scope,
                    session_id=pending.session_id,
                    interaction_id=interaction_id,
                    parts=[spb.OutputPart(stream=pb.OUTPUT_STREAM_EXECUTOR, data=note)],
                ),
            )
        except SpecloomError as exc:
            log.warning("could not mark the lost output of %s: %s", interaction_id, exc.message)
            if exc.code in _PASSING:
                # The result waits: reported now, it would be visible with
                # its output cut and nothing saying so. Its resend tries again.
                raise
            return
        pending.dropped = 0

    def forget(self, interaction_id: str) -> None:
        """The interaction's result was recorded: nothing more of it is kept."""
        self.drop(interaction_id)

    def holds(self, interaction_id: str) -> bool:
        """Whether anything of the interaction's output is buffered or being written."""
        return interaction_id in self._pending

    def drop(self, interaction_id: str) -> None:
        """Forget an interaction's buffered output (its lease was lost)."""
        pending = self._pending.pop(interaction_id, None)
        self.cut.discard(interaction_id)
        if pending is not None and pending.size:
            pending.parts.clear()
            self._taken(pending.size)
            pending.size = 0
