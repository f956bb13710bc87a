"""``specloom session watch``: live progress of a session (and its children)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Group
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from specloom.cli._errors import EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, EXIT_PAUSED
from specloom.cli._render import (
    as_dict,
    console,
    outcome_of,
    print_json_line,
    state_of,
    styled,
    workspace_of,
)
from specloom.client import Client, status_name
from specloom.errors import SpecloomError, Unavailable
from specloom.v1 import common_pb2 as pb

OUTPUT_LINES = 8
EXIT_OF_STATUS = {
    pb.SESSION_STATUS_COMPLETE: EXIT_OK,
    pb.SESSION_STATUS_FAILED: EXIT_FAILED,
    pb.SESSION_STATUS_CANCELLED: EXIT_CANCELLED,
    pb.SESSION_STATUS_PAUSED: EXIT_PAUSED,
}


@dataclass
class _View:
    root: str
    sessions: dict[str, pb.Session] = field(default_factory=dict)
    steps: dict[str, dict[int, pb.Interaction]] = field(default_factory=dict)
    output: list[str] = field(default_factory=list)

    def apply(self, event: pb.SessionEvent) -> None:
        kind = event.WhichOneof("event")
        if kind in ("snapshot", "session"):
            session = event.snapshot if kind == "snapshot" else event.session
            head = pb.Session()
            head.CopyFrom(session)
            del head.interactions[:]
            self.sessions[session.id] = head
            for interaction in session.interactions:
                self.steps.setdefault(session.id, {})[interaction.seq] = interaction
        elif kind == "interaction":
            self.steps.setdefault(event.session_id, {})[event.interaction.seq] = event.interaction
        elif kind == "output":
            text = event.output.data.decode("utf-8", errors="replace")
            for line in text.splitlines():
                if line.strip():
                    self.output.append(line[:200])
            del self.output[:-OUTPUT_LINES]

    def waiting(self) -> list[str]:
        """Sessions shown as waiting for an executor (claims send no event: poll them)."""
        return [s.id for s in self.sessions.values() if s.waiting_for]

    def refreshed(self, session: pb.Session) -> None:
        """A re-read head: only what waiting changes (status and waiting_for)."""
        known = self.sessions.get(session.id)
        if known is not None and known.version == session.version:
            known.waiting_for = session.waiting_for

    def finished(self) -> int | None:
        head = self.sessions.get(self.root)
        if head is None:
            return None
        return EXIT_OF_STATUS.get(head.status)

    def render(self) -> Group:
        head = self.sessions.get(self.root)
        parts: list[object] = []
        if head is None:
            return Group(Text("waiting for the session…"))
        title = Text.assemble(
            (f"{head.type} ", "bold"), f"{head.name}  ", styled(status_name(head.status))
        )
        if head.HasField("workspace"):
            title.append(f"  in {workspace_of(head)}")
        if head.status_reason:
            title.append(f" — {head.status_reason}")
        parts.append(title)
        steps = self.steps.get(self.root, {})
        table = Table(show_edge=False, pad_edge=False, box=None)
        for column in ("#", "step", "outcome", "detail"):
            table.add_column(column)
        for seq in sorted(steps)[-12:]:
            interaction = steps[seq]
            outcome = outcome_of(interaction)
            cell: Text | Spinner = styled(outcome)
            if outcome == "pending" and head.waiting_for:
                cell = Text(f"waiting for {head.waiting_for}", style="yellow")
            elif outcome == "pending":
                cell = Spinner("dots", text=Text("running", style="cyan"))
            detail = (
                interaction.result.error_message.splitlines()[0][:100]
                if (interaction.result.error_message)
                else ""
            )
            table.add_row(str(seq), interaction.step, cell, detail)
        parts.append(table)
        children = [s for s in self.sessions.values() if s.parent_id == self.root]
        if children:
            done = sum(1 for c in children if c.status == pb.SESSION_STATUS_COMPLETE)
            parts.append(Text(f"children: {done}/{len(children)} complete", style="bold"))
            for child in sorted(children, key=lambda c: c.name):
                child_steps = self.steps.get(child.id, {})
                current = child_steps[max(child_steps)].step if child_steps else ""
                line = Text.assemble(
                    f"  {child.name:<32} ", styled(state_of(child)), f"  {current}"
                )
                if child.waiting_for:
                    line.append(f" (waiting for {child.waiting_for})")
                parts.append(line)
        if self.output:
            parts.append(Text("output:", style="dim"))
            parts.extend(Text("  " + line, style="dim") for line in self.output)
        return Group(*parts)  # type: ignore[arg-type]


RECONNECTS = 10
WAITING_POLL = 2.0
"""Seconds between re-reads of a session shown as waiting for an executor."""


async def _poll_waiting(client: Client, view: _View, show: Callable[[], None]) -> None:
    """Re-read sessions shown as waiting: an executor claiming their command sends no event."""
    while True:
        await asyncio.sleep(WAITING_POLL)
        for session_id in view.waiting():
            try:
                session = await client.get_session(session_id, view=pb.INTERACTION_VIEW_NONE)
            except SpecloomError:
                continue  # the watch stream itself reports a lost server
            view.refreshed(session)
        show()


async def _follow(
    client: Client, session_id: str, view: _View, show: Callable[[], None], as_json: bool
) -> int | None:
    events = client.watch(session_id, include_children=True, include_output=True)
    poller = None if as_json else asyncio.create_task(_poll_waiting(client, view, show))
    try:
        async for event in events:
            if as_json:
                print_json_line(as_dict(event))
            view.apply(event)
            show()
            code = view.finished()
            if code is not None:
                return code
    finally:
        if poller is not None:
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)
    return None


async def watch(client: Client, session_id: str, *, as_json: bool) -> int:
    """Follow a session until it stops; returns the exit code for its status.

    A watch stream also ends when the server restarts or a replica drains;
    then this re-opens it (the new snapshot picks up where it was), so a
    person watching never sees a restart as the end of their session.
    """
    view = _View(root=session_id)
    live = (
        None
        if as_json
        else Live(view.render(), console=console, refresh_per_second=8, transient=False)
    )

    def show() -> None:
        if live is not None:
            live.update(view.render())

    try:
        if live is not None:
            live.start()
        for attempt in range(RECONNECTS + 1):
            try:
                code = await _follow(client, session_id, view, show, as_json)
            except Unavailable:
                if attempt == RECONNECTS:
                    raise
                code = None
            if code is not None:
                return code
            await asyncio.sleep(min(0.2 * 2**attempt, 5.0))
        raise Unavailable(f"the watch of {session_id} kept ending; try again later")
    finally:
        if live is not None:
            live.stop()
