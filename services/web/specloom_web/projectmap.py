"""The project page: a workspace's map and the sessions that would move it on.

Read with ``NextSessions``, which answers with the map it planned from:
contexts → components → requirements (each one's state, its sentence and
the session type that meets it), the sessions that touched each component,
the last scan (branch, revision, when, its problems); and next to it the
planned sessions in order, with what each gives and waits for.

An entry that waits for nothing and runs nowhere yet can be started from
here, as ``specloom next --start`` starts it: its params from the plan,
``base`` and ``land_on`` the line the map was scanned on, in the map's
workspace. Two kinds are left to the CLI, which the page says: design and
review sessions take the context's user stories from ``specloom.toml``,
which only the workspace's checkout has; and a map whose last scan named
no branch (a line worktree moved off its line) names no line to land on.

The page is polled like the executors page (:mod:`feeds`): a session of
the workspace moving changes its touches, so the map follows it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from specloom.client import Client
from specloom.errors import InvalidArgument
from specloom.projectmap import STORY_SESSIONS, entry_subject
from specloom.v1 import common_pb2 as pb
from specloom.v1 import projectmap_pb2 as mpb
from specloom.workspaces import is_workspace_id
from specloom_web import render
from specloom_web.feeds import Poll
from specloom_web.present import clock, when

KNOWN_SESSIONS_READ = 100
"""Newest sessions read for the workspaces they ran in (with the executors' workspaces)."""

STATE_WORDS: dict[int, str] = {
    mpb.REQUIREMENT_STATE_MET: "met",
    mpb.REQUIREMENT_STATE_MISSING: "missing",
    mpb.REQUIREMENT_STATE_FAILING: "failing",
    mpb.REQUIREMENT_STATE_STALE: "stale",
    mpb.REQUIREMENT_STATE_BLOCKED: "blocked",
    mpb.REQUIREMENT_STATE_NOT_NEEDED: "not needed",
}
SETTLED = (mpb.REQUIREMENT_STATE_MET, mpb.REQUIREMENT_STATE_NOT_NEEDED)

STORIES_NOTE = (
    "takes the context's user stories from specloom.toml, which only the workspace has: "
    "start it with `specloom next --start` there"
)
NO_LINE_NOTE = (
    "the last scan names no line to land on: run `specloom next --start` in the workspace"
)


def workspace_param(params: Mapping[str, str]) -> str:
    """The ``workspace`` query value ("" when absent); InvalidArgument when malformed."""
    value = params.get("workspace", "").strip()
    if value and not is_workspace_id(value):
        raise InvalidArgument(
            f"workspace {value[:80]!r} is not a workspace id "
            '("ws-" and 12 hex digits, as `specloom status` prints it)'
        )
    return value


async def known_workspaces(client: Client) -> list[pb.WorkspaceRef]:
    """The workspaces the caller's project knows: its executors', then its sessions'.

    The executors' first (each one's default first): they are where work runs
    now. A workspace only ever scanned (no executor, no session yet) is not
    listed; the page takes its id by hand.
    """
    executors, (sessions, _) = await asyncio.gather(
        client.executors(),
        client.list_sessions(top_level_only=True, page_size=KNOWN_SESSIONS_READ),
    )
    found: dict[str, pb.WorkspaceRef] = {}
    for executor in executors:
        for workspace in executor.workspaces:
            found.setdefault(workspace.id, workspace)
    for session in sessions:
        if session.HasField("workspace") and session.workspace.id:
            found.setdefault(session.workspace.id, session.workspace)
    return list(found.values())


@dataclass(frozen=True)
class RequirementView:
    key: str
    title: str
    state: str
    """``met``, ``missing``, ``failing``, ``stale``, ``blocked``, ``not needed``."""
    detail: str
    satisfied_by: str

    @property
    def css(self) -> str:
        return self.state.replace(" ", "-")

    @property
    def settled(self) -> bool:
        return self.state in ("met", "not needed")


@dataclass(frozen=True)
class TouchView:
    session_id: str
    type: str
    status: str
    """Lower-case status word, as the console's status badges name them."""
    updated: str


@dataclass(frozen=True)
class ComponentView:
    module: str
    type: str
    description: str
    done: bool
    met: int
    requirements: tuple[RequirementView, ...]
    touched: tuple[TouchView, ...]
    observed: str

    @property
    def anchor(self) -> str:
        return f"component-{self.module}"


@dataclass(frozen=True)
class ContextView:
    """A context and its components (``context`` is None for components of no known context)."""

    context: ComponentView | None
    components: tuple[ComponentView, ...]

    @property
    def name(self) -> str:
        return self.context.module if self.context is not None else ""

    @property
    def done(self) -> int:
        """Its components done (the context's own state is on its row)."""
        return sum(c.done for c in self.components)


@dataclass(frozen=True)
class NextView:
    number: int
    """1-based, as the CLI numbers them."""
    type: str
    subject: str
    reason: str
    satisfies: tuple[str, ...]
    after: tuple[int, ...]
    """The numbers of the entries it waits for."""
    running_session_id: str
    can_start: bool
    """Startable here: waits for nothing, runs nowhere, and the page may start it."""
    note: str
    """Why a ready entry is left to the CLI ("" otherwise)."""

    @property
    def anchor(self) -> str:
        return f"start-{self.type}-{self.subject}"

    @property
    def state(self) -> str:
        if self.running_session_id:
            return "running"
        if self.after:
            return "waiting"
        return "ready"


@dataclass(frozen=True)
class MapView:
    workspace_id: str
    scanned: bool
    branch: str
    revision: str
    scanned_at: str
    problems: tuple[str, ...]
    contexts: tuple[ContextView, ...]
    done: int
    total: int
    entries: tuple[NextView, ...]
    csrf: str


def _requirement(status: mpb.RequirementStatus) -> RequirementView:
    return RequirementView(
        key=status.key,
        title=status.title or status.key,
        state=STATE_WORDS.get(status.state, "unknown"),
        detail=status.detail,
        satisfied_by=status.satisfied_by,
    )


def _touch(touch: mpb.SessionTouch) -> TouchView:
    return TouchView(
        session_id=touch.session_id,
        type=touch.type,
        status=touch.status.removeprefix("SESSION_STATUS_").lower(),
        updated=clock(when(touch.updated_at)),
    )


def _component(status: mpb.ComponentStatus) -> ComponentView:
    facts = status.facts
    return ComponentView(
        module=facts.module,
        type=facts.type,
        description=facts.description,
        done=status.done,
        met=sum(r.state in SETTLED for r in status.requirements),
        requirements=tuple(_requirement(r) for r in status.requirements),
        touched=tuple(_touch(t) for t in status.touched_by),
        observed=clock(when(status.observed_at)),
    )


def grouped(the_map: mpb.ProjectMap) -> list[ContextView]:
    """Contexts in the map's order, each with its components; strays last."""
    contexts = [c for c in the_map.components if c.facts.type == "context"]
    known = {c.facts.module.casefold() for c in contexts}
    groups = [
        ContextView(
            _component(context),
            tuple(
                _component(m)
                for m in the_map.components
                if m.facts.type != "context"
                and m.facts.context.casefold() == context.facts.module.casefold()
            ),
        )
        for context in contexts
    ]
    stray = tuple(
        _component(m)
        for m in the_map.components
        if m.facts.type != "context" and m.facts.context.casefold() not in known
    )
    if stray:
        groups.append(ContextView(None, stray))
    return groups


def start_note(entry: mpb.NextSession, the_map: mpb.ProjectMap) -> str:
    """Why this page does not start ``entry`` although it could start ("" when it may)."""
    if entry.type in STORY_SESSIONS:
        return STORIES_NOTE
    if not the_map.branch:
        return NO_LINE_NOTE
    return ""


def _entry(index: int, entry: mpb.NextSession, the_map: mpb.ProjectMap) -> NextView:
    ready = not entry.after and not entry.running_session_id
    note = start_note(entry, the_map) if ready else ""
    return NextView(
        number=index + 1,
        type=entry.type,
        subject=entry_subject(entry),
        reason=entry.reason,
        satisfies=tuple(entry.satisfies),
        after=tuple(i + 1 for i in entry.after),
        running_session_id=entry.running_session_id,
        can_start=ready and not note,
        note=note,
    )


def view_of(
    workspace_id: str,
    the_map: mpb.ProjectMap,
    entries: Sequence[mpb.NextSession],
    csrf: str,
) -> MapView:
    """What the page shows of a workspace's map and its next sessions."""
    scanned_at = when(the_map.scanned_at)
    return MapView(
        workspace_id=workspace_id,
        scanned=scanned_at is not None,
        branch=the_map.branch,
        revision=the_map.revision,
        scanned_at=clock(scanned_at),
        problems=tuple(the_map.problems),
        contexts=tuple(grouped(the_map)),
        done=sum(c.done for c in the_map.components),
        total=len(the_map.components),
        entries=tuple(_entry(i, e, the_map) for i, e in enumerate(entries)),
        csrf=csrf,
    )


def map_html(view: MapView) -> str:
    """The page's live part: the map and the next sessions."""
    return render.fragment("project_map", view)


def digest(the_map: mpb.ProjectMap, entries: Sequence[mpb.NextSession]) -> tuple[bytes, ...]:
    """What decides whether the page changed: the map (touches included) and the plan."""
    return (
        the_map.SerializeToString(deterministic=True),
        *(e.SerializeToString(deterministic=True) for e in entries),
    )


def poll_map(workspace_id: str, csrf: str) -> Poll:
    """How a live project page looks at its workspace (one per shared poller)."""

    async def poll(client: Client) -> tuple[object, Callable[[], str]]:
        entries, the_map = await client.next_sessions(workspace_id)
        return digest(the_map, entries), lambda: map_html(
            view_of(workspace_id, the_map, entries, csrf)
        )

    return poll
