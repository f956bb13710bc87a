"""How sessions look in a terminal, and as JSON for scripts."""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from collections.abc import Iterable
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from specloom.client import status_name
from specloom.protoconv import JsonValue, from_timestamp, struct_to_dict
from specloom.v1 import common_pb2 as pb
from specloom.workspaces import label

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)

STATUS_STYLE = {
    "active": "cyan",
    "paused": "yellow",
    "complete": "green",
    "failed": "red",
    "cancelled": "magenta",
    "ok": "green",
    "warning": "yellow",
    "error": "red",
    "pending": "cyan",
    "abandoned": "magenta",
    "waiting": "yellow",
}


_OPAQUE = frozenset(
    {
        "google.protobuf.Struct",
        "google.protobuf.Value",
        "google.protobuf.ListValue",
        "google.protobuf.Timestamp",
    }
)
"""Messages whose JSON form is kept as protobuf writes it (a dict, a date)."""
_INT64 = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED64,
    }
)


def as_dict(message: Message) -> dict[str, Any]:
    """A message as JSON-ready data, in the words the CLI itself takes.

    Field names as in the .proto; enum values as the lower-case words that
    ``--status`` and ``--mode`` accept (``failed``, not
    ``SESSION_STATUS_FAILED``); 64-bit integers (counts, seqs, versions) as
    numbers, not the strings protobuf's JSON mapping makes of them; fields
    at their default present too (``"admin": false``), so scripts find every key.
    """
    data = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    descriptor: Descriptor = message.DESCRIPTOR  # type: ignore[assignment]
    return _plain(descriptor, data)


def enum_word(enum: EnumDescriptor, name: str) -> str:
    """``SESSION_STATUS_FAILED`` of SessionStatus -> ``failed``."""
    prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"
    return name.removeprefix(prefix).lower()


def _plain(descriptor: Descriptor, data: dict[str, Any]) -> dict[str, Any]:
    if descriptor.full_name in _OPAQUE:
        return data
    for field in descriptor.fields:
        if field.name in data:
            data[field.name] = _field(field, data[field.name])
    return data


def _field(field: FieldDescriptor, value: Any) -> Any:
    message = field.message_type
    if message is not None and message.GetOptions().map_entry:
        inner = message.fields_by_name["value"]
        return {key: _single(inner, item) for key, item in value.items()}
    if isinstance(value, list):
        return [_single(field, item) for item in value]
    return _single(field, value)


def _single(field: FieldDescriptor, value: Any) -> Any:
    if field.enum_type is not None and isinstance(value, str):
        return enum_word(field.enum_type, value)
    if field.type in _INT64 and isinstance(value, str):
        return int(value)
    if field.message_type is not None and isinstance(value, dict):
        return _plain(field.message_type, value)
    return value


def print_json(data: Any) -> None:
    """One JSON document on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def print_json_line(data: Any) -> None:
    """One JSON object per line (NDJSON), for streams."""
    sys.stdout.write(json.dumps(data, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def styled(word: str) -> Text:
    """A status word in its colour."""
    return Text(word, style=STATUS_STYLE.get(word, ""))


def outcome_of(interaction: pb.Interaction) -> str:
    """pending, ok, warning, error or abandoned."""
    if interaction.status == pb.INTERACTION_STATUS_PENDING:
        return "pending"
    if interaction.status == pb.INTERACTION_STATUS_ABANDONED:
        return "abandoned"
    names = {
        pb.RESULT_STATUS_OK: "ok",
        pb.RESULT_STATUS_WARNING: "warning",
        pb.RESULT_STATUS_ERROR: "error",
    }
    return names.get(interaction.result.status, "?")


def duration_of(interaction: pb.Interaction) -> str:
    """How long the step took (wall time from issue to result)."""
    if not interaction.HasField("completed_at") or not interaction.HasField("created_at"):
        return ""
    seconds = (
        from_timestamp(interaction.completed_at) - from_timestamp(interaction.created_at)
    ).total_seconds()
    return _seconds(seconds)


def _seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _count(n: int) -> str:
    if n < 10_000:
        return str(n)
    if n < 10_000_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.1f}M"


def cost_of(usage: pb.Usage) -> str:
    """``$0.0123``, with ``+?`` when some steps' models had no price."""
    text = f"${usage.cost_usd:.4f}" if usage.cost_usd < 10 else f"${usage.cost_usd:,.2f}"
    return text + ("+?" if usage.unpriced_steps else "")


def usage_brief(usage: pb.Usage) -> str:
    """One step's usage in a few words: model, tokens, turns, cost."""
    if usage.note and not (usage.input_tokens or usage.output_tokens):
        return usage.note.split(";")[0]
    cache = usage.cache_creation_input_tokens + usage.cache_read_input_tokens
    parts = [
        usage.model or "?",
        f"{_count(usage.input_tokens)} in / {_count(usage.output_tokens)} out"
        + (f" / {_count(cache)} cache" if cache else ""),
        f"{usage.turns} turns",
        cost_of(usage),
    ]
    if usage.retries:
        parts.append(f"{usage.retries} retries")
    return " · ".join(parts)


def usage_line(label: str, usage: pb.Usage) -> str:
    """A session's summed usage on one line."""
    steps = usage.agent_steps
    line = (
        f"{label}: {steps} agent step{'s' if steps != 1 else ''}, "
        f"{usage.input_tokens:,} input + {usage.output_tokens:,} output tokens, "
        f"{usage.cache_creation_input_tokens:,} cache write + "
        f"{usage.cache_read_input_tokens:,} cache read, {usage.turns} turns, "
        f"{cost_of(usage)} estimated"
    )
    if usage.unpriced_steps:
        line += f" ({usage.unpriced_steps} step(s) used a model without a price)"
    return line


def kind_of(interaction: pb.Interaction) -> str:
    return interaction.command.WhichOneof("kind") or ""


def state_of(session: pb.Session) -> str:
    """The status word, or "waiting" while its command waits for an executor."""
    return "waiting" if session.waiting_for else status_name(session.status)


def workspace_of(session: pb.Session) -> str:
    """``api (ws-…)``, or "none" (not pinned yet, or from before workspaces)."""
    if session.HasField("workspace"):
        return label(session.workspace)
    return "none"


def session_line(session: pb.Session) -> Text:
    """One line: id, type, subject, status (or what it waits for), workspace — a
    Text: a session's own words are never read as console markup, and
    ``[failed]`` is not a style tag."""
    line = Text(f"{session.id}  {session.type}  {session.name}  [")
    line.append_text(styled(status_name(session.status)))
    line.append("]")
    if session.HasField("workspace"):
        line.append(f"  in {workspace_of(session)}")
    if session.waiting_for:
        line.append(f" — waiting for {session.waiting_for}")
    elif session.status_reason:
        line.append(f" — {session.status_reason}")
    return line


def _text(value: JsonValue | None) -> str:
    return value if isinstance(value, str) else ""


def total_time(session: pb.Session, now: dt.datetime | None = None) -> str:
    """Wall time from start to finish, or so far for a session still going."""
    if not session.HasField("created_at"):
        return ""
    start = from_timestamp(session.created_at)
    finished = session.HasField("finished_at")
    end = from_timestamp(session.finished_at) if finished else (now or dt.datetime.now(dt.UTC))
    return _seconds((end - start).total_seconds()) + ("" if finished else " so far")


def session_header(session: pb.Session) -> Group:
    """What ``show`` says first: the session, its status and reason (or what it
    waits for), workspace, branch, commit and total time."""
    state = struct_to_dict(session.state)
    status = Text("status: ")
    status.append_text(styled(state_of(session)))
    if session.waiting_for:
        status.append(f" for {session.waiting_for}")
    elif session.status_reason:
        status.append(f" — {session.status_reason}")
    commit = _text(state.get("commit"))
    facts = Text(
        f"workspace: {workspace_of(session)}   branch: {_text(state.get('branch')) or '-'}   "
        f"commit: {commit[:12] or '-'}   total: {total_time(session) or '-'}   "
        f"steps: {session.interaction_count}"
    )
    title = Text(f"{session.id}  {session.type}  {session.name}", style="bold")
    return Group(title, status, facts)


def id_column(table: Table, ids: Iterable[str]) -> None:
    """An id column that never cuts an id ("01a2…" cannot be copied into a
    command): other columns wrap first."""
    table.add_column("id", no_wrap=True, min_width=max((len(i) for i in ids), default=2))


def sessions_table(sessions: Iterable[pb.Session]) -> Table:
    """Sessions as a table (a waiting one says what it waits for)."""
    sessions = list(sessions)
    table = Table(show_edge=False, pad_edge=False)
    id_column(table, (s.id for s in sessions))
    for column in ("type", "subject", "status", "workspace", "steps", "cost", "created"):
        table.add_column(column)
    for session in sessions:
        created = from_timestamp(session.created_at).strftime("%Y-%m-%d %H:%M:%S")
        status = styled(state_of(session))
        if session.waiting_for:
            status.append(f" for {session.waiting_for}")
        table.add_row(
            session.id,
            session.type,
            session.name,
            status,
            workspace_of(session),
            str(session.interaction_count),
            cost_of(session.usage) if session.usage.agent_steps else "",
            created,
        )
    return table


def executors_table(executors: Iterable[pb.ExecutorPresence]) -> Table:
    """Connected executors: who, where, for whom, how busy."""
    table = Table(show_edge=False, pad_edge=False)
    for column in ("name", "user", "serves", "workspaces", "capabilities", "busy", "since"):
        table.add_column(column)
    for executor in executors:
        serves = (
            "project" if executor.serve == pb.EXECUTOR_SERVE_PROJECT else executor.scope.user_id
        )
        since = from_timestamp(executor.connected_at).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(
            executor.name,
            executor.scope.user_id,
            serves,
            ", ".join(label(w) for w in executor.workspaces) or "none",
            ", ".join(executor.capabilities),
            f"{executor.running}/{executor.slots}",
            since,
        )
    return table


def history_table(session: pb.Session) -> Table:
    """A session's step history: step, kind, outcome, duration, reason."""
    table = Table(show_edge=False, pad_edge=False)
    for column in ("#", "step", "kind", "outcome", "duration", "usage", "detail"):
        table.add_column(column)
    for interaction in session.interactions:
        detail = interaction.result.error_message
        if interaction.command.WhichOneof("kind") == "control":
            detail = interaction.command.control.reason
        backend = interaction.result.data.fields.get("backend")
        if backend is not None and backend.string_value == "scripted":
            detail = (detail + " " if detail else "") + "(scripted: replayed, not generated)"
        table.add_row(
            str(interaction.seq),
            interaction.step,
            kind_of(interaction),
            styled(outcome_of(interaction)),
            duration_of(interaction),
            usage_brief(interaction.result.usage) if interaction.result.HasField("usage") else "",
            detail.splitlines()[0][:120] if detail else "",
        )
    return table


def workflows_table(workflows: Iterable[pb.WorkflowDescription]) -> Table:
    """Session types and their steps."""
    table = Table(show_edge=False, pad_edge=False)
    for column in ("type", "v", "steps", "params"):
        table.add_column(column)
    for workflow in workflows:
        steps = " → ".join(step.name for step in workflow.steps)
        required = [k for k, v in workflow.params.items() if "(required)" in v]
        table.add_row(workflow.type, str(workflow.version), steps, ", ".join(sorted(required)))
    return table
