"""Reading the ``claude`` CLI's stream-json output, and what its end means.

:class:`StreamParser` turns events into transcript lines as they arrive and
keeps what decides the outcome: the session id, the final ``result`` event,
the ``error`` of the last assistant message, and the CLI's own API retries
(``system``/``api_retry`` events, one transcript line each).

:func:`classify_result` reads a failed ``result`` event the way the CLI
means it. An API failure ends with ``subtype: "success"`` and ``is_error:
true`` — the subtype names the loop's ending, not the outcome — so the
message is the ``result`` text (the CLI's words: "Not logged in · Please run
/login", "API Error: 529 Overloaded…"), and the class comes from the
assistant message's ``error`` (``authentication_failed``, ``rate_limit``,
``server_error``, ``model_not_found``, ``invalid_request``,
``billing_error``) and ``api_error_status``. These fields are the ones the
Agent SDK types (``AssistantMessage.error``, ``ResultMessage.api_error_status``).
"""

from __future__ import annotations

import json
from typing import Any

from specloom.agent.backends.base import Transcript
from specloom.agent.backends.failures import Failure, FailureClass, is_transient_status
from specloom.agent.usage import UsageMeter

__all__ = ["StreamParser", "classify_result", "count_usage"]

_MAX_LINE = 32 * 1024 * 1024

LOGIN_HINT = (
    "log the claude CLI in on the agent's machine (run `claude`, then /login), or give the "
    "agent ANTHROPIC_API_KEY; `specloom doctor` checks it"
)
_PERMANENT_HINTS = {
    "authentication_failed": "the API refused the credentials: set a valid ANTHROPIC_API_KEY "
    "for the agent, or unset it and log the CLI in (`claude`, then /login)",
    "billing_error": "check the account's billing and credit balance, then resume the session",
    "model_not_found": "choose a model the account can use (the command's model, or the CLI's "
    "default), then resume the session",
    "invalid_request": "the API refused the request (often a prompt too long for the model): "
    "shorten the inputs, then resume the session",
}
_TRANSIENT_ERRORS = frozenset({"rate_limit", "server_error", "overloaded", "unknown"})


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
        self.model = ""
        self.result: dict[str, Any] | None = None
        self.assistant_error = ""
        """``error`` of the last assistant message (the CLI's class of an API failure)."""
        self.api_retries = 0
        """Requests the CLI retried itself."""
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
            self.model = str(event.get("model") or "")
            return [
                f"claude: session {event.get('session_id', '?')}, model {event.get('model', '?')}, "
                f"permission mode {event.get('permissionMode', '?')}"
            ]
        if kind == "system" and event.get("subtype") == "api_retry":
            self.api_retries += 1
            status = event.get("error_status")
            delay = event.get("retry_delay_ms")
            wait = f" in {delay / 1000:.1f}s" if isinstance(delay, int | float) else ""
            return [
                f"claude: API request failed ({status or 'no status'} {event.get('error', '?')}); "
                f"the CLI retries ({event.get('attempt', '?')} of "
                f"{event.get('max_retries', '?')}){wait}"
            ]
        if kind in ("assistant", "user"):
            if kind == "assistant" and isinstance(event.get("error"), str):
                self.assistant_error = event["error"]
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
            ending = event.get("terminal_reason") or event.get("subtype", "?")
            failed = " with an error" if event.get("is_error") else ""
            return [f"claude: finished ({ending}){failed} after {turns} turn(s)"]
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


def classify_result(result: dict[str, Any], assistant_error: str) -> Failure | None:
    """The failure a ``result`` event reports (None when it reports success)."""
    subtype = str(result.get("subtype") or "")
    if not result.get("is_error") and subtype == "success":
        return None
    text = result.get("result")
    errors = result.get("errors")
    said = text if isinstance(text, str) and text else ""
    if not said and isinstance(errors, list) and errors:
        said = "; ".join(str(e) for e in errors)
    said = said or f"the run ended with {subtype or 'an error'}"
    message = f"claude CLI: {said}"
    ending = str(result.get("terminal_reason") or "")
    if subtype == "error_max_turns" or ending == "max_turns":
        return Failure(FailureClass.MODEL, message)
    status = result.get("api_error_status")
    status = status if isinstance(status, int) and not isinstance(status, bool) else None
    if ending == "prompt_too_long":
        return Failure(FailureClass.PERMANENT, message, _PERMANENT_HINTS["invalid_request"], status)
    if assistant_error == "authentication_failed" and "/login" in said:
        return Failure(FailureClass.PERMANENT, message, LOGIN_HINT, status)
    if assistant_error in _PERMANENT_HINTS:
        return Failure(FailureClass.PERMANENT, message, _PERMANENT_HINTS[assistant_error], status)
    if assistant_error in _TRANSIENT_ERRORS or (status is not None and is_transient_status(status)):
        return Failure(FailureClass.TRANSIENT, message, status=status)
    if ending == "api_error":
        # An API failure the CLI did not name: by its status when it has one.
        if status is not None and 400 <= status < 500:
            return Failure(FailureClass.PERMANENT, message, "the API refused the request", status)
        return Failure(FailureClass.TRANSIENT, message, status=status)
    if subtype == "error_during_execution":
        return Failure(FailureClass.MODEL, message)
    return Failure(FailureClass.MODEL, message)


def count_usage(meter: UsageMeter, result: dict[str, Any]) -> None:
    """Add a ``result`` event's tokens (per model where it says) and turns to ``meter``."""
    turns = result.get("num_turns")
    if isinstance(turns, int) and not isinstance(turns, bool):
        meter.turns += turns
    per_model = result.get("modelUsage")
    if isinstance(per_model, dict) and per_model:
        for model, counted in per_model.items():
            if not isinstance(counted, dict):
                continue
            meter.add_api_usage(
                str(model),
                {
                    "input_tokens": counted.get("inputTokens"),
                    "output_tokens": counted.get("outputTokens"),
                    "cache_creation_input_tokens": counted.get("cacheCreationInputTokens"),
                    "cache_read_input_tokens": counted.get("cacheReadInputTokens"),
                },
            )
        return
    usage = result.get("usage")
    if isinstance(usage, dict):
        meter.add_api_usage(meter.model, usage)
