"""The README's grpcurl example, as a client in another language meets it.

Its JSON bodies are parsed as grpcurl parses them (proto3 JSON) and sent to
a real gateway serving the design workflows, with an executor connected:
the session it starts is one the executor is handed. (Before, an unset
``execution_mode`` meant MANUAL: no executor ever received it.)
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from google.protobuf import json_format

from specloom.v1 import common_pb2 as pb
from specloom.v1 import gateway_pb2 as gpb
from specloom_context_design.service import SERVICE as CONTEXT_DESIGN
from tests.gateway.conftest import StartStack, bearer
from tests.reliability.executors import HandExecutor

README = Path(__file__).resolve().parents[2] / "README.md"


def grpcurl_calls() -> dict[str, str]:
    """{method: JSON body} of every grpcurl command in the README that sends one."""
    text = README.read_text()
    calls: dict[str, str] = {}
    for command in re.findall(r"^grpcurl .*?(?<!\\)$", text, flags=re.M | re.S):
        words = shlex.split(command.replace("\\\n", " "))
        if "-d" in words:
            body = words[words.index("-d") + 1]
            calls[words[-1].rsplit("/", 1)[-1]] = body
    return calls


async def test_the_readme_grpcurl_session_reaches_an_executor(start_stack: StartStack) -> None:
    calls = grpcurl_calls()
    assert set(calls) >= {"StartSession", "WatchSession"}, calls
    stack = await start_stack(specs=[CONTEXT_DESIGN])
    token = await stack.token(admin=True)
    executor = HandExecutor(stack.address, token, "laptop", heartbeats=True)
    await executor.connect()
    try:
        request = json_format.Parse(calls["StartSession"], gpb.StartSessionRequest())
        started = await stack.stub().StartSession(request, metadata=bearer(token))
        session = started.session
        assert session.execution_mode == pb.EXECUTION_MODE_AGENTIC
        taken = (await executor.next("assignment")).assignment
        assert taken.session.id == session.id
        assert taken.interaction.step == "Initialize"
        watch = json_format.Parse(
            calls["WatchSession"].replace("<id>", session.id), gpb.WatchSessionRequest()
        )
        first = stack.stub().WatchSession(watch, metadata=bearer(token))
        async for response in first:
            assert response.event.WhichOneof("event") == "snapshot"
            break
        first.cancel()
    finally:
        await executor.close()
