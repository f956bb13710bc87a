"""Starting a planned session: which entries can start now, with which params.

One reading for every client that starts what :func:`next_sessions`
planned (``specloom next --start``, the web console's map page): an entry
starts only when it waits for no other entry and no session of its kind
runs on its subject already; it starts from the line and lands on it.
"""

from __future__ import annotations

from collections.abc import Sequence

from specloom.projectmap._next import STORY_SESSIONS
from specloom.protoconv import JsonValue, struct_to_dict
from specloom.v1 import projectmap_pb2 as pb

__all__ = ["STORY_SESSIONS", "entry_subject", "start_params", "startable"]


def entry_subject(entry: pb.NextSession) -> str:
    """What a planned session works on: its component, else its context."""
    params = struct_to_dict(entry.params)
    component = params.get("component")
    if isinstance(component, dict):
        component = component.get("module_name")
    if isinstance(component, str) and component:
        return component
    context = params.get("context")
    return context if isinstance(context, str) else ""


def startable(entries: Sequence[pb.NextSession]) -> list[int]:
    """Indexes of the entries that can start now: nothing to wait for, none running."""
    return [i for i, e in enumerate(entries) if not e.after and not e.running_session_id]


def start_params(entry: pb.NextSession, line: str) -> dict[str, JsonValue]:
    """The entry's params, on the line: it starts from it and lands on it."""
    params: dict[str, JsonValue] = dict(struct_to_dict(entry.params))
    params["base"] = line
    params["land_on"] = line
    return params
