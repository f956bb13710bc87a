"""OpenTelemetry tracing across the hops, off unless configured.

With ``SPECLOOM_TRACING=true`` every server span continues the trace found in
the call's ``traceparent`` metadata, and every internal client call carries
the current span's ``traceparent``: one client request is one trace through
gateway → orchestrator → sessions. Spans go to OTLP (configure with the
standard ``OTEL_EXPORTER_OTLP_*`` variables). When tracing is off nothing
here runs on the hot path: no interceptor is installed at all.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

TRACER = "specloom"
_installed: TracerProvider | None = None


def setup_tracing(service: str, exporter: SpanExporter | None = None) -> TracerProvider:
    """Install a tracer provider for this process (once; later calls reuse it)."""
    global _installed
    if _installed is not None:
        return _installed
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    provider = TracerProvider(resource=resource_for(service))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _installed = provider
    return provider


def resource_for(service: str) -> Resource:
    """The process's resource: ``service.name`` is ``specloom-<service>`` unless
    the standard OTEL_SERVICE_NAME (or a service.name in OTEL_RESOURCE_ATTRIBUTES)
    names it, as every OpenTelemetry SDK honours."""
    named = os.environ.get("OTEL_SERVICE_NAME", "").strip() or any(
        pair.split("=", 1)[0].strip() == "service.name"
        for pair in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(",")
    )
    # Resource.create reads both variables; attributes given here win over them.
    return Resource.create({} if named else {"service.name": f"specloom-{service}"})


@contextmanager
def server_span(method: str, metadata: Iterable[Any] | None) -> Iterator[None]:
    """A SERVER span for ``method``, continuing the caller's trace if it sent one."""
    carrier = {}
    for key, value in metadata or ():
        if key in ("traceparent", "tracestate"):
            carrier[key] = value.decode() if isinstance(value, bytes) else value
    parent = propagate.extract(carrier)
    tracer = trace.get_tracer(TRACER)
    with tracer.start_as_current_span(
        method, context=parent, kind=trace.SpanKind.SERVER, attributes={"rpc.method": method}
    ):
        yield


@contextmanager
def span(name: str, attributes: Mapping[str, str] | None = None) -> Iterator[None]:
    """An INTERNAL span for work that is no RPC of its own, when tracing is on here.

    The gateway wraps each executor result in one: the result arrives on a
    stream that lives for hours, so it starts a trace of its own, which the
    calls it makes (report to the orchestrator, then Sessions) continue.
    Without tracing this is a no-op that costs one comparison.
    """
    if _installed is None:
        yield
        return
    with trace.get_tracer(TRACER).start_as_current_span(name, attributes=attributes):
        yield


def caller_context() -> Context | None:
    """The caller's trace context, for work done later on its behalf (None: tracing off)."""
    if _installed is None:
        return None
    return otel_context.get_current()


@contextmanager
def batch_span(name: str, callers: Sequence[Context | None]) -> Iterator[None]:
    """The trace context a batch call is made in, given its callers' contexts.

    A batch runs in a task of its own, whose context is whichever caller
    happened to schedule it; left alone, every caller's call would appear in
    that one caller's trace. A batch of one continues its caller's trace. A
    batch of several is a span of its own (``batch <name>``), the root of a
    new trace, with a link to each caller's span: the shape OpenTelemetry
    gives batch processing, so each caller's trace leads to the batch and the
    batch names every caller. Without tracing this is a no-op.
    """
    if _installed is None:
        yield
        return
    if len(callers) == 1:
        token = otel_context.attach(callers[0]) if callers[0] is not None else None
        try:
            yield
        finally:
            if token is not None:
                otel_context.detach(token)
        return
    spans = (trace.get_current_span(c).get_span_context() for c in callers if c is not None)
    links = [trace.Link(linked) for linked in spans if linked.is_valid]
    with trace.get_tracer(TRACER).start_as_current_span(
        f"batch {name}",
        context=Context(),
        kind=trace.SpanKind.INTERNAL,
        links=links,
        attributes={"specloom.batch_size": len(callers)},
    ):
        yield


def _with_trace(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if not carrier:
        return details
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    for key, value in carrier.items():
        metadata.add(key, value)
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


class TraceInjector(
    grpc.aio.UnaryUnaryClientInterceptor,
    grpc.aio.UnaryStreamClientInterceptor,
    grpc.aio.StreamUnaryClientInterceptor,
    grpc.aio.StreamStreamClientInterceptor,
):
    """Client interceptor: send the current trace context with every call."""

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_with_trace(details), request)

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_with_trace(details), request)

    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(_with_trace(details), requests)

    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(_with_trace(details), requests)
