"""The claude-code backend: the ``claude`` CLI in headless mode.

The CLI runs as ``claude -p --output-format stream-json --verbose`` in the
command's working directory, with the prompt on standard input (a prompt
can be larger than one argv element may be). Its stream-json events are
parsed as they arrive: the session id becomes the conversation id (a fix
step passes it back as ``--resume``), assistant text and tool calls become
transcript lines, and the final ``result`` event decides the outcome.

The CLI is known to hang now and then, silent, neither working nor exiting.
A watchdog (``silence_timeout``) kills its whole process group when it has
printed nothing for that long; the step then fails with a message saying so
and the conversation id, so a retry can resume.

Permissions follow the session's execution mode. Headless there is nobody
to ask, so in manual and auto mode the CLI runs with ``acceptEdits``: edits
inside the working directory are accepted (so are plain file commands such
as ``touch`` or ``mkdir`` there), edits outside it are refused, and the only
programs it may run are the command's ``allowed_commands`` (``--allowedTools
Bash(<name> *)``). In agentic mode the executor drives the session end to
end and the CLI bypasses permission prompts — except as root, where the CLI
refuses that and we fall back to the confined mode, saying so.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from specloom.agent.backends.base import AgentOutcome, AgentRequest, Transcript
from specloom.agent.shell import ProcessOutcome, child_environment, run_process
from specloom.protoconv import JsonObject
from specloom.v1 import common_pb2 as pb

__all__ = ["ClaudeCodeBackend", "ClaudeCodeSettings", "StreamParser", "build_argv"]

_SAFE_ARG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/\[\]-]{0,199}$")
_MAX_LINE = 32 * 1024 * 1024
_INLINE_SYSTEM_PROMPT = 64 * 1024
READ_TOOLS = ("Read", "Glob", "Grep", "LS")
"""CLI tools allowed outright. Edit and Write are deliberately absent: an allow
rule for them is a blanket grant that lets the CLI write outside the working
directory (checked against the real CLI), whereas acceptEdits mode accepts
edits inside the working directory only and refuses the rest headless."""


@dataclass(frozen=True)
class ClaudeCodeSettings:
    """How the executor runs the ``claude`` CLI."""

    executable: str = "claude"
    """Program name or path of the CLI."""
    silence_timeout: float = 300.0
    """Watchdog: seconds without any output after which the CLI is killed."""
    permission_mode: str = ""
    """Force this ``--permission-mode``; empty derives it from the execution mode."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment for the CLI (e.g. ``ANTHROPIC_BASE_URL``, ``CLAUDE_CONFIG_DIR``)."""
    extra_args: tuple[str, ...] = ()
    """Arguments appended to every invocation."""


def permission_mode(
    execution_mode: pb.ExecutionMode.ValueType, settings: ClaudeCodeSettings
) -> tuple[str, str]:
    """``(mode, note)`` for a session's execution mode; ``note`` explains a fallback."""
    if settings.permission_mode:
        return settings.permission_mode, ""
    if execution_mode == pb.EXECUTION_MODE_AGENTIC:
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            return "acceptEdits", (
                "running as root: the claude CLI refuses bypassPermissions there, "
                "so it runs with acceptEdits and the allowed commands only"
            )
        return "bypassPermissions", ""
    return "acceptEdits", ""


def _safe(value: str, what: str) -> str:
    # Values placed after an option must not look like options themselves.
    if not _SAFE_ARG.match(value):
        raise ValueError(f"invalid {what} {value!r}")
    return value


def build_argv(
    request: AgentRequest, settings: ClaudeCodeSettings, system_prompt_file: Path | None
) -> tuple[list[str], str]:
    """The CLI's argv (prompt goes to stdin) and a note about the permission mode."""
    command = request.command
    mode, note = permission_mode(request.execution_mode, settings)
    argv = [
        settings.executable,
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--permission-mode",
        _safe(mode, "permission mode"),
    ]
    tools = [*READ_TOOLS]
    for program in command.allowed_commands:
        name = _safe(program, "allowed command")
        tools += [f"Bash({name})", f"Bash({name} *)"]
    argv += ["--allowedTools", ",".join(tools)]
    if command.model:
        argv += ["--model", _safe(command.model, "model")]
    if command.max_turns > 0:
        argv += ["--max-turns", str(command.max_turns)]
    if command.resume_conversation_id:
        argv += ["--resume", _safe(command.resume_conversation_id, "conversation id")]
    if command.system_prompt:
        if system_prompt_file is not None:
            argv += ["--append-system-prompt-file", str(system_prompt_file)]
        else:
            argv += ["--append-system-prompt", command.system_prompt]
    return [*argv, *settings.extra_args], note


def _short(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 1] + "…"


class StreamParser:
    """Turns stream-json output into transcript lines and remembers the outcome."""

    def __init__(self, transcript: Transcript) -> None:
        self._transcript = transcript
        self._buffer = bytearray()
        self._overflow = False
        self.session_id = ""
        self.result: dict[str, Any] | None = None
        self.events = 0

    async def feed(self, data: bytes) -> None:
        """Consume a chunk of standard output."""
        self._buffer += data
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                break
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if self._overflow:
                self._overflow = False  # the tail of an over-long line: skip it
                continue
            await self.line(line)
        if len(self._buffer) > _MAX_LINE:
            # One event larger than the cap (a huge file read back): skip it
            # rather than hold it; the transcript says so.
            self._buffer.clear()
            self._overflow = True
            await self._transcript("claude: skipped an over-long stream-json event")

    async def close(self) -> None:
        """Consume what is left after the process ended."""
        if self._buffer and not self._overflow:
            await self.line(bytes(self._buffer))
        self._buffer.clear()

    async def line(self, raw: bytes) -> None:
        """Handle one stream-json line."""
        text = raw.decode("utf-8", errors="replace").strip()
        if not text:
            return
        try:
            event = json.loads(text)
        except ValueError:
            await self._transcript(f"claude: {_short(text)}")
            return
        if not isinstance(event, dict):
            return
        self.events += 1
        if isinstance(event.get("session_id"), str) and event["session_id"]:
            self.session_id = event["session_id"]
        for line in self._render(event):
            await self._transcript(line)

    def _render(self, event: dict[str, Any]) -> list[str]:
        kind = event.get("type")
        if kind == "system" and event.get("subtype") == "init":
            return [
                f"claude: session {event.get('session_id', '?')}, model {event.get('model', '?')}, "
                f"permission mode {event.get('permissionMode', '?')}"
            ]
        if kind in ("assistant", "user"):
            message = event.get("message") or {}
            content = message.get("content")
            if isinstance(content, str):
                return [f"{kind}: {_short(content)}"]
            lines: list[str] = []
            for block in content if isinstance(content, list) else []:
                lines += self._render_block(kind, block)
            return lines
        if kind == "result":
            self.result = event
            turns = event.get("num_turns", "?")
            return [f"claude: finished ({event.get('subtype', '?')}) after {turns} turn(s)"]
        return []

    @staticmethod
    def _render_block(kind: str, block: Any) -> list[str]:
        if not isinstance(block, dict):
            return []
        if block.get("type") == "text":
            return [f"{kind}: {line}" for line in str(block.get("text", "")).splitlines()]
        if block.get("type") == "tool_use":
            return [f"tool {block.get('name', '?')}: {_short(block.get('input', {}))}"]
        if block.get("type") == "tool_result":
            label = "tool error" if block.get("is_error") else "tool result"
            return [f"{label}: {_short(block.get('content', ''))}"]
        return []


class ClaudeCodeBackend:
    """Runs an AgentCommand through the ``claude`` CLI, with a silence watchdog."""

    name = "claude-code"

    def __init__(self, settings: ClaudeCodeSettings | None = None) -> None:
        self.settings = settings or ClaudeCodeSettings()

    async def run(self, request: AgentRequest, transcript: Transcript) -> AgentOutcome:
        """Run the CLI to its ``result`` event, or until the watchdog ends it."""
        data: JsonObject = {"backend": self.name}
        with tempfile.TemporaryDirectory(prefix="specloom-claude-") as scratch:
            prompt_file = None
            if len(request.command.system_prompt.encode()) > _INLINE_SYSTEM_PROMPT:
                prompt_file = Path(scratch) / "system-prompt.md"
                prompt_file.write_text(request.command.system_prompt, encoding="utf-8")
            try:
                argv, note = build_argv(request, self.settings, prompt_file)
            except ValueError as exc:
                return AgentOutcome(
                    status=pb.RESULT_STATUS_ERROR, error_message=str(exc), data=data
                )
            if note:
                await transcript(f"claude: {note}")
            parser = StreamParser(transcript)

            async def on_output(stream: int, chunk: bytes) -> None:
                if stream == pb.OUTPUT_STREAM_STDOUT:
                    await parser.feed(chunk)
                else:
                    for line in chunk.decode("utf-8", errors="replace").splitlines():
                        await transcript(f"claude stderr: {line}")

            outcome = await run_process(
                argv,
                cwd=request.workdir,
                env=child_environment(self.settings.env),
                idle_limit=self.settings.silence_timeout,
                cancel=request.cancel,
                on_output=on_output,
                stdin=request.command.prompt.encode("utf-8"),
            )
            await parser.close()
        data["permission_mode"] = argv[argv.index("--permission-mode") + 1]
        return self._outcome(parser, outcome.exit_code, outcome.start_error, outcome, data)

    def _outcome(
        self,
        parser: StreamParser,
        code: int,
        start_error: str,
        process: ProcessOutcome,
        data: JsonObject,
    ) -> AgentOutcome:
        conversation = parser.session_id
        if start_error:
            return AgentOutcome(
                status=pb.RESULT_STATUS_ERROR,
                exit_code=code,
                error_message=f"claude CLI could not start: {start_error}",
                data=data,
            )
        if process.idle_timed_out:
            data["watchdog"] = True
            return AgentOutcome(
                status=pb.RESULT_STATUS_ERROR,
                conversation_id=conversation,
                exit_code=code,
                error_message=(
                    f"claude CLI printed nothing for {self.settings.silence_timeout:g}s and was "
                    "killed by the watchdog (a known hang of the CLI); "
                    "a retry resumes the conversation"
                ),
                data=data,
            )
        if process.cancelled:
            return AgentOutcome(
                status=pb.RESULT_STATUS_ERROR,
                conversation_id=conversation,
                exit_code=code,
                error_message="cancelled",
                data=data,
            )
        result = parser.result
        if result is None:
            tail = process.stderr_tail.strip()[-2000:]
            return AgentOutcome(
                status=pb.RESULT_STATUS_ERROR,
                conversation_id=conversation,
                exit_code=code,
                error_message=f"claude CLI exited {code} without a result"
                + (f": {tail}" if tail else ""),
                data=data,
            )
        for key in ("num_turns", "total_cost_usd", "subtype"):
            value = result.get(key)
            if isinstance(value, int | float | str):
                data[key] = value
        denials = result.get("permission_denials")
        if isinstance(denials, list):
            data["permission_denials"] = len(denials)
        summary = result.get("result") if isinstance(result.get("result"), str) else ""
        if result.get("is_error") or result.get("subtype") != "success":
            errors = result.get("errors")
            reason = (
                "; ".join(str(e) for e in errors) if isinstance(errors, list) and errors else ""
            )
            return AgentOutcome(
                status=pb.RESULT_STATUS_ERROR,
                conversation_id=conversation,
                summary=str(summary or ""),
                exit_code=code,
                error_message=f"claude CLI reported {result.get('subtype', 'an error')}"
                + (f": {reason}" if reason else ""),
                data=data,
            )
        return AgentOutcome(
            status=pb.RESULT_STATUS_OK,
            conversation_id=conversation,
            summary=str(summary or ""),
            exit_code=code,
            data=data,
        )
