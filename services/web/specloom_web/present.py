"""What pages show of a session: plain records built from the API's messages.

Pure functions, no web framework: templates read these records, and the
tests check them without a browser.
"""

from __future__ import annotations

import datetime as dt
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

from google.protobuf.timestamp_pb2 import Timestamp

from specloom.protoconv import JsonValue, from_timestamp, struct_to_dict
from specloom.v1 import common_pb2 as pb
from specloom.workspaces import label
from specloom_web.usage import FAILURE_CLASSES, Usage, session_usage, step_usage

STATUS_NAMES: dict[int, str] = {
    pb.SESSION_STATUS_ACTIVE: "active",
    pb.SESSION_STATUS_PAUSED: "paused",
    pb.SESSION_STATUS_COMPLETE: "complete",
    pb.SESSION_STATUS_FAILED: "failed",
    pb.SESSION_STATUS_CANCELLED: "cancelled",
}
STATUS_VALUES = {name: value for value, name in STATUS_NAMES.items()}
MODE_NAMES: dict[int, str] = {
    pb.EXECUTION_MODE_MANUAL: "manual",
    pb.EXECUTION_MODE_AUTO: "auto",
    pb.EXECUTION_MODE_AGENTIC: "agentic",
}
CONTROL_WORDS: dict[int, str] = {
    pb.CONTROL_ACTION_PAUSE: "paused",
    pb.CONTROL_ACTION_RESUME: "resumed",
    pb.CONTROL_ACTION_RETRY_FROM: "retry from",
}

RESULT_WORDS: dict[int, str] = {
    pb.RESULT_STATUS_OK: "ok",
    pb.RESULT_STATUS_WARNING: "warning",
    pb.RESULT_STATUS_ERROR: "error",
}
CONTROL_LABELS: dict[int, str] = {
    pb.CONTROL_ACTION_PAUSE: "Pause",
    pb.CONTROL_ACTION_RESUME: "Resume",
    pb.CONTROL_ACTION_RETRY_FROM: "Retry",
}


def status_name(status: int) -> str:
    """``active``, ``paused``, ``complete``, ``failed``, ``cancelled`` (or ``unknown``)."""
    return STATUS_NAMES.get(status, "unknown")


def when(stamp: Timestamp) -> dt.datetime | None:
    """A set Timestamp as an aware datetime; None when unset."""
    if stamp.seconds == 0 and stamp.nanos == 0:
        return None
    return from_timestamp(stamp)


def clock(moment: dt.datetime | None) -> str:
    """``2026-12-03 10:04:05`` (UTC), or "" when unknown."""
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else ""


def span(seconds: float | None) -> str:
    """A duration people read: ``340 ms``, ``12.4 s``, ``3 min 05 s``, ``2 h 04 min``."""
    if seconds is None or seconds < 0:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _text(value: JsonValue) -> str:
    return value if isinstance(value, str) else ""


@dataclass(frozen=True)
class Headline:
    """A session as one row of a list or a node of the children tree."""

    id: str
    type: str
    name: str
    status: str
    reason: str
    mode: str
    user: str
    parent_id: str
    workspace: str
    """``api (ws-…)``; "" while it belongs to no workspace (not pinned yet, or older)."""
    workspace_id: str
    waiting_for: str
    """What its pending command waits for ("an executor of workspace …"); "" otherwise."""
    progress: str
    steps: int
    created: str
    updated: str
    created_iso: str
    version: int

    @property
    def state(self) -> str:
        """The status word shown: ``waiting`` while no executor could run its step."""
        return "waiting" if self.waiting_for else self.status


def progress_of(session: pb.Session) -> str:
    """Where a session is: its next step and loop round, or how it ended."""
    progress = struct_to_dict(session.progress)
    status = status_name(session.status)
    next_step = _text(progress.get("next_step"))
    if status == "complete":
        return "done"
    if status == "cancelled":
        return "cancelled"
    if not next_step or next_step == "done":
        return status
    rounds = progress.get("rounds")
    taken = sum(v for v in rounds.values() if isinstance(v, int)) if isinstance(rounds, dict) else 0
    where = f"{'at' if status == 'active' else 'stopped at'} {next_step}"
    return f"{where} · round {taken + 1}" if taken else where


def headline(session: pb.Session) -> Headline:
    """The list row of ``session`` (a head without interactions is enough)."""
    created = when(session.created_at)
    return Headline(
        id=session.id,
        type=session.type,
        name=session.name or _text(struct_to_dict(session.params).get("context")),
        status=status_name(session.status),
        reason=session.status_reason,
        mode=MODE_NAMES.get(session.execution_mode, "manual"),
        user=session.scope.user_id,
        parent_id=session.parent_id,
        workspace=label(session.workspace) if session.HasField("workspace") else "",
        workspace_id=session.workspace.id,
        waiting_for=session.waiting_for,
        progress=progress_of(session),
        steps=session.interaction_count,
        created=clock(created),
        updated=clock(when(session.updated_at)),
        created_iso=created.isoformat() if created else "",
        version=session.version,
    )


@dataclass(frozen=True)
class Header:
    """The top of a session's page."""

    head: Headline
    branch: str
    commit: str
    pull_request: str
    pull_request_url: str
    duration: str
    finished: str
    definition_version: int
    usage: Usage | None
    """Its own agent steps' tokens and cost."""
    total_usage: Usage | None
    """With its children's, when they add any."""
    steerable: bool
    """Not complete or cancelled: pause, resume, retry and cancel may apply."""


def _latest_data(session: pb.Session, key: str) -> JsonValue:
    for interaction in reversed(session.interactions):
        if interaction.HasField("result"):
            value = struct_to_dict(interaction.result.data).get(key)
            if value:
                return value
    return None


def header(session: pb.Session, now: dt.datetime) -> Header:
    """The header of a session read with its history."""
    state = struct_to_dict(session.state)
    created = when(session.created_at)
    finished = when(session.finished_at)
    end = finished or now
    pr = state.get("pull_request") or _latest_data(session, "pull_request")
    pr_url = ""
    pr_text = ""
    if isinstance(pr, dict):
        pr_url = _text(pr.get("url"))
        pr_text = pr_url or _text(pr.get("command"))
    elif isinstance(pr, str):
        pr_text = pr
        pr_url = pr if pr.startswith(("https://", "http://")) else ""
    own, total = session_usage(session)
    return Header(
        head=headline(session),
        branch=_text(state.get("branch")) or _text(_latest_data(session, "branch")),
        commit=_text(state.get("commit")) or _text(_latest_data(session, "commit")),
        pull_request=pr_text,
        pull_request_url=pr_url,
        duration=span((end - created).total_seconds()) if created else "",
        finished=clock(finished),
        definition_version=session.definition_version,
        usage=own,
        total_usage=total,
        steerable=session.status
        in (pb.SESSION_STATUS_ACTIVE, pb.SESSION_STATUS_PAUSED, pb.SESSION_STATUS_FAILED),
    )


@dataclass(frozen=True)
class Step:
    """One row of the step timeline."""

    seq: int
    id: str
    step: str
    """The step's name; for a person's decision, what was decided (``Retry``, ``Pause``)."""
    kind: str
    outcome: str
    """pending, ok, warning, error, abandoned, or control."""
    duration: str
    round: int
    """Loop round (0: not a loop step, or its first run)."""
    started: str
    summary: str
    executor: str
    usage: Usage | None = None
    waiting_for: str = ""
    """For a pending step no executor could run: what it waits for."""


def outcome_of(interaction: pb.Interaction) -> str:
    """pending, ok, warning, error, abandoned, or control."""
    if interaction.command.WhichOneof("kind") == "control":
        return "control"
    if interaction.status == pb.INTERACTION_STATUS_PENDING:
        return "pending"
    if interaction.status == pb.INTERACTION_STATUS_ABANDONED:
        return "abandoned"
    return RESULT_WORDS.get(interaction.result.status, "unknown")


def _duration(interaction: pb.Interaction, now: dt.datetime) -> str:
    if interaction.HasField("result") and interaction.result.duration_ms:
        return span(interaction.result.duration_ms / 1000)
    started = when(interaction.created_at)
    if started is None:
        return ""
    ended = when(interaction.completed_at)
    if ended is None and interaction.status != pb.INTERACTION_STATUS_PENDING:
        return ""
    return span(((ended or now) - started).total_seconds())


def _first_line(text: str, limit: int = 160) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _summary(interaction: pb.Interaction) -> str:
    command = interaction.command
    if command.WhichOneof("kind") == "control":
        record = command.control
        word = CONTROL_WORDS.get(record.action, "control")
        text = f"{word} {record.step}".strip()
        return f"{text}: {record.reason}" if record.reason else text
    if not interaction.HasField("result"):
        return ""
    result = interaction.result
    if result.error_message:
        return _first_line(result.error_message)
    data = struct_to_dict(result.data)
    commit = _text(data.get("commit"))
    if commit and command.WhichOneof("kind") == "git":
        return f"commit {commit[:12]}"
    facts = data.get("judgement")
    if isinstance(facts, dict) and isinstance(facts.get("facts"), dict):
        found = facts.get("facts")
        run = found.get("test_run") if isinstance(found, dict) else None
        if isinstance(run, dict):
            return f"{run.get('passed', 0)} passed, {run.get('failed', 0)} failed"
    return _first_line(result.stdout)


def steps_of(
    interactions: Sequence[pb.Interaction], now: dt.datetime, waiting_for: str = ""
) -> list[Step]:
    """The timeline: every interaction in order, with its loop round.

    ``waiting_for`` is the session's: its pending step shows it instead of running.
    """
    seen: dict[str, int] = {}
    rows: list[Step] = []
    for interaction in interactions:
        rows.append(step_of(interaction, now, seen, waiting_for))
    return rows


def step_of(
    interaction: pb.Interaction,
    now: dt.datetime,
    seen: dict[str, int] | None = None,
    waiting_for: str = "",
) -> Step:
    """One timeline row. ``seen`` counts earlier runs of each step (for the round)."""
    counts = seen if seen is not None else {}
    kind = interaction.command.WhichOneof("kind") or ""
    occurrence = counts.get(interaction.step, 0) + 1
    if kind == "control":
        # Resume and retry restart every loop counter: rounds count afresh.
        counts.clear()
    else:
        counts[interaction.step] = occurrence
    metadata = struct_to_dict(interaction.command.metadata)
    declared = metadata.get("round")
    loop_round = declared if isinstance(declared, int) and declared > 0 else 0
    if not loop_round and occurrence > 1 and kind != "control":
        loop_round = occurrence
    return Step(
        seq=interaction.seq,
        id=interaction.id,
        step=CONTROL_LABELS.get(interaction.command.control.action, "Decision")
        if kind == "control"
        else interaction.step,
        kind=kind,
        outcome=outcome_of(interaction),
        duration=_duration(interaction, now),
        round=loop_round,
        started=clock(when(interaction.created_at)),
        summary=_summary(interaction),
        executor=interaction.lease.executor_id if interaction.HasField("lease") else "",
        usage=step_usage(interaction),
        waiting_for=waiting_for if interaction.status == pb.INTERACTION_STATUS_PENDING else "",
    )


@dataclass(frozen=True)
class GitLine:
    """One git operation, said in a line."""

    text: str


@dataclass(frozen=True)
class CommandView:
    """What was asked of the executor (or recorded by a person)."""

    kind: str
    prompt: str = ""
    system_prompt: str = ""
    model: str = ""
    argv: str = ""
    env: tuple[tuple[str, str], ...] = ()
    git: tuple[str, ...] = ()
    children: tuple[str, ...] = ()
    control: str = ""
    workdir: str = ""
    collect_files: tuple[str, ...] = ()
    output_paths: tuple[str, ...] = ()
    timeout: int = 0
    metadata: tuple[tuple[str, str], ...] = field(default_factory=tuple)


def _git_line(op: pb.GitOperation) -> str:
    which = op.WhichOneof("op")
    if which == "create_branch":
        base = f" from {op.create_branch.base}" if op.create_branch.base else ""
        return f"create branch {op.create_branch.name}{base}"
    if which == "add_worktree":
        return f"add worktree {op.add_worktree.path} on {op.add_worktree.branch}"
    if which == "commit":
        files = ", ".join(op.commit.paths)
        return f"commit {files}: {_first_line(op.commit.message)}"
    if which == "push":
        return f"push {op.push.branch or 'the current branch'} to {op.push.remote or 'origin'}"
    if which == "pull_request":
        return f"pull request {op.pull_request.head} → {op.pull_request.base or 'default'}"
    return which or "?"


def command_view(command: pb.Command) -> CommandView:
    """The command of a step, ready to show."""
    kind = command.WhichOneof("kind") or ""
    metadata = tuple(
        (key, str(value))
        for key, value in struct_to_dict(command.metadata).items()
        if value not in ("", None)
    )
    common = {
        "kind": kind,
        "workdir": command.workdir,
        "collect_files": tuple(command.collect_files),
        "timeout": command.timeout_seconds,
        "metadata": metadata,
    }
    if kind == "agent":
        agent = command.agent
        return CommandView(
            prompt=agent.prompt,
            system_prompt=agent.system_prompt,
            model=agent.model,
            output_paths=tuple(agent.output_paths),
            **common,  # type: ignore[arg-type]
        )
    if kind == "shell":
        return CommandView(
            argv=shlex.join(command.shell.argv),
            env=tuple(sorted(command.shell.env.items())),
            **common,  # type: ignore[arg-type]
        )
    if kind == "git":
        return CommandView(
            git=tuple(_git_line(op) for op in command.git.operations),
            **common,  # type: ignore[arg-type]
        )
    if kind == "spawn_children":
        return CommandView(
            children=tuple(command.spawn_children.child_session_ids),
            **common,  # type: ignore[arg-type]
        )
    if kind == "control":
        record = command.control
        word = CONTROL_WORDS.get(record.action, "control")
        return CommandView(control=f"{word} {record.step}".strip(), **common)  # type: ignore[arg-type]
    return CommandView(**common)  # type: ignore[arg-type]


RESULT_DATA_SHOWN = ("commit", "branch", "committed_files", "conversation_id", "backend", "model")


@dataclass(frozen=True)
class ResultView:
    """What came of a step."""

    outcome: str
    exit_code: int
    error_message: str
    stdout: str
    stderr: str
    data: tuple[tuple[str, str], ...]
    replayed: bool
    output_truncated: bool
    judged_from: str
    """What the executor reported when the judge overrode it, else ""."""
    failure_class: str = ""
    """How an agent step failed (transient, permanent, the model's own), else ""."""
    failure_hint: str = ""
    """What to do about a permanent failure."""


def result_view(interaction: pb.Interaction) -> ResultView | None:
    """The result of a step, or None while it runs."""
    if not interaction.HasField("result"):
        return None
    result = interaction.result
    data = struct_to_dict(result.data)
    shown: list[tuple[str, str]] = []
    for key in RESULT_DATA_SHOWN:
        value = data.get(key)
        if value in (None, "", []):
            continue
        shown.append(
            (
                key.replace("_", " "),
                ", ".join(map(str, value)) if isinstance(value, list) else str(value),
            )
        )
    judgement = data.get("judgement")
    reported = judgement.get("reported_status") if isinstance(judgement, dict) else None
    outcome = outcome_of(interaction)
    return ResultView(
        outcome=outcome,
        exit_code=result.exit_code,
        error_message=result.error_message,
        stdout=result.stdout,
        stderr=result.stderr,
        data=tuple(shown),
        replayed=data.get("replayed") is True,
        output_truncated=result.output_truncated,
        judged_from=str(reported) if reported and reported != outcome else "",
        failure_class=FAILURE_CLASSES.get(result.failure_class, ""),
        failure_hint=result.failure_hint,
    )
