"""Metadata keys every specloom process agrees on."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

AUTHORIZATION = "authorization"
"""Client and executor calls to the gateway: ``Bearer <token>``."""

INTERNAL_SECRET = "x-specloom-internal"  # noqa: S105 - a header name, not a secret
"""Service-to-service calls: the shared internal secret. Internal services
refuse calls without it, so the Sessions API cannot be reached around the
gateway even where it shares a port with it (the all-in-one mode)."""

TRACEPARENT = "traceparent"
"""W3C trace context, propagated across hops when tracing is on."""

INTERNAL_SERVICES = (
    "/specloom.v1.SessionsService/",
    "/specloom.v1.TokensService/",
    "/specloom.v1.OrchestratorService/",
)
"""Method prefixes that require the internal secret."""


def get(metadata: Iterable[Any] | None, key: str) -> str | None:
    """The first value of ``key`` in invocation metadata, as text."""
    for name, value in metadata or ():
        if name == key:
            return value.decode() if isinstance(value, bytes) else value
    return None


def bearer_token(metadata: Iterable[Any] | None) -> str | None:
    """The token of an ``authorization: Bearer <token>`` header, if present."""
    value = get(metadata, AUTHORIZATION)
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
