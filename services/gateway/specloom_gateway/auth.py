"""Bearer tokens: every call is verified with TokensService before anything else.

Verifications are never cached: a revoked token must stop working on the
very next call, and a cache would keep it alive for its lifetime. Long-lived
executor streams are verified when they open and again on every heartbeat.
Tokens are never logged or echoed in an error message.
"""

from __future__ import annotations

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


class Authenticator:
    """Resolves the bearer token of a call to a :class:`Caller`."""

    def __init__(self, upstream: Upstream) -> None:
        self._upstream = upstream

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
