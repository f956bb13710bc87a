"""Steering a session from its page: cancel, pause, resume, retry from a step.

Each is a POST from a confirmation form and passes the CSRF check before
anything else; the gateway then decides, with the caller's token, whether
the session may be steered (its refusal is shown on the page).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from specloom.errors import FailedPrecondition, InvalidArgument, SpecloomError, Unauthenticated
from specloom_web.auth import CSRF_FIELD, CSRF_HEADER, csrf_ok, same_origin
from specloom_web.web import caller, error_page, page

ACTIONS = ("cancel", "pause", "resume", "retry")
MAX_REASON = 500
NOTICES = {
    "cancel": "Cancelled (with its children).",
    "pause": "Paused: a running step finishes first.",
    "resume": "Resumed.",
    "retry": "Running again from the chosen step.",
}


def refused(reason: str) -> Response:
    """403 for a request that failed the CSRF or origin check; nothing was done."""
    return Response(
        f"refused: {reason}; reload the page and try again",
        403,
        media_type="text/plain; charset=utf-8",
    )


async def steer(request: Request) -> Response:
    """POST /sessions/{id}/{action}."""
    who = caller(request)
    session_id = request.path_params["session_id"]
    action = request.path_params["action"]
    if not same_origin(request):
        return refused("the request came from another site")
    form = await request.form()
    submitted = str(form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER, ""))
    if not csrf_ok(who.token, submitted):
        return refused("the form's CSRF token is missing or wrong")
    if action not in ACTIONS:
        return error_page(request, InvalidArgument(f"unknown action {action!r}"))
    reason = str(form.get("reason") or "").strip()[:MAX_REASON]
    client = who.client
    try:
        if action == "cancel":
            await client.cancel(session_id, reason or "cancelled from the web console")
        elif action == "pause":
            await client.pause(session_id, reason or "paused from the web console")
        elif action == "resume":
            await client.resume(session_id, reason or "resumed from the web console")
        else:
            step = str(form.get("step") or "")
            if not step:
                raise InvalidArgument("choose the step to retry from")
            await client.retry(session_id, step, reason or "retried from the web console")
    except Unauthenticated as exc:
        return error_page(request, exc)
    except FailedPrecondition as exc:
        return page(
            request,
            "error.html",
            409,
            title="Not possible now",
            message=str(exc),
            back=f"/sessions/{session_id}",
        )
    except SpecloomError as exc:
        return error_page(request, exc)
    return RedirectResponse(f"/sessions/{session_id}?done={action}", status_code=303)
