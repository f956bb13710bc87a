"""The sessions list: its filters, one page of it, and its rows as HTML."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from specloom.client import Client
from specloom.errors import InvalidArgument
from specloom.v1 import common_pb2 as pb
from specloom.workspaces import is_workspace_id
from specloom_web import render
from specloom_web.feeds import Poll
from specloom_web.present import STATUS_VALUES, headline

MAX_FILTER_LENGTH = 128
"""Longest filter value accepted (the API's own limit for names and user ids)."""


@dataclass(frozen=True)
class ListQuery:
    """The list's filters and page, as the URL carries them."""

    status: str = ""
    type: str = ""
    user: str = ""
    workspace: str = ""
    """A workspace id (``ws-…``): only that workspace's sessions."""
    show: str = "top"
    """``top``: only sessions without a parent; ``all``: children too."""
    page: str = ""
    """The gateway's cursor for this page; empty is the newest page."""

    @staticmethod
    def parse(params: Mapping[str, str]) -> ListQuery:
        """Read the query string; a bad value is InvalidArgument naming it."""
        status = params.get("status", "")
        if status and status not in STATUS_VALUES:
            raise InvalidArgument(f"status {status!r} is not one of: {', '.join(STATUS_VALUES)}")
        show = params.get("show", "top") or "top"
        if show not in ("top", "all"):
            raise InvalidArgument(f"show {show!r} is not one of: top, all")
        for name in ("type", "user", "page"):
            if len(params.get(name, "")) > (MAX_FILTER_LENGTH if name != "page" else 1024):
                raise InvalidArgument(f"{name} is too long")
        workspace = params.get("workspace", "").strip()
        if workspace and not is_workspace_id(workspace):
            raise InvalidArgument(
                f"workspace {workspace[:80]!r} is not a workspace id "
                '("ws-" and 12 hex digits, as the workspace column links it)'
            )
        return ListQuery(
            status=status,
            type=params.get("type", "").strip(),
            user=params.get("user", "").strip(),
            workspace=workspace,
            show=show,
            page=params.get("page", ""),
        )

    @property
    def filtered(self) -> bool:
        """Whether any filter narrows the list."""
        return bool(self.status or self.type or self.user or self.workspace or self.show != "top")

    def url(self, *, page: str | None = None, base: str = "/sessions") -> str:
        """This query's URL (with another page when given)."""
        params = {
            "status": self.status,
            "type": self.type,
            "user": self.user,
            "workspace": self.workspace,
            "show": "" if self.show == "top" else self.show,
            "page": self.page if page is None else page,
        }
        query = urlencode({k: v for k, v in params.items() if v})
        return f"{base}?{query}" if query else base


async def fetch(client: Client, query: ListQuery, page_size: int) -> tuple[list[pb.Session], str]:
    """One page of sessions for ``query``, and the next page's cursor."""
    return await client.list_sessions(
        statuses=[query.status] if query.status else (),
        types=[query.type] if query.type else (),
        user_id=query.user,
        workspace_id=query.workspace,
        top_level_only=query.show == "top",
        page_size=page_size,
        page_token=query.page,
    )


def rows_html(sessions: Sequence[pb.Session], query: ListQuery) -> str:
    """The table body of one page."""
    empty = (
        "No sessions match these filters."
        if query.filtered
        else "No sessions yet. Start one with `specloom session start`."
    )
    return render.fragment("session_rows", [headline(s) for s in sessions], empty)


def digest(sessions: Sequence[pb.Session], next_token: str) -> tuple[object, ...]:
    """What decides whether a page of the list changed.

    A session's version moves with every change it records; what it waits
    for does not (an executor connecting or leaving writes nothing to it).
    """
    return (next_token, *((s.id, s.version, s.waiting_for) for s in sessions))


def poll_list(query: ListQuery, page_size: int) -> Poll:
    """How a live list looks at its page: the sessions' digest, and the rows."""

    async def poll(client: Client) -> tuple[object, Callable[[], str]]:
        sessions, next_token = await fetch(client, query, page_size)
        return digest(sessions, next_token), lambda: rows_html(sessions, query)

    return poll
