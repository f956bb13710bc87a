"""The pages: sessions, a session, a step, workflows, executors, the project; live streams."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from specloom.errors import InvalidArgument, NotFound
from specloom.protoconv import utcnow
from specloom.v1 import common_pb2 as pb
from specloom.workspaces import label
from specloom_web.actions import NOTICES
from specloom_web.diagram import render as diagram
from specloom_web.executors import SessionNames, poll_executors, section_html
from specloom_web.feeds import Poll
from specloom_web.listing import ListQuery, fetch, poll_list, rows_html
from specloom_web.live import SessionStream
from specloom_web.present import STATUS_VALUES, header, steps_of
from specloom_web.projectmap import known_workspaces, map_html, poll_map, view_of, workspace_param
from specloom_web.session_view import (
    detail_html,
    load_tree,
    parent_types,
    read_output,
    retry_steps,
)
from specloom_web.web import PAGE_HEADERS, Who, caller, console, page

MAX_SEQ = 10**12


async def sessions_page(request: Request) -> Response:
    """The sessions list: filters, one page, live."""
    started = time.perf_counter()
    who_ = caller(request)
    settings = console(request).settings
    query = ListQuery.parse(dict(request.query_params))
    info, (sessions, next_token), workflows = await asyncio.gather(
        who_.client.whoami(),
        fetch(who_.client, query, settings.web_page_size),
        console(request).gateway.workflows(who_.token),
    )
    response = page(
        request,
        "sessions.html",
        who=Who.of(info),
        csrf=who_.csrf,
        nav="sessions",
        live=query.url(base="/live/sessions"),
        q=query,
        statuses=list(STATUS_VALUES),
        types=sorted(w.type for w in workflows),
        rows=Markup(rows_html(sessions, query)),  # noqa: S704 - rendered by our template
        first_url=query.url(page=""),
        next_url=query.url(page=next_token) if next_token else "",
    )
    _timing(response, started)
    return response


def _timing(response: Response, started: float) -> None:
    # Server-Timing: the browser's devtools and the benchmark read the
    # server's own time for the page, apart from the network.
    response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"


async def session_page(request: Request) -> Response:
    """A session: header, actions, children, step timeline; live."""
    who_ = caller(request)
    session_id = request.path_params["session_id"]
    gateway = console(request).gateway
    info, session, workflows = await asyncio.gather(
        who_.client.whoami(),
        who_.client.get_session(session_id),
        gateway.workflows(who_.token),
    )
    now = utcnow()
    parents = parent_types(workflows)
    tree = await load_tree(who_.client, session_id, parents) if session.type in parents else []
    open_detail: dict[int, Markup] = {}
    for interaction in session.interactions:
        if interaction.status == pb.INTERACTION_STATUS_PENDING:
            output = await read_output(who_.client, session_id, interaction.id)
            html = detail_html(session_id, interaction, output, now, session.waiting_for)
            open_detail[interaction.seq] = Markup(html)  # noqa: S704 - our template's output
    terminal = session.status in (pb.SESSION_STATUS_COMPLETE, pb.SESSION_STATUS_CANCELLED)
    return page(
        request,
        "session.html",
        notice=NOTICES.get(request.query_params.get("done", ""), ""),
        who=Who.of(info),
        csrf=who_.csrf,
        nav="sessions",
        live="" if terminal else _live_url(session),
        h=header(session, now),
        retry_steps=retry_steps(workflows, session) if not open_detail else [],
        tree=tree,
        rows=steps_of(session.interactions, now, session.waiting_for),
        open_detail=open_detail,
    )


def _live_url(session: pb.Session) -> str:
    # The version and whether it waits: what the page shows, so the stream
    # does not send it again (waiting has no version of its own).
    waiting = "&w=1" if session.waiting_for else ""
    return f"/live/sessions/{session.id}?v={session.version}{waiting}"


def _seq(request: Request) -> int:
    text = request.path_params["seq"]
    if not text.isdigit() or not 0 < int(text) < MAX_SEQ:
        raise InvalidArgument(f"step {text!r} is not a step number")
    return int(text)


async def _interaction(request: Request) -> tuple[pb.Session, pb.Interaction]:
    who_ = caller(request)
    session_id = request.path_params["session_id"]
    seq = _seq(request)
    session = await who_.client.get_session(session_id)
    for interaction in session.interactions:
        if interaction.seq == seq:
            return session, interaction
    raise NotFound(f"session {session_id} has no step {seq}")


async def step_detail(request: Request) -> Response:
    """A step's detail, as a fragment (the timeline loads it when a row opens)."""
    session, interaction = await _interaction(request)
    output = await read_output(caller(request).client, session.id, interaction.id)
    html = detail_html(session.id, interaction, output, utcnow(), session.waiting_for)
    return Response(html, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


async def step_page(request: Request) -> Response:
    """A step on its own page (a link to share; works without scripts)."""
    who_ = caller(request)
    (session, interaction), info = await asyncio.gather(_interaction(request), who_.client.whoami())
    now = utcnow()
    output = await read_output(who_.client, session.id, interaction.id)
    rows = {row.seq: row for row in steps_of(session.interactions, now, session.waiting_for)}
    terminal = session.status in (pb.SESSION_STATUS_COMPLETE, pb.SESSION_STATUS_CANCELLED)
    return page(
        request,
        "step.html",
        who=Who.of(info),
        csrf=who_.csrf,
        nav="sessions",
        live="" if terminal else f"/live/sessions/{session.id}",
        session_id=session.id,
        session_type=session.type,
        session_name=session.name,
        step=rows[interaction.seq],
        detail=Markup(detail_html(session.id, interaction, output, now, session.waiting_for)),  # noqa: S704
    )


async def step_output(request: Request) -> Response:
    """All of a step's stored output, as plain text, read page by page."""
    session, interaction = await _interaction(request)
    client = caller(request).client

    async def chunks() -> AsyncIterator[bytes]:
        after: int | None = None
        while True:
            page_, more = await client.read_output(session.id, interaction.id, after_index=after)
            for chunk in page_:
                yield chunk.data
            if not more or not page_:
                return
            after = page_[-1].index

    return StreamingResponse(
        chunks(),
        media_type="text/plain; charset=utf-8",
        headers={**PAGE_HEADERS, "X-Content-Type-Options": "nosniff"},
    )


async def workflows_page(request: Request) -> Response:
    """Every session type's step graph, drawn."""
    who_ = caller(request)
    info, workflows = await asyncio.gather(who_.client.whoami(), who_.client.describe())
    shown = [
        {
            "type": w.type,
            "version": w.version,
            "svg": diagram(w),
            "steps": list(w.steps),
            "child_types": list(w.child_types),
            "params": sorted(w.params.items()),
        }
        for w in sorted(workflows, key=lambda w: w.type)
    ]
    return page(
        request,
        "workflows.html",
        who=Who.of(info),
        csrf=who_.csrf,
        nav="workflows",
        workflows=shown,
    )


async def executors_page(request: Request) -> Response:
    """The connected executors: where, for whom, how busy, running what; live."""
    who_ = caller(request)
    info, executors = await asyncio.gather(who_.client.whoami(), who_.client.executors())
    names = await SessionNames().look_up(who_.client, executors)
    return page(
        request,
        "executors.html",
        who=Who.of(info),
        csrf=who_.csrf,
        nav="executors",
        live="/live/executors",
        section=Markup(section_html(executors, names)),  # noqa: S704 - our template's output
    )


async def map_page(request: Request) -> Response:
    """A workspace's project map and its next sessions; live.

    Without a workspace named, the first the project knows (its executors'
    default first); the picker lists every workspace it knows.
    """
    who_ = caller(request)
    chosen = workspace_param(request.query_params)
    info, workspaces = await asyncio.gather(who_.client.whoami(), known_workspaces(who_.client))
    if not chosen and workspaces:
        chosen = workspaces[0].id
    section = ""
    if chosen:
        entries, the_map = await who_.client.next_sessions(chosen)
        section = map_html(view_of(chosen, the_map, entries, who_.csrf))
    names = {w.id: label(w) for w in workspaces}
    return page(
        request,
        "map.html",
        who=Who.of(info),
        csrf=who_.csrf,
        nav="map",
        live=f"/live/map?workspace={chosen}" if chosen else "",
        workspaces=list(names.items()),
        chosen=chosen,
        chosen_label=names.get(chosen, chosen),
        section=Markup(section),  # noqa: S704 - our template's output
    )


def _event_stream(body: AsyncIterator[str]) -> Response:
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _busy() -> Response:
    return Response("too many live pages open; retry later", 503, headers={"Retry-After": "10"})


def _polled(request: Request, view: object, poll: Poll) -> Response:
    """The event stream of a polled view (shared per token and view)."""
    who_ = caller(request)
    limit = console(request).streams
    if not limit.acquire():
        return _busy()

    async def body() -> AsyncIterator[str]:
        try:
            async for text in console(request).feeds.stream(who_.token, view, poll, limit):
                yield text
        finally:
            limit.release()

    return _event_stream(body())


async def live_sessions(request: Request) -> Response:
    """The live list's event stream."""
    query = ListQuery.parse(dict(request.query_params))
    return _polled(
        request, ("sessions", query), poll_list(query, console(request).settings.web_page_size)
    )


async def live_executors(request: Request) -> Response:
    """The live executors page's event stream."""
    return _polled(request, "executors", poll_executors())


async def live_map(request: Request) -> Response:
    """The live project page's event stream."""
    chosen = workspace_param(request.query_params)
    if not chosen:
        raise InvalidArgument("workspace is required")
    return _polled(request, ("map", chosen), poll_map(chosen, caller(request).csrf))


async def live_session(request: Request) -> Response:
    """A session page's event stream."""
    who_ = caller(request)
    session_id = request.path_params["session_id"]
    limit = console(request).streams
    if not limit.acquire():
        return _busy()
    shown = request.query_params.get("v", "")
    stream = SessionStream(
        console(request).gateway,
        who_.token,
        session_id,
        who_.csrf,
        int(shown) if shown.isdigit() and len(shown) < 19 else 0,
        shown_waiting=request.query_params.get("w", "") == "1",
    )

    async def body() -> AsyncIterator[str]:
        try:
            async for text in stream.stream(limit):
                yield text
        finally:
            limit.release()

    return _event_stream(body())
