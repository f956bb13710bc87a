"""Command output, stored in chunks per interaction.

The interaction row counts its chunks and bytes. An append locks that row
before reading the counters (SQLite: the write lock), so appends to one
interaction are serialised and chunk indexes are dense and committed in
order — a watcher re-reading "chunks from index N" never skips one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, tuple_, update

from specloom.errors import NotFound
from specloom.protoconv import to_timestamp, utcnow
from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb
from specloom_sessions import tables as t
from specloom_sessions.database import Database
from specloom_sessions.rows import Row
from specloom_sessions.store._common import I, head_row

O = t.outputs  # noqa: E741 - the table, as in SQL

DEFAULT_FETCH_BYTES = 1024 * 1024
BATCH = 256


@dataclass(frozen=True)
class Appended:
    """What an append kept."""

    stored_bytes: int
    truncated: bool


def chunk_of(row: Row, interaction_id: str) -> pb.OutputChunk:
    """An output chunk from an ``outputs`` row."""
    return pb.OutputChunk(
        session_id=row["session_id"],
        interaction_id=interaction_id,
        index=row["idx"],
        stream=pb.OutputStream.ValueType(row["stream"]),
        data=row["data"],
        created_at=to_timestamp(row["created_at"]),
    )


async def append_output(
    db: Database,
    scope: pb.Scope,
    session_id: str,
    interaction_id: str,
    parts: Sequence[spb.OutputPart],
    cap: int,
) -> Appended:
    """Store ``parts`` as chunks, keeping at most ``cap`` bytes per interaction
    (and, where the cap cuts, a marker line saying so)."""
    pieces = [part for part in parts if part.data]
    total = sum(len(part.data) for part in pieces)
    now = utcnow()
    async with db.write() as tx:
        query = select(I.c.seq, I.c.output_bytes, I.c.output_chunks).where(
            I.c.id == interaction_id,
            I.c.session_id == session_id,
            I.c.account_id == scope.account_id,
            I.c.project_id == scope.project_id,
        )
        if tx.postgres:
            query = query.with_for_update()
        counted = (await tx.conn.execute(query)).first()
        if counted is None:
            raise NotFound(f"interaction {interaction_id} not found in session {session_id}")
        seq, stored, next_index = counted
        room = max(cap - stored, 0)
        rows: list[dict[str, Any]] = []
        kept = 0
        for part in pieces:
            if kept >= room:
                break
            data = part.data[: room - kept]
            rows.append(
                {
                    "session_id": session_id,
                    "seq": seq,
                    "idx": next_index + len(rows),
                    "stream": int(part.stream),
                    "data": data,
                    "created_at": now,
                }
            )
            kept += len(data)
        truncated = kept < total
        marked = 0
        if truncated and stored + kept <= cap:
            # The first append cut at the cap leaves a line saying so (past
            # the cap, so later appends see it is there and add none): the
            # stored output tells a reader it is not the whole output.
            note = f"\n[specloom: output past the cap of {cap} bytes per step was not stored]\n"
            rows.append(
                {
                    "session_id": session_id,
                    "seq": seq,
                    "idx": next_index + len(rows),
                    "stream": int(pb.OUTPUT_STREAM_EXECUTOR),
                    "data": note.encode(),
                    "created_at": now,
                }
            )
            marked = len(note.encode())
        if rows:
            await tx.conn.execute(
                update(I)
                .where(I.c.session_id == session_id, I.c.seq == seq)
                .values(
                    output_bytes=I.c.output_bytes + kept + marked,
                    output_chunks=I.c.output_chunks + len(rows),
                )
            )
            await tx.conn.execute(insert(O), rows)
            tx.changes.outputs.add((session_id, seq))
    return Appended(stored_bytes=stored + kept + marked, truncated=truncated)


async def fetch_output(
    db: Database,
    scope: pb.Scope,
    session_id: str,
    interaction_id: str,
    after_index: int,
    max_bytes: int,
) -> tuple[list[pb.OutputChunk], bool]:
    """Chunks in order, about ``max_bytes`` of them; True when more remain."""
    budget = max_bytes or DEFAULT_FETCH_BYTES
    chunks: list[pb.OutputChunk] = []
    used = 0
    async with db.read(snapshot=True) as conn:
        if await head_row(conn, scope, session_id) is None:
            raise NotFound(f"session {session_id} not found")
        query = (
            select(*O.c, I.c.id.label("interaction_id"))
            .join(I, (I.c.session_id == O.c.session_id) & (I.c.seq == O.c.seq))
            .where(O.c.session_id == session_id)
        )
        position = (0, -1)
        if interaction_id:
            seq = (
                await conn.execute(
                    select(I.c.seq).where(I.c.session_id == session_id, I.c.id == interaction_id)
                )
            ).scalar()
            if seq is None:
                raise NotFound(f"interaction {interaction_id} not found in session {session_id}")
            query = query.where(O.c.seq == seq)
            position = (seq, max(after_index, -1))
        while True:
            batch = (
                (
                    await conn.execute(
                        query.where(tuple_(O.c.seq, O.c.idx) > tuple_(*position))
                        .order_by(O.c.seq, O.c.idx)
                        .limit(BATCH)
                    )
                )
                .mappings()
                .all()
            )
            for row in batch:
                if chunks and used + len(row["data"]) > budget:
                    return chunks, True
                chunks.append(chunk_of(row, row["interaction_id"]))
                used += len(row["data"])
                position = (row["seq"], row["idx"])
            if len(batch) < BATCH:
                return chunks, False
