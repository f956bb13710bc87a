"""The sessions list: its filters, one page of it, and its rows as HTML."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from specloom.client import Client
from specloom.errors import InvalidArgument
from specloom.v1 import common_pb2 as pb
from specloom_web import render
from specloom_web.optional_fields import has_workspace_field
from specloom_web.present import STATUS_VALUES, headline

MAX_FILTER_LENGTH = 128
"""Longest filter value accepted (the API's own limit for names and user ids)."""


@dataclass(frozen=True)
class ListQuery:
    """The list's filters and page, as the URL carries them."""

    status: str = ""
    type: str = ""
    user: str = ""
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
        return ListQuery(
            status=status,
            type=params.get("type", "").strip(),
            user=params.get("user", "").strip(),
            show=show,
            page=params.get("page", ""),
        )

    @property
    def filtered(self) -> bool:
        """Whether any filter narrows the list."""
        return bool(self.status or self.type or self.user or self.show != "top")

    def url(self, *, page: str | None = None, base: str = "/sessions") -> str:
        """This query's URL (with another page when given)."""
        params = {
            "status": self.status,
            "type": self.type,
            "user": self.user,
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
        top_level_only=query.show == "top",
        page_size=page_size,
        page_token=query.page,
    )


def shows_workspace() -> bool:
    """Whether the workspace column is shown (only when the API has the field)."""
    return has_workspace_field()


def rows_html(sessions: Sequence[pb.Session], query: ListQuery) -> str:
    """The table body of one page."""
    empty = (
        "No sessions match these filters."
        if query.filtered
        else "No sessions yet. Start one with `specloom session start`."
    )
    return render.fragment(
        "session_rows", [headline(s) for s in sessions], shows_workspace(), empty
    )
