"""The anthropic backend: the Messages API with file and command tools.

The model gets five tools — ``read_file``, ``write_file``, ``edit_file``
(exact string replace), ``list_files`` and ``run_command`` — and the
executor carries them out in the command's working directory. Every path
goes through :mod:`specloom.agent.backends.files` (absolute paths, ``..``
escapes and symlinks that leave the directory are refused, as are ``.git``
and ``.specloom``); ``run_command`` runs an argv, never a shell string, with a
time limit, and — unless the session is agentic (full autonomy) — only when
``argv[0]`` is one of the command's ``allowed_commands``. A refusal goes
back to the model as a tool error it can read and adapt to; it never ends
the run.

The conversation is saved after every turn under
``.specloom/conversations/<id>.json`` at the workspace root, so a fix or
revise step that names it in ``resume_conversation_id`` continues it.

``base_url`` and ``api_key`` come from settings, falling back to the SDK's
own ``ANTHROPIC_BASE_URL`` / ``ANTHROPIC_API_KEY``, so tests point the real
SDK at a local stand-in server.

Failures are classified (:mod:`.failures`): a connection error, a timeout,
429, 5xx or overloaded is retried here with back-off (the SDK's own silent
retries are off, so every retry is a transcript line); a refused key, an
unknown model or a refused request fails the step at once with the API's
own message and a hint; running out of turns or a response cut short is the
model's failure. Tokens are counted from every response's ``usage``.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from specloom.agent.backends.base import AgentOutcome, AgentRequest, Transcript
from specloom.agent.backends.failures import (
    Failure,
    FailureClass,
    RetryPolicy,
    back_off,
    is_transient_status,
)
from specloom.agent.backends.files import (
    ToolError,
    edit_file,
    list_files,
    read_file,
    write_file,
)
from specloom.agent.shell import child_environment, run_process
from specloom.agent.usage import UsageMeter
from specloom.agent.workspace import is_safe_id
from specloom.v1 import common_pb2 as pb

if TYPE_CHECKING:
    import anthropic

__all__ = ["TOOLS", "AnthropicBackend", "AnthropicSettings"]

_TOOL_OUTPUT_TAIL = 32 * 1024

TOOLS: list[dict[str, Any]] = [
    {
        "name": "read_file",
        "description": "Read a text file. Paths are relative to the working directory.",
        "input_schema": {
            "type": "object",
            "properties": {"path": {"type": "string"}},
            "required": ["path"],
        },
    },
    {
        "name": "write_file",
        "description": "Create or overwrite a file with the given content (parents are created).",
        "input_schema": {
            "type": "object",
            "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
            "required": ["path", "content"],
        },
    },
    {
        "name": "edit_file",
        "description": "Replace the single exact occurrence of old_string with new_string.",
        "input_schema": {
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "old_string": {"type": "string"},
                "new_string": {"type": "string"},
            },
            "required": ["path", "old_string", "new_string"],
        },
    },
    {
        "name": "list_files",
        "description": "List files under a directory, recursively ('.' is the working directory).",
        "input_schema": {
            "type": "object",
            "properties": {"path": {"type": "string"}},
        },
    },
    {
        "name": "run_command",
        "description": (
            "Run a program with arguments (an argv list, no shell) in the working directory. "
            "Only the allowed programs may run."
        ),
        "input_schema": {
            "type": "object",
            "properties": {"argv": {"type": "array", "items": {"type": "string"}}},
            "required": ["argv"],
        },
    },
]
"""Tool definitions sent with every request."""


@dataclass(frozen=True)
class AnthropicSettings:
    """How the anthropic backend reaches the API."""

    api_key: str | None = None
    """API key; None uses ``ANTHROPIC_API_KEY``."""
    base_url: str | None = None
    """API base URL; None uses ``ANTHROPIC_BASE_URL`` or the public endpoint."""
    model: str = "claude-sonnet-5-5"
    """Model when the command names none."""
    max_tokens: int = 8192
    """Tokens per response."""
    max_turns: int = 40
    """Turns when the command sets none."""
    command_timeout: float = 600.0
    """Seconds one ``run_command`` may take."""
    request_timeout: float = 600.0
    """Seconds one API request may take."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    """Retries of a request that failed for a passing reason (connection, 429, 5xx)."""


_HINTS = {
    401: "the API refused the key: set ANTHROPIC_API_KEY (or SPECLOOM_AGENT_ANTHROPIC_API_KEY) "
    "to a valid key, then resume the session (`specloom doctor` checks it)",
    402: "check the account's billing and credit balance, then resume the session",
    403: "the key may not use this model or feature: check its workspace and permissions",
    413: "the request is too large: shorten the inputs the prompt includes",
}


def _hint(status: int, model: str) -> str:
    if status == 404:
        return (
            f"the model {model!r} is not available to this key: set "
            "SPECLOOM_AGENT_ANTHROPIC_MODEL (or the command's model) to one it can use"
        )
    if status == 400:
        return (
            "the API refused the request as invalid (often a prompt too long for the "
            "model): shorten the inputs or choose a model with a larger context"
        )
    return _HINTS.get(status, "the API refused the request; its message says why")


NO_KEY = Failure(
    FailureClass.PERMANENT,
    "no Anthropic API key is configured",
    "set ANTHROPIC_API_KEY (or SPECLOOM_AGENT_ANTHROPIC_API_KEY) for the agent, "
    "then resume the session",
)


def classify(exc: Exception, model: str) -> Failure:
    """A failure of the Anthropic SDK, classified."""
    # Imported where used: the SDK takes most of a second to import, and
    # every ``specloom`` command imports this module through the agent
    # package (``status`` and ``next`` read the line's scan cache).
    import anthropic

    if isinstance(exc, anthropic.APIConnectionError):
        # APITimeoutError is one of these: the request never got an answer.
        return Failure(FailureClass.TRANSIENT, f"could not reach the Anthropic API: {exc}")
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        body = exc.body if isinstance(exc.body, dict) else {}
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        kind = str(error.get("type", "")) if isinstance(error, dict) else ""
        said = str(error.get("message", "")) if isinstance(error, dict) else ""
        message = f"Anthropic API {status}" + (f" {kind}" if kind else "") + f": {said or exc}"
        retry_after = _retry_after(exc.response.headers.get("retry-after"))
        should = exc.response.headers.get("x-should-retry")
        transient = should == "true" or (should != "false" and is_transient_status(status))
        if transient:
            return Failure(FailureClass.TRANSIENT, message, status=status, retry_after=retry_after)
        return Failure(FailureClass.PERMANENT, message, _hint(status, model), status=status)
    if isinstance(exc, anthropic.AnthropicError):
        # Raised before any request: no key configured, most often.
        return Failure(
            FailureClass.PERMANENT,
            f"Anthropic SDK: {exc}",
            "set ANTHROPIC_API_KEY (or SPECLOOM_AGENT_ANTHROPIC_API_KEY) for the agent",
        )
    raise exc


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None  # an HTTP date: the back-off's own delay applies


class _Failed(Exception):
    """A request failed for good (permanent, or transient past the retries)."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def _block_param(block: Any) -> dict[str, Any]:
    """A response block as a request block (only the fields the API takes back)."""
    kind = getattr(block, "type", "")
    if kind == "text":
        return {"type": "text", "text": block.text}
    if kind == "tool_use":
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    if kind == "thinking":
        return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
    return cast(dict[str, Any], block.model_dump(mode="json", exclude_none=True))


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 1] + "…"


class AnthropicBackend:
    """Runs an AgentCommand through the Messages API with confined tools."""

    name = "anthropic"

    def __init__(self, settings: AnthropicSettings | None = None) -> None:
        self.settings = settings or AnthropicSettings()

    async def run(self, request: AgentRequest, transcript: Transcript) -> AgentOutcome:
        """Converse until the model stops asking for tools or the turn budget is spent."""
        command = request.command
        store = request.workspace.conversations
        conversation, messages = await self._load(store, command.resume_conversation_id, transcript)
        if isinstance(conversation, AgentOutcome):
            return conversation
        messages.append({"role": "user", "content": command.prompt})
        model = command.model or self.settings.model
        data: dict[str, Any] = {"backend": self.name, "model": model}
        meter = UsageMeter(model=model)
        max_turns = command.max_turns or self.settings.max_turns
        summary = ""
        if not (
            self.settings.api_key
            or os.environ.get("ANTHROPIC_API_KEY")
            or os.environ.get("ANTHROPIC_AUTH_TOKEN")
        ):
            return self._failed(NO_KEY, conversation, summary, data, meter)
        import anthropic  # late on purpose: see classify()

        try:
            client = anthropic.AsyncAnthropic(
                api_key=self.settings.api_key,
                base_url=self.settings.base_url,
                timeout=self.settings.request_timeout,
                # Retries are ours (each one visible in the transcript).
                max_retries=0,
            )
        except anthropic.AnthropicError as exc:
            return self._failed(classify(exc, model), conversation, summary, data, meter)
        try:
            for turn in range(1, max_turns + 1):
                if request.cancel.is_set():
                    return self._outcome(
                        pb.RESULT_STATUS_ERROR, conversation, summary, data, meter, "cancelled"
                    )
                kwargs: dict[str, Any] = {
                    "model": model,
                    "max_tokens": self.settings.max_tokens,
                    "tools": TOOLS,
                    "messages": messages,
                }
                if command.system_prompt:
                    kwargs["system"] = command.system_prompt
                response = await self._create(client, kwargs, meter, transcript, request.cancel)
                if response is None:
                    return self._outcome(
                        pb.RESULT_STATUS_ERROR, conversation, summary, data, meter, "cancelled"
                    )
                meter.turns = turn
                meter.add_api_usage(
                    str(getattr(response, "model", "") or model),
                    response.usage.model_dump() if response.usage is not None else None,
                )
                messages.append(
                    {"role": "assistant", "content": [_block_param(b) for b in response.content]}
                )
                data["turns"] = turn
                texts = [b.text for b in response.content if b.type == "text"]
                for text in texts:
                    for line in text.splitlines() or [""]:
                        await transcript(f"assistant: {line}")
                if texts:
                    summary = "\n".join(texts)
                uses = [b for b in response.content if b.type == "tool_use"]
                if response.stop_reason != "tool_use" or not uses:
                    self._save(store, conversation, model, messages)
                    if response.stop_reason in ("end_turn", "stop_sequence", None):
                        return self._outcome(
                            pb.RESULT_STATUS_OK, conversation, summary, data, meter
                        )
                    return self._failed(
                        Failure(
                            FailureClass.MODEL,
                            f"the model stopped with {response.stop_reason!r}",
                        ),
                        conversation,
                        summary,
                        data,
                        meter,
                    )
                results = [await self._tool(request, use, transcript) for use in uses]
                messages.append({"role": "user", "content": results})
                self._save(store, conversation, model, messages)
            return self._failed(
                Failure(FailureClass.MODEL, f"the agent did not finish within {max_turns} turns"),
                conversation,
                summary,
                data,
                meter,
            )
        except _Failed as failed:
            self._save(store, conversation, model, messages)
            return self._failed(failed.failure, conversation, summary, data, meter)
        finally:
            await client.close()

    async def _create(
        self,
        client: anthropic.AsyncAnthropic,
        kwargs: dict[str, Any],
        meter: UsageMeter,
        transcript: Transcript,
        cancel: asyncio.Event,
    ) -> Any:
        """One Messages request, retried while it fails for a passing reason (None: cancelled)."""
        import anthropic  # late on purpose: see classify()

        policy = self.settings.retry
        attempt = 1
        while True:
            try:
                return await client.messages.create(**kwargs)
            except anthropic.AnthropicError as exc:
                failure = classify(exc, str(kwargs["model"]))
            if failure.kind is not FailureClass.TRANSIENT or attempt >= policy.attempts:
                if failure.kind is FailureClass.TRANSIENT and attempt > 1:
                    failure = Failure(
                        failure.kind,
                        f"{failure.message} (still failing after {attempt} tries)",
                        "the API kept failing for a passing reason; resume the session later",
                        failure.status,
                    )
                raise _Failed(failure)
            meter.retries += 1
            if not await back_off(policy, attempt, failure, transcript, cancel, "anthropic"):
                return None
            attempt += 1

    def _failed(
        self,
        failure: Failure,
        conversation: str,
        summary: str,
        data: dict[str, Any],
        meter: UsageMeter,
    ) -> AgentOutcome:
        outcome = self._outcome(
            pb.RESULT_STATUS_ERROR, conversation, summary, data, meter, failure.describe()
        )
        outcome.failure = failure
        return outcome

    @staticmethod
    def _outcome(
        status: pb.ResultStatus.ValueType,
        conversation: str,
        summary: str,
        data: dict[str, Any],
        meter: UsageMeter,
        error: str = "",
    ) -> AgentOutcome:
        return AgentOutcome(
            status=status,
            conversation_id=conversation,
            summary=summary,
            error_message=error,
            data=dict(data),
            usage=meter,
        )

    async def _load(
        self, store: Path, resume: str, transcript: Transcript
    ) -> tuple[str | AgentOutcome, list[dict[str, Any]]]:
        if not resume:
            return f"conv-{uuid.uuid4().hex}", []
        if not is_safe_id(resume):
            return AgentOutcome(
                status=pb.RESULT_STATUS_ERROR,
                error_message=f"invalid conversation id {resume!r}",
                data={"backend": self.name},
            ), []
        path = store / f"{resume}.json"
        if not path.is_file():
            # Another executor held the conversation; the prompt is complete
            # on its own, so carry on in a fresh conversation rather than fail.
            await transcript(f"conversation {resume} is not on this executor; starting a new one")
            return f"conv-{uuid.uuid4().hex}", []
        saved = json.loads(path.read_text(encoding="utf-8"))
        await transcript(f"resuming conversation {resume} ({len(saved['messages'])} messages)")
        return resume, list(saved["messages"])

    @staticmethod
    def _save(store: Path, conversation: str, model: str, messages: list[dict[str, Any]]) -> None:
        store.mkdir(parents=True, exist_ok=True)
        target = store / f"{conversation}.json"
        temporary = target.with_suffix(".json.tmp")
        temporary.write_text(
            json.dumps({"id": conversation, "model": model, "messages": messages}),
            encoding="utf-8",
        )
        os.replace(temporary, target)

    async def _tool(
        self, request: AgentRequest, use: Any, transcript: Transcript
    ) -> dict[str, Any]:
        args = use.input if isinstance(use.input, dict) else {}
        await transcript(f"tool {use.name}: {_short(args)}")
        try:
            content = await self._call(request, use.name, args)
        except ToolError as exc:
            await transcript(f"tool {use.name} refused: {exc}")
            return {
                "type": "tool_result",
                "tool_use_id": use.id,
                "content": str(exc),
                "is_error": True,
            }
        except (OSError, UnicodeDecodeError) as exc:
            await transcript(f"tool {use.name} failed: {exc}")
            return {
                "type": "tool_result",
                "tool_use_id": use.id,
                "content": f"failed: {exc}",
                "is_error": True,
            }
        return {"type": "tool_result", "tool_use_id": use.id, "content": content}

    async def _call(self, request: AgentRequest, name: str, args: dict[str, Any]) -> str:
        root = request.workdir

        def text(key: str, default: str | None = None) -> str:
            value = args.get(key, default)
            if not isinstance(value, str):
                raise ToolError(f"{name}: '{key}' must be a string")
            return value

        if name == "read_file":
            return read_file(root, text("path"))
        if name == "write_file":
            size = write_file(root, text("path"), text("content"))
            return f"wrote {size} bytes to {text('path')}"
        if name == "edit_file":
            edit_file(root, text("path"), text("old_string"), text("new_string"))
            return f"edited {text('path')}"
        if name == "list_files":
            found = list_files(root, text("path", "."))
            return "\n".join(found) if found else "(no files)"
        if name == "run_command":
            return await self._run_command(request, args.get("argv"))
        raise ToolError(f"unknown tool {name!r}")

    async def _run_command(self, request: AgentRequest, argv: Any) -> str:
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise ToolError("run_command: 'argv' must be a non-empty list of strings")
        allowed = list(request.command.allowed_commands)
        # Exact match on argv[0]: "pytest" allows "pytest", not "./pytest" or
        # "/tmp/pytest", which would be a different program under the same name.
        # Only an agentic session runs any program (full autonomy, as the
        # claude CLI's bypassPermissions); AUTO, MANUAL and unset are confined.
        confined = request.execution_mode != pb.EXECUTION_MODE_AGENTIC
        if confined and argv[0] not in allowed:
            shown = ", ".join(allowed) if allowed else "none"
            raise ToolError(f"refused: {argv[0]!r} is not an allowed command (allowed: {shown})")
        outcome = await run_process(
            argv,
            cwd=request.workdir,
            env=child_environment(),
            time_limit=self.settings.command_timeout,
            cancel=request.cancel,
            tail_bytes=_TOOL_OUTPUT_TAIL,
        )
        if outcome.start_error:
            raise ToolError(outcome.start_error)
        note = " (killed: time limit)" if outcome.timed_out else ""
        return (
            f"exit code {outcome.exit_code}{note}\n"
            f"--- stdout (tail) ---\n{outcome.stdout_tail}\n"
            f"--- stderr (tail) ---\n{outcome.stderr_tail}"
        )
