"""Signing in with a token, and the CSRF check every action passes.

The cookie holds the token itself: the gateway verifies it on every call
(never cached), so revoking a token signs its browser sessions out at once,
and the console keeps no session store that replicas would have to share.
The cookie is HttpOnly (page scripts never see the token), SameSite=Strict
(no other site's page can send it) and Secure under TLS.

CSRF: every state-changing request carries a token derived from the
signed-in token by HMAC. A page of another site can neither read it nor
compute it without the secret token, and it needs no server-side state or
shared key. The sign-in form, before any token exists, uses a random
double-submit value instead: its cookie and its hidden field must match.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

AUTH_COOKIE = "specloom_token"
SIGNIN_COOKIE = "specloom_signin"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
MAX_TOKEN_LENGTH = 512
"""Longer sign-in input is refused before any call (tokens are ~60 characters)."""

_CSRF_LABEL = b"specloom web console csrf v1"


def token_of(request: Request) -> str | None:
    """The signed-in token, if a cookie carries one."""
    value = request.cookies.get(AUTH_COOKIE, "")
    return value if value else None


def csrf_for(token: str) -> str:
    """The CSRF value pages of ``token``'s holder put in their forms."""
    return hmac.new(token.encode(), _CSRF_LABEL, hashlib.sha256).hexdigest()[:40]


def csrf_ok(token: str, submitted: str) -> bool:
    """Whether ``submitted`` is ``token``'s CSRF value (constant-time)."""
    return bool(submitted) and hmac.compare_digest(csrf_for(token), submitted)


def same_origin(request: Request) -> bool:
    """Whether the request's ``Origin`` (when a browser sent one) is this site.

    Defence in depth beside the CSRF token: browsers send ``Origin`` on every
    POST, and a cross-site one is refused even before the token is read.
    """
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc == host


def new_signin_nonce() -> str:
    """A fresh double-submit value for the sign-in form."""
    return secrets.token_urlsafe(24)


def set_auth_cookie(response: Response, token: str, *, secure: bool) -> None:
    """Sign in: the token cookie for the whole site (a browser session cookie)."""
    response.set_cookie(
        AUTH_COOKIE, token, httponly=True, samesite="strict", secure=secure, path="/"
    )


def clear_auth_cookie(response: Response, *, secure: bool) -> None:
    """Sign out."""
    response.delete_cookie(AUTH_COOKIE, httponly=True, samesite="strict", secure=secure, path="/")


def set_signin_cookie(response: Response, nonce: str, *, secure: bool) -> None:
    """The sign-in form's double-submit cookie (ten minutes to sign in)."""
    response.set_cookie(
        SIGNIN_COOKIE,
        nonce,
        max_age=600,
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/signin",
    )
