"""Run workflows in memory, children included, for golden step-sequence tests.

The simulator drives the same :class:`~specloom.orchestration.engine.Engine`
the gRPC servicer drives; only persistence is replaced by a dict, and the
executor by a *responder* the test supplies (what each command "reported").
Children run interleaved with their parent in a fixed order; a child's
commands wait for its dependencies as Sessions makes them wait; a parent's
spawn step is reported (as the gateway does) once no child can make progress
(every child terminal, or waiting for a failed or cancelled sibling). So a
trace is fully deterministic and can be pinned in a committed golden file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from specloom.orchestration.engine import Done, Engine, NewStep, Write, pending_of
from specloom.protoconv import JsonValue, dict_to_struct, struct_to_dict
from specloom.v1 import common_pb2 as pb
from specloom.workflow import Registry
from specloom.workflow._proto import SESSION_STATUS_NAMES, result_digest
from specloom.workflow.commands import kind_of

UPDATE_ENV = "SPECLOOM_UPDATE_GOLDENS"
"""Set to 1 to rewrite golden files from the current behaviour (then review the diff)."""


@dataclass(frozen=True)
class Call:
    """One command the simulated executor is asked to run."""

    key: str
    """Which session: "" for the root, else the child's key path ("inventory.stock")."""
    session: pb.Session
    """The session head (params, state, component) when the command was issued."""
    interaction: pb.Interaction
    """The interaction, with its command."""
    attempt: int
    """How many times this step has now run in this session (1 = first)."""

    @property
    def step(self) -> str:
        return self.interaction.step

    @property
    def command(self) -> pb.Command:
        return self.interaction.command

    @property
    def state(self) -> dict[str, JsonValue]:
        return struct_to_dict(self.session.state)


Responder = Callable[[Call], pb.Result]


def report(
    status: str = "ok",
    *,
    files: Mapping[str, str | bytes | None] | None = None,
    data: Mapping[str, JsonValue] | None = None,
    stdout: str = "",
    exit_code: int = 0,
    error: str = "",
) -> pb.Result:
    """A reported result; ``files`` maps collected paths to content (None: missing)."""
    statuses = {
        "ok": pb.RESULT_STATUS_OK,
        "warning": pb.RESULT_STATUS_WARNING,
        "error": pb.RESULT_STATUS_ERROR,
    }
    result = pb.Result(
        status=statuses[status],
        stdout=stdout,
        exit_code=exit_code,
        error_message=error,
    )
    for path, content in (files or {}).items():
        if content is None:
            result.files.append(pb.FileContent(path=path, exists=False))
        else:
            raw = content.encode() if isinstance(content, str) else content
            result.files.append(pb.FileContent(path=path, exists=True, content=raw))
    if data:
        dict_to_struct(data, result.data)
    return result


@dataclass
class Script:
    """A responder from a table: (key, step) -> results in order of attempts.

    The last result of a list repeats when a step runs more often than
    listed; ``default`` answers everything not in the table.
    """

    table: Mapping[tuple[str, str], Sequence[pb.Result | Callable[[Call], pb.Result]]]
    default: Callable[[Call], pb.Result] = field(default=lambda call: report("ok"))

    def __call__(self, call: Call) -> pb.Result:
        answers = self.table.get((call.key, call.step)) or self.table.get(("*", call.step))
        if not answers:
            return self.default(call)
        answer = answers[min(call.attempt, len(answers)) - 1]
        return answer(call) if callable(answer) else answer


@dataclass
class _Stored:
    session: pb.Session
    history: list[pb.Interaction]
    key: str
    order: int
    waits: frozenset[str] = frozenset()
    """Ids of every session it waits for (the closure, as Sessions stores it)."""


def summarize(command: pb.Command) -> dict[str, Any]:
    """A stable, readable summary of a command for traces."""
    kind = kind_of(command)
    summary: dict[str, Any] = {"kind": kind}
    if command.workdir:
        summary["workdir"] = command.workdir
    if kind == "shell":
        # An inline program (the scaffolding runner's source) is the program's own
        # business, not the step's behaviour: traces show a placeholder.
        summary["argv"] = ["<inline program>" if "\n" in arg else arg for arg in command.shell.argv]
    elif kind == "agent":
        summary["outputs"] = list(command.agent.output_paths)
        if command.agent.resume_conversation_id:
            summary["resume"] = command.agent.resume_conversation_id
    elif kind == "git":
        ops = []
        for op in command.git.operations:
            name = op.WhichOneof("op") or "?"
            detail: dict[str, Any] = {"op": name}
            if name == "create_branch":
                detail["branch"] = op.create_branch.name
            elif name == "add_worktree":
                detail["branch"] = op.add_worktree.branch
                detail["base"] = op.add_worktree.base
                if op.add_worktree.merge:
                    detail["merge"] = list(op.add_worktree.merge)
            elif name == "merge":
                detail["branches"] = list(op.merge.branches)
            elif name == "commit":
                detail["paths"] = list(op.commit.paths)
                if op.commit.expect_branch:
                    detail["expect_branch"] = op.commit.expect_branch
                if op.commit.gather:
                    detail["gather"] = [
                        {"branch": g.branch, "paths": list(g.paths)} for g in op.commit.gather
                    ]
                if op.commit.squash_onto:
                    detail["squash_onto"] = op.commit.squash_onto
            elif name == "push":
                detail["branch"] = op.push.branch
            elif name == "pull_request":
                detail["head"] = op.pull_request.head
            ops.append(detail)
        summary["ops"] = ops
    elif kind == "spawn_children":
        summary["children"] = len(command.spawn_children.child_session_ids)
        if command.spawn_children.resumed_child_ids:
            summary["resumed"] = len(command.spawn_children.resumed_child_ids)
    if command.collect_files:
        summary["collect"] = list(command.collect_files)
    return summary


class Simulation:
    """An in-memory Sessions store driven by the real engine."""

    def __init__(self, registry: Registry, responder: Responder) -> None:
        # Counter-based ids keep traces (worktree paths name session ids)
        # identical from run to run.
        self._counter = 0
        self.engine = Engine(registry, ids=self._next_id)
        self.responder = responder
        self.scope = pb.Scope(account_id="acct", project_id="proj", user_id="sim")
        self.trace: list[dict[str, Any]] = []
        self._sessions: dict[str, _Stored] = {}
        self._by_key: dict[str, str] = {}
        self._attempts: dict[tuple[str, str], int] = {}

    def _next_id(self) -> str:
        self._counter += 1
        return f"00000000-0000-7000-8000-{self._counter:012d}"

    # -- store -------------------------------------------------------------------

    def _head(self, stored: _Stored) -> pb.Session:
        head = pb.Session()
        head.CopyFrom(stored.session)
        pending = [i for i in stored.history if i.status == pb.INTERACTION_STATUS_PENDING]
        newest = pending[-1] if pending else (stored.history[-1] if stored.history else None)
        if newest is not None:
            head.interactions.append(newest)
        head.interaction_count = len(stored.history)
        return head

    def _children(self, parent_id: str) -> list[pb.Session]:
        return [self._head(s) for s in self._ordered() if s.session.parent_id == parent_id]

    def _ordered(self) -> list[_Stored]:
        return sorted(self._sessions.values(), key=lambda s: s.order)

    def _insert(self, session: pb.Session, key: str) -> _Stored:
        if not session.id:
            session.id = self._next_id()
        stored = _Stored(session=session, history=[], key=key, order=len(self._sessions))
        session.version = 1
        self._sessions[session.id] = stored
        self._by_key[key] = session.id
        return stored

    def _append(self, stored: _Stored, step: NewStep) -> pb.Interaction:
        interaction = pb.Interaction(
            id=self._next_id(),
            seq=len(stored.history) + 1,
            step=step.step,
            command=step.command,
            status=pb.INTERACTION_STATUS_PENDING,
        )
        if step.immediate_result is not None:
            interaction.result.CopyFrom(step.immediate_result)
            interaction.status = pb.INTERACTION_STATUS_COMPLETED
        stored.history.append(interaction)
        return interaction

    def _apply(self, stored: _Stored, write: Write) -> None:
        session = stored.session
        if write.complete is not None:
            for interaction in stored.history:
                if interaction.id == write.complete.interaction_id:
                    interaction.result.CopyFrom(write.complete.result)
                    interaction.status = pb.INTERACTION_STATUS_COMPLETED
        if write.state is not None:
            dict_to_struct(write.state, session.state)
        if write.progress is not None:
            dict_to_struct(write.progress.to_dict(), session.progress)
        if write.finish is not None:
            session.status = write.finish[0]  # type: ignore[assignment]
            session.status_reason = write.finish[1]
            self._note_status(stored)
        for planned in write.children:
            child_key = planned.session.idempotency_key
            key = child_key if not stored.key else f"{stored.key}/{child_key}"
            child = pb.Session()
            child.CopyFrom(planned.session)
            child_stored = self._insert(child, key)
            waits = set(planned.depends_on)
            for dependency in planned.depends_on:
                waits |= self._sessions[dependency].waits
            child_stored.waits = frozenset(waits)
            self._append(child_stored, planned.first)
        if write.children:
            self.trace.append(
                {
                    "session": stored.key,
                    "created": [c.session.idempotency_key for c in write.children],
                }
            )
        for revival in write.revive:
            child_stored = self._sessions[revival.child_id]
            child_stored.session.status = pb.SESSION_STATUS_ACTIVE
            child_stored.session.status_reason = ""
            dict_to_struct(revival.progress.to_dict(), child_stored.session.progress)
            command = pb.Command(step="control:CONTROL_ACTION_RESUME")
            command.control.CopyFrom(revival.record)
            interaction = pb.Interaction(
                id=self._next_id(),
                seq=len(child_stored.history) + 1,
                step=command.step,
                command=command,
                status=pb.INTERACTION_STATUS_COMPLETED,
                result=pb.Result(status=pb.RESULT_STATUS_OK),
            )
            child_stored.history.append(interaction)
            self.trace.append({"session": child_stored.key, "revived_by": stored.key or "root"})
        for step in write.append:
            appended = self._append(stored, step)
            if appended.status == pb.INTERACTION_STATUS_COMPLETED:
                self.trace.append({"session": stored.key, "control": step.step})
        session.version += 1

    def _note_status(self, stored: _Stored) -> None:
        entry: dict[str, Any] = {
            "session": stored.key,
            "status": SESSION_STATUS_NAMES.get(stored.session.status, "?"),
        }
        if stored.session.status_reason:
            entry["reason"] = stored.session.status_reason
        self.trace.append(entry)

    # -- driving -----------------------------------------------------------------------

    def start(
        self,
        session_type: str,
        params: Mapping[str, JsonValue],
        *,
        mode: int = pb.EXECUTION_MODE_AGENTIC,
        version: int = 0,
    ) -> str:
        """Open a root session (the newest definition unless ``version``); returns its key ("")."""
        session = self.engine.open(session_type, self.scope, mode, params, version=version)
        stored = self._insert(session, "")
        self._apply(stored, self.engine.begin(self._head(stored)))
        return ""

    def session(self, key: str = "") -> pb.Session:
        """The head of the session at ``key``."""
        return self._head(self._sessions[self._by_key[key]])

    def history(self, key: str = "") -> list[pb.Interaction]:
        """The full history of the session at ``key``."""
        return list(self._sessions[self._by_key[key]].history)

    def status(self, key: str = "") -> str:
        """ "active", "paused", "complete", "failed" or "cancelled"."""
        return SESSION_STATUS_NAMES.get(self._sessions[self._by_key[key]].session.status, "?")

    def session_keys(self) -> list[str]:
        """Keys of every session, in creation order."""
        return [stored.key for stored in self._ordered()]

    def cancel(self, key: str = "", reason: str = "cancelled") -> None:
        """Cancel a session and its descendants, as Sessions does."""
        root = self._sessions[self._by_key[key]]
        todo = [root]
        while todo:
            stored = todo.pop()
            if stored.session.status not in (
                pb.SESSION_STATUS_COMPLETE,
                pb.SESSION_STATUS_CANCELLED,
            ):
                stored.session.status = pb.SESSION_STATUS_CANCELLED
                stored.session.status_reason = reason
                for interaction in stored.history:
                    if interaction.status == pb.INTERACTION_STATUS_PENDING:
                        interaction.status = pb.INTERACTION_STATUS_ABANDONED
                self._note_status(stored)
            todo.extend(s for s in self._ordered() if s.session.parent_id == stored.session.id)

    async def steer(self, key: str, action: int, step: str = "", reason: str = "") -> None:
        """A person's decision (pause, resume, retry-from)."""
        stored = self._sessions[self._by_key[key]]
        head = self._head(stored)
        write = await self.engine.steer(head, action, step, reason, self._loader(stored))
        if write is not None:
            self._apply(stored, write)

    def _status_of(self, session_id: str) -> int:
        return self._sessions[session_id].session.status

    def _can_progress(self, session_id: str) -> bool:
        """As Sessions' join rule: unfinished, and waiting on no failed or cancelled session."""
        stored = self._sessions[session_id]
        if stored.session.status not in (pb.SESSION_STATUS_ACTIVE, pb.SESSION_STATUS_PAUSED):
            return False
        stuck = (pb.SESSION_STATUS_FAILED, pb.SESSION_STATUS_CANCELLED)
        return not any(self._status_of(d) in stuck for d in stored.waits)

    def _loader(self, stored: _Stored) -> Callable[[], Any]:
        async def load() -> Sequence[pb.Session]:
            return self._children(stored.session.id)

        return load

    async def run(self, max_steps: int = 500, *, settle: bool = True) -> None:
        """Advance every session until nothing can move.

        Past ``max_steps`` it raises, unless ``settle`` is False (then it just
        stops: a test that wants the world mid-run).
        """
        steps = 0
        while steps < max_steps:
            moved = False
            for stored in self._ordered():
                if await self._advance(stored):
                    moved = True
                    steps += 1
            if not moved:
                return
        if not settle:
            return
        raise RuntimeError(f"simulation did not settle within {max_steps} steps")

    async def _advance(self, stored: _Stored) -> bool:
        session = stored.session
        if session.status != pb.SESSION_STATUS_ACTIVE:
            return False
        head = self._head(stored)
        pending = pending_of(head)
        if pending is None:
            outcome = await self.engine.next_step(head, self._loader(stored))
            if isinstance(outcome, Write):
                self._apply(stored, outcome)
                return True
            return False
        if kind_of(pending.command) == "spawn_children":
            children = self._children(session.id)
            if any(self._can_progress(c.id) for c in children):
                return False
            # What the gateway reports for a join: OK, the children's ids.
            reported = report("ok", data={"children": [c.id for c in children]})
        elif any(self._status_of(d) != pb.SESSION_STATUS_COMPLETE for d in stored.waits):
            return False  # Sessions keeps its commands unclaimable until then
        else:
            attempt_key = (stored.key, pending.step)
            self._attempts[attempt_key] = self._attempts.get(attempt_key, 0) + 1
            reported = self.responder(Call(stored.key, head, pending, self._attempts[attempt_key]))
        write = await self.engine.result(
            head,
            pending,
            reported,
            lease_epoch=0,
            reported_digest=result_digest(reported),
            advance=True,
            load_children=self._loader(stored),
        )
        assert write.complete is not None
        judged = write.complete.result
        entry: dict[str, Any] = {
            "session": stored.key,
            "step": pending.step,
            "command": summarize(pending.command),
            "reported": pb.ResultStatus.Name(reported.status)
            .removeprefix("RESULT_STATUS_")
            .lower(),
            "judged": pb.ResultStatus.Name(judged.status).removeprefix("RESULT_STATUS_").lower(),
        }
        if judged.status != pb.RESULT_STATUS_OK and judged.error_message:
            entry["reason"] = judged.error_message
        self.trace.append(entry)
        self._apply(stored, write)
        return True


def assert_golden(trace: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Compare ``trace`` with the committed golden file at ``path``.

    With ``SPECLOOM_UPDATE_GOLDENS=1`` the file is (re)written instead; a
    missing golden is written and the test fails, so a new golden is always
    reviewed before it is trusted.
    """
    rendered = json.dumps(list(trace), indent=2, sort_keys=True) + "\n"
    if os.environ.get(UPDATE_ENV) == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rendered)
        return
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rendered)
        raise AssertionError(f"golden {path} did not exist; written now — review and commit it")
    expected = path.read_text()
    if expected != rendered:
        import difflib

        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                rendered.splitlines(keepends=True),
                fromfile=f"{path} (golden)",
                tofile="actual",
            )
        )
        raise AssertionError(
            f"trace differs from golden {path.name} "
            f"(rerun with {UPDATE_ENV}=1 if the change is intended):\n{diff}"
        )


__all__ = [
    "Call",
    "Done",
    "Responder",
    "Script",
    "Simulation",
    "assert_golden",
    "report",
    "summarize",
]
