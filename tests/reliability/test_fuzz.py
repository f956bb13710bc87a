"""Property-based fuzzing of every client RPC of the gateway, over real processes.

Sessions, the bench orchestrator and the gateway run as processes on
PostgreSQL (one cluster for the module). Hypothesis sends:

- well-formed messages of each RPC's request type with arbitrary field
  values (:mod:`tests.reliability.protostrategies`: any text or a real id,
  integers across their range, undefined enum numbers, Structs nested past
  the limit, out-of-range timestamps), ``Connect`` streams of arbitrary
  executor messages, and arbitrary bearer tokens;
- raw bytes through a generic channel method: random bytes and valid
  requests with bytes flipped, cut short or appended.

Every answer must be a status code the contract documents for bad input or
a missing thing (never UNKNOWN, never INTERNAL, which would be our bug, nor
UNAVAILABLE from a healthy service) with a message that says what is wrong.
The last test checks the gateway still serves: health, a normal session,
bounded memory, and no internal error in any process's log.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.protobuf.struct_pb2 import Struct, Value
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from specloom.rpc import metadata as md
from specloom.v1 import common_pb2 as pb
from specloom.v1 import gateway_pb2 as gpb
from specloom.v1.gateway_pb2_grpc import GatewayServiceStub
from tests.reliability.cluster import Cluster, cluster, rss_mb
from tests.reliability.protostrategies import Generator

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SERVICE = gpb.DESCRIPTOR.services_by_name["GatewayService"]
METHODS = {m.name: m for m in SERVICE.methods}
DOCUMENTED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
}
"""What bad input may get. UNKNOWN and INTERNAL are bugs; a healthy gateway
is never UNAVAILABLE and never hangs into DEADLINE_EXCEEDED."""
EXAMPLES = 600


@dataclass
class Target:
    """The fuzzed gateway and what the strategies draw from."""

    cluster: Cluster
    loop: asyncio.AbstractEventLoop
    channel: grpc.Channel
    stub: Any
    token: str
    generator: Generator
    rss_before: float
    seen: dict[tuple[str, str], str] = field(default_factory=dict)
    """(method, code) → one message that came with it (printed at the end)."""
    counts: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)

    def metadata(self, token: str | None = None) -> tuple[tuple[str, str], ...]:
        return ((md.AUTHORIZATION, f"Bearer {token or self.token}"),)

    def check(self, method: str, error: grpc.RpcError | None) -> str:
        """Check one answer; returns its code's name."""
        code = error.code() if error is not None else grpc.StatusCode.OK
        details = (error.details() if error is not None else "") or ""
        self.seen.setdefault((method, code.name), details)
        self.counts[(method, code.name)] += 1
        assert code in DOCUMENTED, f"{method} answered {code.name}: {details}"
        if code != grpc.StatusCode.OK:
            # A message a person can act on: present, short, no stack trace.
            assert details.strip(), f"{method} answered {code.name} without a message"
            assert len(details) < 2000, details[:300]
            assert "Traceback" not in details, details
            assert "Exception" not in details, details
        return str(code.name)


@pytest.fixture(scope="module")
def target(postgres_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """A process cluster (its own event loop, so the tests can be synchronous)."""
    loop = asyncio.new_event_loop()
    manager = cluster(tmp_path_factory.mktemp("fuzz"), postgres_admin_url, ["bench"])
    running = loop.run_until_complete(manager.__aenter__())
    try:
        pools = loop.run_until_complete(_pools(running))
        channel = grpc.insecure_channel(running.gateway)
        yield Target(
            cluster=running,
            loop=loop,
            channel=channel,
            stub=GatewayServiceStub(channel),
            token=running.admin_token,
            generator=Generator(pools, {"params": _params()}),
            rss_before=rss_mb(running.services["gateway"].pid),
        )
        channel.close()
    finally:
        loop.run_until_complete(manager.__aexit__(None, None, None))
        loop.close()


async def _pools(c: Cluster) -> dict[str, list[str]]:
    """Real ids and names by field name, so fuzzed calls reach past "not found"."""
    client = c.client()
    manual = await client.start_session("BenchNoop", {"ticks": 3}, mode="manual")
    parent = await client.start_session("BenchParent", {"children": 2}, mode="manual")
    agentic = await client.start_session("BenchNoop", {"ticks": 2}, mode="agentic")
    spare = await client.create_token(
        pb.Scope(account_id="acme", project_id="alpha", user_id="spare"), name="spare"
    )
    sessions = [manual.session, parent.session, agentic.session]
    session_ids = [s.id for s in sessions]
    interaction_ids = [i.id for s in sessions for i in s.interactions]
    steps = ["Tick", "Start", "Spawn", "Joined"]
    return {
        "session_id": session_ids,
        "parent_id": session_ids,
        "interaction_id": interaction_ids,
        "type": ["BenchNoop", "BenchParent"],
        "types": ["BenchNoop", "BenchParent"],
        "step": steps,
        "from_step": steps,
        "token_id": [spare.info.id],
        "account_id": ["acme"],
        "project_id": ["alpha", "beta"],
        "user_id": ["fuzz"],
        "name": ["fuzz-box", "executor-1"],
        "capabilities": ["shell", "git", "agent"],
        "idempotency_key": ["fuzz-key"],
    }


def _params() -> st.SearchStrategy[Struct]:
    """Workflow inputs the bench workflows act on, 10,000 children included."""
    counts = st.one_of(st.integers(-2, 20), st.sampled_from([10_000, 2**31, 2**53]), st.floats())
    return st.builds(
        lambda key, n: Struct(fields={key: Value(number_value=float(n))}),
        st.sampled_from(["ticks", "children", "max_rounds"]),
        counts,
    )


def _unary(t: Target, name: str, request: Message, metadata: Any = None) -> str:
    method = getattr(t.stub, name)
    try:
        method(request, metadata=metadata or t.metadata(), timeout=20)
    except grpc.RpcError as exc:
        return t.check(name, exc)
    return t.check(name, None)


def _watch(t: Target, request: Message, metadata: Any = None) -> str:
    call = t.stub.WatchSession(request, metadata=metadata or t.metadata(), timeout=20)
    try:
        next(call, None)  # the snapshot, or the error
    except grpc.RpcError as exc:
        return t.check("WatchSession", exc)
    finally:
        call.cancel()
    return t.check("WatchSession", None)


def _connect(t: Target, messages: list[Message], metadata: Any = None) -> str:
    call = t.stub.Connect(iter(messages), metadata=metadata or t.metadata(), timeout=30)
    try:
        for _ in call:
            pass
    except grpc.RpcError as exc:
        return t.check("Connect", exc)
    return t.check("Connect", None)


def _send(t: Target, name: str, request: Message, metadata: Any = None) -> str:
    if name == "WatchSession":
        return _watch(t, request, metadata)
    if name == "Connect":
        return _connect(t, [request], metadata)
    return _unary(t, name, request, metadata)


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@FUZZ
@given(data=st.data())
def test_well_formed_messages_with_arbitrary_fields(target: Target, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(METHODS)), label="rpc")
    descriptor = METHODS[name].input_type
    if name == "Connect":
        stream = data.draw(st.lists(target.generator.message(descriptor), max_size=4))
        register = data.draw(
            st.one_of(_registers(), target.generator.message(gpb.Register.DESCRIPTOR)),
            label="register",
        )
        if data.draw(st.integers(0, 3), label="registers first") > 0:
            stream.insert(0, gpb.ConnectRequest(register=register))  # type: ignore[arg-type]
        _connect(target, stream)
        return
    _send(target, name, data.draw(target.generator.message(descriptor), label="request"))


def _registers() -> st.SearchStrategy[gpb.Register]:
    """Registrations the gateway accepts, mostly, so the rest of the stream is read."""
    return st.builds(
        gpb.Register,
        name=st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
        capabilities=st.lists(st.sampled_from(["shell", "git", "agent", "x" * 65]), max_size=3),
        max_parallel=st.integers(0, 300),
    )


TOKENS = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=80),
    st.sampled_from(["slm_", "slm_x_y", "slm_" + "a" * 600, "Bearer", ""]),
)


@settings(
    max_examples=EXAMPLES // 4,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    name=st.sampled_from(sorted(METHODS)),
    token=TOKENS,
    scheme=st.sampled_from(["Bearer", "Basic", "bearer", ""]),
)
def test_arbitrary_credentials_are_unauthenticated(
    target: Target, name: str, token: str, scheme: str
) -> None:
    request = GetMessageClass(METHODS[name].input_type)()
    if name == "Connect":
        request = gpb.ConnectRequest(register=gpb.Register(name="x", max_parallel=1))
    metadata = ((md.AUTHORIZATION, f"{scheme} {token}".strip()),)
    assert _send(target, name, request, metadata) == "UNAUTHENTICATED"


def _mutated(generator: Generator) -> st.SearchStrategy[tuple[str, bytes]]:
    @st.composite
    def build(draw: st.DrawFn) -> tuple[str, bytes]:
        name = draw(st.sampled_from(sorted(METHODS)))
        if draw(st.booleans()):
            return name, draw(st.binary(max_size=400))
        message = draw(generator.message(METHODS[name].input_type))
        raw = bytearray(message.SerializeToString())
        how = draw(st.sampled_from(["flip", "cut", "append"]))
        if how == "flip" and raw:
            for index in draw(st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=4)):
                raw[index] ^= draw(st.integers(1, 255))
        elif how == "cut" and raw:
            raw = raw[: draw(st.integers(0, len(raw) - 1))]
        else:
            raw += draw(st.binary(min_size=1, max_size=40))
        return name, bytes(raw)

    return build()


@FUZZ
@given(data=st.data())
def test_raw_bytes_on_every_method(target: Target, data: st.DataObject) -> None:
    name, raw = data.draw(_mutated(target.generator), label="raw request")
    path = f"/{SERVICE.full_name}/{name}"
    method = METHODS[name]
    # No (de)serializers: the bytes go out as they are.
    channel: Any = target.channel
    try:
        if method.client_streaming:
            frames = data.draw(st.lists(st.binary(max_size=200), max_size=3))
            call = channel.stream_stream(path)(
                iter([raw, *frames]), metadata=target.metadata(), timeout=30
            )
            for _ in call:
                pass
        elif method.server_streaming:
            stream = channel.unary_stream(path)(raw, metadata=target.metadata(), timeout=20)
            try:
                next(stream, None)
            finally:
                stream.cancel()
        else:
            channel.unary_unary(path)(raw, metadata=target.metadata(), timeout=20)
    except grpc.RpcError as exc:
        target.check(name, exc)
    else:
        target.check(name, None)


def test_the_gateway_still_serves_after_the_fuzzing(target: Target) -> None:
    health = health_pb2_grpc.HealthStub(target.channel)
    reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    started = target.stub.StartSession(
        gpb.StartSessionRequest(type="BenchNoop", execution_mode=pb.EXECUTION_MODE_MANUAL),
        metadata=target.metadata(),
        timeout=10,
    )
    fetched = target.stub.GetSession(
        gpb.GetSessionRequest(session_id=started.session.id), metadata=target.metadata(), timeout=10
    )
    assert fetched.session.interactions[0].step == "Tick"
    grown = rss_mb(target.cluster.services["gateway"].pid) - target.rss_before
    assert grown < 100, f"the gateway grew by {grown:.0f} MB"
    for proc in target.cluster.processes():
        assert proc.alive(), proc.name
        assert proc.starts == 1, proc.name
        assert "unhandled error" not in proc.text(), f"{proc.name}:\n{proc.text()[-6000:]}"
    for (method, code), message in sorted(target.seen.items()):
        print(f"{method:18} {code:20} {target.counts[(method, code)]:5} {message[:100]}")
