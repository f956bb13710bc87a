"""Malformed documents and test reports, end to end: a validation error, never a crash.

The "model" (the scripted backend, in a real ``specloom agent``) writes a
context design of binary junk, and a ``conftest.py`` that replaces pytest's
JUnit report with a billion-laughs XML bomb after every run. The design and
coding orchestrators (processes) judge what the executor collected: each
session stops ``failed`` with a reason naming the problem, and neither
orchestrator crashes, restarts or logs an internal error. The parsers'
own cases (truncated ExUnit JSON, external entities, binary junk, not
UTF-8...) are unit-tested in ``tests/coding/test_junit.py``,
``tests/coding/test_exunit_json.py`` and ``tests/documents/``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from specloom.client import Client
from specloom.demo.run import create_project
from specloom.demo.script import IMPLEMENTATIONS, component_design
from specloom.v1 import common_pb2 as pb
from tests.coding.test_junit import BILLION_LAUGHS
from tests.reliability.conftest import StartCluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

JUNK = "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00" + "\x00\xff\x10" * 200

# After pytest has written its JUnit report, put a bomb in its place.
BOMBING_CONFTEST = f"""
from pathlib import Path

BOMB = {BILLION_LAUGHS!r}


def pytest_unconfigure(config):
    path = getattr(config.option, "xmlpath", None)
    if path:
        Path(path).write_bytes(BOMB)
"""


def _script(path: Path) -> Path:
    stock = IMPLEMENTATIONS["inventory.stock"]
    entries = [
        {
            "match": {"session_type": "ContextDesign", "step": step},
            "edits": [{"path": "docs/design/junk.md", "write": JUNK}],
            "reply": "Designed.",
        }
        for step in ("GenerateContextDesign", "ReviseDesign")
    ] + [
        {
            "match": {"session_type": "ComponentCoding", "step": step},
            "edits": [
                {"path": "src/inventory/stock.py", "write": stock},
                {"path": "conftest.py", "write": BOMBING_CONFTEST},
            ],
            "reply": "Implemented.",
        }
        for step in ("GenerateImplementation", "FixTestFailures")
    ]
    path.write_text(json.dumps({"entries": entries}))
    return path


async def _settled(client: Client, session_id: str) -> pb.Session:
    async with asyncio.timeout(120):
        while True:
            session = await client.get_session(session_id)
            if session.status != pb.SESSION_STATUS_ACTIVE:
                return session
            await asyncio.sleep(0.2)


async def test_junk_designs_and_bombed_reports_fail_their_sessions_with_the_reason(
    start_cluster: StartCluster, tmp_path: Path
) -> None:
    project = tmp_path / "inventory"
    create_project(project, tmp_path / "origin.git")
    # Coding a component starts from its design.
    design = project / "docs" / "design" / "inventory" / "stock.md"
    design.parent.mkdir(parents=True)
    design.write_text(component_design("inventory.stock"))
    for args in (["add", "docs"], ["commit", "-q", "-m", "stock design"]):
        subprocess.run(["git", "-C", str(project), *args], check=True, capture_output=True)
    async with start_cluster(["context_design", "coding"]) as c:
        agent = c.agent("box", project, script=_script(tmp_path / "script.json"))
        await c.connected(agent)
        client = c.client()

        junk = await client.start_session("ContextDesign", {"context": "Junk"})
        session = await _settled(client, junk.session.id)
        assert session.status == pb.SESSION_STATUS_FAILED
        judged = [i.result for i in session.interactions if i.step == "ValidateDesign"]
        assert judged
        assert all(r.status == pb.RESULT_STATUS_ERROR for r in judged)
        assert "binary" in judged[0].error_message, judged[0].error_message

        coding = await client.start_session(
            "ComponentCoding", {"component": "inventory.stock", "context": "inventory"}
        )
        session = await _settled(client, coding.session.id)
        assert session.status == pb.SESSION_STATUS_FAILED, session.status_reason
        runs = [i.result for i in session.interactions if i.step == "RunTests"]
        assert runs
        assert all(r.status == pb.RESULT_STATUS_ERROR for r in runs)
        assert "XML bomb" in runs[0].error_message, runs[0].error_message
        assert "XML bomb" in session.status_reason

        for name in ("context_design", "coding"):
            proc = c.services[name]
            assert proc.alive()
            assert proc.starts == 1
            assert "unhandled error" not in proc.text(), proc.text()[-4000:]
