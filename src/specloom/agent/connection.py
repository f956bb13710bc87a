"""The executor's side of ``GatewayService.Connect``.

One bidirectional stream per connection: the executor registers, the
gateway welcomes it and hands it commands under leases; the executor
heartbeats its leases, streams output, reports results and reconnects when
the stream breaks.

Rules that keep a step's result from being lost or doubled:

- a finished command's result is kept until the gateway acknowledges it
  (``ResultAck``) and is sent again after a reconnect, or after a refusal
  that recorded nothing (UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED: a service
  behind the gateway is restarting); the gateway treats an exact repeat as a
  no-op, so resending is always safe;
- heartbeats and the ``running`` list of a re-registration carry every
  lease still held: commands running and results not yet acknowledged;
- a command keeps running across a reconnect (its output in between is
  dropped, its tails still reach the result);
- on SIGTERM the executor says ``Draining``, takes no new work, gives
  running commands ``drain_seconds`` to finish, cancels the rest (they
  report ERROR results), waits briefly for acknowledgements, then closes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

import grpc

from specloom.agent.config import AgentSettings, build_executor, resolve_token
from specloom.agent.executor import Executor
from specloom.rpc import metadata as md
from specloom.v1 import common_pb2 as pb
from specloom.v1 import gateway_pb2 as gpb
from specloom.v1 import sessions_pb2 as spb
from specloom.v1.gateway_pb2_grpc import GatewayServiceStub

if TYPE_CHECKING:
    from specloom.v1.gateway_pb2_grpc import GatewayServiceAsyncStub

log = logging.getLogger("specloom.agent")

DEFAULT_CHUNK = 64 * 1024
_OUTBOX_SIZE = 256
_WELCOME_TIMEOUT = 30.0
_ACK_WAIT = 5.0
_FATAL_CODES = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})
_RESEND_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "ABORTED"})
"""Refusals that recorded nothing: the gateway keeps the lease, so the same
result is sent again rather than dropped (dropping it would have the command
run a second time once the lease is released)."""
_RESEND_DELAY = 0.5
_RESEND_MAX_DELAY = 5.0

__all__ = ["AgentLoop", "run_agent"]


def _agent_version() -> str:
    try:
        return version("specloom")
    except PackageNotFoundError:
        return "unknown"


_RAN_REMEMBERED = 4096
"""Acknowledged commands an agent remembers, to skip a late duplicate assignment."""


@dataclass
class _Job:
    """One assigned command."""

    session_id: str
    interaction_id: str
    epoch: int
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    result: gpb.CommandResult | None = None
    """Set when finished; cleared (job dropped) when acknowledged."""
    resends: int = 0
    """Times the result was refused for a passing reason and sent again."""

    def lease(self) -> spb.LeaseRef:
        return spb.LeaseRef(interaction_id=self.interaction_id, epoch=self.epoch)


class AgentLoop:
    """Keeps a connection to the gateway and runs what it assigns."""

    def __init__(
        self,
        settings: AgentSettings,
        executor: Executor,
        *,
        channel_factory: Callable[[], grpc.aio.Channel] | None = None,
    ) -> None:
        self.settings = settings
        self._token = resolve_token(settings)
        self.executor = executor
        self._channel_factory = channel_factory or self._make_channel
        self.jobs: dict[str, _Job] = {}
        """Assigned commands by interaction id, until their result is acknowledged."""
        self._ran: collections.OrderedDict[str, int] = collections.OrderedDict()
        """Acknowledged commands (the last :data:`_RAN_REMEMBERED`): interaction id -> epoch."""
        self.draining = asyncio.Event()
        """Set to stop taking work and shut down gracefully."""
        self.stopped = asyncio.Event()
        """Set to stop at once (running commands are cancelled)."""
        self.executor_id = ""
        self.own_user = ""
        """The user of the executor's token, as the gateway's welcome says."""
        self.connected = asyncio.Event()
        """Set while a welcomed stream is open (tests wait on it)."""
        self._outbox: asyncio.Queue[gpb.ConnectRequest | None] | None = None
        self._chunk = DEFAULT_CHUNK
        self._slots = asyncio.Semaphore(settings.max_parallel)
        self._acked = asyncio.Event()
        self._close = asyncio.Event()
        self._resending: set[asyncio.Task[None]] = set()

    def _make_channel(self) -> grpc.aio.Channel:
        options: list[tuple[str, str | int]] = [
            ("grpc.max_receive_message_length", 32 * 1024 * 1024),
            ("grpc.max_send_message_length", 32 * 1024 * 1024),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 10_000),
        ]
        s = self.settings
        if s.tls or s.tls_ca_file is not None:
            if s.tls_server_name:
                options.append(("grpc.ssl_target_name_override", s.tls_server_name))
            # grpc verifies the server's chain and name against these roots
            # (the system's when None); a certificate that does not verify
            # fails the handshake and nothing is ever sent to that server.
            roots = s.tls_ca_file.read_bytes() if s.tls_ca_file else None
            credentials = grpc.ssl_channel_credentials(root_certificates=roots)
            return grpc.aio.secure_channel(s.gateway, credentials, options=options)
        return grpc.aio.insecure_channel(s.gateway, options=options)

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        token = self._token
        return ((md.AUTHORIZATION, f"Bearer {token.get_secret_value()}"),) if token else ()

    def trusts(self, starter: str) -> bool:
        """Whether sessions started by ``starter`` may run unconfined here."""
        return bool(starter) and (
            starter == self.own_user or starter in self.settings.trusted_starters
        )

    def leases(self) -> list[spb.LeaseRef]:
        """Every lease held: running commands and unacknowledged results."""
        return [job.lease() for job in self.jobs.values()]

    async def run(self) -> int:
        """Connect, serve, reconnect; returns the process exit code when stopped."""
        attempt = 0
        channel = self._channel_factory()
        drain = asyncio.create_task(self._drain())
        try:
            while not self.stopped.is_set():
                if self.draining.is_set() and not self.jobs:
                    return 0
                try:
                    welcomed = await self._connection(channel)
                except grpc.aio.AioRpcError as exc:
                    welcomed = False
                    if exc.code() in _FATAL_CODES:
                        log.error("gateway refused the executor: %s", exc.details())
                        return 2
                    log.warning("gateway stream ended: %s %s", exc.code().name, exc.details())
                if self.draining.is_set() and not self.jobs:
                    return 0
                attempt = 0 if welcomed else attempt + 1
                await self._backoff(attempt)
            return 0
        finally:
            drain.cancel()
            for task in self._resending:
                task.cancel()
            for job in self.jobs.values():
                job.cancel.set()
            tasks = [j.task for j in self.jobs.values() if j.task is not None]
            await asyncio.gather(drain, *tasks, return_exceptions=True)
            await channel.close(None)

    async def _drain(self) -> None:
        """After SIGTERM: let running work finish within the grace, cancel the rest, stop."""
        await self.draining.wait()
        running = [j.task for j in self.jobs.values() if j.task is not None and not j.task.done()]
        if running:
            _, late = await asyncio.wait(running, timeout=self.settings.drain_seconds)
            for job in self.jobs.values():
                if job.task in late:
                    job.cancel.set()
            if late:
                await asyncio.wait(late, timeout=self.settings.kill_grace_seconds + 15)
        # Results still unacknowledged get a while to land (across a
        # reconnect if need be); after that the leases simply lapse.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_acked(), timeout=_ACK_WAIT)
        self.stopped.set()

    async def _backoff(self, attempt: int) -> None:
        s = self.settings
        ceiling = min(s.reconnect_max_seconds, s.reconnect_initial_seconds * 2 ** min(attempt, 16))
        # Jitter spreads a fleet of executors reconnecting after a gateway
        # restart instead of having them all knock at the same instant.
        delay = ceiling * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not security
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopped.wait(), timeout=delay)

    async def _connection(self, channel: grpc.aio.Channel) -> bool:
        """One stream's life; True once the gateway welcomed us."""
        outbox: asyncio.Queue[gpb.ConnectRequest | None] = asyncio.Queue(_OUTBOX_SIZE)
        register = gpb.Register(
            name=self.settings.name,
            capabilities=self.executor.capabilities(),
            labels=self.settings.labels,
            max_parallel=self.settings.max_parallel,
            agent_version=_agent_version(),
            running=self.leases(),
            workspaces=self.executor.identities(),
            serve=(
                pb.EXECUTOR_SERVE_PROJECT
                if self.settings.serve == "project"
                else pb.EXECUTOR_SERVE_OWN
            ),
        )

        async def requests() -> AsyncIterator[gpb.ConnectRequest]:
            yield gpb.ConnectRequest(register=register)
            while (message := await outbox.get()) is not None:
                yield message

        stub: GatewayServiceAsyncStub = GatewayServiceStub(channel)
        call = stub.Connect(requests(), metadata=self._metadata())
        welcomed = False
        self._close = asyncio.Event()
        helpers: list[asyncio.Task[None]] = []
        try:
            responses = call.__aiter__()
            first = await asyncio.wait_for(responses.__anext__(), timeout=_WELCOME_TIMEOUT)
            if first.WhichOneof("message") != "welcome":
                log.warning("gateway did not welcome the executor first; reconnecting")
                return False
            welcomed = True
            self._welcome(first.welcome, outbox)
            helpers.append(asyncio.create_task(self._heartbeat(first.welcome, outbox)))
            helpers.append(asyncio.create_task(self._watch_drain(outbox)))
            for job in list(self.jobs.values()):
                if job.result is not None:
                    await outbox.put(gpb.ConnectRequest(result=job.result))
            await self._serve(responses)
        except (StopAsyncIteration, TimeoutError):
            pass
        finally:
            self._outbox = None
            self.connected.clear()
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            with contextlib.suppress(asyncio.QueueFull):
                outbox.put_nowait(None)
            call.cancel()
            # The stream is gone; the lease renewals stop with it. Running
            # commands continue and report after the next connection.
        return welcomed

    def _welcome(
        self, welcome: gpb.Welcome, outbox: asyncio.Queue[gpb.ConnectRequest | None]
    ) -> None:
        self.executor_id = welcome.executor_id
        self.own_user = welcome.scope.user_id
        self._chunk = welcome.max_output_chunk_bytes or DEFAULT_CHUNK
        self._outbox = outbox
        self.connected.set()
        log.info("connected to %s as %s", self.settings.gateway, welcome.executor_id)

    def _finished(self) -> bool:
        return (self.draining.is_set() and not self.jobs) or self.stopped.is_set()

    async def _serve(self, responses: AsyncIterator[gpb.ConnectResponse]) -> None:
        """Handle the gateway's messages until it ends the stream or we are done."""
        stop = asyncio.ensure_future(self._stop_reading())
        try:
            while True:
                message = asyncio.ensure_future(anext(responses))
                done, _ = await asyncio.wait({message, stop}, return_when=asyncio.FIRST_COMPLETED)
                if message not in done:
                    # Done with this stream: stop the read in flight; the
                    # caller's call.cancel() then ends the stream cleanly.
                    message.cancel()
                    await asyncio.gather(message, return_exceptions=True)
                    return
                try:
                    response = message.result()
                except StopAsyncIteration:
                    return
                await self._handle(response)
                if self._finished():
                    self._close.set()
        finally:
            stop.cancel()
            await asyncio.gather(stop, return_exceptions=True)

    async def _stop_reading(self) -> None:
        stopped = asyncio.ensure_future(self.stopped.wait())
        closing = asyncio.ensure_future(self._close.wait())
        try:
            await asyncio.wait({stopped, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            closing.cancel()

    async def _heartbeat(
        self, welcome: gpb.Welcome, outbox: asyncio.Queue[gpb.ConnectRequest | None]
    ) -> None:
        interval = max(0.05, float(welcome.heartbeat_interval_seconds or 10))
        while True:
            await asyncio.sleep(interval)
            await outbox.put(gpb.ConnectRequest(heartbeat=gpb.Heartbeat(running=self.leases())))

    async def _watch_drain(self, outbox: asyncio.Queue[gpb.ConnectRequest | None]) -> None:
        """Tell the gateway we are draining; close the stream once nothing is held."""
        await self.draining.wait()
        await outbox.put(gpb.ConnectRequest(draining=gpb.Draining(reason="SIGTERM")))
        await self._all_acked()
        await outbox.put(None)  # half-close: nothing left to report
        self._close.set()

    async def _all_acked(self) -> None:
        while self.jobs:
            self._acked.clear()
            await self._acked.wait()

    async def _handle(self, response: gpb.ConnectResponse) -> None:
        kind = response.WhichOneof("message")
        if kind == "assignment":
            await self._assign(response.assignment)
        elif kind == "ack":
            ack = response.ack
            job = self.jobs.get(ack.interaction_id)
            if (
                not ack.accepted
                and ack.code in _RESEND_CODES
                and job is not None
                and job.result is not None
            ):
                # A dependency of the gateway is restarting: nothing was
                # recorded and the lease is still ours. Keep the result (its
                # lease stays in our heartbeats) and offer it again.
                log.warning(
                    "result for %s not recorded yet (%s %s); sending it again",
                    ack.interaction_id,
                    ack.code,
                    ack.message,
                )
                self._resend_later(job)
                return
            if job is not None and job.result is not None:
                del self.jobs[ack.interaction_id]
                self._remember(job)
                self._acked.set()
            if not ack.accepted:
                log.warning(
                    "result for %s refused: %s %s", ack.interaction_id, ack.code, ack.message
                )
        elif kind == "cancel":
            job = self.jobs.get(response.cancel.interaction_id)
            if job is not None:
                log.info("cancelling %s: %s", job.interaction_id, response.cancel.reason)
                job.cancel.set()
        elif kind == "welcome":
            self._chunk = response.welcome.max_output_chunk_bytes or self._chunk

    def _remember(self, job: _Job) -> None:
        self._ran[job.interaction_id] = job.epoch
        self._ran.move_to_end(job.interaction_id)
        while len(self._ran) > _RAN_REMEMBERED:
            self._ran.popitem(last=False)

    def _resend_later(self, job: _Job) -> None:
        job.resends += 1
        delay = min(_RESEND_MAX_DELAY, _RESEND_DELAY * 2 ** min(job.resends - 1, 8))

        async def resend() -> None:
            await asyncio.sleep(delay)
            outbox = self._outbox
            # Disconnected meanwhile: the next connection resends it anyway.
            if outbox is not None and self.jobs.get(job.interaction_id) is job and job.result:
                await outbox.put(gpb.ConnectRequest(result=job.result))

        task = asyncio.create_task(resend())
        self._resending.add(task)
        task.add_done_callback(self._resending.discard)

    async def _assign(self, assignment: gpb.CommandAssignment) -> None:
        interaction = assignment.interaction
        held = self.jobs.get(interaction.id)
        if held is not None:
            # The same command again: a resend, or the gateway re-leased it to
            # us under a newer epoch after a reconnect. Never run it twice;
            # adopt the newer epoch so our report is not fenced off.
            if interaction.lease.epoch > held.epoch:
                held.epoch = interaction.lease.epoch
                if held.result is not None:
                    held.result.lease_epoch = held.epoch
                    if self._outbox is not None:
                        await self._outbox.put(gpb.ConnectRequest(result=held.result))
            return
        if interaction.lease.epoch <= self._ran.get(interaction.id, 0):
            # The same assignment after our result was acknowledged. The
            # contract lets a gateway push a command twice (seen just after a
            # gateway restart, a no-op step acknowledged before the second
            # push arrived): skipping it only while it runs is not enough.
            # A newer epoch is a new lease (our result was refused): run it.
            log.info(
                "not running %s again (lease epoch %d)", interaction.id, interaction.lease.epoch
            )
            return
        if self.draining.is_set():
            # No way to hand it back: leaving it unleased-by-heartbeat lets
            # the lease lapse and another executor take it.
            log.info("draining: not starting %s", interaction.id)
            return
        # One line per command run: the executor's own audit of what it ran.
        log.info(
            "running %s: %s of session %s (lease epoch %d)",
            interaction.id,
            interaction.step,
            assignment.session.id,
            interaction.lease.epoch,
        )
        job = _Job(
            session_id=assignment.session.id,
            interaction_id=interaction.id,
            epoch=interaction.lease.epoch,
        )
        self.jobs[interaction.id] = job
        job.task = asyncio.create_task(self._run_job(job, assignment))

    async def _run_job(self, job: _Job, assignment: gpb.CommandAssignment) -> None:
        async def on_output(stream: int, data: bytes) -> None:
            for start in range(0, len(data), self._chunk):
                outbox = self._outbox
                if outbox is None:
                    return  # disconnected: the tail still reaches the result
                output = gpb.CommandOutput(
                    session_id=job.session_id,
                    interaction_id=job.interaction_id,
                    lease_epoch=job.epoch,
                    stream=pb.OutputStream.ValueType(stream),
                    data=data[start : start + self._chunk],
                )
                await outbox.put(gpb.ConnectRequest(output=output))

        session = assignment.session
        mode = session.execution_mode
        if mode == pb.EXECUTION_MODE_AGENTIC and not self.trusts(session.scope.user_id):
            # Prompt text is code an agent may run: a session started by
            # someone the owner does not trust runs confined, as in auto mode
            # (edits inside the workspace, the command's allowed programs).
            mode = pb.EXECUTION_MODE_AUTO
            if assignment.interaction.command.WhichOneof("kind") == "agent":
                await on_output(
                    pb.OUTPUT_STREAM_EXECUTOR,
                    f"executor: confined: session started by {session.scope.user_id!r}, "
                    "who is not this executor's user nor a trusted starter\n".encode(),
                )
        async with self._slots:
            if job.cancel.is_set():
                result = pb.Result(
                    status=pb.RESULT_STATUS_ERROR, error_message="cancelled before start"
                )
            else:
                result = await self.executor.execute(
                    assignment.interaction.command,
                    on_output=on_output,
                    cancel=job.cancel,
                    execution_mode=mode,
                    workspace_id=session.workspace.id,
                )
        job.result = gpb.CommandResult(
            session_id=job.session_id,
            interaction_id=job.interaction_id,
            lease_epoch=job.epoch,  # read now: a re-lease may have raised it
            result=result,
        )
        outbox = self._outbox
        if outbox is not None:
            await outbox.put(gpb.ConnectRequest(result=job.result))


async def run_agent(settings: AgentSettings) -> int:
    """Run an executor agent until SIGTERM/SIGINT; returns the exit code.

    The first signal drains (finish running work within ``drain_seconds``,
    then close); a second one stops at once.
    """
    executor = build_executor(settings)
    loop = AgentLoop(settings, executor)
    running = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if loop.draining.is_set():
            log.warning("second %s: stopping now", signal.Signals(signum).name)
            loop.stopped.set()
        else:
            log.info("%s: draining", signal.Signals(signum).name)
            loop.draining.set()

    installed: list[signal.Signals] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            running.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)
    try:
        return await loop.run()
    finally:
        for signum in installed:
            running.remove_signal_handler(signum)
