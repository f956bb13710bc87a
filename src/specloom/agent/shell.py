"""Running one program: process group, time limits, cancellation, capped output.

A command's program may fork, ignore SIGTERM, or print without end. So:

- it runs in its own session (``start_new_session=True``), hence its own
  process group, and every ending — time limit, cancel, silence, or the
  program exiting normally with children left behind — signals the whole
  group: SIGTERM, then SIGKILL after a short grace;
- output is read in chunks and handed to a callback as it comes; only a
  bounded tail of each stream is kept in memory for ``Result.stdout`` and
  ``Result.stderr``, so printing a gigabyte costs a few hundred kilobytes;
- :class:`CappedSink` stops forwarding after a byte budget and says so once,
  which is how the total output sent to the gateway stays bounded.

The program is always an argv (never ``shell=True``): no name or argument
is ever interpreted by a shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from specloom.childenv import child_environment
from specloom.v1 import common_pb2 as pb

OutputCallback = Callable[[int, bytes], Awaitable[None]]
"""Receives ``(pb.OutputStream value, bytes)`` as output arrives."""

READ_CHUNK = 64 * 1024
DEFAULT_TAIL_BYTES = 64 * 1024
DEFAULT_STREAM_LIMIT = 16 * 1024 * 1024
DEFAULT_KILL_GRACE = 2.0
_DRAIN_AFTER_EXIT = 2.0
_POLL_MAX = 0.05
"""How long the pipes may stay open after the program exits before the group is killed."""

__all__ = [
    "DEFAULT_STREAM_LIMIT",
    "DEFAULT_TAIL_BYTES",
    "CappedSink",
    "OutputCallback",
    "ProcessOutcome",
    "child_environment",
    "run_process",
]


class _Tail:
    """The last ``limit`` bytes of a stream."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._buffer = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        self._buffer += data[-self._limit :]
        excess = len(self._buffer) - self._limit
        if excess > 0:
            del self._buffer[:excess]

    def text(self) -> str:
        return self._buffer.decode("utf-8", errors="replace")


class CappedSink:
    """Forwards output to ``sink`` until ``limit`` bytes, then drops it with one marker."""

    def __init__(self, sink: OutputCallback | None, limit: int = DEFAULT_STREAM_LIMIT) -> None:
        self._sink = sink
        self._limit = limit
        self.sent = 0
        """Bytes forwarded so far."""
        self.dropped = 0
        """Bytes dropped past the limit."""

    @property
    def truncated(self) -> bool:
        """Whether anything was dropped."""
        return self.dropped > 0

    async def __call__(self, stream: int, data: bytes) -> None:
        if not data:
            return
        room = max(0, self._limit - self.sent)
        head, rest = data[:room], data[room:]
        if head:
            self.sent += len(head)
            if self._sink is not None:
                await self._sink(stream, head)
        if rest:
            first_drop = self.dropped == 0
            self.dropped += len(rest)
            if first_drop and self._sink is not None:
                marker = (
                    f"\n[specloom: output limit of {self._limit} bytes reached; "
                    "further output is dropped]\n"
                )
                await self._sink(pb.OUTPUT_STREAM_EXECUTOR, marker.encode())


@dataclass
class ProcessOutcome:
    """How a program ended."""

    exit_code: int
    """Exit status; 128+N when killed by signal N; 127 not found; 126 not executable."""
    stdout_tail: str = ""
    stderr_tail: str = ""
    timed_out: bool = False
    """Killed because the time limit passed."""
    idle_timed_out: bool = False
    """Killed because it printed nothing for longer than the idle limit."""
    cancelled: bool = False
    """Killed because the caller asked."""
    start_error: str = ""
    """Why the program could not be started, if it was not."""
    duration_ms: int = 0
    output_bytes: dict[str, int] = field(default_factory=dict)
    """Bytes read per stream (``stdout``/``stderr``), including any not forwarded."""

    @property
    def killed(self) -> bool:
        """Whether the executor ended the program."""
        return self.timed_out or self.idle_timed_out or self.cancelled


def _signal_group(pgid: int, sig: int) -> bool:
    """Signal the group; False when no process of it is left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        # Only possible once every member has exited and the id was reused
        # by someone else's group; nothing of ours is left to signal.
        return False
    return True


def _group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process is left in the group.

    A zombie still counts for ``kill(0)``, and where PID 1 does not reap
    orphans (some container inits) a killed child stays a zombie for good;
    on Linux ``/proc`` tells the two apart.
    """
    if not _signal_group(pgid, 0):
        return False
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parens.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


async def _end_group(pgid: int, grace: float) -> None:
    """SIGTERM the group, then SIGKILL whatever is left after ``grace``.

    A group id stays reserved while any member lives (Linux does not reuse a
    pid that is still some group's id), so signalling it after the leader
    was reaped reaches exactly the leftovers and nobody else.
    """
    if not _signal_group(pgid, signal.SIGTERM):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _group_alive(pgid):
            return
        await asyncio.sleep(0.05)
    _signal_group(pgid, signal.SIGKILL)


async def _pump(
    reader: asyncio.StreamReader,
    stream: int,
    tail: _Tail,
    on_output: OutputCallback | None,
    activity: list[float],
) -> None:
    while True:
        data = await reader.read(READ_CHUNK)
        if not data:
            return
        activity[0] = time.monotonic()
        tail.add(data)
        if on_output is not None:
            await on_output(stream, data)


async def _wait_ended(
    proc: asyncio.subprocess.Process,
    *,
    time_limit: float | None,
    idle_limit: float | None,
    cancel: asyncio.Event | None,
    activity: list[float],
) -> str:
    """Wait for the program; ``"exited"``, ``"timeout"``, ``"idle"`` or ``"cancel"``.

    ``proc.wait()`` cannot be the signal: asyncio resolves it only once the
    pipes close too, which a forked child can hold off forever. The exit
    status itself (``returncode``, set by the child watcher) is polled,
    starting fast so short commands are not slowed down.
    """
    started = time.monotonic()
    cancelled = asyncio.ensure_future(cancel.wait()) if cancel is not None else None
    poll = 0.002
    try:
        while proc.returncode is None:
            now = time.monotonic()
            if time_limit is not None and now >= started + time_limit:
                return "timeout"
            if idle_limit is not None and now >= activity[0] + idle_limit:
                return "idle"
            if cancelled is None:
                await asyncio.sleep(poll)
            else:
                done, _ = await asyncio.wait({cancelled}, timeout=poll)
                if done:
                    return "cancel"
            poll = min(poll * 2, _POLL_MAX)
        return "exited"
    finally:
        if cancelled is not None:
            cancelled.cancel()


async def _reaped(proc: asyncio.subprocess.Process, bound: float) -> None:
    """Wait (at most ``bound``) until the child watcher has the exit status."""
    deadline = time.monotonic() + bound
    # Polled, not awaited: proc.wait() also waits for the pipes (see above).
    while proc.returncode is None and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)


async def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    time_limit: float | None = None,
    idle_limit: float | None = None,
    cancel: asyncio.Event | None = None,
    on_output: OutputCallback | None = None,
    stdin: bytes | None = None,
    tail_bytes: int = DEFAULT_TAIL_BYTES,
    kill_grace: float = DEFAULT_KILL_GRACE,
) -> ProcessOutcome:
    """Run ``argv`` in ``cwd`` and return how it ended; never raises for the program's sake.

    ``env`` is the complete environment (see :func:`child_environment`).
    ``time_limit`` bounds the run;
    ``idle_limit`` kills the program when neither stream produced a byte
    for that long (the watchdog of agent CLIs that hang). If the calling
    task is cancelled, the group is still killed before the cancellation
    propagates.
    """
    if not argv:
        return ProcessOutcome(exit_code=127, start_error="no program given")
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=dict(env) if env is not None else child_environment(),
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            limit=READ_CHUNK,
        )
    except FileNotFoundError:
        return ProcessOutcome(exit_code=127, start_error=f"program not found: {argv[0]!r}")
    except PermissionError:
        return ProcessOutcome(exit_code=126, start_error=f"program not executable: {argv[0]!r}")
    except OSError as exc:
        return ProcessOutcome(exit_code=126, start_error=f"cannot start {argv[0]!r}: {exc}")
    pgid = proc.pid  # start_new_session: the child leads its own group
    assert proc.stdout is not None
    assert proc.stderr is not None
    tails = (_Tail(tail_bytes), _Tail(tail_bytes))
    activity = [time.monotonic()]
    pumps = [
        asyncio.ensure_future(
            _pump(proc.stdout, pb.OUTPUT_STREAM_STDOUT, tails[0], on_output, activity)
        ),
        asyncio.ensure_future(
            _pump(proc.stderr, pb.OUTPUT_STREAM_STDERR, tails[1], on_output, activity)
        ),
    ]
    feeder = asyncio.ensure_future(_feed(proc, stdin)) if stdin is not None else None
    how = "exited"
    try:
        how = await _wait_ended(
            proc, time_limit=time_limit, idle_limit=idle_limit, cancel=cancel, activity=activity
        )
        if how != "exited":
            await _end_group(pgid, kill_grace)
        await _reaped(proc, kill_grace + _DRAIN_AFTER_EXIT)
        # The program is gone, but a child it left behind may still hold the
        # pipes open; give the readers a moment, then end the group.
        _, still = await asyncio.wait(pumps, timeout=_DRAIN_AFTER_EXIT)
        if still or _group_alive(pgid):
            await _end_group(pgid, kill_grace)
            await asyncio.wait(pumps, timeout=_DRAIN_AFTER_EXIT)
    finally:
        if proc.returncode is None or _group_alive(pgid):
            # Reached only when our caller was cancelled mid-run.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        for task in (*pumps, *([feeder] if feeder else [])):
            if not task.done():
                task.cancel()
        await asyncio.gather(*pumps, *([feeder] if feeder else []), return_exceptions=True)
        # A process that left our group (setsid) may still hold a pipe; close
        # our ends so the transport is released either way.
        transport = getattr(proc, "_transport", None)
        if transport is not None:
            transport.close()
    code = proc.returncode if proc.returncode is not None else -9
    return ProcessOutcome(
        exit_code=128 - code if code < 0 else code,
        stdout_tail=tails[0].text(),
        stderr_tail=tails[1].text(),
        timed_out=how == "timeout",
        idle_timed_out=how == "idle",
        cancelled=how == "cancel",
        duration_ms=int((time.monotonic() - started) * 1000),
        output_bytes={"stdout": tails[0].total, "stderr": tails[1].total},
    )


async def _feed(proc: asyncio.subprocess.Process, data: bytes) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(data)
        await proc.stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the program did not read its input; its exit status tells the rest
    finally:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            proc.stdin.close()
