"""The scope wall, as a matrix: every client RPC × project B's sessions, children, outputs, watches.

Project B runs a parent session with two children (one with stored output)
and a manual session, all mid-flight, over real processes on PostgreSQL. A
token of project A (same account) and one of another account then aim every
client RPC at each of them, at mixes of their own ids with B's, at B's
listings, and as an executor at B's leased work. Everything is NOT_FOUND (or
simply absent from a listing); afterwards B's sessions are exactly as they
were and finish normally. The in-process companion is
``tests/gateway/test_tenancy.py`` (top-level sessions, no token, revoked
tokens, token administration).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from pydantic import SecretStr

from specloom.host import HostSettings
from specloom.v1 import common_pb2 as pb
from specloom.v1 import gateway_pb2 as gpb
from specloom.v1 import sessions_pb2 as spb
from specloom.v1.gateway_pb2_grpc import GatewayServiceStub
from specloom_sessions.service import SERVICE
from tests.gateway.conftest import bearer
from tests.reliability.cluster import Cluster
from tests.reliability.conftest import StartCluster
from tests.reliability.executors import HandExecutor

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

Call = Callable[[Any, Any], Awaitable[Any]]


async def _code(call: Awaitable[Any]) -> str:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return str(exc.code().name)
    return "OK"


async def _stream_code(call: Any) -> str:
    try:
        async for _ in call:
            return "OK"
    except grpc.aio.AioRpcError as exc:
        return str(exc.code().name)
    return "OK"


def _calls(session_id: str, interaction_id: str) -> dict[str, Call]:
    """Every client RPC that names a session (and an interaction)."""
    sid, iid = session_id, interaction_id
    ok = pb.Result(status=pb.RESULT_STATUS_OK)
    return {
        "GetSession": lambda s, m: s.GetSession(gpb.GetSessionRequest(session_id=sid), metadata=m),
        "ListChildren": lambda s, m: s.ListChildren(
            gpb.ListChildrenRequest(session_id=sid), metadata=m
        ),
        "ReadOutput": lambda s, m: s.ReadOutput(gpb.ReadOutputRequest(session_id=sid), metadata=m),
        "ReadOutput(interaction)": lambda s, m: s.ReadOutput(
            gpb.ReadOutputRequest(session_id=sid, interaction_id=iid, after_index=-1), metadata=m
        ),
        "CancelSession": lambda s, m: s.CancelSession(
            gpb.CancelSessionRequest(session_id=sid), metadata=m
        ),
        "PauseSession": lambda s, m: s.PauseSession(
            gpb.PauseSessionRequest(session_id=sid), metadata=m
        ),
        "ResumeSession": lambda s, m: s.ResumeSession(
            gpb.ResumeSessionRequest(session_id=sid), metadata=m
        ),
        "RetrySession": lambda s, m: s.RetrySession(
            gpb.RetrySessionRequest(session_id=sid, from_step="Prepare"), metadata=m
        ),
        "GetNextCommand": lambda s, m: s.GetNextCommand(
            gpb.GetNextCommandRequest(session_id=sid), metadata=m
        ),
        "SubmitResult": lambda s, m: s.SubmitResult(
            gpb.SubmitResultRequest(session_id=sid, interaction_id=iid, result=ok), metadata=m
        ),
    }


async def _snapshot(c: Cluster, token: str, ids: list[str]) -> dict[str, tuple[int, int, int]]:
    client = c.client(token)
    found: dict[str, tuple[int, int, int]] = {}
    for session_id in ids:
        session = await client.get_session(session_id)
        found[session_id] = (session.status, session.version, len(session.interactions))
    return found


async def test_another_project_sees_nothing_of_b_anywhere(start_cluster: StartCluster) -> None:
    async with start_cluster(["toy"]) as c:
        admin = c.client()
        tokens = {
            who: (
                await admin.create_token(
                    pb.Scope(account_id="acme", project_id=project, user_id=who), name=who
                )
            ).token
            for who, project in (("b", "beta"), ("a", "alpha"))
        }
        # Another account (same project name, even): only the bootstrap path makes one.
        tokens["c"] = await _other_account_token(c)

        # Project B, mid-flight: a parent with two running children (one with
        # output) and a manual session with a pending step.
        b = c.client(tokens["b"])
        worker = HandExecutor(c.gateway, tokens["b"], "b-box", heartbeats=True)
        await worker.connect()
        parent = (await b.start_session("Tree", {"parts": ["one", "two"]}, mode="agentic")).session
        prepare = (await worker.next("assignment")).assignment
        worker.answer(prepare, "prepared")
        works = [(await worker.next("assignment")).assignment for _ in range(2)]
        child, work = works[0].session.id, works[0].interaction
        worker.send(
            gpb.ConnectRequest(
                output=gpb.CommandOutput(
                    session_id=child,
                    interaction_id=work.id,
                    lease_epoch=work.lease.epoch,
                    stream=pb.OUTPUT_STREAM_STDOUT,
                    data=b"b's secret output\n",
                )
            )
        )
        manual = (await b.start_session("Build", {}, mode="manual")).session
        async with asyncio.timeout(10):
            while not (await b.read_output(child, work.id))[0]:
                await asyncio.sleep(0.1)
        spawn = (await b.get_session(parent.id)).interactions[-1]
        targets = {
            "parent": (parent.id, spawn.id),
            "child": (child, work.id),
            "manual": (manual.id, manual.interactions[-1].id),
        }
        ids = [parent.id, child, works[1].session.id, manual.id]
        before = await _snapshot(c, tokens["b"], ids)

        channel = grpc.aio.insecure_channel(c.gateway)
        stub = GatewayServiceStub(channel)
        try:
            for who in ("a", "c"):
                meta = bearer(tokens[who])
                for target, (sid, iid) in targets.items():
                    for name, call in _calls(sid, iid).items():
                        code = await _code(call(stub, meta))
                        assert code == "NOT_FOUND", (who, target, name, code)
                    for children in (False, True):
                        watch = stub.WatchSession(
                            gpb.WatchSessionRequest(
                                session_id=sid, include_children=children, include_output=True
                            ),
                            metadata=meta,
                        )
                        assert await _stream_code(watch) == "NOT_FOUND", (who, target)
                await _mixed_ids(stub, meta, c.client(tokens[who]), targets)
                await _listings(stub, meta, ids, parent.id)
                await _executor(c, tokens[who], targets["child"], works[0])
        finally:
            await channel.close()

        # B's sessions are untouched, and finish as if nothing happened.
        assert await _snapshot(c, tokens["b"], ids) == before
        chunks, _ = await b.read_output(child, work.id)
        assert b"".join(ch.data for ch in chunks) == b"b's secret output\n"
        for assignment in works:
            worker.answer(assignment, "worked")
        finish = (await worker.next("assignment", within=30)).assignment
        assert finish.interaction.step == "Finish"
        worker.answer(finish, "finished")
        async with asyncio.timeout(20):
            while (await b.get_session(parent.id)).status != pb.SESSION_STATUS_COMPLETE:
                await asyncio.sleep(0.1)
        await worker.close()


async def _other_account_token(c: Cluster) -> str:
    settings = HostSettings(
        database_url=c.env["SPECLOOM_DATABASE_URL"],
        token_pepper=SecretStr(c.env["SPECLOOM_TOKEN_PEPPER"]),
    )
    token = await SERVICE.admin["issue-token"](
        settings, account_id="globex", project_id="beta", user_id="carol"
    )
    return str(token)


async def _mixed_ids(stub: Any, meta: Any, own: Any, targets: dict[str, tuple[str, str]]) -> None:
    """Its own session id with B's interaction ids: nothing of B is reached."""
    mine = (await own.start_session("Build", {}, mode="manual")).session
    for _, iid in targets.values():
        read = await _code(
            stub.ReadOutput(
                gpb.ReadOutputRequest(session_id=mine.id, interaction_id=iid, after_index=-1),
                metadata=meta,
            )
        )
        assert read == "NOT_FOUND", read
        submit = await _code(
            stub.SubmitResult(
                gpb.SubmitResultRequest(
                    session_id=mine.id,
                    interaction_id=iid,
                    result=pb.Result(status=pb.RESULT_STATUS_OK),
                ),
                metadata=meta,
            )
        )
        assert submit in ("NOT_FOUND", "FAILED_PRECONDITION"), submit
    # Its own session's pending step is still its own, and still pending.
    again = await own.get_session(mine.id)
    assert [i.status for i in again.interactions] == [pb.INTERACTION_STATUS_PENDING]


async def _listings(stub: Any, meta: Any, ids: list[str], parent_id: str) -> None:
    filters = [
        pb.SessionFilter(),
        pb.SessionFilter(parent_id=parent_id),
        pb.SessionFilter(types=["Tree", "Leaf", "Build"]),
        pb.SessionFilter(statuses=[pb.SESSION_STATUS_ACTIVE]),
    ]
    for flt in filters:
        listed = await stub.ListSessions(
            gpb.ListSessionsRequest(filter=flt, page_size=500), metadata=meta
        )
        assert not {s.id for s in listed.sessions} & set(ids), flt


async def _executor(
    c: Cluster, token: str, child: tuple[str, str], leased: gpb.CommandAssignment
) -> None:
    """As an executor: reports, renews and writes output on B's leased work; all refused."""
    rogue = HandExecutor(
        c.gateway,
        token,
        "rogue",
        running=[spb.LeaseRef(interaction_id=child[1], epoch=leased.interaction.lease.epoch)],
    )
    await rogue.connect()
    try:
        epoch = leased.interaction.lease.epoch
        rogue.send(
            gpb.ConnectRequest(
                output=gpb.CommandOutput(
                    session_id=child[0], interaction_id=child[1], lease_epoch=epoch, data=b"rogue"
                )
            )
        )
        rogue.send(
            gpb.ConnectRequest(
                heartbeat=gpb.Heartbeat(
                    running=[spb.LeaseRef(interaction_id=child[1], epoch=epoch)]
                )
            )
        )
        rogue.send(
            gpb.ConnectRequest(
                result=gpb.CommandResult(
                    session_id=child[0],
                    interaction_id=child[1],
                    lease_epoch=epoch,
                    result=pb.Result(status=pb.RESULT_STATUS_OK, stdout="by rogue"),
                )
            )
        )
        ack = (await rogue.next("ack")).ack
        assert not ack.accepted
        assert ack.code == "NOT_FOUND", ack
        # The lease it claimed at registration was never its own: told to stop.
        async with asyncio.timeout(10):
            while not rogue.cancels():
                await asyncio.sleep(0.05)
        assert {cancel.interaction_id for cancel in rogue.cancels()} == {child[1]}
        assert not rogue.assignments()
    finally:
        await rogue.close()
