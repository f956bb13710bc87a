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

Permissions follow the session's execution mode; AUTO is the confinement
boundary. Headless there is nobody to ask, so in auto mode (and manual,
when a person runs a command locally, and unset) the CLI runs with
``acceptEdits``: edits inside the working directory are accepted (so are
plain file commands such as ``touch`` or ``mkdir`` there), edits outside it
are refused, and the only programs it may run are the command's
``allowed_commands`` (``--allowedTools Bash(<name> *)``). In agentic mode the
agent has full autonomy and the CLI bypasses permission prompts — except as
root, where the CLI refuses that and we fall back to the confined mode,
saying so. An executor that must not trust a session's starter confines it
by passing AUTO.

Failures are classified (:mod:`.claude_stream`) and passing ones re-run
with back-off, resuming the CLI's session; the CLI's own API retries come
first and each shows in the transcript.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from specloom.agent.backends.base import AgentOutcome, AgentRequest, Transcript
from specloom.agent.backends.claude_stream import StreamParser, classify_result, count_usage
from specloom.agent.backends.failures import Failure, FailureClass, RetryPolicy, back_off
from specloom.agent.shell import ProcessOutcome, child_environment, run_process
from specloom.agent.usage import UsageMeter
from specloom.protoconv import JsonObject
from specloom.v1 import common_pb2 as pb

__all__ = ["ClaudeCodeBackend", "ClaudeCodeSettings", "StreamParser", "build_argv"]

_SAFE_ARG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/\[\]-]{0,199}$")
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
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    """Re-runs after a passing failure (the CLI's own API retries come first)."""


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


CONTINUE_PROMPT = (
    "The previous attempt at this task was interrupted by a passing failure of the API "
    "(see above). Carry on with the task from where it stopped."
)
"""What a retry after a transient failure says when it resumes the CLI's session."""

INSTALL_HINT = (
    "install the claude CLI on the agent's machine (npm install -g @anthropic-ai/claude-code) "
    "or set SPECLOOM_AGENT_CLAUDE_EXECUTABLE to its path; `specloom doctor` checks it"
)


class ClaudeCodeBackend:
    """Runs an AgentCommand through the ``claude`` CLI, with a silence watchdog."""

    name = "claude-code"

    def __init__(self, settings: ClaudeCodeSettings | None = None) -> None:
        self.settings = settings or ClaudeCodeSettings()

    async def run(self, request: AgentRequest, transcript: Transcript) -> AgentOutcome:
        """Run the CLI to its ``result`` event, retrying passing failures with back-off.

        A retry resumes the CLI's own session when the failed run had one
        (the work so far is kept), and starts over otherwise.
        """
        meter = UsageMeter(model=request.command.model)
        policy = self.settings.retry
        attempt = 1
        current = request
        while True:
            outcome = await self._attempt(current, transcript, meter)
            failure = outcome.failure
            if (
                failure is None
                or failure.kind is not FailureClass.TRANSIENT
                or attempt >= policy.attempts
                or request.cancel.is_set()
            ):
                break
            meter.retries += 1
            if not await back_off(policy, attempt, failure, transcript, request.cancel, "claude"):
                break
            attempt += 1
            if outcome.conversation_id:
                current = _resumed(request, outcome.conversation_id)
        last = outcome.failure
        if last is not None and last.kind is FailureClass.TRANSIENT and attempt > 1:
            outcome.failure = Failure(
                FailureClass.TRANSIENT,
                f"{last.message} (still failing after {attempt} tries)",
                "the API kept failing for a passing reason; resume the session later",
                last.status,
            )
        if outcome.failure is not None:
            outcome.error_message = outcome.failure.describe()
        meter.model = meter.model or str(outcome.data.get("model", ""))
        outcome.usage = meter
        return outcome

    async def _attempt(
        self, request: AgentRequest, transcript: Transcript, meter: UsageMeter
    ) -> AgentOutcome:
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
        if parser.model:
            data["model"] = parser.model
        meter.retries += parser.api_retries
        if parser.result is not None:
            count_usage(meter, parser.result)
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
            failure = Failure(
                FailureClass.PERMANENT, f"claude CLI could not start: {start_error}", INSTALL_HINT
            )
            return AgentOutcome(
                status=pb.RESULT_STATUS_ERROR,
                exit_code=code,
                error_message=failure.describe(),
                data=data,
                failure=failure,
            )
        if process.idle_timed_out:
            data["watchdog"] = True
            # A known hang of the CLI: passing, and a retry resumes the session.
            failure = Failure(
                FailureClass.TRANSIENT,
                f"claude CLI printed nothing for {self.settings.silence_timeout:g}s and was "
                "killed by the watchdog (a known hang of the CLI)",
            )
            return AgentOutcome(
                status=pb.RESULT_STATUS_ERROR,
                conversation_id=conversation,
                exit_code=code,
                error_message=failure.message,
                data=data,
                failure=failure,
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
        for key in ("num_turns", "total_cost_usd", "subtype", "terminal_reason"):
            value = result.get(key)
            if isinstance(value, int | float | str):
                data[key] = value
        denials = result.get("permission_denials")
        if isinstance(denials, list):
            data["permission_denials"] = len(denials)
        summary = result.get("result") if isinstance(result.get("result"), str) else ""
        classified = classify_result(result, parser.assistant_error)
        if classified is not None:
            return AgentOutcome(
                status=pb.RESULT_STATUS_ERROR,
                conversation_id=conversation,
                summary=str(summary or ""),
                exit_code=code,
                error_message=classified.describe(),
                data=data,
                failure=classified,
            )
        return AgentOutcome(
            status=pb.RESULT_STATUS_OK,
            conversation_id=conversation,
            summary=str(summary or ""),
            exit_code=code,
            data=data,
        )


def _resumed(request: AgentRequest, session_id: str) -> AgentRequest:
    """``request`` continuing the CLI session ``session_id`` after a passing failure."""
    command = pb.AgentCommand()
    command.CopyFrom(request.command)
    command.resume_conversation_id = session_id
    command.prompt = CONTINUE_PROMPT
    return replace(request, command=command)
