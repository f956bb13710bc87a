"""Running one ``pb.Command`` in the workspace and describing what came of it.

:meth:`Executor.execute` never raises for a command's sake: a bad path, a
missing program, a git failure, an agent error or a bug of ours all become
an ERROR result with an ``error_message`` that names the problem, so one
bad command cannot take the executor (and every other command it runs)
down with it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf.struct_pb2 import Struct

from specloom.agent.backends.base import AgentBackend, AgentOutcome, AgentRequest
from specloom.agent.collect import CollectLimits, check_patterns, collect_files
from specloom.agent.gitops import GitSettings, run_git_command
from specloom.agent.shell import (
    DEFAULT_STREAM_LIMIT,
    DEFAULT_TAIL_BYTES,
    CappedSink,
    OutputCallback,
    child_environment,
    run_process,
)
from specloom.agent.usage import PriceTable, load_prices
from specloom.agent.workspace import Workspace
from specloom.naming import UnsafePath
from specloom.protoconv import JsonObject, StructTooDeep, dict_to_struct, struct_to_dict
from specloom.v1 import common_pb2 as pb

log = logging.getLogger("specloom.agent")

__all__ = ["Executor", "ExecutorOptions", "OutputCallback"]


@dataclass(frozen=True)
class ExecutorOptions:
    """Limits and defaults for running commands."""

    default_timeout: float = 3600.0
    """Seconds a command may run when it sets no ``timeout_seconds``."""
    output_limit: int = DEFAULT_STREAM_LIMIT
    """Bytes of output streamed per command; the rest is dropped with a marker."""
    tail_bytes: int = DEFAULT_TAIL_BYTES
    """Bytes of each stream's tail kept for ``Result.stdout``/``stderr``."""
    kill_grace: float = 2.0
    """Seconds between SIGTERM and SIGKILL of a command's process group."""
    collect: CollectLimits = field(default_factory=CollectLimits)
    """Caps on ``collect_files``."""
    git: GitSettings = field(default_factory=GitSettings)
    """How git operations run."""
    prices: PriceTable = field(default_factory=load_prices)
    """Model prices that put an estimated cost on every agent step."""


class _Failure(Exception):
    """A command that cannot run; the message is the result's error."""


@dataclass(frozen=True)
class _Place:
    """Where one command runs: its session's workspace and the directory in it."""

    workspace: Workspace
    workdir: Path


def _text(metadata: Struct, key: str) -> str:
    """A string value of a command's metadata ("" when absent or not a string)."""
    value = metadata.fields.get(key)
    return value.string_value if value is not None else ""


def _tail(text: str, limit: int) -> str:
    data = text.encode("utf-8", errors="replace")
    return text if len(data) <= limit else data[-limit:].decode("utf-8", errors="replace")


class Executor:
    """Runs commands in its workspaces with the configured agent backends."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        backends: Mapping[str, AgentBackend] | None = None,
        options: ExecutorOptions | None = None,
        others: Sequence[Workspace] = (),
    ) -> None:
        self.workspace = workspace
        """The default workspace: where sessions of no workspace run."""
        self.workspaces = [workspace, *others]
        """Every workspace served, the default first."""
        self.backends = dict(backends or {})
        self.options = options or ExecutorOptions()

    def identities(self) -> list[pb.WorkspaceRef]:
        """The identified workspaces, to register (the default first)."""
        return [ws.identity for ws in self.workspaces if ws.identity is not None]

    def workspace_for(self, workspace_id: str) -> Workspace:
        """The workspace a session's commands run in: its own, or the default for none.

        A session of a workspace this executor does not serve never runs in
        another one (its work would land in a checkout that does not hold it).
        """
        if not workspace_id:
            return self.workspace
        for workspace in self.workspaces:
            if workspace.identity is not None and workspace.identity.id == workspace_id:
                return workspace
        served = ", ".join(w.id for w in self.identities()) or "none"
        raise _Failure(
            f"this executor does not serve workspace {workspace_id} (it serves: {served}); "
            "the command was not run anywhere"
        )

    def capabilities(self) -> list[str]:
        """What to register: ``shell``, ``git``, and ``agent`` plus ``agent:<backend>``."""
        caps = ["shell", "git"]
        if self.backends:
            caps += ["agent", *(f"agent:{name}" for name in self.backends)]
        return caps

    async def execute(
        self,
        command: pb.Command,
        *,
        on_output: OutputCallback | None = None,
        cancel: asyncio.Event | None = None,
        execution_mode: pb.ExecutionMode.ValueType = pb.EXECUTION_MODE_UNSPECIFIED,
        workspace_id: str = "",
    ) -> pb.Result:
        """Run ``command`` in workspace ``workspace_id`` (the default for ""); always a Result.

        ``execution_mode`` is how freely an agent step may use its tools: the
        caller passes AUTO (confined) for an agentic session whose starter
        it does not trust.
        """
        started = time.monotonic()
        cancel = cancel or asyncio.Event()
        sink = CappedSink(on_output, self.options.output_limit)
        result = pb.Result()
        workdir: Path | None = None
        try:
            workspace = self.workspace_for(workspace_id)
            checked = self._workdir(workspace, command)
            check_patterns(command.collect_files)
            workdir = checked  # only now may files be collected from it
            place = _Place(workspace, workdir)
            await self._dispatch(command, place, sink, cancel, execution_mode, result)
        except (_Failure, UnsafePath, NotADirectoryError, StructTooDeep) as exc:
            result.status = pb.RESULT_STATUS_ERROR
            result.error_message = str(exc)
        except Exception as exc:
            # Our bug or an environment failure: keep serving other commands.
            log.exception("command for step %r failed in the executor", command.step)
            result.status = pb.RESULT_STATUS_ERROR
            result.error_message = f"executor error: {type(exc).__name__}: {exc}"
        if workdir is not None and command.collect_files:
            try:
                files = await asyncio.to_thread(
                    collect_files, workdir, list(command.collect_files), self.options.collect
                )
                result.files.extend(files)
            except Exception as exc:
                log.exception("collecting files for step %r failed", command.step)
                result.status = pb.RESULT_STATUS_ERROR
                result.error_message = f"collecting files failed: {exc}"
        result.output_truncated = result.output_truncated or sink.truncated
        result.duration_ms = int((time.monotonic() - started) * 1000)
        return result

    @staticmethod
    def _workdir(workspace: Workspace, command: pb.Command) -> Path:
        try:
            return workspace.workdir(command.workdir)
        except UnsafePath as exc:
            raise _Failure(f"workdir refused: {exc}") from None

    def _timeout(self, command: pb.Command) -> float:
        return (
            float(command.timeout_seconds)
            if command.timeout_seconds > 0
            else self.options.default_timeout
        )

    async def _dispatch(
        self,
        command: pb.Command,
        place: _Place,
        sink: CappedSink,
        cancel: asyncio.Event,
        execution_mode: pb.ExecutionMode.ValueType,
        result: pb.Result,
    ) -> None:
        kind = command.WhichOneof("kind")
        if kind == "shell":
            await self._shell(command, place.workdir, sink, cancel, result)
        elif kind == "git":
            await self._git(command, place, sink, result)
        elif kind == "agent":
            await self._agent(command, place, sink, cancel, execution_mode, result)
        elif kind == "noop":
            result.status = pb.RESULT_STATUS_OK
        elif kind is None:
            raise _Failure(f"command for step {command.step!r} has no kind")
        else:
            raise _Failure(f"{kind} commands are not run by executors")

    async def _shell(
        self,
        command: pb.Command,
        workdir: Path,
        sink: CappedSink,
        cancel: asyncio.Event,
        result: pb.Result,
    ) -> None:
        shell = command.shell
        if not shell.argv:
            raise _Failure("shell command has an empty argv")
        timeout = self._timeout(command)
        outcome = await run_process(
            list(shell.argv),
            cwd=workdir,
            env=child_environment(dict(shell.env)),
            time_limit=timeout,
            cancel=cancel,
            on_output=sink,
            tail_bytes=self.options.tail_bytes,
            kill_grace=self.options.kill_grace,
        )
        result.exit_code = outcome.exit_code
        result.stdout = outcome.stdout_tail
        result.stderr = outcome.stderr_tail
        ok_codes = set(shell.ok_exit_codes) or {0}
        if outcome.start_error:
            result.status, result.error_message = pb.RESULT_STATUS_ERROR, outcome.start_error
        elif outcome.timed_out:
            result.status = pb.RESULT_STATUS_ERROR
            result.error_message = f"timed out after {timeout:g}s; the process group was killed"
        elif outcome.cancelled:
            result.status = pb.RESULT_STATUS_ERROR
            result.error_message = "cancelled; the process group was killed"
        elif outcome.exit_code in ok_codes:
            result.status = pb.RESULT_STATUS_OK
        else:
            result.status = pb.RESULT_STATUS_ERROR
            result.error_message = f"{shell.argv[0]} exited with code {outcome.exit_code}"

    async def _git(
        self, command: pb.Command, place: _Place, sink: CappedSink, result: pb.Result
    ) -> None:
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str | None] = asyncio.Queue()

        def emit(line: str) -> None:
            loop.call_soon_threadsafe(lines.put_nowait, line)

        def run_pr(argv: list[str], cwd: Path) -> tuple[int, str, str]:
            future = asyncio.run_coroutine_threadsafe(
                run_process(
                    argv,
                    cwd=cwd,
                    env=child_environment(),
                    time_limit=self.options.git.network_timeout,
                    kill_grace=self.options.kill_grace,
                ),
                loop,
            )
            done = future.result()
            return done.exit_code, done.stdout_tail, done.start_error or done.stderr_tail

        async def forward() -> None:
            while (line := await lines.get()) is not None:
                await sink(pb.OUTPUT_STREAM_EXECUTOR, (line + "\n").encode())

        forwarder = asyncio.create_task(forward())
        try:
            outcome = await asyncio.to_thread(
                run_git_command,
                command.git,
                workspace=place.workspace,
                workdir=place.workdir,
                settings=self.options.git,
                emit=emit,
                run_pr=run_pr,
                scan_profile=_text(command.metadata, "profile"),
            )
        finally:
            # The thread's last emit() is scheduled before to_thread returns,
            # so the sentinel queues after every line.
            loop.call_soon(lines.put_nowait, None)
            await forwarder
        result.status = outcome.status
        result.error_message = outcome.error_message
        dict_to_struct(outcome.data, result.data)
        if outcome.project_scan is not None:
            result.project_scan.CopyFrom(outcome.project_scan)

    async def _agent(
        self,
        command: pb.Command,
        place: _Place,
        sink: CappedSink,
        cancel: asyncio.Event,
        execution_mode: pb.ExecutionMode.ValueType,
        result: pb.Result,
    ) -> None:
        metadata: JsonObject = struct_to_dict(command.metadata)
        backend = self._backend(metadata)
        timeout = self._timeout(command)

        async def transcript(line: str) -> None:
            await sink(pb.OUTPUT_STREAM_EXECUTOR, (line + "\n").encode("utf-8", errors="replace"))

        request = AgentRequest(
            command=command.agent,
            workspace=place.workspace,
            workdir=place.workdir,
            metadata=metadata,
            execution_mode=execution_mode,
            cancel=asyncio.Event(),
        )
        started = time.monotonic()
        outcome = await self._supervise(backend, request, transcript, cancel, timeout)
        if outcome.usage is not None:
            elapsed = int((time.monotonic() - started) * 1000)
            result.usage.CopyFrom(outcome.usage.to_pb(self.options.prices, elapsed))
        if outcome.failure is not None and outcome.status == pb.RESULT_STATUS_ERROR:
            result.failure_class = outcome.failure.kind.to_pb()
            result.failure_hint = outcome.failure.hint
        result.status = outcome.status
        result.exit_code = outcome.exit_code
        result.stdout = _tail(outcome.summary, self.options.tail_bytes)
        result.error_message = outcome.error_message
        # Recorded with every agent step: whether it ran with full autonomy
        # (an agentic session of a trusted starter) or confined.
        confined = execution_mode != pb.EXECUTION_MODE_AGENTIC
        data: JsonObject = {**outcome.data, "backend": backend.name, "confined": confined}
        if outcome.conversation_id:
            data["conversation_id"] = outcome.conversation_id
        dict_to_struct(data, result.data)

    def _backend(self, metadata: JsonObject) -> AgentBackend:
        if not self.backends:
            raise _Failure("this executor has no agent backend configured")
        wanted = metadata.get("agent_backend")
        if isinstance(wanted, str) and wanted:
            if wanted not in self.backends:
                raise _Failure(f"agent backend {wanted!r} is not configured on this executor")
            return self.backends[wanted]
        return next(iter(self.backends.values()))

    @staticmethod
    async def _supervise(
        backend: AgentBackend,
        request: AgentRequest,
        transcript: Callable[[str], Awaitable[None]],
        cancel: asyncio.Event,
        time_limit: float,
    ) -> AgentOutcome:
        """Run the backend under the time limit and the cancel signal."""
        task = asyncio.create_task(backend.run(request, transcript))
        stop = asyncio.create_task(cancel.wait())
        try:
            done, _ = await asyncio.wait(
                {task, stop}, timeout=time_limit, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stop.cancel()
        if task in done:
            return task.result()
        reason = "cancelled" if cancel.is_set() else f"timed out after {time_limit:g}s"
        # Ask politely first (the backend ends its process group and saves
        # its conversation), then cancel the task if it does not stop.
        request.cancel.set()
        try:
            outcome = await asyncio.wait_for(asyncio.shield(task), timeout=10.0)
        except TimeoutError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return AgentOutcome(status=pb.RESULT_STATUS_ERROR, error_message=f"agent {reason}")
        outcome.status = pb.RESULT_STATUS_ERROR
        outcome.error_message = f"agent {reason}"
        outcome.failure = None  # the command's own limit, not the provider's failure
        return outcome
