"""Bearer tokens: every call is verified with TokensService before anything else.

Calls are never served from a cache: a revoked token must stop working on
the very next call. Long-lived streams are verified when they open and again
while they run — executor streams at every heartbeat, watch streams every
``stream_token_check_seconds`` — and those re-checks may use a verification
at most ``token_cache_seconds`` old (:meth:`Authenticator.recheck`): a fleet
of streams heartbeating on one token would otherwise cost a database read
per heartbeat. Tokens are never logged or echoed in an error message.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from specloom.errors import InvalidArgument, PermissionDenied, Unauthenticated
from specloom.logs import redact
from specloom.rpc import metadata as md
from specloom.v1 import common_pb2 as pb
from specloom.v1 import tokens_pb2 as tpb
from specloom_gateway.upstream import Upstream

MAX_TOKEN_LENGTH = 512
"""Longer strings are refused without asking TokensService."""


@dataclass(frozen=True)
class Caller:
    """Who is calling, as the verified token says."""

    token: str
    """The presented token (kept only to re-verify a long-lived stream)."""
    info: tpb.TokenInfo
    """The token's description: id, scope, admin flag."""

    @property
    def scope(self) -> pb.Scope:
        """The scope every read and write of this caller acts for."""
        return self.info.scope

    @property
    def admin(self) -> bool:
        """Whether the token may issue and revoke tokens."""
        return self.info.admin

    def __repr__(self) -> str:  # never show the token
        return f"Caller(token_id={self.info.id!r}, admin={self.info.admin})"


CACHE_LIMIT = 10_000
"""Re-check verifications kept at most (the oldest go first)."""


class Authenticator:
    """Resolves the bearer token of a call to a :class:`Caller`."""

    def __init__(self, upstream: Upstream, *, cache_seconds: float = 0.0) -> None:
        self._upstream = upstream
        self._cache_seconds = cache_seconds
        self._verified: dict[bytes, float] = {}
        """sha256(token) -> monotonic time of its last successful verification."""
        self.verifications = 0
        """VerifyToken calls made (for tests and the curious)."""

    async def recheck(self, caller: Caller) -> None:
        """Verify a long-lived stream's token again (UNAUTHENTICATED when it no
        longer is valid), trusting a verification younger than the cache time."""
        key = hashlib.sha256(caller.token.encode()).digest()
        now = time.monotonic()
        seen = self._verified.get(key)
        if seen is not None and now - seen < self._cache_seconds:
            return
        self._verified.pop(key, None)
        await self.verify(caller.token)
        if self._cache_seconds > 0:
            if len(self._verified) >= CACHE_LIMIT:
                del self._verified[next(iter(self._verified))]
            self._verified[key] = now

    async def caller(self, context: Any) -> Caller:
        """The verified caller of ``context``'s call; UNAUTHENTICATED otherwise."""
        token = md.bearer_token(context.invocation_metadata())
        if token is None:
            raise Unauthenticated(
                "no bearer token: send the metadata 'authorization: Bearer <token>'"
            )
        return await self.verify(token)

    async def admin(self, context: Any) -> Caller:
        """The caller, who must hold an admin token (PERMISSION_DENIED otherwise)."""
        caller = await self.caller(context)
        if not caller.admin:
            raise PermissionDenied("this needs an admin token")
        return caller

    async def verify(self, token: str) -> Caller:
        """Verify ``token`` now (no cache: revocation takes effect at once)."""
        if len(token) > MAX_TOKEN_LENGTH or not token.isprintable():
            raise Unauthenticated("the bearer token is malformed")
        self.verifications += 1
        try:
            response = await self._upstream.call(
                self._upstream.tokens.VerifyToken, tpb.VerifyTokenRequest(token=token)
            )
        except Unauthenticated as exc:
            # TokensService says why (unknown, revoked, expired); the message
            # is masked anyway in case it ever quotes the token.
            raise Unauthenticated(redact(exc.message)) from None
        except InvalidArgument:
            raise Unauthenticated("the bearer token is malformed") from None
        info = response.info
        if not (info.scope.account_id and info.scope.project_id and info.scope.user_id):
            raise Unauthenticated("the token has no complete scope")
        return Caller(token=token, info=info)
