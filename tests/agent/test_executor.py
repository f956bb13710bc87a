"""Executor: every command kind end to end on a real repository."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from specloom.agent.backends.anthropic_api import AnthropicBackend, AnthropicSettings
from specloom.agent.backends.base import AgentOutcome, AgentRequest, Transcript
from specloom.agent.backends.failures import RetryPolicy
from specloom.agent.backends.scripted import ScriptedBackend
from specloom.agent.executor import Executor, ExecutorOptions
from specloom.agent.usage import PricesError, load_prices
from specloom.agent.workspace import Workspace
from specloom.protoconv import struct_to_dict
from specloom.v1 import common_pb2 as pb
from specloom.workflow import commands as c

from .anthropic_standin import Reply, serve_standin
from .conftest import git, init_repo


class Collector:
    """Output callback that keeps everything per stream."""

    def __init__(self) -> None:
        self.chunks: list[tuple[int, bytes]] = []

    async def __call__(self, stream: int, data: bytes) -> None:
        self.chunks.append((stream, data))

    def text(self, stream: int) -> str:
        return b"".join(d for s, d in self.chunks if s == stream).decode()


async def test_shell_ok_with_env_and_streamed_output(executor: Executor) -> None:
    out = Collector()
    command = c.shell(
        "RunTests",
        [sys.executable, "-c", "import os; print(os.environ['NAME'])"],
        env={"NAME": "it's $(x)"},
        workdir="src",
    )
    result = await executor.execute(command, on_output=out)
    assert result.status == pb.RESULT_STATUS_OK
    assert result.exit_code == 0
    assert result.stdout == "it's $(x)\n"
    assert out.text(pb.OUTPUT_STREAM_STDOUT) == "it's $(x)\n"
    assert result.duration_ms >= 0
    assert not result.output_truncated


async def test_shell_exit_codes(executor: Executor) -> None:
    failing = c.shell("RunTests", [sys.executable, "-c", "raise SystemExit(1)"])
    result = await executor.execute(failing)
    assert result.status == pb.RESULT_STATUS_ERROR
    assert result.exit_code == 1
    assert "exited with code 1" in result.error_message
    tolerated = c.shell(
        "RunTests", [sys.executable, "-c", "raise SystemExit(1)"], ok_exit_codes=[0, 1]
    )
    assert (await executor.execute(tolerated)).status == pb.RESULT_STATUS_OK
    missing = await executor.execute(c.shell("S", ["no-such-program-zz"]))
    assert missing.status == pb.RESULT_STATUS_ERROR
    assert "not found" in missing.error_message


async def test_shell_timeout_and_cancel(executor: Executor) -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    timed = await executor.execute(c.shell("S", sleeper, timeout_seconds=1))
    assert timed.status == pb.RESULT_STATUS_ERROR
    assert "timed out after 1s" in timed.error_message
    cancel = asyncio.Event()
    task = asyncio.create_task(executor.execute(c.shell("S", sleeper), cancel=cancel))
    await asyncio.sleep(0.3)
    cancel.set()
    cancelled = await asyncio.wait_for(task, 10)
    assert cancelled.status == pb.RESULT_STATUS_ERROR
    assert "cancelled" in cancelled.error_message


async def test_output_cap_marks_the_result(workspace: Workspace) -> None:
    executor = Executor(workspace, options=ExecutorOptions(output_limit=1024, tail_bytes=100))
    out = Collector()
    command = c.shell("S", [sys.executable, "-c", "print('y' * 10000)"])
    result = await executor.execute(command, on_output=out)
    assert result.status == pb.RESULT_STATUS_OK
    assert result.output_truncated
    assert len(out.text(pb.OUTPUT_STREAM_STDOUT)) == 1024
    assert "output limit" in out.text(pb.OUTPUT_STREAM_EXECUTOR)
    assert len(result.stdout) == 100


async def test_paths_leaving_the_workspace_are_errors(executor: Executor) -> None:
    escaped = await executor.execute(c.shell("S", ["true"], workdir="../"))
    assert escaped.status == pb.RESULT_STATUS_ERROR
    assert "workdir refused" in escaped.error_message
    missing = await executor.execute(c.shell("S", ["true"], workdir="nope"))
    assert missing.status == pb.RESULT_STATUS_ERROR
    collect = await executor.execute(c.noop("S", collect=["../../etc/passwd"]))
    assert collect.status == pb.RESULT_STATUS_ERROR
    assert not collect.files


async def test_git_command_fills_result_data(executor: Executor, workspace: Workspace) -> None:
    (workspace.root / "docs").mkdir()
    (workspace.root / "docs" / "x.md").write_text("design\n")
    out = Collector()
    command = c.git(
        "Finalize",
        [c.create_branch("design-session-for-x"), c.commit(["docs/x.md"], "Design x"), c.push()],
    )
    result = await executor.execute(command, on_output=out)
    assert result.status == pb.RESULT_STATUS_WARNING  # no remote: warned, not failed
    data = struct_to_dict(result.data)
    assert data["branch"] == "design-session-for-x"
    assert data["commit"] == git(workspace.root, "rev-parse", "HEAD").strip()
    assert data["committed_files"] == ["docs/x.md"]
    assert "git: committed 1 file(s)" in out.text(pb.OUTPUT_STREAM_EXECUTOR)


async def test_agent_with_scripted_backend_and_collect(
    workspace: Workspace, tmp_path: Path
) -> None:
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps(
            {
                "entries": [
                    {
                        "match": {"step": "GenerateContextDesign"},
                        "edits": [{"path": "docs/design/ctx.md", "write": "# Ctx\n"}],
                        "reply": "Designed.",
                    }
                ]
            }
        )
    )
    executor = Executor(workspace, backends={"scripted": ScriptedBackend(script)})
    assert executor.capabilities() == ["shell", "git", "agent", "agent:scripted"]
    out = Collector()
    command = c.agent(
        "GenerateContextDesign",
        "Design the context",
        metadata={"session_type": "ContextDesign", "step": "GenerateContextDesign"},
        collect=["docs/design/*.md", "docs/missing.md"],
    )
    result = await executor.execute(command, on_output=out)
    assert result.status == pb.RESULT_STATUS_OK, result.error_message
    data = struct_to_dict(result.data)
    assert data["backend"] == "scripted"
    assert data["replayed"] is True
    assert str(data["conversation_id"]).startswith("scripted-")
    assert result.stdout == "Designed."
    assert "replaying recorded edits" in out.text(pb.OUTPUT_STREAM_EXECUTOR)
    files = {f.path: f for f in result.files}
    assert files["docs/design/ctx.md"].content == b"# Ctx\n"
    assert not files["docs/missing.md"].exists
    # No model ran: zero usage, and the usage says so.
    assert result.HasField("usage")
    assert result.usage.agent_steps == 1
    assert (result.usage.input_tokens, result.usage.output_tokens, result.usage.cost_usd) == (
        0,
        0,
        0,
    )
    assert "no model ran" in result.usage.note


async def test_agent_results_carry_priced_usage_and_the_failure_class(
    workspace: Workspace, tmp_path: Path
) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text(
        '[models."claude-test-*"]\ninput = 10.0\noutput = 100.0\ncache_write = 0\ncache_read = 0\n'
    )
    with serve_standin() as api:
        api.script(
            Reply(
                blocks=[{"type": "text", "text": "ok"}],
                usage={"input_tokens": 1000, "output_tokens": 100},
            ),
        )
        backend = AnthropicBackend(
            AnthropicSettings(
                api_key="sk-standin",
                base_url=api.base_url,
                retry=RetryPolicy(attempts=2, initial_delay=0.01),
            )
        )
        executor = Executor(
            workspace,
            backends={"anthropic": backend},
            options=ExecutorOptions(prices=load_prices(prices)),
        )
        done = await executor.execute(c.agent("S", "p", model="claude-test-1"))
        assert done.status == pb.RESULT_STATUS_OK, done.error_message
        assert done.usage.model == "claude-test-1"
        assert done.usage.cost_usd == pytest.approx((1000 * 10 + 100 * 100) / 1e6)
        assert done.usage.duration_ms > 0
        assert done.failure_class == pb.FAILURE_CLASS_UNSPECIFIED
        unpriced = AnthropicBackend(AnthropicSettings(api_key="sk-standin", base_url=api.base_url))
        api.script(Reply.text("ok"))
        other = await Executor(workspace, backends={"a": unpriced}).execute(
            c.agent("S", "p", model="mystery-model")
        )
        assert other.usage.unpriced_steps == 1
        assert other.usage.cost_usd == 0
        assert not other.usage.models[0].priced
        api.valid_keys = {"another"}
        refused = await executor.execute(c.agent("S", "p", model="claude-test-1"))
    assert refused.status == pb.RESULT_STATUS_ERROR
    assert refused.failure_class == pb.FAILURE_CLASS_PERMANENT
    assert "ANTHROPIC_API_KEY" in refused.failure_hint
    assert "invalid x-api-key" in refused.error_message


def test_a_bad_price_file_names_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "prices.toml"
    bad.write_text('[models."x"]\ninput = -1\noutput = 1\ncache_write = 1\ncache_read = 1\n')
    with pytest.raises(PricesError, match=r'prices.toml: \[models."x"\]: input must be'):
        load_prices(bad)
    bad.write_text('[models."x"]\ninput = 1\n')
    with pytest.raises(PricesError, match="needs exactly input, output"):
        load_prices(bad)
    with pytest.raises(PricesError, match="cannot read the price file"):
        load_prices(tmp_path / "missing.toml")


class SlowBackend:
    name = "slow"

    def __init__(self) -> None:
        self.stopped = False

    async def run(self, request: AgentRequest, transcript: Transcript) -> AgentOutcome:
        await transcript("thinking")
        try:
            await request.cancel.wait()
        finally:
            self.stopped = True
        return AgentOutcome(status=pb.RESULT_STATUS_ERROR, conversation_id="conv-slow")


class BrokenBackend:
    name = "broken"

    async def run(self, request: AgentRequest, transcript: Transcript) -> AgentOutcome:
        raise RuntimeError("backend bug")


async def test_agent_timeout_stops_the_backend(workspace: Workspace) -> None:
    backend = SlowBackend()
    executor = Executor(workspace, backends={"slow": backend})
    result = await executor.execute(c.agent("S", "p", timeout_seconds=1))
    assert result.status == pb.RESULT_STATUS_ERROR
    assert result.error_message == "agent timed out after 1s"
    assert backend.stopped
    assert struct_to_dict(result.data)["conversation_id"] == "conv-slow"


async def test_failures_become_results_and_the_executor_stays_healthy(
    workspace: Workspace,
) -> None:
    executor = Executor(workspace, backends={"broken": BrokenBackend()})
    broken = await executor.execute(c.agent("S", "p"))
    assert broken.status == pb.RESULT_STATUS_ERROR
    assert "RuntimeError: backend bug" in broken.error_message
    assert (await executor.execute(c.noop("S"))).status == pb.RESULT_STATUS_OK
    spawn = await executor.execute(c.spawn_children("S", ["a"]))
    assert spawn.status == pb.RESULT_STATUS_ERROR
    assert "not run by executors" in spawn.error_message
    empty = await executor.execute(pb.Command(step="S"))
    assert empty.status == pb.RESULT_STATUS_ERROR
    unknown = await executor.execute(c.agent("S", "p", metadata={"agent_backend": "nope"}))
    assert "not configured" in unknown.error_message
    no_agents = await Executor(workspace).execute(c.agent("S", "p"))
    assert "no agent backend" in no_agents.error_message


async def test_noop_collects_files(executor: Executor) -> None:
    result = await executor.execute(c.noop("Validate", collect=["README.md"]))
    assert result.status == pb.RESULT_STATUS_OK
    assert result.files[0].content == b"# project\n"


async def test_a_session_of_a_workspace_not_served_runs_nowhere(repo: Path, tmp_path: Path) -> None:
    """The command of a session whose workspace this executor does not serve is an
    error naming both, never run in one of the workspaces it does serve."""
    default, other = Workspace(repo), Workspace(init_repo(tmp_path / "other"))
    for workspace in (default, other):
        workspace.prepare()
        workspace.identify()
    executor = Executor(default, others=[other])
    assert default.identity is not None
    assert other.identity is not None
    assert [w.id for w in executor.identities()] == [default.identity.id, other.identity.id]
    marker = "touch ran-here"
    foreign = await executor.execute(c.shell("S", marker.split()), workspace_id="ws-0123456789ab")
    assert foreign.status == pb.RESULT_STATUS_ERROR
    assert "does not serve workspace ws-0123456789ab" in foreign.error_message
    assert not (repo / "ran-here").exists()
    assert not (tmp_path / "other" / "ran-here").exists()

    here = await executor.execute(c.shell("S", marker.split()), workspace_id=other.identity.id)
    assert here.status == pb.RESULT_STATUS_OK, here.error_message
    assert (tmp_path / "other" / "ran-here").exists()
    unpinned = await executor.execute(c.shell("S", ["touch", "default"]))
    assert unpinned.status == pb.RESULT_STATUS_OK
    assert (repo / "default").exists(), "a session of no workspace runs in the default"
