"""What every page handler shares: the caller, responses, errors as pages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from specloom.client import Client
from specloom.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    SpecloomError,
    Unauthenticated,
    Unavailable,
)
from specloom.v1 import tokens_pb2 as tpb
from specloom_web import render
from specloom_web.auth import clear_auth_cookie, csrf_for, token_of
from specloom_web.config import WebSettings
from specloom_web.feeds import Feeds
from specloom_web.gateway import Gateway
from specloom_web.sse import StreamLimit

PAGE_HEADERS = {"Cache-Control": "no-store"}


@dataclass
class Console:
    """The console's shared parts, kept on ``app.state.console``."""

    settings: WebSettings
    gateway: Gateway
    feeds: Feeds
    streams: StreamLimit


class SignInRequired(Exception):
    """No token cookie: the page sends the browser to sign in."""


@dataclass(frozen=True)
class Who:
    """The signed-in token, for the page's top bar."""

    user: str
    project: str
    account: str
    admin: bool

    @staticmethod
    def of(info: tpb.TokenInfo) -> Who:
        return Who(info.scope.user_id, info.scope.project_id, info.scope.account_id, info.admin)


@dataclass(frozen=True)
class Caller:
    """A signed-in browser's request."""

    token: str
    csrf: str
    client: Client


def console(request: Request) -> Console:
    """The console of the app serving ``request``."""
    found: Console = request.app.state.console
    return found


def caller(request: Request) -> Caller:
    """The signed-in caller; :class:`SignInRequired` without a token cookie."""
    token = token_of(request)
    if token is None:
        raise SignInRequired
    return Caller(token, csrf_for(token), console(request).gateway.client(token))


def page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A rendered page (never cached: it shows one person's view)."""
    context.setdefault("who", None)
    context.setdefault("csrf", "")
    context.setdefault("live", "")
    context.setdefault("nav", "")
    context.setdefault("notice", "")
    context.setdefault("problem", "")
    return HTMLResponse(render.page(name, **context), status_code, headers=PAGE_HEADERS)


STATUS_OF: list[tuple[type[SpecloomError], int, str]] = [
    (NotFound, 404, "Not found"),
    (InvalidArgument, 400, "Bad request"),
    (FailedPrecondition, 409, "Not possible now"),
    (AlreadyExists, 409, "Already exists"),
    (PermissionDenied, 403, "Not allowed"),
    (ResourceExhausted, 429, "Too much"),
    (Unavailable, 503, "The gateway is unreachable"),
]


def error_page(request: Request, exc: SpecloomError) -> Response:
    """A gateway error as a page; an unknown or revoked token signs the browser out."""
    if isinstance(exc, Unauthenticated):
        return signin_redirect(request, clear=True)
    for kind, code, title in STATUS_OF:
        if isinstance(exc, kind):
            message = (
                "No session with this id in your project."
                if isinstance(exc, NotFound)
                else str(exc)
            )
            return page(request, "error.html", code, title=title, message=message)
    return page(request, "error.html", 500, title="Something went wrong", message=str(exc))


def signin_redirect(request: Request, *, clear: bool = False) -> Response:
    """Send the browser to sign in, coming back here afterwards."""
    target = request.url.path
    if request.url.query and request.method == "GET":
        target += "?" + request.url.query
    response = RedirectResponse(f"/signin?next={quote(target, safe='/')}", status_code=303)
    if clear:
        clear_auth_cookie(response, secure=console(request).settings.cookies_secure())
    return response


def safe_next(value: str) -> str:
    """A local path to return to after signing in (never another site)."""
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/sessions"
    return value
