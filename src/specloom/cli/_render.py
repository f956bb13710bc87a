"""How sessions look in a terminal, and as JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from rich.console import Console
from rich.table import Table
from rich.text import Text

from specloom.client import status_name
from specloom.protoconv import from_timestamp
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


def as_dict(message: Message) -> dict[str, Any]:
    """A message as JSON-ready data (field names as in the .proto)."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


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
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


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


def session_line(session: pb.Session) -> str:
    """One line: id, type, subject, status (or what it waits for), workspace."""
    reason = f" — {session.status_reason}" if session.status_reason else ""
    if session.waiting_for:
        reason = f" — waiting for {session.waiting_for}"
    where = f"  in {workspace_of(session)}" if session.HasField("workspace") else ""
    return (
        f"{session.id}  {session.type}  {session.name}  "
        f"[{status_name(session.status)}]{where}{reason}"
    )


def sessions_table(sessions: Iterable[pb.Session]) -> Table:
    """Sessions as a table (a waiting one says what it waits for)."""
    table = Table(show_edge=False, pad_edge=False)
    for column in ("id", "type", "subject", "status", "workspace", "steps", "cost", "created"):
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
    table = Table(
        show_edge=False,
        pad_edge=False,
        # Text, not markup: "[complete]" in the line is a word, not a style.
        title=Text(session_line(session)),
        title_justify="left",
    )
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
