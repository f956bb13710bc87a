"""Tracing across the hops: one client call, or one executor result, is one trace.

Real servers, each started as ``specloom serve`` starts it
(:func:`specloom.process.start_host` with ``tracing=True``): Sessions, an
orchestrator and the gateway on their own loopback ports, a real executor
agent on a real git repository. Spans go to an in-memory exporter; the
services of one process share it, so a span's service is told by its name
(the gRPC method it served).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr

from specloom.agent import AgentLoop, AgentSettings, build_executor
from specloom.client import Client
from specloom.host import HostSettings
from specloom.process import RunningHost, start_host
from specloom.rpc.batching import Coalescer
from specloom.rpc.tracing import setup_tracing
from specloom.v1 import common_pb2 as pb
from specloom_gateway.results import RESULT_SPAN
from specloom_gateway.service import SERVICE as GATEWAY
from specloom_sessions.service import SERVICE as SESSIONS
from tests.gateway.conftest import FAST, TOY, eventually, make_repo

GATEWAY_SPAN = "/specloom.v1.GatewayService/"
ORCHESTRATOR_SPAN = "/specloom.v1.OrchestratorService/"
SESSIONS_SPAN = "/specloom.v1.SessionsService/"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span ended in this process while the test runs."""
    # The process's provider may exist already (tracing is installed once per
    # process); a synchronous processor of our own sees every span either way.
    installed = InMemorySpanExporter()
    provider = setup_tracing("tests", installed)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    # Tracing stays installed in this process; keep no spans of later tests.
    exporter.shutdown()
    installed.shutdown()


@pytest.fixture
async def traced(tmp_path: Path, spans: InMemorySpanExporter) -> AsyncIterator[list[RunningHost]]:
    """Sessions, the toy orchestrator and the gateway, tracing on: [sessions, orch, gateway]."""
    settings = HostSettings(
        listen="127.0.0.1:0",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'specloom.db'}",
        internal_secret=SecretStr("tracing-test-secret"),
        token_pepper=SecretStr("tracing-test-pepper"),
        tracing=True,
        grace_seconds=0.5,
    )
    await SESSIONS.admin["migrate"](settings)
    sessions = await start_host([SESSIONS], settings)
    at_sessions = settings.model_copy(update={"sessions_address": sessions.address})
    orchestrator = await start_host([TOY], at_sessions)
    gateway = await start_host(
        [GATEWAY],
        at_sessions.model_copy(update={"orchestrator_addresses": [orchestrator.address]}),
        FAST,
    )
    hosts = [sessions, orchestrator, gateway]
    yield hosts
    for host in reversed(hosts):
        await host.stop(0.2)


def _trace(spans: Sequence[ReadableSpan], root: ReadableSpan) -> list[ReadableSpan]:
    assert root.context is not None
    return [
        s for s in spans if s.context is not None and s.context.trace_id == root.context.trace_id
    ]


def _parent_of(span: ReadableSpan, trace: Sequence[ReadableSpan]) -> ReadableSpan:
    assert span.parent is not None, f"{span.name} starts a trace of its own"
    return next(
        s for s in trace if s.context is not None and s.context.span_id == span.parent.span_id
    )


async def test_a_client_call_is_one_trace_through_gateway_orchestrator_and_sessions(
    traced: list[RunningHost], spans: InMemorySpanExporter
) -> None:
    sessions, _, gateway = traced
    token = str(
        await SESSIONS.admin["issue-token"](
            sessions.context.settings, account_id="acme", project_id="alpha", user_id="alice"
        )
    )
    async with Client(gateway.address, token) as client:
        spans.clear()
        started = await client.start_session("Build", {}, mode="manual")
    assert started.created

    ended = spans.get_finished_spans()
    [start] = [s for s in ended if s.name == f"{GATEWAY_SPAN}StartSession"]
    trace = _trace(ended, start)
    [opened] = [s for s in trace if s.name == f"{ORCHESTRATOR_SPAN}OpenSession"]
    [created] = [s for s in trace if s.name == f"{SESSIONS_SPAN}CreateSession"]
    # Each hop continues its caller's span: gateway -> orchestrator -> sessions.
    assert _parent_of(opened, trace) is start
    assert _parent_of(created, trace) is opened
    assert start.parent is None  # the client sent no trace: the gateway started it


async def test_each_executor_result_is_one_trace_through_every_service(
    traced: list[RunningHost], spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    sessions, _, gateway = traced
    token = str(
        await SESSIONS.admin["issue-token"](
            sessions.context.settings, account_id="acme", project_id="alpha", user_id="alice"
        )
    )
    repo = make_repo(tmp_path / "repo")
    settings = AgentSettings(
        gateway=gateway.address,
        token=SecretStr(token),
        workspace=repo,
        name="traced",
        backends=[],
        max_parallel=1,
    )
    agent = AgentLoop(settings, build_executor(settings))
    running = asyncio.create_task(agent.run())
    try:
        async with Client(gateway.address, token) as client:
            started = await client.start_session("Build", {}, mode="agentic")

            async def complete() -> bool:
                session = await client.get_session(started.session.id)
                return session.status == pb.SESSION_STATUS_COMPLETE

            await eventually(complete, timeout=30)
            session = await client.get_session(started.session.id)
    finally:
        agent.stopped.set()
        await asyncio.wait_for(running, 15)

    ended = spans.get_finished_spans()
    results = {
        str((s.attributes or {}).get("specloom.interaction_id")): s
        for s in ended
        if s.name == RESULT_SPAN
    }
    assert [i.step for i in session.interactions] == ["Compile", "Test"]
    for interaction in session.interactions:
        result = results[interaction.id]
        assert result.parent is None  # a trace of its own, not the stream's
        trace = _trace(ended, result)
        [report] = [s for s in trace if s.name.startswith(f"{ORCHESTRATOR_SPAN}ReportAndAdvance")]
        [write] = [s for s in trace if s.name.startswith(f"{SESSIONS_SPAN}AdvanceSession")]
        assert _parent_of(report, trace) is result
        assert _parent_of(write, trace) is report


async def test_a_batch_links_every_caller_and_a_lone_call_stays_in_its_callers_trace(
    spans: InMemorySpanExporter,
) -> None:
    """The coalescer's batch call runs in the trace context its callers give it.

    Its task was scheduled by one caller, so without care every batch would
    land in that caller's trace. A batch of several callers is a span of its
    own with a link to each caller; a batch of one continues its caller.
    """
    tracer = trace.get_tracer("tests")
    seen: list[trace.Span] = []

    async def send(items: list[str]) -> list[str]:
        seen.append(trace.get_current_span())
        await asyncio.sleep(0)
        return [item.upper() for item in items]

    coalescer: Coalescer[str, str] = Coalescer(send, max_in_flight=1, name="shout")

    async def call_in_span(name: str) -> tuple[str, trace.SpanContext]:
        with tracer.start_as_current_span(name) as span:
            return await coalescer.call(name), span.get_span_context()

    # Two callers in one turn of the loop: one batch, linked to both.
    together = await asyncio.gather(call_in_span("first"), call_in_span("second"))
    assert [answer for answer, _ in together] == ["FIRST", "SECOND"]
    [batch] = [s for s in spans.get_finished_spans() if s.name == "batch shout"]
    assert batch.parent is None  # neither caller's child
    assert {link.context.span_id for link in batch.links} == {
        context.span_id for _, context in together
    }
    assert (batch.attributes or {}).get("specloom.batch_size") == 2
    assert batch.context is not None
    assert seen[0].get_span_context().span_id == batch.context.span_id

    # A lone call continues its own caller's span, even though its batch task
    # is scheduled from the end of another caller's batch.
    blocker = asyncio.Event()

    async def slow_send(items: list[str]) -> list[str]:
        seen.append(trace.get_current_span())
        if items == ["held"]:
            await blocker.wait()
        return items

    lone: Coalescer[str, str] = Coalescer(slow_send, max_in_flight=1, name="lone")

    async def lone_call(name: str) -> trace.SpanContext:
        with tracer.start_as_current_span(name) as span:
            await lone.call(name)
            return span.get_span_context()

    held = asyncio.create_task(lone_call("held"))
    await asyncio.sleep(0.01)
    queued = asyncio.create_task(lone_call("queued"))
    await asyncio.sleep(0.01)
    blocker.set()
    held_context, queued_context = await held, await queued
    assert seen[-2].get_span_context().span_id == held_context.span_id
    assert seen[-1].get_span_context().span_id == queued_context.span_id
