"""TokensService: issue, verify, retire and list bearer tokens."""

from __future__ import annotations

from typing import Any

from specloom.errors import InvalidArgument
from specloom.v1 import tokens_pb2 as tpb
from specloom.v1 import tokens_pb2_grpc as tpb_grpc
from specloom.validate import require_id, require_scope
from specloom_sessions import validation as check
from specloom_sessions.database import Database
from specloom_sessions.store import tokens as store

MAX_TTL_SECONDS = 10 * 366 * 24 * 3600
MAX_TOKEN_LENGTH = 512


class TokensServicer(tpb_grpc.TokensServiceServicer):
    """The TokensService contract over the sessions database."""

    def __init__(self, db: Database, pepper: bytes) -> None:
        self.db = db
        self._pepper = pepper

    async def IssueToken(
        self, request: tpb.IssueTokenRequest, context: Any
    ) -> tpb.IssueTokenResponse:
        require_scope(request.scope)
        check.name("name", request.name, required=False)
        check.in_range("ttl_seconds", int(request.ttl_seconds), 0, MAX_TTL_SECONDS)
        token, info = await store.issue_token(
            self.db,
            self._pepper,
            request.scope,
            admin=request.admin,
            name=request.name,
            ttl_seconds=request.ttl_seconds,
        )
        return tpb.IssueTokenResponse(token=token, info=info)

    async def VerifyToken(
        self, request: tpb.VerifyTokenRequest, context: Any
    ) -> tpb.VerifyTokenResponse:
        if not request.token:
            raise InvalidArgument("token is required")
        if len(request.token) > MAX_TOKEN_LENGTH:
            raise InvalidArgument(f"token is longer than {MAX_TOKEN_LENGTH} characters")
        info = await store.verify_token(self.db, self._pepper, request.token)
        return tpb.VerifyTokenResponse(info=info)

    async def RetireToken(
        self, request: tpb.RetireTokenRequest, context: Any
    ) -> tpb.RetireTokenResponse:
        require_id("token_id", request.token_id)
        check.text("account_id", request.account_id, 128)
        info = await store.retire_token(self.db, request.token_id, request.account_id)
        return tpb.RetireTokenResponse(info=info)

    async def QueryTokens(
        self, request: tpb.QueryTokensRequest, context: Any
    ) -> tpb.QueryTokensResponse:
        if not request.account_id:
            raise InvalidArgument("account_id is required")
        check.text("account_id", request.account_id, 128)
        tokens = await store.query_tokens(self.db, request.account_id, request.include_inactive)
        return tpb.QueryTokensResponse(tokens=tokens)
