"""Steering a session from its page (cancel, pause, resume, retry from a step), and
starting a planned session from the project page.

Each is a POST from a confirmation form and passes the CSRF check before
anything else; the gateway then decides, with the caller's token, whether
the session may be steered or started (its refusal is shown on the page).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from specloom.errors import FailedPrecondition, InvalidArgument, SpecloomError, Unauthenticated
from specloom.projectmap import entry_subject, start_params
from specloom.v1 import common_pb2 as pb
from specloom_web.auth import CSRF_FIELD, CSRF_HEADER, csrf_ok, same_origin
from specloom_web.projectmap import known_workspaces, start_note, workspace_param
from specloom_web.web import Caller, caller, error_page, page

ACTIONS = ("cancel", "pause", "resume", "retry")
MAX_REASON = 500
NOTICES = {
    "cancel": "Cancelled (with its children).",
    "pause": "Paused: a running step finishes first.",
    "resume": "Resumed.",
    "retry": "Running again from the chosen step.",
    "start": "Started from the project map: it starts from the line and lands there.",
}


def refused(reason: str) -> Response:
    """403 for a request that failed the CSRF or origin check; nothing was done."""
    return Response(
        f"refused: {reason}; reload the page and try again",
        403,
        media_type="text/plain; charset=utf-8",
    )


async def _checked_form(request: Request, who: Caller) -> dict[str, str] | Response:
    """The POSTed form once the origin and CSRF checks pass; the refusal otherwise."""
    if not same_origin(request):
        return refused("the request came from another site")
    form = await request.form()
    submitted = str(form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER, ""))
    if not csrf_ok(who.token, submitted):
        return refused("the form's CSRF token is missing or wrong")
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def steer(request: Request) -> Response:
    """POST /sessions/{id}/{action}."""
    who = caller(request)
    session_id = request.path_params["session_id"]
    action = request.path_params["action"]
    form = await _checked_form(request, who)
    if isinstance(form, Response):
        return form
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


def _not_now(request: Request, message: str, workspace_id: str) -> Response:
    return page(
        request,
        "error.html",
        409,
        title="Not possible now",
        message=message,
        back=f"/map?workspace={workspace_id}",
        back_label="Back to the project map",
    )


async def start_planned(request: Request) -> Response:
    """POST /map/start: start a next session of a workspace's plan, as ``next --start`` does.

    The form names the entry by type and subject, and the plan is read again
    here: an entry that moved on meanwhile (started by someone else, now
    waiting for another) is refused, never a different one started.
    """
    who = caller(request)
    form = await _checked_form(request, who)
    if isinstance(form, Response):
        return form
    try:
        workspace_id = workspace_param(form)
        if not workspace_id:
            raise InvalidArgument("workspace is required")
    except InvalidArgument as exc:
        return error_page(request, exc)
    try:
        session_type = form.get("type", "")
        subject = form.get("subject", "")
        entries, the_map = await who.client.next_sessions(workspace_id)
        entry = next(
            (e for e in entries if e.type == session_type and entry_subject(e) == subject), None
        )
        if entry is None:
            return _not_now(
                request,
                f"{session_type} {subject} is no longer among the next sessions: "
                "the map moved on meanwhile.",
                workspace_id,
            )
        if entry.running_session_id:
            return _not_now(
                request,
                f"{session_type} {subject} runs already: session {entry.running_session_id}.",
                workspace_id,
            )
        if entry.after:
            return _not_now(
                request,
                f"{session_type} {subject} waits for sessions still to run before it.",
                workspace_id,
            )
        note = start_note(entry, the_map)
        if note:
            return _not_now(request, f"{session_type} {subject} {note}.", workspace_id)
        known = {w.id: w for w in await known_workspaces(who.client)}
        workspace = known.get(workspace_id, pb.WorkspaceRef(id=workspace_id))
        started = await who.client.start_session(
            entry.type, start_params(entry, the_map.branch), workspace=workspace
        )
    except Unauthenticated as exc:
        return error_page(request, exc)
    except FailedPrecondition as exc:
        return _not_now(request, str(exc), workspace_id)
    except SpecloomError as exc:
        return error_page(request, exc)
    return RedirectResponse(f"/sessions/{started.session.id}?done=start", status_code=303)
