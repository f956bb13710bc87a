"""The executor stream (``Connect``): register, heartbeats, output, results, teardown.

One stream is one :class:`~specloom_gateway.hub.Executor`. Everything sent to
the executor goes through its outbox, written by the handler alone (a gRPC
stream has one writer); the request side is read by a task of its own, and
each result is reported in a task of its own, so a slow report never holds
up heartbeats or other results.

Teardown matters more than anything else here: when a stream ends, for any
reason, its leases are released at once so their commands go to another
executor instead of waiting for the lease to lapse. Reports still in flight
are awaited first, because one of them may bring back a command leased to
this executor that must be released too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

from specloom.errors import (
    DeadlineExceeded,
    InvalidArgument,
    ResourceExhausted,
    SpecloomError,
    Unavailable,
)
from specloom.v1 import common_pb2 as pb
from specloom.v1 import gateway_pb2 as gpb
from specloom.v1 import sessions_pb2 as spb
from specloom.validate import require_workspaces
from specloom_gateway.auth import Caller
from specloom_gateway.deps import Deps
from specloom_gateway.hub import Executor, Held, executor_id_for
from specloom_gateway.metrics import ASSIGNMENTS_PUSHED, LEASES_LOST
from specloom_gateway.output import OutputBuffer
from specloom_gateway.presence import Presence
from specloom_gateway.results import ResultReporter, cancel

log = logging.getLogger("specloom.gateway.executors")

REGISTER_TIMEOUT = 30.0
"""The first message must arrive within this many seconds."""
MAX_CAPABILITIES = 64
MAX_LABELS = 64
MAX_NAME = 128
WATCHDOG_TICK = 1.0
_STREAMS = frozenset(pb.OutputStream.values())


def _check_register(register: gpb.Register) -> None:
    name = register.name
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise InvalidArgument(f"register.name is required: printable, at most {MAX_NAME} chars")
    if not 1 <= register.max_parallel <= 256:
        raise InvalidArgument("register.max_parallel must be between 1 and 256")
    if len(register.capabilities) > MAX_CAPABILITIES or any(
        not c or len(c) > 64 or not c.isprintable() for c in register.capabilities
    ):
        raise InvalidArgument(
            f"register.capabilities: at most {MAX_CAPABILITIES}, each 1 to 64 printable chars"
        )
    if len(register.labels) > MAX_LABELS:
        raise InvalidArgument(f"register.labels: at most {MAX_LABELS}")
    require_workspaces("register.workspaces", register.workspaces)
    if register.serve not in pb.ExecutorServe.values():
        raise InvalidArgument(f"register.serve {register.serve} is not a known value")
    if len(register.agent_version) > MAX_NAME or not register.agent_version.isprintable():
        raise InvalidArgument(f"register.agent_version: printable, at most {MAX_NAME} chars")


class ExecutorStreams:
    """Handles ``Connect`` streams for one gateway."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._streams: set[_Stream] = set()
        self._teardowns: set[asyncio.Task[None]] = set()
        self._per_token: Counter[str] = Counter()
        """Open streams by token id (the cap is per token, per process)."""

    async def connect(
        self, requests: AsyncIterator[gpb.ConnectRequest], context: Any
    ) -> AsyncIterator[gpb.ConnectResponse]:
        """The ``Connect`` handler."""
        deps = self._deps
        caller = await deps.auth.caller(context)
        token_id = caller.info.id
        cap = deps.settings.max_executor_streams_per_token
        if self._per_token[token_id] >= cap:
            # Each open stream costs memory and a heartbeat's work; one token
            # must not be able to open them without end.
            raise ResourceExhausted(
                f"token {token_id} already holds {cap} executor streams on this gateway "
                "(the cap is SPECLOOM_MAX_EXECUTOR_STREAMS_PER_TOKEN)"
            )
        self._per_token[token_id] += 1
        counted = True

        def uncount() -> None:
            # A stream stops counting when its messages stop, not when its
            # teardown (releases, presence) is done: the executor reconnecting
            # at once takes the place it gave up.
            nonlocal counted
            if counted:
                counted = False
                self._per_token[token_id] -= 1
                if not self._per_token[token_id]:
                    del self._per_token[token_id]

        try:
            stream = await self._register(caller, aiter(requests))
            stream.on_end = uncount
            self._streams.add(stream)
            try:
                async for message in stream.run(stream.carried):
                    yield message
            finally:
                self._streams.discard(stream)
                teardown = stream.teardown
                if teardown is not None and not teardown.done():
                    # A cancelled handler leaves its teardown running (shielded);
                    # shutdown waits for it while the Sessions channel is open.
                    self._teardowns.add(teardown)
                    teardown.add_done_callback(self._teardowns.discard)
        finally:
            uncount()

    async def _register(
        self, caller: Caller, iterator: AsyncIterator[gpb.ConnectRequest]
    ) -> _Stream:
        """Read and check the first message: the executor's Register."""
        deps = self._deps
        try:
            first = await asyncio.wait_for(anext(iterator), REGISTER_TIMEOUT)
        except StopAsyncIteration:
            raise InvalidArgument("the stream ended before register") from None
        except TimeoutError:
            raise DeadlineExceeded(f"no register within {REGISTER_TIMEOUT:.0f} s") from None
        if first.WhichOneof("message") != "register":
            raise InvalidArgument("the first message of a stream must be register")
        register = first.register
        _check_register(register)
        if deps.draining:
            raise Unavailable("this gateway is shutting down; connect again")
        executor = Executor(
            executor_id=executor_id_for(caller.scope, register.name),
            name=register.name,
            scope=caller.scope,
            capabilities=tuple(dict.fromkeys(register.capabilities)),
            capacity=register.max_parallel,
            labels=dict(register.labels),
            workspaces=tuple(register.workspaces),
            serve=register.serve,
            agent_version=register.agent_version,
        )
        return _Stream(deps, executor, caller, iterator, list(register.running))

    async def wait_closed(self, within: float) -> None:
        """Wait (bounded) for ended streams to release their leases."""
        if self._teardowns:
            await asyncio.wait(set(self._teardowns), timeout=within)

    def drain(self) -> None:
        """Stop handing out work; end streams as soon as they have nothing running."""
        self._deps.draining = True
        for stream in list(self._streams):
            stream.executor.draining = True
            if not stream.executor.running:
                stream.executor.close()

    def cancel_sessions(self, session_ids: set[str], reason: str) -> int:
        """Tell executors here to stop commands of cancelled sessions; returns how many."""
        count = 0
        for executor, held in list(self._deps.hub.holding(session_ids)):
            if executor.drop(held.interaction_id, held.epoch) is not None:
                executor.push(cancel(held.interaction_id, reason))
                count += 1
                self._deps.wake(executor.key)
        return count


class _Stream:
    """One open executor stream."""

    def __init__(
        self,
        deps: Deps,
        executor: Executor,
        caller: Caller,
        requests: AsyncIterator[gpb.ConnectRequest],
        carried: list[spb.LeaseRef],
    ) -> None:
        self._deps = deps
        self.executor = executor
        self._caller = caller
        self._requests = requests
        self.carried = carried
        """Leases the executor says it still holds (``Register.running``)."""
        self._output = OutputBuffer(
            deps.upstream,
            executor.scope,
            flush_bytes=deps.settings.output_flush_bytes,
            chunk_bytes=deps.settings.max_output_chunk_bytes,
            limit_bytes=deps.settings.output_buffer_bytes,
        )
        self._results = ResultReporter(deps, executor, self._output)
        self._presence = Presence(deps, executor)
        self._tasks: set[asyncio.Task[None]] = set()
        self._beat: asyncio.Task[None] | None = None
        self._failure: SpecloomError | None = None
        self.on_end: Callable[[], None] | None = None
        """Called once, when the stream stops carrying messages (before its teardown)."""
        self.teardown: asyncio.Task[None] | None = None
        """The stream's cleanup, once it ended (it may outlive the handler)."""

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _fail(self, error: SpecloomError) -> None:
        if self._failure is None:
            self._failure = error
        self.executor.close()

    async def run(self, running: list[spb.LeaseRef]) -> AsyncIterator[gpb.ConnectResponse]:
        deps, executor = self._deps, self.executor
        settings = deps.settings
        helpers: list[asyncio.Task[None]] = []
        try:
            # Leases carried over from before a reconnect are adopted before
            # the welcome: once welcomed, the executor may close its old
            # stream, whose teardown must then find the leases renewed here
            # and leave them alone; and output for them may be the first
            # thing it sends, which must not be dropped as "not held here".
            if running:
                await self._resume(running)
            yield gpb.ConnectResponse(
                welcome=gpb.Welcome(
                    executor_id=executor.id,
                    heartbeat_interval_seconds=settings.heartbeat_interval_seconds,
                    lease_ttl_seconds=settings.lease_ttl_seconds,
                    max_output_chunk_bytes=settings.max_output_chunk_bytes,
                    scope=executor.scope,
                )
            )
            deps.hub.add(executor)
            log.info(
                "executor %s (%s) connected: %d slots, capabilities %s, workspaces %s, serves %s",
                executor.name,
                executor.id,
                executor.capacity,
                ",".join(executor.capabilities),
                ",".join(w.id for w in executor.workspaces) or "none",
                "the project" if executor.claims.owner is None else executor.scope.user_id,
            )
            # Not awaited: presence is advisory and must not hold up the
            # stream's first claim; teardown waits for it before forgetting.
            self._spawn(self._presence.registered())
            helpers += [
                asyncio.create_task(self._read()),
                asyncio.create_task(self._watchdog()),
                asyncio.create_task(self._flusher()),
            ]
            deps.wake(executor.key)
            while (message := await executor.outbox.get()) is not None:
                yield message
            if self._failure is not None:
                raise self._failure
        finally:
            executor.close()
            if self.on_end is not None:
                self.on_end()
            # Shielded: a cancelled handler (the peer vanished) must still
            # release its leases, and a second cancellation must not stop it.
            self.teardown = asyncio.create_task(self._cleanup(helpers))
            await asyncio.shield(self.teardown)

    async def _read(self) -> None:
        executor = self.executor
        try:
            async for message in self._requests:
                executor.last_seen = time.monotonic()
                kind = message.WhichOneof("message")
                if kind == "result":
                    self._spawn(self._results.report(message.result))
                elif kind == "heartbeat":
                    # At most one renewal in flight: a heartbeat that arrives
                    # while the previous one is still renewing adds nothing.
                    if self._beat is None or self._beat.done():
                        self._beat = asyncio.create_task(self._heartbeat(message.heartbeat))
                elif kind == "output":
                    # Awaited: while too much output waits to be written, this
                    # stream is not read, and the executor is held back.
                    await self._on_output(message.output)
                elif kind == "draining":
                    log.info("executor %s is draining: %s", executor.name, message.draining.reason)
                    executor.draining = True
                elif kind == "register":
                    raise InvalidArgument("register may only be the first message of a stream")
                else:
                    raise InvalidArgument("empty ConnectRequest")
            # The executor closed its side: finish its reports (their acks
            # can still be read), then end the stream.
            if self._tasks:
                await asyncio.wait(set(self._tasks))
            executor.close()
        except SpecloomError as exc:
            self._fail(exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The transport failed (the peer vanished); nothing to tell it.
            log.info("executor %s stream broke: %s", executor.name, exc)
            executor.close()

    async def _on_output(self, output: gpb.CommandOutput) -> None:
        held = self.executor.running.get(output.interaction_id)
        # Only the lease holder's output is kept: a command that lost its
        # lease must not interleave with the new holder's output.
        if held is None or held.epoch != output.lease_epoch:
            return
        if held.session is not None and held.session.id != output.session_id:
            return
        # A lease carried over from another gateway replica has no session
        # head here until its result arrives; its output is filed under the
        # session the executor names, which is safe: Sessions stores it only
        # if that interaction belongs to that session in this executor's scope.
        # A stream number this version does not know is kept as "unspecified":
        # refused, it would take the chunks written with it down too.
        stream = output.stream if output.stream in _STREAMS else pb.OUTPUT_STREAM_UNSPECIFIED
        await self._output.add(output.session_id, output.interaction_id, stream, output.data)

    async def _heartbeat(self, beat: gpb.Heartbeat) -> None:
        deps, executor = self._deps, self.executor
        try:
            # Re-verified on every heartbeat (through the short cache): a
            # revoked token ends the stream.
            await deps.auth.recheck(self._caller)
            listed = {ref.interaction_id for ref in beat.running}
            self._forget_unlisted(listed)
            if beat.running:
                await self._renew([self._as_seen(ref) for ref in beat.running])
            await self._presence.heartbeat()
        except SpecloomError as exc:
            if exc.code == "UNAUTHENTICATED":
                self._fail(exc)
            else:
                log.warning("heartbeat of %s not processed: %s", executor.name, exc.message)

    def _forget_unlisted(self, listed: set[str]) -> None:
        """Leases handed out long ago that the executor does not list: it is not
        running them (the assignment was lost), so free the slot and the lease."""
        executor = self.executor
        horizon = time.monotonic() - 2 * self._deps.settings.heartbeat_interval_seconds
        stale = [
            held
            for iid, held in executor.running.items()
            if iid not in listed and not held.reporting and held.assigned_at < horizon
        ]
        if not stale:
            return
        for held in stale:
            executor.drop(held.interaction_id, held.epoch)
            self._output.drop(held.interaction_id)
            log.warning(
                "executor %s does not run interaction %s it was given; releasing it",
                executor.name,
                held.interaction_id,
            )
        self._spawn(self._release([held.ref() for held in stale]))
        self._deps.wake(executor.key)

    def _as_seen(self, ref: spb.LeaseRef) -> spb.LeaseRef:
        """``ref`` with the expiry this stream last saw, so the renewal is a
        compare-and-set; without one (a lease not known here) it adopts."""
        held = self.executor.running.get(ref.interaction_id)
        if held is None or held.epoch != ref.epoch:
            return spb.LeaseRef(interaction_id=ref.interaction_id, epoch=ref.epoch)
        return held.ref()

    async def _renew(self, leases: list[spb.LeaseRef]) -> list[spb.LeaseRef]:
        """Renew leases; stop what was lost; adopt renewed leases we did not know."""
        deps, executor = self._deps, self.executor
        response = await deps.upstream.call(
            deps.upstream.sessions.RenewLeases,
            spb.RenewLeasesRequest(
                executor_id=executor.id,
                leases=leases,
                ttl_seconds=deps.settings.lease_ttl_seconds,
            ),
        )
        freed = False
        for ref in response.lost:
            held = executor.running.get(ref.interaction_id)
            if (held is not None and held.epoch == ref.epoch and held.reporting) or (
                self._results.recorded(ref.interaction_id)
            ):
                # The lease ended with a result this stream is recording, or
                # has recorded (a heartbeat sent before the executor read the
                # ack): nothing to stop, and the report decides the rest.
                continue
            LEASES_LOST.inc()
            if executor.drop(ref.interaction_id, ref.epoch) is not None:
                freed = True
            self._output.drop(ref.interaction_id)
            executor.push(
                cancel(
                    ref.interaction_id, "lease lost: the command went to another executor or ended"
                )
            )
        for ref in response.renewed:
            known = executor.running.get(ref.interaction_id)
            if known is not None and known.epoch == ref.epoch:
                known.expires_at = ref.expires_at
            if ref.interaction_id not in executor.running:
                # Renewed under our id but unknown here (held before a reconnect
                # to another replica): its session is learned when it reports.
                executor.running[ref.interaction_id] = Held(
                    interaction_id=ref.interaction_id,
                    epoch=ref.epoch,
                    session=None,
                    deadline=time.monotonic()
                    + deps.settings.default_command_timeout_seconds
                    + deps.settings.command_run_grace_seconds,
                    expires_at=ref.expires_at,
                )
        if freed:
            deps.wake(executor.key)
        return list(response.renewed)

    async def _resume(self, running: list[spb.LeaseRef]) -> None:
        """Keep the leases of commands still running from before a reconnect."""
        executor = self.executor
        for other in self._deps.hub.same_id(executor):
            # A reconnect racing the old stream's teardown on this gateway:
            # take the leases over, so the old stream does not release them.
            for ref in running:
                held = other.running.get(ref.interaction_id)
                if held is not None and held.epoch == ref.epoch:
                    del other.running[ref.interaction_id]
                    executor.running[ref.interaction_id] = held
        try:
            renewed = await self._renew(running)
        except SpecloomError as exc:
            log.warning("could not renew leases of %s after reconnect: %s", executor.name, exc)
            return
        ASSIGNMENTS_PUSHED.labels("resumed").inc(len(renewed))

    async def _watchdog(self) -> None:
        deps, executor = self._deps, self.executor
        idle = deps.settings.idle_timeout()
        while not executor.closed:
            await asyncio.sleep(WATCHDOG_TICK)
            now = time.monotonic()
            if now - executor.last_seen > idle:
                self._fail(Unavailable(f"no message from the executor for {idle:.0f} s"))
                return
            for held in list(executor.running.values()):
                if held.deadline < now and not held.reporting:
                    self._spawn(self._results.time_out(held))

    async def _flusher(self) -> None:
        interval = self._deps.settings.output_flush_interval_seconds
        while True:
            await asyncio.sleep(interval)
            await self._output.flush_all()

    async def _release(self, leases: list[spb.LeaseRef]) -> None:
        deps = self._deps
        try:
            await deps.upstream.call(
                deps.upstream.sessions.ReleaseLeases,
                spb.ReleaseLeasesRequest(executor_id=self.executor.id, leases=leases),
            )
        except SpecloomError as exc:
            log.warning("could not release leases %s: %s", [r.interaction_id for r in leases], exc)

    async def _cleanup(self, helpers: list[asyncio.Task[None]]) -> None:
        deps, executor = self._deps, self.executor
        for task in helpers:
            task.cancel()
        if self._beat is not None:
            self._beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*helpers, return_exceptions=True)
        if self._tasks:
            # Reports in flight finish (a result is worth recording), bounded.
            await asyncio.wait(set(self._tasks), timeout=deps.settings.upstream_timeout_seconds)
        await self._output.flush_all()
        deps.hub.remove(executor)
        # A claim sent for this stream before it closed must come back first
        # (it gives back what it can no longer hand out): released before it
        # reached Sessions, these leases would be free for that very claim.
        await executor.claims_settled(deps.settings.upstream_timeout_seconds)
        held = [lease.ref() for lease in executor.running.values()]
        if held:
            # Conditional on the expiry last set here: if the executor has
            # already reconnected to another replica, which renewed these
            # leases, this teardown must leave them alone.
            await self._release(held)
        await self._presence.ended()
        log.info(
            "executor %s (%s) disconnected; released %d leases",
            executor.name,
            executor.id,
            len(held),
        )
        deps.wake(executor.key)
