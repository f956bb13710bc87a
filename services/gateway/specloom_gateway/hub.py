"""The executors connected to this gateway and the leases each one holds.

Pure bookkeeping, no I/O: the stream handler (:mod:`executors`) and the
dispatcher (:mod:`dispatch`) share it. Everything runs on one event loop,
so plain dicts are enough; the invariants worth knowing:

* ``Executor.free`` is what dispatch may claim for it. A held lease keeps
  its slot until the result is reported *and* the fused call returned: the
  next command usually comes back leased to the same executor and reuses the
  slot, so capacity is never overcommitted.
* Executor ids are stable per (account, project, user, name), so a
  reconnecting executor keeps the leases it lists in ``Register.running``
  (Sessions checks the holder on renewal). Several connections may share an
  id (a reconnect racing the old stream's teardown); each releases only the
  leases it holds itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from google.protobuf import timestamp_pb2

from specloom.logs import log_context
from specloom.v1 import common_pb2 as pb
from specloom.v1 import gateway_pb2 as gpb
from specloom.v1 import sessions_pb2 as spb
from specloom_gateway.metrics import EXECUTOR_SLOTS_FREE, EXECUTORS_CONNECTED

log = logging.getLogger("specloom.gateway.hub")

ScopeKey = tuple[str, str]
"""(account_id, project_id): the wall work is claimed within."""

_ID_NAMESPACE = uuid.UUID("5b0b6c1e-6f3a-4a52-9a53-2d4f5e1c7a01")


def scope_key(scope: pb.Scope) -> ScopeKey:
    """The dispatch wall of ``scope``."""
    return (scope.account_id, scope.project_id)


def executor_id_for(scope: pb.Scope, name: str) -> str:
    """The stable id of executor ``name`` acting for ``scope``'s user."""
    key = "\0".join((scope.account_id, scope.project_id, scope.user_id, name))
    return str(uuid.uuid5(_ID_NAMESPACE, key))


@dataclass(frozen=True)
class ClaimKey:
    """Everything a claim filters on besides the scope."""

    capabilities: frozenset[str]
    workspaces: frozenset[str]
    owner: str | None
    """The only user whose sessions it runs; None: the whole project's."""


@dataclass
class Held:
    """A lease an executor holds on one interaction."""

    interaction_id: str
    epoch: int
    session: pb.Session | None
    """The session head (id, type, scope); None for a lease carried over from
    another gateway, learned when its result arrives."""
    deadline: float
    """Monotonic time after which the gateway gives up on the command."""
    assigned_at: float = field(default_factory=time.monotonic)
    reporting: bool = False
    """A result for it is being reported (do not time it out meanwhile)."""
    expires_at: timestamp_pb2.Timestamp | None = None
    """The lease's expiry as this gateway last set it (claim or renewal).
    Releases name it, so this gateway can never end a lease another replica
    renewed after the executor reconnected there."""
    step: str = ""
    """The step's name, for people ("" for a lease carried over a reconnect)."""
    since: float = field(default_factory=time.time)
    """Wall-clock time this gateway began holding it (shown to people)."""

    def ref(self) -> spb.LeaseRef:
        """The lease as a LeaseRef (with the expiry this gateway last saw)."""
        ref = spb.LeaseRef(interaction_id=self.interaction_id, epoch=self.epoch)
        if self.expires_at is not None:
            ref.expires_at.CopyFrom(self.expires_at)
        return ref


class Executor:
    """One connected executor stream."""

    def __init__(
        self,
        *,
        executor_id: str,
        name: str,
        scope: pb.Scope,
        capabilities: tuple[str, ...],
        capacity: int,
        labels: dict[str, str],
        workspaces: tuple[pb.WorkspaceRef, ...] = (),
        serve: int = pb.EXECUTOR_SERVE_OWN,
        agent_version: str = "",
    ) -> None:
        self.id = executor_id
        self.connection = uuid.uuid4().hex
        """Distinguishes connections that share an executor id."""
        self.name = name
        self.scope = scope
        self.key = scope_key(scope)
        self.capabilities = capabilities
        self.capset = frozenset(capabilities)
        self.capacity = capacity
        self.labels = labels
        self.workspaces = workspaces
        """Workspaces it serves; the first is its default (where it pins sessions)."""
        self.serve = serve or pb.EXECUTOR_SERVE_OWN
        self.agent_version = agent_version
        self.claims = ClaimKey(
            capabilities=self.capset,
            workspaces=frozenset(w.id for w in workspaces),
            owner=None if self.serve == pb.EXECUTOR_SERVE_PROJECT else scope.user_id,
        )
        """What it may claim: executors with equal keys can claim the same work."""
        self.connected_at = time.time()
        self.running: dict[str, Held] = {}
        self.draining = False
        """The executor said it is stopping, or this gateway is: no new work."""
        self.closed = False
        self.outbox: asyncio.Queue[gpb.ConnectResponse | None] = asyncio.Queue()
        self.last_seen = time.monotonic()
        self._claiming = 0
        self._claims_settled = asyncio.Event()
        self._claims_settled.set()
        self.reserved = 0
        """Slots promised to starts in flight (their first command may come leased)."""

    @property
    def free(self) -> int:
        """Commands dispatch may claim for it now."""
        if self.draining or self.closed:
            return 0
        return max(0, self.capacity - len(self.running) - self.reserved)

    def push(self, message: gpb.ConnectResponse) -> bool:
        """Queue a message for the executor; False when the stream is closed."""
        if self.closed:
            return False
        self.outbox.put_nowait(message)
        return True

    def begin_claim(self) -> bool:
        """Count a claim made on its behalf; False (claim nothing) once the stream closed."""
        if self.closed:
            return False
        self._claiming += 1
        self._claims_settled.clear()
        return True

    def end_claim(self) -> None:
        """A claim begun with :meth:`begin_claim` came back (having given back
        what it could not hand out)."""
        self._claiming -= 1
        if self._claiming == 0:
            self._claims_settled.set()

    async def claims_settled(self, within: float) -> bool:
        """Wait (bounded) until no claim on its behalf is in flight; False on timeout."""
        try:
            async with asyncio.timeout(within):
                await self._claims_settled.wait()
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        """End the stream's writer (the handler then cleans up)."""
        if not self.closed:
            self.closed = True
            self.outbox.put_nowait(None)

    def assign(self, session: pb.Session, interaction: pb.Interaction, deadline: float) -> bool:
        """Hold ``interaction``'s lease and send it; False when the stream is closed.

        A closed stream's cleanup may already have released its leases, so
        the caller must release this one itself.
        """
        if self.closed:
            return False
        self.running[interaction.id] = Held(
            interaction_id=interaction.id,
            epoch=interaction.lease.epoch,
            session=session,
            deadline=deadline,
            expires_at=(
                interaction.lease.expires_at if interaction.lease.HasField("expires_at") else None
            ),
            step=interaction.step,
        )
        # Filled in place: building the inner message first and passing it
        # to the outer constructor would copy the session and command twice.
        message = gpb.ConnectResponse()
        message.assignment.session.CopyFrom(session)
        message.assignment.interaction.CopyFrom(interaction)
        self.outbox.put_nowait(message)
        if log.isEnabledFor(logging.DEBUG):  # the step's hot path: no context unless logged
            with log_context(session.id, interaction.id):
                log.debug(
                    "%s handed to executor %s (lease epoch %d)",
                    interaction.step,
                    self.name,
                    interaction.lease.epoch,
                )
        return True

    def drop(self, interaction_id: str, epoch: int) -> Held | None:
        """Stop holding a lease (only that epoch: a newer claim of the same
        interaction by this executor must survive a late answer about the old one)."""
        held = self.running.get(interaction_id)
        if held is None or held.epoch != epoch:
            return None
        del self.running[interaction_id]
        return held

    def __repr__(self) -> str:
        return f"Executor({self.name!r}, id={self.id}, running={len(self.running)})"


class ExecutorHub:
    """Every executor connected to this gateway, by dispatch scope."""

    def __init__(self) -> None:
        self._by_scope: dict[ScopeKey, dict[str, Executor]] = {}
        self._cursor: dict[tuple[ScopeKey, ClaimKey], int] = {}

    def add(self, executor: Executor) -> None:
        """Register a new stream."""
        self._by_scope.setdefault(executor.key, {})[executor.connection] = executor
        EXECUTORS_CONNECTED.inc()
        self.update_gauges()

    def remove(self, executor: Executor) -> None:
        """Forget a stream that ended."""
        group = self._by_scope.get(executor.key)
        if group is None or group.pop(executor.connection, None) is None:
            return
        if not group:
            del self._by_scope[executor.key]
        EXECUTORS_CONNECTED.dec()
        self.update_gauges()

    def scopes(self) -> list[ScopeKey]:
        """Scopes with at least one executor."""
        return list(self._by_scope)

    def executors(self) -> Iterator[Executor]:
        """Every connected executor."""
        for group in list(self._by_scope.values()):
            yield from list(group.values())

    def in_scope(self, key: ScopeKey) -> list[Executor]:
        """Executors of one scope."""
        return list(self._by_scope.get(key, {}).values())

    def same_id(self, executor: Executor) -> list[Executor]:
        """Other live connections of the same executor id."""
        return [
            other
            for other in self.in_scope(executor.key)
            if other.id == executor.id and other is not executor
        ]

    def groups(self, key: ScopeKey) -> list[tuple[ClaimKey, list[Executor]]]:
        """Executors of ``key`` with free capacity, grouped by what they may claim.

        Within a group (same capabilities, workspaces and user filter) every
        executor can claim the same work, so one empty claim proves the group
        has nothing to do. The order rotates on every call (round-robin), so
        work spreads over the group.
        """
        by_claims: dict[ClaimKey, list[Executor]] = {}
        for executor in self.in_scope(key):
            if executor.free > 0:
                by_claims.setdefault(executor.claims, []).append(executor)
        grouped: list[tuple[ClaimKey, list[Executor]]] = []
        for claims, members in by_claims.items():
            cursor = self._cursor.get((key, claims), 0) % len(members)
            self._cursor[(key, claims)] = cursor + 1
            grouped.append((claims, members[cursor:] + members[:cursor]))
        return grouped

    def holding(self, session_ids: set[str]) -> Iterator[tuple[Executor, Held]]:
        """Leases held here on interactions of the given sessions."""
        for executor in self.executors():
            for held in list(executor.running.values()):
                if held.session is not None and held.session.id in session_ids:
                    yield executor, held

    def update_gauges(self) -> None:
        """Refresh the free-slot gauge."""
        EXECUTOR_SLOTS_FREE.set(sum(executor.free for executor in self.executors()))
