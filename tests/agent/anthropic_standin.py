"""A stand-in for the Anthropic Messages API (api.anthropic.com), for tests.

The real API cannot be reached from here (no network, no key), so tests
point the real ``anthropic`` SDK — and the real ``claude`` CLI — at this
local HTTP server instead. It speaks just enough of the wire protocol:

- ``POST /v1/messages`` answers with the next scripted reply, as one JSON
  message or, when the request says ``"stream": true``, as the server-sent
  event sequence the API uses (``message_start``, ``content_block_start``,
  ``content_block_delta`` with ``text_delta`` / ``input_json_delta``,
  ``content_block_stop``, ``message_delta``, ``message_stop``);
- ``POST /v1/messages/count_tokens`` answers a token count;
- everything else is a 404 in the API's error shape.

- ``GET /v1/models`` lists models (the cheap call ``specloom doctor`` uses
  to check a key);
- every request is checked against ``valid_keys`` when it is set: another
  key gets the API's 401 ``authentication_error``.

Replies are scripted per test: a list of :class:`Reply` (or :class:`Failure`:
an error status in the API's error shape, or a connection dropped without an
answer) consumed in order, or a function of the request. Every request body
is recorded so tests can assert what the client sent (tool results, resumed
history...).

Nothing here is a model; it never generates anything.
"""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

USAGE = {"input_tokens": 10, "output_tokens": 10}
"""Token usage a reply reports unless it says otherwise."""


@dataclass
class Reply:
    """One assistant message: text and tool calls, in order."""

    blocks: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str = "end_turn"
    usage: dict[str, int] = field(default_factory=lambda: dict(USAGE))
    """The message's ``usage`` (input, output and cache token counts)."""

    @classmethod
    def text(cls, text: str) -> Reply:
        """A final text answer."""
        return cls(blocks=[{"type": "text", "text": text}], stop_reason="end_turn")

    @classmethod
    def tools(cls, *calls: tuple[str, dict[str, Any]], text: str = "") -> Reply:
        """A turn that calls tools (``(name, input)`` pairs), optionally after some text."""
        blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
        for name, arguments in calls:
            blocks.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_{uuid.uuid4().hex[:20]}",
                    "name": name,
                    "input": arguments,
                }
            )
        return cls(blocks=blocks, stop_reason="tool_use")


@dataclass
class Failure:
    """An error answer in the API's shape, or (``status`` 0) a dropped connection."""

    status: int
    kind: str = ""
    """The error's ``type`` (``overloaded_error``, ``rate_limit_error``...)."""
    message: str = ""
    retry_after: float | None = None
    """Seconds sent in a ``retry-after`` header."""

    @classmethod
    def overloaded(cls) -> Failure:
        """529, what the API answers when it is overloaded."""
        return cls(529, "overloaded_error", "Overloaded")

    @classmethod
    def rate_limited(cls, retry_after: float | None = None) -> Failure:
        """429 with an optional ``retry-after``."""
        return cls(
            429,
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
            retry_after,
        )

    @classmethod
    def server_error(cls) -> Failure:
        """500."""
        return cls(500, "api_error", "Internal server error")

    @classmethod
    def unauthorized(cls) -> Failure:
        """401, the answer to a key the API does not know."""
        return cls(401, "authentication_error", "invalid x-api-key")

    @classmethod
    def model_not_found(cls, model: str) -> Failure:
        """404 for a model name the API does not serve."""
        return cls(404, "not_found_error", f"model: {model}")

    @classmethod
    def bad_request(cls, message: str) -> Failure:
        """400 ``invalid_request_error``."""
        return cls(400, "invalid_request_error", message)

    @classmethod
    def dropped(cls) -> Failure:
        """The connection closes without any answer."""
        return cls(0)


Answer = Reply | Failure
Responder = Callable[[dict[str, Any]], Answer]


class StandinAPI:
    """The server's state: scripted replies and recorded requests."""

    def __init__(self) -> None:
        self.replies: list[Answer] = []
        self.responder: Responder | None = None
        """When set, decides every reply (takes precedence over ``replies``)."""
        self.requests: list[dict[str, Any]] = []
        """Bodies of every ``/v1/messages`` request, in order."""
        self.paths: list[str] = []
        """Every request line's path, in order (including ones answered 404)."""
        self.headers: list[dict[str, str]] = []
        self.valid_keys: set[str] | None = None
        """When set, only these keys are accepted (others get 401)."""
        self.models = ["claude-sonnet-4-5", "claude-haiku-4-5"]
        """What ``GET /v1/models`` lists."""
        self._lock = threading.Lock()
        self.base_url = ""

    def script(self, *replies: Answer) -> None:
        """Queue replies for the next requests."""
        with self._lock:
            self.replies.extend(replies)

    def next_reply(self, body: dict[str, Any]) -> Answer:
        with self._lock:
            self.requests.append(body)
            if self.responder is not None:
                return self.responder(body)
            if not self.replies:
                return Reply.text("(stand-in: no scripted reply left)")
            return self.replies.pop(0)


def _message(reply: Reply, model: str) -> dict[str, Any]:
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": reply.blocks,
        "stop_reason": reply.stop_reason,
        "stop_sequence": None,
        "usage": dict(reply.usage),
    }


def _events(message: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    start = {**message, "content": [], "stop_reason": None}
    start["usage"] = {**message["usage"], "output_tokens": 1}
    yield "message_start", {"type": "message_start", "message": start}
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            yield (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "text_delta", "text": block["text"]},
                },
            )
        else:
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {**block, "input": {}},
                },
            )
            yield (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {
                        "type": "input_json_delta",
                        "partial_json": json.dumps(block["input"]),
                    },
                },
            )
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": message["usage"].get("output_tokens", 0)},
        },
    )
    yield "message_stop", {"type": "message_stop"}


def _handler(api: StandinAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean; paths are recorded on the api object

        def _read_json(self) -> dict[str, Any]:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b"{}"
            body = json.loads(raw or b"{}")
            return body if isinstance(body, dict) else {}

        def _send_json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("request-id", f"req_{uuid.uuid4().hex[:12]}")
            self.end_headers()
            self.wfile.write(data)

        def _key_refused(self) -> bool:
            sent = self.headers.get("x-api-key") or ""
            bearer = self.headers.get("authorization") or ""
            if not sent and bearer.lower().startswith("bearer "):
                sent = bearer[7:]
            if api.valid_keys is None or sent in api.valid_keys:
                return False
            self._fail(Failure.unauthorized())
            return True

        def _fail(self, failure: Failure) -> None:
            if failure.status == 0:
                # Drop the connection: no status line, nothing.
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            data = json.dumps(
                {
                    "type": "error",
                    "error": {"type": failure.kind, "message": failure.message},
                    "request_id": f"req_{uuid.uuid4().hex[:12]}",
                }
            ).encode()
            self.send_response(failure.status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("request-id", f"req_{uuid.uuid4().hex[:12]}")
            if failure.retry_after is not None:
                self.send_header("retry-after", f"{failure.retry_after:g}")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            api.paths.append(self.path)
            api.headers.append({k.lower(): v for k, v in self.headers.items()})
            if self.path.split("?", 1)[0] == "/v1/models":
                if self._key_refused():
                    return
                listed = [
                    {
                        "type": "model",
                        "id": m,
                        "display_name": m,
                        "created_at": "2026-01-01T00:00:00Z",
                    }
                    for m in api.models
                ]
                first = listed[0]["id"] if listed else None
                last = listed[-1]["id"] if listed else None
                self._send_json(
                    200, {"data": listed, "has_more": False, "first_id": first, "last_id": last}
                )
                return
            self._not_found()

        def do_HEAD(self) -> None:
            api.paths.append(self.path)
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def _not_found(self) -> None:
            self._send_json(
                404,
                {"type": "error", "error": {"type": "not_found_error", "message": self.path}},
            )

        def do_POST(self) -> None:
            api.paths.append(self.path)
            api.headers.append({k.lower(): v for k, v in self.headers.items()})
            path = self.path.split("?", 1)[0]
            body = self._read_json()
            if self._key_refused():
                return
            if path == "/v1/messages/count_tokens":
                self._send_json(200, {"input_tokens": 100})
                return
            if path != "/v1/messages":
                self._not_found()
                return
            answer = api.next_reply(body)
            if isinstance(answer, Failure):
                self._fail(answer)
                return
            message = _message(answer, str(body.get("model", "stand-in")))
            if not body.get("stream"):
                self._send_json(200, message)
                return
            chunks = [
                f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
                for name, data in _events(message)
            ]
            payload = b"".join(chunks)
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("content-length", str(len(payload)))
            self.send_header("request-id", f"req_{uuid.uuid4().hex[:12]}")
            self.end_headers()
            self.wfile.write(payload)

    return Handler


@contextmanager
def serve_standin() -> Iterator[StandinAPI]:
    """Run the stand-in on 127.0.0.1 (an ephemeral port) for the block's duration."""
    api = StandinAPI()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="anthropic-standin", daemon=True)
    thread.start()
    api.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
