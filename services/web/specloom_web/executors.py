"""The executors page: the connected agents, from ``ListExecutors``.

Each executor with its workspaces (each a link to that workspace's
sessions), whose sessions it runs, its capabilities and slots, and the
commands it runs now — each a link to its session, named by the session's
type and subject. Those heads are read with the caller's token (so only
sessions it may see are named) and kept while their command runs: a
session's type and subject never change, so a live page asks for each one
once.

What the API says is as of each executor's last presence write (register,
then about every heartbeat while its commands change), not this instant.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from specloom.client import Client
from specloom.errors import NotFound
from specloom.protoconv import from_timestamp
from specloom.v1 import common_pb2 as pb
from specloom.workspaces import label
from specloom_web import render
from specloom_web.feeds import Poll
from specloom_web.present import clock, when

MAX_NAMED = 64
"""Sessions named per look; past that a running command shows its session's id."""


@dataclass(frozen=True)
class WorkspaceView:
    """A workspace an executor serves."""

    id: str
    label: str
    remote: str
    default: bool
    """The first listed: where it pins sessions started without one."""


@dataclass(frozen=True)
class RunningView:
    """A command an executor runs."""

    session_id: str
    interaction_id: str
    step: str
    session_type: str
    """The session's type and subject, when the caller may read it ("" otherwise)."""
    subject: str
    since: str
    since_iso: str


@dataclass(frozen=True)
class ExecutorView:
    """One connected executor stream."""

    connection_id: str
    executor_id: str
    name: str
    user: str
    serves: str
    workspaces: tuple[WorkspaceView, ...]
    capabilities: tuple[str, ...]
    slots: int
    running: int
    commands: tuple[RunningView, ...]
    connected: str
    gateway: str
    agent_version: str
    labels: tuple[tuple[str, str], ...]


def serves_of(executor: pb.ExecutorPresence) -> str:
    """Whose sessions it runs, said for people."""
    if executor.serve == pb.EXECUTOR_SERVE_PROJECT:
        return "every user's sessions in the project"
    return f"{executor.scope.user_id}'s own sessions"


def _iso(stamp: dt.datetime | None) -> str:
    return stamp.isoformat() if stamp is not None else ""


def _command(command: pb.RunningCommand, names: dict[str, tuple[str, str]]) -> RunningView:
    since = from_timestamp(command.since) if command.HasField("since") else None
    session_type, subject = names.get(command.session_id, ("", ""))
    return RunningView(
        session_id=command.session_id,
        interaction_id=command.interaction_id,
        step=command.step,
        session_type=session_type,
        subject=subject,
        since=clock(since),
        since_iso=_iso(since),
    )


def views_of(
    executors: Sequence[pb.ExecutorPresence], names: dict[str, tuple[str, str]] | None = None
) -> list[ExecutorView]:
    """The page's executors, as the API lists them (by user, then name)."""
    known = names or {}
    return [
        ExecutorView(
            connection_id=e.connection_id,
            executor_id=e.executor_id,
            name=e.name,
            user=e.scope.user_id,
            serves=serves_of(e),
            workspaces=tuple(
                WorkspaceView(id=w.id, label=label(w), remote=w.remote, default=index == 0)
                for index, w in enumerate(e.workspaces)
            ),
            capabilities=tuple(e.capabilities),
            slots=e.slots,
            running=e.running,
            commands=tuple(_command(c, known) for c in e.running_commands),
            connected=clock(when(e.connected_at)),
            gateway=e.gateway_id,
            agent_version=e.agent_version,
            labels=tuple(sorted(e.labels.items())),
        )
        for e in executors
    ]


class SessionNames:
    """Type and subject of the sessions running commands belong to, read once each."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[str, str]] = {}

    async def look_up(
        self, client: Client, executors: Sequence[pb.ExecutorPresence]
    ) -> dict[str, tuple[str, str]]:
        """The names of every session the executors run (only those still running are kept)."""
        running = list(
            dict.fromkeys(
                c.session_id for e in executors for c in e.running_commands if c.session_id
            )
        )
        missing = [s for s in running if s not in self._known][:MAX_NAMED]
        found = await asyncio.gather(*(self._name(client, s) for s in missing))
        self._known.update(zip(missing, found, strict=True))
        self._known = {s: self._known[s] for s in running if s in self._known}
        return dict(self._known)

    @staticmethod
    async def _name(client: Client, session_id: str) -> tuple[str, str]:
        try:
            head = await client.get_session(session_id, pb.INTERACTION_VIEW_NONE)
        except NotFound:
            return ("", "")  # finished and pruned meanwhile
        return (head.type, head.name)


def section_html(
    executors: Sequence[pb.ExecutorPresence], names: dict[str, tuple[str, str]]
) -> str:
    """The page's live part: every executor and what it runs."""
    return render.fragment("executors", views_of(executors, names))


def poll_executors() -> Poll:
    """How a live executors page looks at the gateway (one per shared poller)."""
    names = SessionNames()

    async def poll(client: Client) -> tuple[object, Callable[[], str]]:
        executors = await client.executors()
        html = section_html(executors, await names.look_up(client, executors))
        # The HTML is the digest: few executors, and it leaves out the
        # presence's own refresh time, so only a visible change is sent.
        return html, lambda: html

    return poll
