"""The console as an ASGI application: routes, sign-in, security headers, errors."""

from __future__ import annotations

import hmac
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from specloom.errors import SpecloomError, Unauthenticated
from specloom_web import actions, pages
from specloom_web.auth import (
    MAX_TOKEN_LENGTH,
    SIGNIN_COOKIE,
    clear_auth_cookie,
    csrf_ok,
    new_signin_nonce,
    same_origin,
    set_auth_cookie,
    set_signin_cookie,
    token_of,
)
from specloom_web.config import WebSettings
from specloom_web.feeds import Feeds
from specloom_web.gateway import Gateway
from specloom_web.sse import StreamLimit
from specloom_web.web import (
    Console,
    SignInRequired,
    console,
    error_page,
    page,
    safe_next,
    signin_redirect,
)

STATIC = Path(__file__).parent / "static"

SECURITY_HEADERS = [
    # Scripts and styles only from this site, no inline ones: a document or
    # prompt that smuggled markup into a page could still not run anything.
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
        b"object-src 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every response (pure ASGI: streams pass through)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def home(request: Request) -> Response:
    """``/``: the sessions."""
    return RedirectResponse("/sessions", status_code=303)


async def healthz(request: Request) -> Response:
    """Liveness for probes: the process serves HTTP (the gateway is not asked)."""
    return PlainTextResponse("ok")


async def signin_form(request: Request, problem: str = "", status_code: int = 200) -> Response:
    """The sign-in page, with a fresh double-submit value."""
    nonce = new_signin_nonce()
    response = page(
        request,
        "signin.html",
        status_code,
        nonce=nonce,
        next=safe_next(request.query_params.get("next", "/sessions")),
        problem=problem,
    )
    set_signin_cookie(response, nonce, secure=console(request).settings.cookies_secure())
    return response


async def signin_page(request: Request) -> Response:
    """GET /signin."""
    return await signin_form(request)


async def signin(request: Request) -> Response:
    """POST /signin: check the token with the gateway, then set the cookie."""
    if not same_origin(request):
        return actions.refused("the request came from another site")
    form = await request.form()
    nonce = str(form.get("nonce") or "")
    expected = request.cookies.get(SIGNIN_COOKIE, "")
    if not expected or not csrf_ok_nonce(expected, nonce):
        return await signin_form(request, "The sign-in form expired; paste the token again.", 403)
    token = str(form.get("token") or "").strip()
    if not token or len(token) > MAX_TOKEN_LENGTH or not token.isprintable():
        return await signin_form(request, "That is not a specloom token.", 400)
    try:
        await console(request).gateway.client(token).whoami()
    except Unauthenticated:
        return await signin_form(request, "The gateway does not accept that token.", 401)
    except SpecloomError as exc:
        return error_page(request, exc)
    response = RedirectResponse(safe_next(str(form.get("next") or "/sessions")), status_code=303)
    secure = console(request).settings.cookies_secure()
    set_auth_cookie(response, token, secure=secure)
    response.delete_cookie(
        SIGNIN_COOKIE, path="/signin", secure=secure, httponly=True, samesite="strict"
    )
    return response


def csrf_ok_nonce(expected: str, submitted: str) -> bool:
    """The sign-in form's double-submit check (constant-time)."""
    return bool(submitted) and hmac.compare_digest(expected, submitted)


async def signout(request: Request) -> Response:
    """POST /signout (CSRF-checked): forget the token cookie."""
    token = token_of(request)
    if token is not None:
        form = await request.form()
        if not same_origin(request) or not csrf_ok(token, str(form.get("csrf") or "")):
            return actions.refused("the form's CSRF token is missing or wrong")
    response = RedirectResponse("/signin", status_code=303)
    clear_auth_cookie(response, secure=console(request).settings.cookies_secure())
    return response


async def _sign_in_required(request: Request, exc: Exception) -> Response:
    if request.url.path.startswith("/live/"):
        # An EventSource cannot follow a redirect to a page: tell the script.
        return Response("event: signedout\ndata: /signin\n\n", media_type="text/event-stream")
    return signin_redirect(request)


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SpecloomError)
    return error_page(request, exc)


def build_app(settings: WebSettings, gateway: Gateway) -> Starlette:
    """The console's ASGI app over ``gateway``."""
    routes = [
        Route("/", home),
        Route("/healthz", healthz),
        Route("/signin", signin_page, methods=["GET"]),
        Route("/signin", signin, methods=["POST"]),
        Route("/signout", signout, methods=["POST"]),
        Route("/sessions", pages.sessions_page),
        Route("/sessions/{session_id}", pages.session_page),
        Route("/sessions/{session_id}/steps/{seq}", pages.step_page),
        Route("/sessions/{session_id}/steps/{seq}/detail", pages.step_detail),
        Route("/sessions/{session_id}/steps/{seq}/output.txt", pages.step_output),
        Route("/sessions/{session_id}/{action}", actions.steer, methods=["POST"]),
        Route("/workflows", pages.workflows_page),
        Route("/executors", pages.executors_page),
        Route("/map", pages.map_page),
        Route("/map/start", actions.start_planned, methods=["POST"]),
        Route("/live/sessions", pages.live_sessions),
        Route("/live/sessions/{session_id}", pages.live_session),
        Route("/live/executors", pages.live_executors),
        Route("/live/map", pages.live_map),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={
            SignInRequired: _sign_in_required,
            SpecloomError: _gateway_error,
        },
    )
    app.state.console = Console(
        settings=settings,
        gateway=gateway,
        feeds=Feeds(gateway, settings.web_list_refresh_seconds),
        streams=StreamLimit(settings.web_max_live_streams),
    )
    return app
