"""Output chunks: stored in order as bytes, capped per interaction, read in pages."""

from __future__ import annotations

import grpc

from specloom.ids import new_id
from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb
from tests.fixtures.sessions_server import SessionsUnderTest, StartSessions
from tests.sessions.helpers import code_of, create, ok, pending, scope, step


def _parts(*chunks: bytes) -> list[spb.OutputPart]:
    return [spb.OutputPart(stream=pb.OUTPUT_STREAM_STDOUT, data=c) for c in chunks]


async def test_output_is_stored_and_read_back_in_order(sessions_service: SessionsUnderTest) -> None:
    stub, md = sessions_service.stub, sessions_service.metadata
    where = scope()
    session = await create(sessions_service, where)
    first = session.interactions[0]
    appended = await stub.AppendOutput(
        spb.AppendOutputRequest(
            scope=where,
            session_id=session.id,
            interaction_id=first.id,
            parts=[
                *_parts(b"line 1\n", b""),
                spb.OutputPart(stream=pb.OUTPUT_STREAM_STDERR, data=b"\x80\x81 bad utf-8"),
            ],
        ),
        metadata=md,
    )
    assert (appended.stored_bytes, appended.truncated) == (19, False)
    second = (
        await step(sessions_service, where, session, ok(), next_step=pending("Two"))
    ).appended[0]
    await stub.AppendOutput(
        spb.AppendOutputRequest(
            scope=where, session_id=session.id, interaction_id=second.id, parts=_parts(b"two")
        ),
        metadata=md,
    )
    # Output of an earlier interaction may still arrive after the next began.
    await stub.AppendOutput(
        spb.AppendOutputRequest(
            scope=where, session_id=session.id, interaction_id=first.id, parts=_parts(b"late")
        ),
        metadata=md,
    )

    whole = await stub.FetchOutput(
        spb.FetchOutputRequest(scope=where, session_id=session.id), metadata=md
    )
    assert [(c.interaction_id, c.index, c.data) for c in whole.chunks] == [
        (first.id, 0, b"line 1\n"),
        (first.id, 1, b"\x80\x81 bad utf-8"),
        (first.id, 2, b"late"),
        (second.id, 0, b"two"),
    ]
    assert whole.chunks[1].stream == pb.OUTPUT_STREAM_STDERR
    assert not whole.more

    one = await stub.FetchOutput(
        spb.FetchOutputRequest(
            scope=where, session_id=session.id, interaction_id=first.id, after_index=1
        ),
        metadata=md,
    )
    assert [c.data for c in one.chunks] == [b"late"]
    start = await stub.FetchOutput(
        spb.FetchOutputRequest(
            scope=where, session_id=session.id, interaction_id=first.id, after_index=-1
        ),
        metadata=md,
    )
    assert [c.index for c in start.chunks] == [0, 1, 2]
    unset = await stub.FetchOutput(
        spb.FetchOutputRequest(scope=where, session_id=session.id, interaction_id=first.id),
        metadata=md,
    )
    assert [c.index for c in unset.chunks] == [0, 1, 2]
    # A pager whose first page held only chunk 0 asks for what follows it.
    after_first = await stub.FetchOutput(
        spb.FetchOutputRequest(
            scope=where, session_id=session.id, interaction_id=first.id, after_index=0
        ),
        metadata=md,
    )
    assert [c.index for c in after_first.chunks] == [1, 2]


async def test_fetch_pages_by_bytes(sessions_service: SessionsUnderTest) -> None:
    stub, md = sessions_service.stub, sessions_service.metadata
    where = scope()
    session = await create(sessions_service, where)
    iid = session.interactions[0].id
    await stub.AppendOutput(
        spb.AppendOutputRequest(
            scope=where,
            session_id=session.id,
            interaction_id=iid,
            parts=_parts(*(bytes([65 + n]) * 100 for n in range(10))),
        ),
        metadata=md,
    )
    got: list[bytes] = []
    after = -1
    while True:
        page = await stub.FetchOutput(
            spb.FetchOutputRequest(
                scope=where,
                session_id=session.id,
                interaction_id=iid,
                after_index=after,
                max_bytes=250,
            ),
            metadata=md,
        )
        assert 1 <= len(page.chunks) <= 2
        got += [c.data for c in page.chunks]
        after = page.chunks[-1].index
        if not page.more:
            break
    assert got == [bytes([65 + n]) * 100 for n in range(10)]


async def test_output_is_capped_per_interaction(start_sessions_service: StartSessions) -> None:
    service = await start_sessions_service(sessions_max_output_bytes=10)
    stub, md = service.stub, service.metadata
    where = scope()
    session = await create(service, where)
    iid = session.interactions[0].id

    def request(*chunks: bytes) -> spb.AppendOutputRequest:
        return spb.AppendOutputRequest(
            scope=where, session_id=session.id, interaction_id=iid, parts=_parts(*chunks)
        )

    first = await stub.AppendOutput(request(b"123456"), metadata=md)
    assert (first.stored_bytes, first.truncated) == (6, False)
    # Where the cap cuts, a marker line says so (once, past the cap).
    marker = b"\n[specloom: output past the cap of 10 bytes per step was not stored]\n"
    cut = await stub.AppendOutput(request(b"789", b"abcdef"), metadata=md)
    assert (cut.stored_bytes, cut.truncated) == (10 + len(marker), True)
    full = await stub.AppendOutput(request(b"more"), metadata=md)
    assert (full.stored_bytes, full.truncated) == (10 + len(marker), True)
    stored = await stub.FetchOutput(
        spb.FetchOutputRequest(scope=where, session_id=session.id), metadata=md
    )
    assert b"".join(c.data for c in stored.chunks) == b"123456789a" + marker
    assert stored.chunks[-1].stream == pb.OUTPUT_STREAM_EXECUTOR


async def test_output_needs_an_interaction_of_the_session(
    sessions_service: SessionsUnderTest,
) -> None:
    stub, md = sessions_service.stub, sessions_service.metadata
    where = scope()
    session = await create(sessions_service, where)
    other = await create(sessions_service, where)
    for session_id, interaction_id in (
        (session.id, new_id()),
        (session.id, other.interactions[0].id),
    ):
        assert (
            await code_of(
                stub.AppendOutput(
                    spb.AppendOutputRequest(
                        scope=where,
                        session_id=session_id,
                        interaction_id=interaction_id,
                        parts=_parts(b"x"),
                    ),
                    metadata=md,
                )
            )
            == grpc.StatusCode.NOT_FOUND
        )
    assert (
        await code_of(
            stub.FetchOutput(
                spb.FetchOutputRequest(scope=where, session_id=session.id, interaction_id=new_id()),
                metadata=md,
            )
        )
        == grpc.StatusCode.NOT_FOUND
    )
