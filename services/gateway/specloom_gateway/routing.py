"""Which orchestrator serves which session type.

Each configured orchestrator address is asked ``Describe`` at start and
periodically after; a session type maps to the first address (in
configuration order) that serves it. A ``dns:///name:port`` address is one
channel that round-robins over every pod behind the name (the ChannelPool's
policy), so replicas of one orchestrator service share one route.
Orchestrators are stateless, so any replica behind the route may serve any
call. Replicas must therefore be one address (``dns:///coding:7420``, or
``ipv4:10.0.0.1:7420,10.0.0.2:7420`` for a fixed list), never one address
each: the channel stops picking a replica whose connection broke and
retries the calls it was holding on another, while a second address would
only be a fallback route that is never used.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import grpc

from specloom.errors import InvalidArgument, SpecloomError, Unavailable
from specloom.v1 import common_pb2 as pb
from specloom.v1 import orchestrator_pb2 as opb
from specloom.v1.orchestrator_pb2_grpc import OrchestratorServiceStub
from specloom_gateway.upstream import Upstream

if TYPE_CHECKING:
    from specloom.v1.orchestrator_pb2_grpc import OrchestratorServiceAsyncStub

log = logging.getLogger("specloom.gateway.routing")

MIN_REFRESH_GAP = 0.5
"""A route miss triggers a refresh, at most this often (seconds)."""
DESCRIBE_TIMEOUT = 5.0


class Router:
    """Session type → orchestrator stub, learned from ``Describe``."""

    def __init__(
        self,
        targets: Sequence[str],
        channel: Callable[[str], grpc.aio.Channel],
        upstream: Upstream,
    ) -> None:
        if not targets:
            raise ValueError("the gateway needs at least one orchestrator address")
        self._upstream = upstream
        # One stub (and so one channel) per target for the process's life.
        self._stubs: dict[str, OrchestratorServiceAsyncStub] = {
            target: OrchestratorServiceStub(channel(target)) for target in dict.fromkeys(targets)
        }
        self._described: dict[str, list[pb.WorkflowDescription]] = {}
        self._routes: dict[str, str] = {}
        self._lock = asyncio.Lock()
        self._last_refresh = 0.0

    @property
    def targets(self) -> list[str]:
        """Configured orchestrator addresses, in order."""
        return list(self._stubs)

    async def refresh(self) -> bool:
        """Ask every orchestrator what it serves; True when all answered.

        A target that does not answer keeps the routes it had: a blip must
        not make running sessions unroutable.
        """
        async with self._lock:
            self._last_refresh = time.monotonic()
            answers = await asyncio.gather(
                *(self._describe(stub) for stub in self._stubs.values()), return_exceptions=True
            )
            ok = True
            for target, answer in zip(self._stubs, answers, strict=True):
                if isinstance(answer, BaseException):
                    ok = False
                    log.warning("orchestrator %s did not answer Describe: %s", target, answer)
                    continue
                self._described[target] = answer
            routes: dict[str, str] = {}
            for target in self._stubs:
                for workflow in self._described.get(target, []):
                    owner = routes.setdefault(workflow.type, target)
                    if owner != target:
                        log.warning(
                            "%s is served by %s and %s; routing to %s (list replicas of "
                            "one service as one address, dns:///name:port or ipv4:a,b, "
                            "so calls spread over them and survive one dying)",
                            workflow.type,
                            owner,
                            target,
                            owner,
                        )
            self._routes = routes
            return ok

    async def _describe(self, stub: OrchestratorServiceAsyncStub) -> list[pb.WorkflowDescription]:
        response = await self._upstream.call(
            stub.Describe, opb.DescribeRequest(), timeout=DESCRIBE_TIMEOUT
        )
        return list(response.workflows)

    async def _route(self, session_type: str) -> OrchestratorServiceAsyncStub | None:
        target = self._routes.get(session_type)
        if target is None and time.monotonic() - self._last_refresh >= MIN_REFRESH_GAP:
            # A type we have not seen: an orchestrator may have been deployed
            # (or started after us, as in the all-in-one mode) since.
            await self.refresh()
            target = self._routes.get(session_type)
        return self._stubs[target] if target is not None else None

    async def for_new(self, session_type: str) -> OrchestratorServiceAsyncStub:
        """The orchestrator to start a ``session_type`` session on (INVALID_ARGUMENT if none)."""
        stub = await self._route(session_type)
        if stub is None:
            known = ", ".join(sorted(self._routes)) or "none (no orchestrator answered)"
            raise InvalidArgument(
                f"unknown session type {session_type!r}; served types are: {known}"
            )
        return stub

    async def for_session(self, session_type: str) -> OrchestratorServiceAsyncStub:
        """The orchestrator of an existing session's type (UNAVAILABLE if none answers now)."""
        target = self._routes.get(session_type)
        if target is not None:  # the per-step path: no await, no refresh
            return self._stubs[target]
        stub = await self._route(session_type)
        if stub is None:
            raise Unavailable(f"no orchestrator serving {session_type} sessions answers right now")
        return stub

    def workflows(self) -> list[pb.WorkflowDescription]:
        """Every routed workflow, sorted by type."""
        by_type: dict[str, pb.WorkflowDescription] = {}
        for target in self._stubs:
            for workflow in self._described.get(target, []):
                by_type.setdefault(workflow.type, workflow)
        return [by_type[name] for name in sorted(by_type)]

    async def run(self, interval: float) -> None:
        """Refresh forever: every ``interval``, sooner (with backoff) after a failure."""
        delay = MIN_REFRESH_GAP
        while True:
            try:
                ok = await self.refresh()
            except SpecloomError as exc:  # pragma: no cover - refresh catches per target
                log.warning("route refresh failed: %s", exc)
                ok = False
            if ok:
                delay = MIN_REFRESH_GAP
                await asyncio.sleep(interval)
            else:
                await asyncio.sleep(delay)
                delay = min(delay * 2, interval)
