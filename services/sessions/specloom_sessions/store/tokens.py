"""Bearer tokens: ``slm_<id>_<secret>``, stored only as HMAC-SHA256(pepper, token).

The pepper lives outside the database, so a copy of the database alone
cannot be used to test guessed tokens. Verification looks the row up by
the id (the public part) and compares hashes in constant time. Nothing
here logs a token or a hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

from sqlalchemy import bindparam, insert, or_, select, update

from specloom.errors import NotFound, Unauthenticated
from specloom.ids import new_id
from specloom.protoconv import to_timestamp, utcnow
from specloom.v1 import common_pb2 as pb
from specloom.v1 import tokens_pb2 as tpb
from specloom_sessions import tables as t
from specloom_sessions.database import Database
from specloom_sessions.rows import Row

T = t.tokens
PREFIX = "slm_"
_INVALID = "the token is not valid"


def token_hash(pepper: bytes, token: str) -> bytes:
    """The stored form of ``token``."""
    return hmac.new(pepper, token.encode(), hashlib.sha256).digest()


def token_id_of(token: str) -> str | None:
    """The id part of a well-formed token string."""
    if not token.startswith(PREFIX):
        return None
    token_id, sep, secret = token[len(PREFIX) :].partition("_")
    if not sep or not secret or not token_id.isprintable() or not 0 < len(token_id) <= t.ID:
        return None
    return token_id


def info_of(row: Row) -> tpb.TokenInfo:
    """The description of a token (never its secret or hash)."""
    return tpb.TokenInfo(
        id=row["id"],
        scope=pb.Scope(
            account_id=row["account_id"], project_id=row["project_id"], user_id=row["user_id"]
        ),
        admin=row["admin"],
        name=row["name"],
        created_at=to_timestamp(row["created_at"]),
        expires_at=to_timestamp(row["expires_at"]),
        revoked_at=to_timestamp(row["revoked_at"]),
    )


async def issue_token(
    db: Database, pepper: bytes, scope: pb.Scope, *, admin: bool, name: str, ttl_seconds: int
) -> tuple[str, tpb.TokenInfo]:
    """A new token string (shown once) and its description."""
    token_id = new_id()
    token = f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    now = utcnow()
    values = {
        "id": token_id,
        "secret_hash": token_hash(pepper, token),
        "account_id": scope.account_id,
        "project_id": scope.project_id,
        "user_id": scope.user_id,
        "admin": admin,
        "name": name,
        "created_at": now,
        "expires_at": now + dt.timedelta(seconds=ttl_seconds) if ttl_seconds else None,
        "revoked_at": None,
    }
    async with db.write() as tx:
        await tx.conn.execute(insert(T).values(values))
    return token, info_of(values)


# Built once, as every per-call statement is: each client call is verified.
_BY_ID = select(T).where(T.c.id == bindparam("p_id"))


async def verify_token(db: Database, pepper: bytes, token: str) -> tpb.TokenInfo:
    """The description of a valid token; UNAUTHENTICATED otherwise."""
    presented = token_hash(pepper, token)
    token_id = token_id_of(token)
    row = None
    if token_id is not None:
        async with db.read() as conn:
            row = (await conn.execute(_BY_ID, {"p_id": token_id})).mappings().first()
    # Compare even when the id is unknown, so timing says nothing about ids.
    stored = row["secret_hash"] if row is not None else b"\0" * len(presented)
    if not hmac.compare_digest(stored, presented) or row is None:
        raise Unauthenticated(_INVALID)
    if row["revoked_at"] is not None:
        raise Unauthenticated("the token was revoked")
    if row["expires_at"] is not None and row["expires_at"] <= utcnow():
        raise Unauthenticated("the token expired")
    return info_of(row)


async def retire_token(db: Database, token_id: str, account_id: str) -> tpb.TokenInfo:
    """Revoke a token (idempotent: a revoked token keeps its first revocation time)."""
    where = [T.c.id == token_id]
    if account_id:
        where.append(T.c.account_id == account_id)
    async with db.write() as tx:
        await tx.conn.execute(
            update(T).where(*where, T.c.revoked_at.is_(None)).values(revoked_at=utcnow())
        )
        row = (await tx.conn.execute(select(T).where(*where))).mappings().first()
    if row is None:
        raise NotFound(f"token {token_id} not found")
    return info_of(row)


async def query_tokens(
    db: Database, account_id: str, include_inactive: bool
) -> list[tpb.TokenInfo]:
    """The tokens of an account, oldest first."""
    query = select(T).where(T.c.account_id == account_id)
    if not include_inactive:
        query = query.where(
            T.c.revoked_at.is_(None), or_(T.c.expires_at.is_(None), T.c.expires_at > utcnow())
        )
    async with db.read() as conn:
        rows = (await conn.execute(query.order_by(T.c.created_at, T.c.id))).mappings().all()
    return [info_of(row) for row in rows]
