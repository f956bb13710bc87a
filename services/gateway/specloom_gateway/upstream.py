"""Calls from the gateway to the internal services (Sessions, Tokens, orchestrators).

Every call carries the service credential and a deadline, and a failure
comes back as the domain error with the same status code, so a NOT_FOUND
from Sessions reaches the client as NOT_FOUND.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from specloom.errors import ResourceExhausted, SpecloomError
from specloom.rpc.batching import Coalescer
from specloom.rpc.errors import error_named, error_of
from specloom.rpc.server import BATCH_BYTES
from specloom.v1 import orchestrator_pb2 as opb

if TYPE_CHECKING:
    # Async stub types exist only in the generated .pyi files.
    from specloom.v1.orchestrator_pb2_grpc import OrchestratorServiceAsyncStub
    from specloom.v1.sessions_pb2_grpc import SessionsServiceAsyncStub
    from specloom.v1.tokens_pb2_grpc import TokensServiceAsyncStub

Req = TypeVar("Req")
Resp = TypeVar("Resp")


class Upstream:
    """Sessions and Tokens stubs plus the metadata and deadline every call uses."""

    def __init__(
        self,
        sessions: SessionsServiceAsyncStub,
        tokens: TokensServiceAsyncStub,
        metadata: Sequence[tuple[str, str]],
        timeout: float,
        *,
        report_batch_max: int = 256,
        report_batches_in_flight: int = 2,
    ) -> None:
        self.sessions = sessions
        self.tokens = tokens
        self.metadata = tuple(metadata)
        self.timeout = timeout
        self._batch_max = report_batch_max
        self._in_flight = report_batches_in_flight
        self._reports: dict[
            OrchestratorServiceAsyncStub,
            Coalescer[opb.ReportAndAdvanceRequest, opb.ReportAndAdvanceResponse],
        ] = {}

    async def report(
        self, stub: OrchestratorServiceAsyncStub, request: opb.ReportAndAdvanceRequest
    ) -> opb.ReportAndAdvanceResponse:
        """One executor's fused report, batched with others bound for the same orchestrator.

        Reports from many executor streams that arrive together leave in one
        ``ReportAndAdvanceMany`` call: the per-call cost of the hop is paid
        once per batch. A report that arrives alone leaves alone, at once.
        """
        coalescer = self._reports.get(stub)
        if coalescer is None:

            async def send(
                items: list[opb.ReportAndAdvanceRequest],
            ) -> list[opb.ReportAndAdvanceResponse | BaseException]:
                if len(items) == 1:
                    # Alone (low load): the plain call is cheaper than a batch of one.
                    return [await self._report_one(stub, items[0])]
                try:
                    many = await self.call(
                        stub.ReportAndAdvanceMany, opb.ReportAndAdvanceManyRequest(items=items)
                    )
                except ResourceExhausted:
                    # The batch did not fit in a message (its answer, most
                    # likely). That says nothing about any one report, and a
                    # report refused for its size is not sent again: each
                    # goes again alone. Reports the batch already recorded
                    # come back as exact repeats.
                    singles: list[opb.ReportAndAdvanceResponse | BaseException] = [
                        await self._report_one(stub, item) for item in items
                    ]
                    return singles
                return [
                    outcome.response
                    if outcome.HasField("response")
                    else error_named(outcome.error.code, outcome.error.message)
                    for outcome in many.outcomes
                ]

            coalescer = Coalescer(
                send,
                max_batch=self._batch_max,
                max_in_flight=self._in_flight,
                name="report_and_advance",
                size=opb.ReportAndAdvanceRequest.ByteSize,
                max_batch_bytes=BATCH_BYTES,
            )
            self._reports[stub] = coalescer
        return await coalescer.call(request)

    async def _report_one(
        self, stub: OrchestratorServiceAsyncStub, request: opb.ReportAndAdvanceRequest
    ) -> opb.ReportAndAdvanceResponse | SpecloomError:
        try:
            return await self.call(stub.ReportAndAdvance, request)
        except SpecloomError as exc:
            return exc

    async def call(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[Req, Resp],
        request: Req,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline, not a wait
    ) -> Resp:
        """One unary call; an RPC failure becomes the matching domain error."""
        try:
            return await method(request, metadata=self.metadata, timeout=timeout or self.timeout)
        except grpc.aio.AioRpcError as exc:
            raise error_of(exc) from exc

    async def stream(
        self,
        method: grpc.aio.UnaryStreamMultiCallable[Req, Resp],
        request: Req,
        *,
        wait_for_ready: bool = False,
    ) -> AsyncIterator[Resp]:
        """A server stream without a deadline; cancelled with the consumer.

        Closing the generator (the client went away, or the task was
        cancelled) cancels the upstream call, so an abandoned watch does not
        keep a Sessions subscription open.
        """
        call: Any = method(request, metadata=self.metadata, wait_for_ready=wait_for_ready)
        try:
            async for item in call:
                yield item
        except grpc.aio.AioRpcError as exc:
            raise error_of(exc) from exc
        finally:
            call.cancel()
