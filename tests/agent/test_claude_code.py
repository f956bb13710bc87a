"""The claude-code backend, run against the real ``claude`` CLI.

The CLI (npm ``@anthropic-ai/claude-code``, a dev dependency in
package.json) is pointed at :mod:`tests.agent.anthropic_standin` through
``ANTHROPIC_BASE_URL``; the stand-in streams the scripted replies as
server-sent events, so the CLI's real tool loop, permission checks,
stream-json output and session storage are what is tested. A second set
of tests uses a stand-in ``claude`` executable (a small script, named as
such) for the watchdog's process-group kill and the parser's edge cases,
which need no CLI at all.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from specloom.agent.backends.base import AgentOutcome, AgentRequest
from specloom.agent.backends.claude_code import (
    ClaudeCodeBackend,
    ClaudeCodeSettings,
    StreamParser,
    build_argv,
)
from specloom.agent.backends.failures import FailureClass, RetryPolicy
from specloom.agent.usage import load_prices
from specloom.agent.workspace import Workspace
from specloom.rules import TEST_WRITER, persona
from specloom.v1 import common_pb2 as pb

from .anthropic_standin import Failure, Reply, StandinAPI, serve_standin

REPO = Path(__file__).resolve().parents[2]


def claude_cli() -> str | None:
    local = REPO / "node_modules" / ".bin" / "claude"
    return str(local) if local.exists() else shutil.which("claude")


needs_cli = pytest.mark.skipif(
    claude_cli() is None, reason="the claude CLI is not installed (run `npm install`)"
)


@pytest.fixture
def api() -> Iterator[StandinAPI]:
    with serve_standin() as server:
        yield server


FAST_RETRIES = RetryPolicy(attempts=3, initial_delay=0.05, max_delay=0.5)
"""Real back-off, scaled down so tests do not wait."""


def settings_for(
    api: StandinAPI, home: Path, *, key: str | None = "sk-standin", **overrides: Any
) -> ClaudeCodeSettings:
    cli = claude_cli()
    assert cli is not None
    home.mkdir(exist_ok=True)
    env = {
        # Session storage (for --resume) and config live under HOME.
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": api.base_url,
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        # The CLI retries failed API requests itself (10 times by default,
        # up to minutes); once keeps these tests quick and still shows it.
        "CLAUDE_CODE_MAX_RETRIES": "1",
    }
    if key is not None:
        env["ANTHROPIC_API_KEY"] = key
    overrides.setdefault("retry", FAST_RETRIES)
    return ClaudeCodeSettings(executable=cli, env=env, **overrides)


async def run(
    backend: ClaudeCodeBackend,
    workspace: Workspace,
    prompt: str,
    *,
    allowed: tuple[str, ...] = (),
    resume: str = "",
    mode: pb.ExecutionMode.ValueType = pb.EXECUTION_MODE_AUTO,
    model: str = "",
    max_turns: int = 0,
    system_prompt: str = "",
) -> tuple[AgentOutcome, list[str]]:
    lines: list[str] = []

    async def transcript(line: str) -> None:
        lines.append(line)

    request = AgentRequest(
        command=pb.AgentCommand(
            prompt=prompt,
            allowed_commands=list(allowed),
            resume_conversation_id=resume,
            model=model,
            max_turns=max_turns,
            system_prompt=system_prompt,
        ),
        workspace=workspace,
        workdir=workspace.root,
        execution_mode=mode,
    )
    return await backend.run(request, transcript), lines


def tool_then_text(call: tuple[str, dict[str, Any]], text: str) -> Any:
    """A responder: the tool call first, then (once its result came back) the text."""

    def respond(body: dict[str, Any]) -> Reply:
        last = body["messages"][-1]["content"]
        answered = isinstance(last, list) and any(
            isinstance(b, dict) and b.get("type") == "tool_result" for b in last
        )
        return Reply.text(text) if answered else Reply.tools(call)

    return respond


@needs_cli
async def test_real_cli_edits_and_reports(
    api: StandinAPI, workspace: Workspace, tmp_path: Path
) -> None:
    target = workspace.root / "docs" / "design.md"
    api.responder = tool_then_text(
        ("Write", {"file_path": str(target), "content": "# Design\n"}), "Wrote the design."
    )
    backend = ClaudeCodeBackend(settings_for(api, tmp_path / "home"))
    outcome, lines = await run(backend, workspace, "Write docs/design.md")
    assert outcome.status == pb.RESULT_STATUS_OK, (outcome.error_message, lines)
    assert target.read_text() == "# Design\n"
    assert outcome.summary == "Wrote the design."
    assert len(outcome.conversation_id) == 36  # the CLI's session id (a UUID)
    assert outcome.data["subtype"] == "success"
    assert outcome.data["permission_mode"] == "acceptEdits"
    assert any(line.startswith("tool Write") for line in lines)
    # The prompt went over stdin and reached the API as the user's message.
    first = api.requests[0]["messages"][0]["content"]
    texts = (
        [b["text"] for b in first if b.get("type") == "text"]
        if isinstance(first, list)
        else [first]
    )
    assert any("Write docs/design.md" in t for t in texts)


def system_text(body: dict[str, Any]) -> str:
    """The system prompt of one Messages API request, as text."""
    system = body.get("system", "")
    if isinstance(system, list):
        return "\n".join(str(block.get("text", "")) for block in system)
    return str(system)


@needs_cli
@pytest.mark.parametrize("size", ["inline", "file"])
async def test_real_cli_sends_the_persona_after_its_own_system_prompt(
    api: StandinAPI, workspace: Workspace, tmp_path: Path, size: str
) -> None:
    text = persona(TEST_WRITER).text
    if size == "file":
        # Past the inline limit the persona goes through --append-system-prompt-file.
        text += "\n" + "Keep every test small. " * 3500
    api.responder = lambda body: Reply.text("noted")
    backend = ClaudeCodeBackend(settings_for(api, tmp_path / "home"))
    outcome, lines = await run(backend, workspace, "Say noted.", system_prompt=text)
    assert outcome.status == pb.RESULT_STATUS_OK, (outcome.error_message, lines)
    # The task's request (the CLI may make others of its own) carries the persona,
    # appended, not replacing: Claude Code keeps its own instructions (its tools).
    sent = [system_text(body) for body in api.requests if body.get("tools")]
    assert sent, api.requests
    assert all(s.rstrip().endswith(text.rstrip()) for s in sent)
    assert all(len(s) > len(text) + 1000 for s in sent)


@needs_cli
async def test_real_cli_resumes_the_conversation(
    api: StandinAPI, workspace: Workspace, tmp_path: Path
) -> None:
    api.responder = lambda body: Reply.text(f"seen {len(body['messages'])} message(s)")
    backend = ClaudeCodeBackend(settings_for(api, tmp_path / "home"))
    first, _ = await run(backend, workspace, "first")
    second, _ = await run(backend, workspace, "second", resume=first.conversation_id)
    assert second.status == pb.RESULT_STATUS_OK, second.error_message
    assert second.conversation_id == first.conversation_id
    assert len(api.requests[-1]["messages"]) > len(api.requests[0]["messages"])
    missing, _ = await run(backend, workspace, "x", resume="00000000-0000-0000-0000-000000000000")
    assert missing.status == pb.RESULT_STATUS_ERROR
    assert "No conversation found" in missing.error_message


@needs_cli
async def test_real_cli_runs_only_allowed_commands(
    api: StandinAPI, workspace: Workspace, tmp_path: Path
) -> None:
    canary = workspace.root / "ran.txt"
    command = f"python3 -c \"open('{canary}', 'w')\""
    api.responder = tool_then_text(("Bash", {"command": command}), "done")
    backend = ClaudeCodeBackend(settings_for(api, tmp_path / "home"))
    refused, _ = await run(backend, workspace, "run it", allowed=("ls",))
    assert not canary.exists()
    assert refused.data["permission_denials"] == 1
    allowed, _ = await run(backend, workspace, "run it", allowed=("python3",))
    assert allowed.status == pb.RESULT_STATUS_OK, allowed.error_message
    assert allowed.data["permission_denials"] == 0
    assert canary.exists()


@needs_cli
async def test_real_cli_cannot_write_outside_the_workdir(
    api: StandinAPI, workspace: Workspace, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    api.responder = tool_then_text(("Write", {"file_path": str(outside), "content": "x"}), "ok")
    backend = ClaudeCodeBackend(settings_for(api, tmp_path / "home"))
    for mode in (pb.EXECUTION_MODE_MANUAL, pb.EXECUTION_MODE_AUTO, pb.EXECUTION_MODE_AGENTIC):
        outcome, _ = await run(backend, workspace, "write outside", mode=mode)
        if outcome.data["permission_mode"] == "bypassPermissions":
            continue  # agentic mode as a non-root user: nothing is asked by design
        assert not outside.exists()
        assert outcome.data["permission_denials"] == 1


@needs_cli
async def test_watchdog_kills_a_silent_real_cli(
    api: StandinAPI, workspace: Workspace, tmp_path: Path
) -> None:
    # The stand-in accepts the request and never answers: the CLI waits,
    # silent — the hang the watchdog exists for.
    release = threading.Event()
    api.responder = lambda body: (release.wait(60), Reply.text("too late"))[1]
    backend = ClaudeCodeBackend(
        settings_for(api, tmp_path / "home", silence_timeout=3.0, retry=RetryPolicy(attempts=1))
    )
    started = time.monotonic()
    try:
        outcome, _ = await run(backend, workspace, "hang")
    finally:
        release.set()
    assert outcome.status == pb.RESULT_STATUS_ERROR
    assert "watchdog" in outcome.error_message
    assert outcome.data["watchdog"] is True
    assert outcome.failure is not None
    assert outcome.failure.kind is FailureClass.TRANSIENT  # a known hang: retried, resumed
    assert outcome.conversation_id  # from the init event, so a retry can resume
    assert time.monotonic() - started < 30
    assert not processes_in(workspace.root)


# --- failures against the real CLI, one class at a time ------------------------------


def texts_of(body: dict[str, Any]) -> list[str]:
    """Every text the client sent in a request's messages."""
    found: list[str] = []
    for message in body["messages"]:
        content = message["content"]
        if isinstance(content, str):
            found.append(content)
            continue
        found += [b["text"] for b in content if isinstance(b, dict) and b.get("type") == "text"]
    return found


@needs_cli
async def test_real_cli_transient_failures_recover_inside_the_step(
    api: StandinAPI, workspace: Workspace, tmp_path: Path
) -> None:
    # The CLI retries once itself, fails, and the backend runs it again
    # resuming its session, where the CLI's own retry gets through.
    api.script(
        Failure.overloaded(),
        Failure.server_error(),
        Failure.rate_limited(),
        Reply.text("recovered"),
    )
    backend = ClaudeCodeBackend(settings_for(api, tmp_path / "home"))
    outcome, lines = await run(backend, workspace, "Design the Stock component")
    assert outcome.status == pb.RESULT_STATUS_OK, (outcome.error_message, lines)
    assert outcome.summary == "recovered"
    assert outcome.failure is None
    cli_retries = [line for line in lines if "the CLI retries" in line]
    ours = [line for line in lines if "transient failure" in line]
    assert len(cli_retries) == 2, lines
    assert "529 overloaded" in cli_retries[0]
    assert len(ours) == 1, lines
    assert "retry 1 of 2" in ours[0]
    assert "API Error: 500" in ours[0]  # the CLI's own words
    assert outcome.usage is not None
    assert outcome.usage.retries == 3
    # The retry resumed the same session: the original prompt went again,
    # with the note that the work is carried on.
    assert len(api.requests) == 4
    sent = texts_of(api.requests[-1])
    assert any("Design the Stock component" in t for t in sent)
    assert any("interrupted by a passing failure" in t for t in sent)


@needs_cli
async def test_real_cli_transient_failures_past_the_retries_say_so(
    api: StandinAPI, workspace: Workspace, tmp_path: Path
) -> None:
    api.responder = lambda body: Failure.dropped()
    backend = ClaudeCodeBackend(settings_for(api, tmp_path / "home"))
    outcome, _lines = await run(backend, workspace, "x")
    assert outcome.status == pb.RESULT_STATUS_ERROR
    assert outcome.failure is not None
    assert outcome.failure.kind is FailureClass.TRANSIENT
    assert "Connection dropped" in outcome.error_message  # the CLI's words
    assert "still failing after 3 tries" in outcome.error_message
    assert "reported success" not in outcome.error_message
    assert len(api.requests) == 6  # 3 runs, each with the CLI's own retry


@needs_cli
@pytest.mark.parametrize(
    ("case", "said", "hint"),
    [
        ("no login", "Not logged in · Please run /login", "/login"),
        ("bad key", "Invalid API key", "ANTHROPIC_API_KEY"),
        ("unknown model", "issue with the selected model (claude-nope)", "model"),
        ("bad request", "Prompt is too long", "shorten the inputs"),
    ],
)
async def test_real_cli_permanent_failures_say_what_happened(
    api: StandinAPI,
    workspace: Workspace,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    said: str,
    hint: str,
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    key: str | None = "sk-standin"
    if case == "no login":
        key = None
    elif case == "bad key":
        api.valid_keys = {"sk-the-real-one"}
    elif case == "unknown model":
        api.responder = lambda body: Failure.model_not_found(str(body.get("model")))
    else:
        api.responder = lambda body: Failure.bad_request(
            "prompt is too long: 300000 tokens > 200000 maximum"
        )
    backend = ClaudeCodeBackend(settings_for(api, tmp_path / "home", key=key))
    outcome, lines = await run(backend, workspace, "x", model="claude-nope")
    assert outcome.status == pb.RESULT_STATUS_ERROR
    assert outcome.failure is not None
    assert outcome.failure.kind is FailureClass.PERMANENT, outcome.error_message
    assert said in outcome.error_message
    assert hint in outcome.failure.hint
    assert "reported success" not in outcome.error_message
    assert not any("transient failure" in line for line in lines)  # never re-run


@needs_cli
async def test_real_cli_running_out_of_turns_is_the_models_failure(
    api: StandinAPI, workspace: Workspace, tmp_path: Path
) -> None:
    api.responder = lambda body: Reply.tools(
        ("Read", {"file_path": str(workspace.root / "README.md")})
    )
    backend = ClaudeCodeBackend(settings_for(api, tmp_path / "home"))
    outcome, _ = await run(backend, workspace, "loop", max_turns=2)
    assert outcome.status == pb.RESULT_STATUS_ERROR
    assert outcome.failure is not None
    assert outcome.failure.kind is FailureClass.MODEL
    assert "Reached maximum number of turns (2)" in outcome.error_message


@needs_cli
async def test_real_cli_usage_is_counted_per_model(
    api: StandinAPI, workspace: Workspace, tmp_path: Path
) -> None:
    api.script(
        Reply(
            blocks=Reply.tools(("Read", {"file_path": str(workspace.root / "README.md")})).blocks,
            stop_reason="tool_use",
            usage={"input_tokens": 1000, "output_tokens": 40, "cache_creation_input_tokens": 500},
        ),
        Reply(
            blocks=[{"type": "text", "text": "read it"}],
            usage={"input_tokens": 20, "output_tokens": 10, "cache_read_input_tokens": 1500},
        ),
    )
    backend = ClaudeCodeBackend(settings_for(api, tmp_path / "home"))
    outcome, _ = await run(backend, workspace, "read the readme", model="claude-sonnet-4-5")
    assert outcome.status == pb.RESULT_STATUS_OK, outcome.error_message
    assert outcome.usage is not None
    usage = outcome.usage.to_pb(load_prices(), duration_ms=10)
    assert usage.turns == 2
    assert (usage.input_tokens, usage.output_tokens) == (1020, 50)
    assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (500, 1500)
    assert [m.model for m in usage.models] == ["claude-sonnet-4-5"]
    expected = (1020 * 3 + 50 * 15 + 500 * 3.75 + 1500 * 0.3) / 1e6
    assert usage.cost_usd == pytest.approx(expected)
    # The CLI's own figure agrees with the default table for this model.
    assert outcome.data["total_cost_usd"] == pytest.approx(expected)


def processes_in(directory: Path) -> list[int]:
    """Live processes whose working directory is ``directory``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if Path(entry / "cwd").resolve() == directory:
                stat = (entry / "stat").read_text()
                if stat[stat.rfind(")") + 2] not in "ZX":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


# --- a stand-in `claude` executable: no CLI needed ---------------------------------

STANDIN_CLAUDE = r'''#!{python}
"""Stand-in for the claude CLI (tests only): prints recorded stream-json."""
import json, os, signal, sys, time
prompt = sys.stdin.read()
def emit(event):
    print(json.dumps(event), flush=True)
emit({{"type": "system", "subtype": "init", "session_id": "standin-session", "model": "m",
      "permissionMode": "acceptEdits"}})
if "hang" in prompt:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.fork() == 0:
        open("{pidfile}", "w").write(str(os.getpid()))
        time.sleep(300)
    time.sleep(300)
text = {{"type": "text", "text": "line one\nline two"}}
edit = {{"type": "tool_use", "name": "Edit", "input": {{"file_path": "a.py"}}}}
emit({{"type": "assistant", "message": {{"content": [text, edit]}}}})
print("x" * 100 + "not json", flush=True)
emit({{"type": "result", "subtype": "success", "is_error": False, "result": "all done",
      "session_id": "standin-session", "num_turns": 2, "total_cost_usd": 0.01,
      "permission_denials": []}})
'''


def standin_claude(tmp_path: Path) -> tuple[Path, Path]:
    pidfile = tmp_path / "child.pid"
    script = tmp_path / "claude-standin"
    script.write_text(STANDIN_CLAUDE.format(python=sys.executable, pidfile=pidfile))
    script.chmod(0o755)
    return script, pidfile


async def test_parser_with_a_standin_cli(workspace: Workspace, tmp_path: Path) -> None:
    script, _ = standin_claude(tmp_path)
    backend = ClaudeCodeBackend(ClaudeCodeSettings(executable=str(script)))
    outcome, lines = await run(backend, workspace, "work")
    assert outcome.status == pb.RESULT_STATUS_OK
    assert outcome.conversation_id == "standin-session"
    assert outcome.summary == "all done"
    assert outcome.data["num_turns"] == 2
    assert "assistant: line one" in lines
    assert "assistant: line two" in lines
    assert any(line.startswith("tool Edit") for line in lines)
    assert any("not json" in line for line in lines)


async def test_watchdog_kills_the_standin_group(workspace: Workspace, tmp_path: Path) -> None:
    script, pidfile = standin_claude(tmp_path)
    backend = ClaudeCodeBackend(
        ClaudeCodeSettings(
            executable=str(script), silence_timeout=1.0, retry=RetryPolicy(attempts=1)
        )
    )
    outcome, _ = await run(backend, workspace, "hang")
    assert outcome.status == pb.RESULT_STATUS_ERROR
    assert outcome.data["watchdog"] is True
    assert outcome.conversation_id == "standin-session"
    child = int(pidfile.read_text())
    stat = Path(f"/proc/{child}/stat")
    assert not stat.exists() or stat.read_text().split(") ")[1][0] in "ZX"


async def test_missing_cli_is_a_permanent_failure(workspace: Workspace) -> None:
    backend = ClaudeCodeBackend(ClaudeCodeSettings(executable="no-such-claude-cli"))
    outcome, lines = await run(backend, workspace, "x")
    assert outcome.status == pb.RESULT_STATUS_ERROR
    assert "could not start" in outcome.error_message
    assert outcome.failure is not None
    assert outcome.failure.kind is FailureClass.PERMANENT
    assert "npm install -g @anthropic-ai/claude-code" in outcome.error_message
    assert not any("transient" in line for line in lines)


def test_argv_keeps_the_prompt_out_and_refuses_option_like_values(workspace: Workspace) -> None:
    request = AgentRequest(
        command=pb.AgentCommand(
            prompt="$(rm -rf /) --dangerously-skip-permissions",
            model="opus",
            max_turns=5,
            allowed_commands=["pytest"],
            resume_conversation_id="abc-123",
        ),
        workspace=workspace,
        workdir=workspace.root,
        execution_mode=pb.EXECUTION_MODE_MANUAL,
    )
    argv, _ = build_argv(request, ClaudeCodeSettings(), None)
    assert "$(rm -rf /) --dangerously-skip-permissions" not in argv
    assert argv[argv.index("--resume") + 1] == "abc-123"
    assert argv[argv.index("--permission-mode") + 1] == "acceptEdits"
    assert "Bash(pytest *)" in argv[argv.index("--allowedTools") + 1]
    bad = AgentRequest(
        command=pb.AgentCommand(prompt="p", resume_conversation_id="--settings=/tmp/x"),
        workspace=workspace,
        workdir=workspace.root,
    )
    with pytest.raises(ValueError, match="conversation id"):
        build_argv(bad, ClaudeCodeSettings(), None)


async def test_parser_handles_split_and_oversized_lines() -> None:
    lines: list[str] = []

    async def transcript(line: str) -> None:
        lines.append(line)

    parser = StreamParser(transcript)
    event = b'{"type": "result", "subtype": "success", "session_id": "s", "result": "ok"}\n'
    await parser.feed(event[:10])
    await parser.feed(event[10:])
    assert parser.result is not None
    assert parser.session_id == "s"
    await parser.close()
