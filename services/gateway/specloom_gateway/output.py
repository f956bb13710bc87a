"""Command output from executors, batched into ``AppendOutput`` calls.

Executors send many small chunks; writing each one would cost a database
transaction per line. Chunks of one interaction are buffered and written
together when the buffer is large enough, on a timer, and always before the
interaction's result is reported (so a finished step's output is complete
when its result becomes visible). Writes of one interaction are serialised
by a lock: two overlapping flushes could otherwise store chunks out of order.
Output is best-effort: a failed write is logged and dropped, never allowed
to fail the command.
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


@dataclass
class _Pending:
    session_id: str
    parts: list[spb.OutputPart] = field(default_factory=list)
    size: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class OutputBuffer:
    """Buffered output of the commands one executor stream is running."""

    def __init__(
        self, upstream: Upstream, scope: pb.Scope, *, flush_bytes: int, chunk_bytes: int
    ) -> None:
        self._upstream = upstream
        self._scope = scope
        self._flush_bytes = flush_bytes
        self._chunk_bytes = chunk_bytes
        self._pending: dict[str, _Pending] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, session_id: str, interaction_id: str, stream: int, data: bytes) -> None:
        """Buffer a chunk; starts a write when the buffer is full."""
        if not data:
            return
        pending = self._pending.get(interaction_id)
        if pending is None:
            pending = self._pending[interaction_id] = _Pending(session_id)
        # A chunk larger than the agreed size is split rather than refused:
        # Sessions stores chunks, and huge ones make reads lumpy.
        for start in range(0, len(data), self._chunk_bytes):
            piece = data[start : start + self._chunk_bytes]
            pending.parts.append(spb.OutputPart(stream=stream, data=piece))  # type: ignore[arg-type]
            pending.size += len(piece)
        if pending.size >= self._flush_bytes:
            task = asyncio.create_task(self.flush(interaction_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def flush(self, interaction_id: str) -> None:
        """Write what is buffered for one interaction (no-op when nothing is)."""
        pending = self._pending.get(interaction_id)
        if pending is None:
            return
        async with pending.lock:
            parts, pending.parts, pending.size = pending.parts, [], 0
            if not parts:
                return
            try:
                await self._upstream.call(
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
                    "dropped %d output chunks of interaction %s: %s",
                    len(parts),
                    interaction_id,
                    exc.message,
                )

    async def flush_all(self) -> None:
        """Write everything buffered."""
        await asyncio.gather(*(self.flush(key) for key in list(self._pending)))

    async def finish(self, interaction_id: str) -> None:
        """Write what is left of one interaction's output and forget it."""
        await self.flush(interaction_id)
        pending = self._pending.get(interaction_id)
        if pending is not None and not pending.parts and not pending.lock.locked():
            del self._pending[interaction_id]

    def holds(self, interaction_id: str) -> bool:
        """Whether anything of the interaction's output is buffered or being written."""
        return interaction_id in self._pending

    def drop(self, interaction_id: str) -> None:
        """Forget an interaction's buffered output (its lease was lost)."""
        self._pending.pop(interaction_id, None)
