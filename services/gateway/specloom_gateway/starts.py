"""A new session's first command, straight to a free executor of this gateway.

Without this a start is a create, a work signal from Sessions to every
gateway, a dispatch pass and a claim before the first command reaches an
executor: at one session that was the slowest part of a session's run (33 ms
against 4 ms per step), and under load the starts' claims arrived in bursts
at the session boundaries. So a start offers one executor of the caller's
scope that has a free slot, and Sessions leases the first command to it in
the create's own transaction — if, and only if, its claim would have given
it to that executor (the rules stay in Sessions: ``ClaimOffer``). The slot
is reserved while the start is in flight, so dispatch cannot fill it twice;
when the command did not come leased, it waits for a claim as before.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from specloom.errors import SpecloomError
from specloom.v1 import common_pb2 as pb
from specloom.v1 import orchestrator_pb2 as opb
from specloom.v1 import sessions_pb2 as spb
from specloom_gateway.deps import Deps
from specloom_gateway.hub import Executor, scope_key
from specloom_gateway.metrics import ASSIGNMENTS_PUSHED

log = logging.getLogger("specloom.gateway.starts")


def pick(deps: Deps, scope: pb.Scope, workspace: pb.WorkspaceRef | None) -> Executor | None:
    """The executor of ``scope`` to offer a new session's first command, if any.

    One with a free slot that could claim the session (Sessions decides on
    the command's capability); of those, the one with the most free slots.
    """
    if deps.draining:
        return None
    best: Executor | None = None
    for executor in deps.hub.in_scope(scope_key(scope)):
        free = executor.free
        if free <= 0 or (best is not None and free <= best.free):
            continue
        if executor.claims.owner is not None and executor.claims.owner != scope.user_id:
            continue
        if workspace is not None and workspace.id not in executor.claims.workspaces:
            continue
        best = executor
    return best


def offer(deps: Deps, executor: Executor) -> pb.ClaimOffer:
    """``executor`` as ClaimOffer: the fields of its claims."""
    return pb.ClaimOffer(
        scope=executor.scope,
        executor_id=executor.id,
        capabilities=executor.capabilities,
        lease_ttl_seconds=deps.settings.lease_ttl_seconds,
        workspace_ids=sorted(executor.claims.workspaces),
        default_workspace=executor.workspaces[0] if executor.workspaces else None,
        own_user_only=executor.claims.owner is not None,
    )


async def open_offering(
    deps: Deps,
    scope: pb.Scope,
    workspace: pb.WorkspaceRef | None,
    open_session: Callable[[pb.ClaimOffer | None], Awaitable[opb.OpenSessionResponse]],
) -> opb.OpenSessionResponse:
    """Run ``open_session`` offering it an executor, and hand the first command over.

    The offered executor's slot is reserved meanwhile and counted as a claim
    in flight, so a closing stream's teardown waits for the start before it
    releases its leases (see ``Dispatcher._claim``). When the command did
    not come leased to it, dispatch is woken for the slot the start held.
    """
    executor = pick(deps, scope, workspace)
    if executor is None or not executor.begin_claim():
        return await open_session(None)
    executor.reserved += 1
    handed = False
    try:
        response = await open_session(offer(deps, executor))
        handed = await _hand_over(deps, executor, response.session, response.created)
        return response
    finally:
        executor.reserved -= 1
        executor.end_claim()
        if not handed:
            deps.wake(executor.key)


async def _hand_over(deps: Deps, executor: Executor, opened: pb.Session, created: bool) -> bool:
    """Send ``opened``'s first command to ``executor`` if it came leased to it.

    Only for a session this start created: a repeated start's session was
    handed over (or claimed) by the first. A lease on a stream that closed
    meanwhile is released at once instead of lapsing.
    """
    if not created or not opened.interactions:
        return False
    first = opened.interactions[-1]
    if first.status != pb.INTERACTION_STATUS_PENDING or first.lease.executor_id != executor.id:
        return False
    head = pb.Session()
    head.CopyFrom(opened)
    del head.interactions[:]
    if executor.assign(head, first, deps.deadline(first.command)):
        ASSIGNMENTS_PUSHED.labels("started").inc()
        return True
    try:
        await deps.upstream.call(
            deps.upstream.sessions.ReleaseLeases,
            spb.ReleaseLeasesRequest(
                executor_id=executor.id,
                leases=[
                    spb.LeaseRef(
                        interaction_id=first.id,
                        epoch=first.lease.epoch,
                        expires_at=first.lease.expires_at,
                    )
                ],
            ),
        )
    except SpecloomError as exc:
        log.warning("could not release the lease on %s: %s", first.id, exc.message)
    return False
