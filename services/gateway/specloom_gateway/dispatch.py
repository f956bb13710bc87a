"""Claiming work for the executors connected to this gateway.

Sessions signals (``WatchWork``) when work may have become claimable in a
scope; lease expiry produces no signal, so a periodic sweep claims too.
Claims use ``SELECT … FOR UPDATE SKIP LOCKED`` in Sessions, so any number of
gateway replicas can claim at once without handing one command out twice.

Keeping the number of claims small is the point of this module:

* Signals are coalesced per scope: a scope is claimed for by one pass at a
  time, and signals arriving during a pass cause one more pass, not one
  each. Passes that found nothing are spaced by ``MIN_PASS_GAP``, unless
  Sessions said work was committed since the empty one began.
* Within a scope, executors with the same capabilities, workspaces and
  user filter can claim the same work, so the first claim that comes back
  short ends the pass for all of them: a thousand idle executors cost one
  empty claim per signal, not a thousand.
* Work is spread round-robin: the first round claims one command per
  executor, later rounds double the batch, so three children land on three
  executors while a burst of hundreds is absorbed in a few calls. After the
  pass's first claim came back full, claims run ``CLAIM_CONCURRENCY`` at a
  time (``SKIP LOCKED`` splits the rows between them), so a spawn of a
  thousand children waits for a few round trips, not one per executor.
* Idle sweeps back off per scope (doubling up to ``MAX_SWEEP_BACKOFF``
  times the interval) and run a bounded number of passes at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from specloom.errors import SpecloomError
from specloom.v1 import sessions_pb2 as spb
from specloom_gateway.deps import Deps
from specloom_gateway.hub import Executor, ScopeKey
from specloom_gateway.metrics import ASSIGNMENTS_PUSHED, CLAIM_CALLS

log = logging.getLogger("specloom.gateway.dispatch")

MIN_PASS_GAP = 0.02
"""Seconds between two passes of one scope when the earlier one found nothing."""
MAX_SWEEP_BACKOFF = 16
"""An idle scope is swept at most every this many sweep intervals."""
SWEEP_CONCURRENCY = 8
"""Passes a sweep runs at once."""
CLAIM_CONCURRENCY = 8
"""Claims one pass has in flight at once once work was found."""


class _ScopeState:
    __slots__ = (
        "again",
        "empty_at",
        "empty_began",
        "idle_sweeps",
        "new_work",
        "next_sweep",
        "task",
        "work_at",
    )

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self.again = False
        self.empty_at = 0.0
        """When the last pass that claimed nothing ended."""
        self.empty_began = 0.0
        """When that pass began."""
        self.work_at = 0.0
        """When Sessions last said new work was committed here."""
        self.new_work = asyncio.Event()
        """Set by that signal: it ends a pass's wait for the gap."""
        self.idle_sweeps = 0
        self.next_sweep = 0.0


class Dispatcher:
    """Claims commands for this gateway's executors (see the module doc)."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._scopes: dict[ScopeKey, _ScopeState] = {}
        self._sweep_gate = asyncio.Semaphore(SWEEP_CONCURRENCY)

    def signal(self, key: ScopeKey | None) -> None:
        """Capacity (or work) may be available in ``key`` (None: in every scope)."""
        self._signal(key, work=False)

    def work(self, key: ScopeKey | None) -> None:
        """Sessions committed claimable work in ``key`` (None: anywhere, maybe)."""
        self._signal(key, work=True)

    def _signal(self, key: ScopeKey | None, *, work: bool) -> None:
        if self._deps.draining:
            return
        keys = self._deps.hub.scopes() if key is None else [key]
        at = time.monotonic()
        for scope in keys:
            if not self._deps.hub.in_scope(scope):
                continue  # work for a project with no executor here
            state = self._scopes.get(scope)
            if state is None:
                state = self._scopes[scope] = _ScopeState()
            state.idle_sweeps = 0
            state.next_sweep = 0.0
            if work:
                state.work_at = at
                state.new_work.set()
            self._start(scope, state)

    def _start(self, key: ScopeKey, state: _ScopeState, *, sweep: bool = False) -> None:
        if state.task is not None and not state.task.done():
            state.again = True
            return
        state.again = False
        state.task = asyncio.create_task(self._passes(key, state, sweep=sweep))

    async def _passes(self, key: ScopeKey, state: _ScopeState, *, sweep: bool) -> None:
        while True:
            gap = state.empty_at + MIN_PASS_GAP - time.monotonic()
            # The gap spaces claims that keep finding nothing; work committed
            # after the empty pass began may be what it could not see (a
            # slot freed just before a session was created), so it goes now,
            # also when it is signalled during the wait.
            if gap > 0 and state.work_at <= state.empty_began:
                state.new_work.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(gap):
                        await state.new_work.wait()
            began = time.monotonic()
            try:
                if sweep:
                    async with self._sweep_gate:
                        claimed = await self._pass(key)
                else:
                    claimed = await self._pass(key)
            except SpecloomError as exc:
                log.warning("claiming for %s/%s failed: %s", key[0], key[1], exc.message)
                claimed = 0
            # None: no executor had a free slot, so nothing was asked and
            # nothing is learned. Counted as an empty pass, it made the slot
            # freed a moment later wait out the gap — at one session, most
            # of the time from one session's last step to the next's first.
            if claimed == 0:
                state.empty_at = time.monotonic()
                state.empty_began = began
            elif claimed is not None:
                state.idle_sweeps = 0
                state.next_sweep = 0.0
            if not state.again:
                break
            state.again = False
            sweep = False
        if not self._deps.hub.in_scope(key):
            self._scopes.pop(key, None)

    async def _pass(self, key: ScopeKey) -> int | None:
        """Claim for every group of ``key`` (see ``ExecutorHub.groups``) until each
        runs dry; None when no executor had a free slot (no claim was made)."""
        groups = self._deps.hub.groups(key)
        if not groups:
            return None
        total = 0
        for _claims, members in groups:
            total += await self._claim_group(members)
        return total

    async def _claim_group(self, members: list[Executor]) -> int:
        total = 0
        batch = 1
        probed = False
        while members:
            wants = [(e, min(e.free, batch)) for e in members if e.free > 0]
            while wants:
                # The pass's first claim goes alone: when there is no work
                # (the usual signal for an idle fleet) it is the only one.
                # Once it came back full, claims go CLAIM_CONCURRENCY at a
                # time, so a burst of children is not paced by one round
                # trip per executor.
                chunk = wants[:1] if not probed else wants[:CLAIM_CONCURRENCY]
                wants = wants[len(chunk) :]
                probed = True
                gots = await asyncio.gather(*(self._claim(e, want) for e, want in chunk))
                total += sum(got or 0 for got in gots)
                if any(
                    got is not None and got < want
                    for (_, want), got in zip(chunk, gots, strict=True)
                ):
                    return total  # nothing more for anyone with these capabilities
            members = [e for e in members if e.free > 0]
            batch *= 2
        return total

    async def _claim(self, executor: Executor, count: int) -> int | None:
        """Claim up to ``count`` commands for ``executor``; None: its stream closed first.

        The claim is counted on the executor while it is in flight: a closing
        stream's teardown waits for it before releasing its own leases, or a
        claim sent just before the close could take back the very command the
        teardown gives up (one wasted epoch, and the command handed to a
        stream that is gone).
        """
        if not executor.begin_claim():
            return None
        try:
            return await self._claim_for(executor, count)
        finally:
            executor.end_claim()

    async def _claim_for(self, executor: Executor, count: int) -> int:
        deps = self._deps
        response = await deps.upstream.call(
            deps.upstream.sessions.ClaimCommands,
            spb.ClaimCommandsRequest(
                scope=executor.scope,
                executor_id=executor.id,
                capabilities=executor.capabilities,
                max_commands=count,
                lease_ttl_seconds=deps.settings.lease_ttl_seconds,
                workspace_ids=sorted(executor.claims.workspaces),
                default_workspace=executor.workspaces[0] if executor.workspaces else None,
                own_user_only=executor.claims.owner is not None,
            ),
        )
        CLAIM_CALLS.labels("work" if response.assignments else "empty").inc()
        orphans: list[spb.LeaseRef] = []
        for assignment in response.assignments:
            interaction = assignment.interaction
            if executor.assign(assignment.session, interaction, deps.deadline(interaction.command)):
                ASSIGNMENTS_PUSHED.labels("claimed").inc()
            else:
                orphans.append(
                    spb.LeaseRef(
                        interaction_id=interaction.id,
                        epoch=interaction.lease.epoch,
                        expires_at=interaction.lease.expires_at,
                    )
                )
        if orphans:
            # The stream closed while we claimed: give the work back now
            # rather than after the lease lapses.
            await deps.upstream.call(
                deps.upstream.sessions.ReleaseLeases,
                spb.ReleaseLeasesRequest(executor_id=executor.id, leases=orphans),
            )
        return len(response.assignments)

    async def stop(self) -> None:
        """Cancel passes in flight (the process is stopping)."""
        tasks = [s.task for s in self._scopes.values() if s.task is not None and not s.task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)

    async def sweep(self, interval: float) -> None:
        """Claim for free executors periodically (expired leases send no signal)."""
        while True:
            await asyncio.sleep(interval)
            if self._deps.draining:
                continue
            self._deps.hub.update_gauges()
            now = time.monotonic()
            for key in self._deps.hub.scopes():
                state = self._scopes.get(key)
                if state is None:
                    state = self._scopes[key] = _ScopeState()
                if now < state.next_sweep:
                    continue
                # Scopes whose sweeps keep finding nothing are swept less
                # often; any real signal resets the backoff.
                factor = min(2**state.idle_sweeps, MAX_SWEEP_BACKOFF)
                state.idle_sweeps += 1
                state.next_sweep = now + interval * (factor - 1)
                self._start(key, state, sweep=True)
