"""The anthropic backend against a local stand-in for the Messages API.

The real ``anthropic`` SDK talks HTTP to :mod:`tests.agent.anthropic_standin`
(api.anthropic.com cannot be reached from tests); the stand-in replays the
tool calls each test scripts, and the backend's tools really run on a real
workspace.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from specloom.agent.backends.anthropic_api import AnthropicBackend, AnthropicSettings
from specloom.agent.backends.base import AgentOutcome, AgentRequest
from specloom.agent.backends.failures import FailureClass, RetryPolicy
from specloom.agent.usage import load_prices
from specloom.agent.workspace import Workspace
from specloom.v1 import common_pb2 as pb

from .anthropic_standin import Failure, Reply, StandinAPI, serve_standin


@pytest.fixture
def api() -> Iterator[StandinAPI]:
    with serve_standin() as server:
        yield server


FAST_RETRIES = RetryPolicy(attempts=5, initial_delay=0.01, max_delay=0.2)
"""Real back-off, scaled down so tests do not wait."""


def backend_for(api: StandinAPI, retry: RetryPolicy = FAST_RETRIES) -> AnthropicBackend:
    return AnthropicBackend(
        AnthropicSettings(api_key="sk-standin", base_url=api.base_url, retry=retry)
    )


async def run(
    backend: AnthropicBackend,
    workspace: Workspace,
    prompt: str,
    *,
    allowed: tuple[str, ...] = (),
    resume: str = "",
    model: str = "",
) -> tuple[AgentOutcome, list[str]]:
    lines: list[str] = []

    async def transcript(line: str) -> None:
        lines.append(line)

    request = AgentRequest(
        command=pb.AgentCommand(
            prompt=prompt,
            system_prompt="You are a careful engineer.",
            allowed_commands=list(allowed),
            resume_conversation_id=resume,
            model=model,
        ),
        workspace=workspace,
        workdir=workspace.root,
    )
    return await backend.run(request, transcript), lines


def tool_results(api: StandinAPI, request_index: int) -> list[dict[str, Any]]:
    """The tool_result blocks the backend sent in a request's last message."""
    content = api.requests[request_index]["messages"][-1]["content"]
    return [block for block in content if block.get("type") == "tool_result"]


async def test_multi_turn_edit(api: StandinAPI, workspace: Workspace) -> None:
    (workspace.root / "lib").mkdir()
    (workspace.root / "lib" / "stock.py").write_text("def count():\n    return 0\n")
    api.script(
        Reply.tools(("list_files", {"path": "lib"}), ("read_file", {"path": "lib/stock.py"})),
        Reply.tools(
            (
                "edit_file",
                {"path": "lib/stock.py", "old_string": "return 0", "new_string": "return 42"},
            ),
            ("write_file", {"path": "lib/new/helper.py", "content": "HELP = True\n"}),
        ),
        Reply.tools(("run_command", {"argv": ["wc", "-l", "lib/stock.py"]})),
        Reply.text("Stock now counts to 42."),
    )
    outcome, lines = await run(backend_for(api), workspace, "Make count return 42", allowed=("wc",))
    assert outcome.status == pb.RESULT_STATUS_OK, outcome.error_message
    assert outcome.summary == "Stock now counts to 42."
    assert outcome.data["turns"] == 4
    assert (workspace.root / "lib" / "stock.py").read_text() == "def count():\n    return 42\n"
    assert (workspace.root / "lib" / "new" / "helper.py").read_text() == "HELP = True\n"
    listed, read = tool_results(api, 1)
    assert listed["content"] == "lib/stock.py"
    assert read["content"] == "def count():\n    return 0\n"
    assert not any(r.get("is_error") for i in (1, 2, 3) for r in tool_results(api, i))
    (ran,) = tool_results(api, 3)
    assert ran["content"].startswith("exit code 0")
    assert "2 lib/stock.py" in ran["content"]
    first = api.requests[0]
    assert first["system"] == "You are a careful engineer."
    assert {t["name"] for t in first["tools"]} == {
        "read_file", "write_file", "edit_file", "list_files", "run_command",
    }  # fmt: skip
    # The key reaches the server (the SDK sends it as x-api-key or as a bearer token).
    sent = api.headers[0]
    assert "sk-standin" in (sent.get("x-api-key", ""), sent.get("authorization", "")[7:])
    assert any(line.startswith("tool edit_file") for line in lines)
    saved = workspace.conversations / f"{outcome.conversation_id}.json"
    assert json.loads(saved.read_text())["messages"][0]["content"] == "Make count return 42"


async def test_tools_are_confined(api: StandinAPI, workspace: Workspace, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    (workspace.root / "escape").symlink_to(tmp_path)
    (workspace.root / "secret-link").symlink_to(secret)
    api.script(
        Reply.tools(
            ("read_file", {"path": "/etc/passwd"}),
            ("read_file", {"path": "../secret.txt"}),
            ("read_file", {"path": "secret-link"}),
            ("write_file", {"path": "escape/secret.txt", "content": "pwned"}),
            ("write_file", {"path": str(secret), "content": "pwned"}),
            ("edit_file", {"path": "src/../../secret.txt", "old_string": "o", "new_string": "p"}),
            ("write_file", {"path": ".git/hooks/pre-commit", "content": "#!/bin/sh\nid\n"}),
            ("list_files", {"path": "escape"}),
            ("run_command", {"argv": ["rm", "-rf", "src"]}),
            ("run_command", {"argv": ["/usr/bin/wc", "README.md"]}),
            ("run_command", {"argv": "wc README.md"}),
        ),
        Reply.text("I could not touch anything outside."),
    )
    outcome, lines = await run(backend_for(api), workspace, "try to escape", allowed=("wc",))
    assert outcome.status == pb.RESULT_STATUS_OK
    results = tool_results(api, 1)
    assert len(results) == 11
    assert all(r.get("is_error") for r in results), [r["content"] for r in results]
    assert all("refused" in r["content"] or "must be" in r["content"] for r in results), [
        r["content"] for r in results
    ]
    assert secret.read_text() == "outside"
    assert not (workspace.root / ".git" / "hooks" / "pre-commit").exists()
    assert (workspace.root / "src" / "app.py").exists()
    assert sum("refused" in line for line in lines) >= 10


@pytest.mark.parametrize(
    ("mode", "runs"),
    [
        (pb.EXECUTION_MODE_AUTO, False),
        (pb.EXECUTION_MODE_MANUAL, False),
        (pb.EXECUTION_MODE_UNSPECIFIED, False),
        (pb.EXECUTION_MODE_AGENTIC, True),
    ],
)
async def test_only_agentic_sessions_run_programs_outside_the_allowed_list(
    api: StandinAPI, workspace: Workspace, mode: pb.ExecutionMode.ValueType, runs: bool
) -> None:
    api.script(Reply.tools(("run_command", {"argv": ["touch", "ran.txt"]})), Reply.text("done"))
    request = AgentRequest(
        command=pb.AgentCommand(prompt="p", allowed_commands=["wc"]),
        workspace=workspace,
        workdir=workspace.root,
        execution_mode=mode,
    )

    async def ignore(line: str) -> None:
        pass

    outcome = await backend_for(api).run(request, ignore)
    assert outcome.status == pb.RESULT_STATUS_OK
    assert (workspace.root / "ran.txt").exists() is runs
    (result,) = tool_results(api, 1)
    assert bool(result.get("is_error")) is not runs


async def test_resume_continues_the_conversation(api: StandinAPI, workspace: Workspace) -> None:
    api.script(Reply.text("first answer"), Reply.text("second answer"))
    backend = backend_for(api)
    first, _ = await run(backend, workspace, "first prompt")
    second, lines = await run(backend, workspace, "fix it", resume=first.conversation_id)
    assert second.status == pb.RESULT_STATUS_OK
    assert second.conversation_id == first.conversation_id
    sent = api.requests[1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[0]["content"] == "first prompt"
    assert sent[1]["content"] == [{"type": "text", "text": "first answer"}]
    assert sent[2]["content"] == "fix it"
    assert any("resuming conversation" in line for line in lines)


async def test_unknown_conversation_starts_fresh_and_bad_ids_are_refused(
    api: StandinAPI, workspace: Workspace
) -> None:
    api.script(Reply.text("fresh"))
    fresh, lines = await run(backend_for(api), workspace, "p", resume="conv-elsewhere")
    assert fresh.status == pb.RESULT_STATUS_OK
    assert fresh.conversation_id != "conv-elsewhere"
    assert any("not on this executor" in line for line in lines)
    bad, _ = await run(backend_for(api), workspace, "p", resume="../../etc/passwd")
    assert bad.status == pb.RESULT_STATUS_ERROR
    assert "invalid conversation id" in bad.error_message


async def test_turn_budget_and_api_errors(api: StandinAPI, workspace: Workspace) -> None:
    api.responder = lambda body: Reply.tools(("list_files", {}))
    request = AgentRequest(
        command=pb.AgentCommand(prompt="loop", max_turns=3),
        workspace=workspace,
        workdir=workspace.root,
    )

    async def ignore(line: str) -> None:
        pass

    looped = await backend_for(api).run(request, ignore)
    assert looped.status == pb.RESULT_STATUS_ERROR
    assert "within 3 turns" in looped.error_message
    assert looped.failure is not None
    assert looped.failure.kind is FailureClass.MODEL
    unreachable = AnthropicBackend(
        AnthropicSettings(
            api_key="k",
            base_url="http://127.0.0.1:9",
            retry=RetryPolicy(attempts=2, initial_delay=0.01),
        )
    )
    failed = await unreachable.run(request, ignore)
    assert failed.status == pb.RESULT_STATUS_ERROR
    assert failed.failure is not None
    assert failed.failure.kind is FailureClass.TRANSIENT
    assert "could not reach the Anthropic API" in failed.error_message
    assert "after 2 tries" in failed.error_message


# --- failures, one class at a time ------------------------------------------------------


async def test_transient_failures_are_retried_inside_the_step(
    api: StandinAPI, workspace: Workspace
) -> None:
    api.script(
        Failure.overloaded(),
        Failure.rate_limited(retry_after=0.05),
        Failure.server_error(),
        Failure.dropped(),
        Reply.text("done after four retries"),
    )
    outcome, lines = await run(backend_for(api), workspace, "work")
    assert outcome.status == pb.RESULT_STATUS_OK, outcome.error_message
    assert outcome.summary == "done after four retries"
    assert outcome.failure is None
    assert outcome.usage is not None
    assert outcome.usage.retries == 4
    retries = [line for line in lines if "transient failure" in line]
    assert len(retries) == 4, lines
    assert "529 overloaded_error: Overloaded" in retries[0]
    assert "429 rate_limit_error" in retries[1]
    assert "500 api_error" in retries[2]
    assert "could not reach the Anthropic API" in retries[3]
    assert [f"retry {n} of 4" in line for n, line in enumerate(retries, 1)] == [True] * 4
    assert len(api.requests) == 5


async def test_transient_failures_past_the_retries_say_so(
    api: StandinAPI, workspace: Workspace
) -> None:
    api.responder = lambda body: Failure.overloaded()
    outcome, _ = await run(
        backend_for(api, RetryPolicy(attempts=3, initial_delay=0.01)), workspace, "x"
    )
    assert outcome.status == pb.RESULT_STATUS_ERROR
    assert outcome.failure is not None
    assert outcome.failure.kind is FailureClass.TRANSIENT
    assert "Anthropic API 529 overloaded_error: Overloaded" in outcome.error_message
    assert "still failing after 3 tries" in outcome.error_message
    assert len(api.requests) == 3


def test_back_off_is_capped_exponential_with_jitter() -> None:
    policy = RetryPolicy(attempts=10, initial_delay=1.0, max_delay=8.0, jitter=0.25)
    for retry, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        waits = {policy.delay(retry) for _ in range(50)}
        assert all(ceiling * 0.75 <= w <= ceiling for w in waits), (retry, waits)
        assert len(waits) > 1  # jittered
    assert 5.0 <= policy.delay(1, retry_after=5.0) <= 8.0  # the provider's wait, capped
    assert policy.delay(1, retry_after=600.0) == 8.0


@pytest.mark.parametrize(
    ("failure", "said", "hint"),
    [
        (
            Failure.unauthorized(),
            "401 authentication_error: invalid x-api-key",
            "ANTHROPIC_API_KEY",
        ),
        (
            Failure.model_not_found("claude-nope"),
            "404 not_found_error: model: claude-nope",
            "claude-nope",
        ),
        (Failure.bad_request("prompt is too long"), "400 invalid_request_error", "too long"),
    ],
)
async def test_permanent_failures_fail_at_once_with_the_api_message_and_a_hint(
    api: StandinAPI, workspace: Workspace, failure: Failure, said: str, hint: str
) -> None:
    api.responder = lambda body: failure
    outcome, lines = await run(backend_for(api), workspace, "x", model="claude-nope")
    assert outcome.status == pb.RESULT_STATUS_ERROR
    assert outcome.failure is not None
    assert outcome.failure.kind is FailureClass.PERMANENT
    assert said in outcome.error_message
    assert hint in outcome.failure.hint
    assert "to fix:" in outcome.error_message
    assert len(api.requests) == 1  # never retried
    assert not any("transient failure" in line for line in lines)


async def test_a_refused_key_is_permanent(api: StandinAPI, workspace: Workspace) -> None:
    api.valid_keys = {"sk-the-real-one"}
    outcome, _ = await run(backend_for(api), workspace, "x")
    assert outcome.failure is not None
    assert outcome.failure.kind is FailureClass.PERMANENT
    assert "invalid x-api-key" in outcome.error_message


async def test_no_key_at_all_is_permanent(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    backend = AnthropicBackend(AnthropicSettings(api_key=None, base_url="http://127.0.0.1:9"))
    outcome, _ = await run(backend, workspace, "x")
    assert outcome.failure is not None
    assert outcome.failure.kind is FailureClass.PERMANENT
    assert "no Anthropic API key" in outcome.error_message
    assert "ANTHROPIC_API_KEY" in outcome.failure.hint


async def test_a_response_cut_short_is_the_models_failure(
    api: StandinAPI, workspace: Workspace
) -> None:
    api.script(Reply(blocks=[{"type": "text", "text": "half an ans"}], stop_reason="max_tokens"))
    outcome, _ = await run(backend_for(api), workspace, "x")
    assert outcome.status == pb.RESULT_STATUS_ERROR
    assert outcome.failure is not None
    assert outcome.failure.kind is FailureClass.MODEL
    assert "max_tokens" in outcome.error_message


async def test_usage_is_counted_per_model_from_every_response(
    api: StandinAPI, workspace: Workspace
) -> None:
    api.script(
        Reply(
            blocks=Reply.tools(("list_files", {})).blocks,
            stop_reason="tool_use",
            usage={"input_tokens": 1000, "output_tokens": 50, "cache_creation_input_tokens": 200},
        ),
        Reply(
            blocks=[{"type": "text", "text": "ok"}],
            usage={"input_tokens": 30, "output_tokens": 20, "cache_read_input_tokens": 1200},
        ),
    )
    outcome, _ = await run(backend_for(api), workspace, "x", model="claude-sonnet-4-5")
    assert outcome.usage is not None
    usage = outcome.usage.to_pb(load_prices(), duration_ms=1234)
    assert (usage.model, usage.turns, usage.agent_steps) == ("claude-sonnet-4-5", 2, 1)
    assert (usage.input_tokens, usage.output_tokens) == (1030, 70)
    assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (200, 1200)
    # claude-sonnet-4-5 in the default table: 3 / 15 / 3.75 / 0.3 USD per million tokens.
    expected = (1030 * 3 + 70 * 15 + 200 * 3.75 + 1200 * 0.3) / 1e6
    assert usage.cost_usd == pytest.approx(expected)
    assert [m.model for m in usage.models] == ["claude-sonnet-4-5"]
    assert usage.unpriced_steps == 0
    assert usage.duration_ms == 1234
