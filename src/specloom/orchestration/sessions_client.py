"""The orchestrator's view of the Sessions service: typed calls, domain errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import grpc

from specloom.errors import ResourceExhausted
from specloom.orchestration.engine import NewStep, Write
from specloom.orchestration.writes import MAX_WRITE_BYTES
from specloom.protoconv import JsonObject, dict_to_struct
from specloom.rpc.batching import Coalescer
from specloom.rpc.errors import error_named, error_of
from specloom.rpc.server import BATCH_BYTES
from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb

if TYPE_CHECKING:
    # The async stub type exists only in the generated .pyi; at run time the
    # plain stub class serves an aio channel.
    from specloom.v1.sessions_pb2_grpc import SessionsServiceAsyncStub

DEFAULT_TIMEOUT = 30.0


def new_interaction(step: NewStep) -> spb.NewInteraction:
    """The proto form of a planned interaction."""
    message = spb.NewInteraction(
        step=step.step,
        command=step.command,
        dispatch=step.dispatch,  # type: ignore[arg-type]
        required_capability=step.required_capability,
    )
    if step.lease is not None:
        message.lease.CopyFrom(spb.LeaseGrant(executor_id=step.lease[0], ttl_seconds=step.lease[1]))
    if step.immediate_result is not None:
        message.immediate_result.CopyFrom(step.immediate_result)
    return message


def advance_request(scope: pb.Scope, head: pb.Session, write: Write) -> spb.AdvanceSessionRequest:
    """The AdvanceSession request carrying ``write`` for ``head``."""
    request = spb.AdvanceSessionRequest(
        scope=scope, session_id=head.id, expected_version=head.version
    )
    if write.complete is not None:
        request.complete.CopyFrom(
            spb.CompletePart(
                interaction_id=write.complete.interaction_id,
                result=write.complete.result,
                lease_epoch=write.complete.lease_epoch,
                reported_digest=write.complete.reported_digest,
            )
        )
    if write.state is not None:
        dict_to_struct(write.state, request.state)
    if write.progress is not None:
        dict_to_struct(write.progress.to_dict(), request.progress)
    request.append.extend(new_interaction(step) for step in write.append)
    if write.finish is not None:
        request.finish.CopyFrom(spb.Finish(status=write.finish[0], reason=write.finish[1]))  # type: ignore[arg-type]
    for planned in write.children:
        child = planned.session
        request.create_children.append(
            spb.NewChild(
                id=child.id,
                type=child.type,
                name=child.name,
                component=child.component,
                params=child.params,
                state=child.state,
                progress=child.progress,
                definition_version=child.definition_version,
                first=new_interaction(planned.first),
                key=child.idempotency_key,
                depends_on=list(planned.depends_on),
            )
        )
    for revival in write.revive:
        revived = spb.RevivedChild(session_id=revival.child_id, record=revival.record)
        dict_to_struct(revival.progress.to_dict(), revived.progress)
        request.revive_children.append(revived)
    return request


class SessionsClient:
    """Calls to SessionsService with the service credential; failures as domain errors."""

    def __init__(
        self,
        stub: SessionsServiceAsyncStub,
        metadata: Sequence[tuple[str, str]] = (),
        timeout: float = DEFAULT_TIMEOUT,
        *,
        batch_max: int = 256,
        batches_in_flight: int = 1,
    ) -> None:
        self._stub = stub
        self._metadata = tuple(metadata)
        self._timeout = timeout
        # Steps of many sessions decided at about the same time travel
        # together: one AdvanceSessions call, one transaction.
        self._advances: Coalescer[spb.AdvanceSessionRequest, spb.AdvanceSessionResponse] = (
            Coalescer(
                self._advance_batch,
                max_batch=batch_max,
                max_in_flight=batches_in_flight,
                name="advance_sessions",
                size=spb.AdvanceSessionRequest.ByteSize,
                max_batch_bytes=BATCH_BYTES,
            )
        )

    async def _advance_one(
        self, request: spb.AdvanceSessionRequest
    ) -> spb.AdvanceSessionResponse | BaseException:
        try:
            return await self._stub.AdvanceSession(
                request, metadata=self._metadata, timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            return error_of(exc)

    async def _advance_batch(
        self, requests: list[spb.AdvanceSessionRequest]
    ) -> list[spb.AdvanceSessionResponse | BaseException]:
        outcomes: list[spb.AdvanceSessionResponse | BaseException | None] = [None] * len(requests)
        todo = list(range(len(requests)))
        while todo:
            # A batch writes each session at most once; two racing writes to
            # one session go in successive rounds (the second then loses its
            # version race, as it would have alone).
            seen: set[str] = set()
            now: list[int] = []
            later: list[int] = []
            for index in todo:
                target = now if requests[index].session_id not in seen else later
                target.append(index)
                seen.add(requests[index].session_id)
            if len(now) == 1:
                # Alone (low load): the plain call is cheaper than a batch of one.
                outcomes[now[0]] = await self._advance_one(requests[now[0]])
                todo = later
                continue
            try:
                response = await self._stub.AdvanceSessions(
                    spb.AdvanceSessionsRequest(items=[requests[i] for i in now]),
                    metadata=self._metadata,
                    timeout=self._timeout,
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                    raise error_of(exc) from exc
                # The batch as a whole did not fit in a message (its answer,
                # most likely: the request is bounded by BATCH_BYTES). That
                # says nothing about any one write, and a write refused for
                # its size fails its session: so each goes again alone and
                # gets its own answer. Writes the batch already made come
                # back ABORTED (their version moved), which callers re-read.
                for index in now:
                    outcomes[index] = await self._advance_one(requests[index])
                todo = later
                continue
            for index, outcome in zip(now, response.outcomes, strict=True):
                if outcome.HasField("response"):
                    outcomes[index] = outcome.response
                else:
                    outcomes[index] = error_named(outcome.error.code, outcome.error.message)
            todo = later
        return [outcome for outcome in outcomes if outcome is not None]

    async def fetch(
        self, scope: pb.Scope, session_id: str, view: int = pb.INTERACTION_VIEW_LAST
    ) -> pb.Session:
        """A session head (view LAST: with its pending or newest interaction)."""
        try:
            response = await self._stub.FetchSession(
                spb.FetchSessionRequest(scope=scope, session_id=session_id, view=view),  # type: ignore[arg-type]
                metadata=self._metadata,
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as exc:
            raise error_of(exc) from exc
        return response.session

    async def children(self, scope: pb.Scope, parent_id: str) -> list[pb.Session]:
        """Every child of ``parent_id`` (heads, no history)."""
        try:
            response = await self._stub.FetchChildren(
                spb.FetchChildrenRequest(
                    scope=scope, parent_id=parent_id, view=pb.INTERACTION_VIEW_NONE
                ),
                metadata=self._metadata,
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as exc:
            raise error_of(exc) from exc
        return list(response.children)

    async def create(
        self,
        session: pb.Session,
        first: NewStep | None,
        idempotency_key: str,
        *,
        claim: pb.ClaimOffer | None = None,
        first_state: JsonObject | None = None,
    ) -> spb.CreateSessionResponse:
        """Create a top-level session (with its first interaction, when given,
        and the state it leaves; with the id ``session.id`` when set; offering
        ``claim`` that interaction)."""
        request = spb.CreateSessionRequest(
            id=session.id,
            claim=claim,
            scope=session.scope,
            type=session.type,
            execution_mode=session.execution_mode,
            name=session.name,
            component=session.component,
            params=session.params,
            state=session.state,
            progress=session.progress,
            definition_version=session.definition_version,
            idempotency_key=idempotency_key,
            workspace=session.workspace if session.HasField("workspace") else None,
        )
        if first is not None:
            request.first.CopyFrom(new_interaction(first))
        if first_state is not None:
            dict_to_struct(first_state, request.first_state)
        try:
            return await self._stub.CreateSession(
                request, metadata=self._metadata, timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise error_of(exc) from exc

    async def advance(
        self, scope: pb.Scope, head: pb.Session, write: Write
    ) -> spb.AdvanceSessionResponse:
        """Apply one step's write in one transaction (batched with concurrent steps).

        A write over :data:`MAX_WRITE_BYTES` is RESOURCE_EXHAUSTED without being
        sent: it could never be written, and the caller fails the session.
        """
        request = advance_request(scope, head, write)
        size = request.ByteSize()
        if size > MAX_WRITE_BYTES:
            raise ResourceExhausted(
                f"the write is {size} bytes; one write carries at most {MAX_WRITE_BYTES} bytes"
            )
        return await self._advances.call(request)

    async def complete(
        self,
        scope: pb.Scope,
        session_id: str,
        interaction_id: str,
        result: pb.Result,
        lease_epoch: int,
        reported_digest: bytes,
    ) -> spb.CompleteInteractionResponse:
        """Ask Sessions about a result for a non-pending interaction (exact repeat or refusal)."""
        try:
            return await self._stub.CompleteInteraction(
                spb.CompleteInteractionRequest(
                    scope=scope,
                    session_id=session_id,
                    interaction_id=interaction_id,
                    result=result,
                    lease_epoch=lease_epoch,
                    reported_digest=reported_digest,
                ),
                metadata=self._metadata,
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as exc:
            raise error_of(exc) from exc
