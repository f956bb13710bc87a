"""Tokens: issued once, stored peppered-hashed, verified, revoked, expired."""

from __future__ import annotations

import asyncio
import hashlib
import hmac

import grpc
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from specloom.v1 import common_pb2 as pb
from specloom.v1 import tokens_pb2 as tpb
from specloom_sessions import tables
from specloom_sessions.service import SERVICE
from tests.fixtures.sessions_server import SessionsUnderTest, StartSessions
from tests.sessions.helpers import failure, scope


async def _issue(
    service: SessionsUnderTest, where: pb.Scope, *, admin: bool = False, ttl: int = 0
) -> tpb.IssueTokenResponse:
    return await service.tokens.IssueToken(
        tpb.IssueTokenRequest(scope=where, admin=admin, name="laptop", ttl_seconds=ttl),
        metadata=service.metadata,
    )


async def _verify(service: SessionsUnderTest, token: str) -> tpb.TokenInfo:
    response = await service.tokens.VerifyToken(
        tpb.VerifyTokenRequest(token=token), metadata=service.metadata
    )
    return response.info


async def test_issue_and_verify(sessions_service: SessionsUnderTest) -> None:
    where = scope()
    issued = await _issue(sessions_service, where, admin=True)
    assert issued.token.startswith(f"slm_{issued.info.id}_")
    assert len(issued.token) > 60
    info = await _verify(sessions_service, issued.token)
    assert info == issued.info
    assert info.scope == where
    assert info.admin
    assert info.name == "laptop"
    assert not info.HasField("expires_at")
    assert not info.HasField("revoked_at")

    forged = issued.token[:-4] + ("AAAA" if not issued.token.endswith("AAAA") else "BBBB")
    for bad in (
        forged,
        "slm_nothing_here",
        "not-a-token",
        f"slm_{issued.info.id}_",
        "slm_\x00_secret",
        "slm__secret",
    ):
        error = await failure(_verify(sessions_service, bad))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert bad not in (error.details() or "")
    empty = await failure(_verify(sessions_service, ""))
    assert empty.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_tokens_are_stored_only_as_peppered_hashes(
    start_sessions_service: StartSessions,
) -> None:
    service = await start_sessions_service()
    issued = await _issue(service, scope())
    engine = create_async_engine(service.database_url)
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(select(tables.tokens))).mappings().one()
    finally:
        await engine.dispose()
    assert issued.token.encode() not in b"".join(
        v if isinstance(v, bytes) else str(v).encode() for v in row.values()
    )
    expected = hmac.new(service.pepper.encode(), issued.token.encode(), hashlib.sha256).digest()
    assert row["secret_hash"] == expected
    # Without the pepper the database alone verifies nothing.
    other = await start_sessions_service(pepper="a-different-pepper")
    assert (await failure(_verify(other, issued.token))).code() == grpc.StatusCode.UNAUTHENTICATED


async def test_revocation_takes_effect_on_the_next_verify(
    sessions_service: SessionsUnderTest,
) -> None:
    where = scope()
    issued = await _issue(sessions_service, where)
    await _verify(sessions_service, issued.token)
    wrong_account = await failure(
        sessions_service.tokens.RetireToken(
            tpb.RetireTokenRequest(token_id=issued.info.id, account_id="someone-else"),
            metadata=sessions_service.metadata,
        )
    )
    assert wrong_account.code() == grpc.StatusCode.NOT_FOUND
    await _verify(sessions_service, issued.token)

    retired = await sessions_service.tokens.RetireToken(
        tpb.RetireTokenRequest(token_id=issued.info.id, account_id=where.account_id),
        metadata=sessions_service.metadata,
    )
    assert retired.info.HasField("revoked_at")
    error = await failure(_verify(sessions_service, issued.token))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "revoked" in (error.details() or "")
    again = await sessions_service.tokens.RetireToken(
        tpb.RetireTokenRequest(token_id=issued.info.id), metadata=sessions_service.metadata
    )
    assert again.info.revoked_at == retired.info.revoked_at


async def test_expired_tokens_stop_working_and_listing(sessions_service: SessionsUnderTest) -> None:
    where = scope()
    short = await _issue(sessions_service, where, ttl=1)
    lasting = await _issue(sessions_service, where)
    await _issue(sessions_service, scope())  # another account
    assert short.info.HasField("expires_at")
    await _verify(sessions_service, short.token)
    await asyncio.sleep(1.2)
    error = await failure(_verify(sessions_service, short.token))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "expired" in (error.details() or "")

    active = await sessions_service.tokens.QueryTokens(
        tpb.QueryTokensRequest(account_id=where.account_id), metadata=sessions_service.metadata
    )
    assert [t.id for t in active.tokens] == [lasting.info.id]
    everything = await sessions_service.tokens.QueryTokens(
        tpb.QueryTokensRequest(account_id=where.account_id, include_inactive=True),
        metadata=sessions_service.metadata,
    )
    assert [t.id for t in everything.tokens] == [short.info.id, lasting.info.id]


async def test_bootstrap_token_through_the_admin_command(
    sessions_service: SessionsUnderTest,
) -> None:
    token = await SERVICE.admin["issue-token"](
        sessions_service.settings(),
        account_id="local",
        project_id="default",
        user_id="root",
        admin=True,
        name="first admin token",
    )
    info = await _verify(sessions_service, token)
    assert (info.scope.account_id, info.admin, info.name) == ("local", True, "first admin token")
    await sessions_service.restart()
    assert (await _verify(sessions_service, token)).id == info.id
