"""What every agent backend offers the executor."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from specloom.agent.backends.failures import Failure
from specloom.agent.usage import UsageMeter
from specloom.agent.workspace import Workspace
from specloom.protoconv import JsonObject
from specloom.v1 import common_pb2 as pb

Transcript = Callable[[str], Awaitable[None]]
"""Receives one transcript line (what the agent said or did), without newline."""

__all__ = ["AgentBackend", "AgentOutcome", "AgentRequest", "Transcript"]


@dataclass(frozen=True)
class AgentRequest:
    """One AgentCommand to carry out."""

    command: pb.AgentCommand
    workspace: Workspace
    workdir: Path
    """Resolved directory the agent works in; its tools are confined to it."""
    metadata: JsonObject = field(default_factory=dict)
    """``Command.metadata``: session_type, step, component, context, round..."""
    execution_mode: pb.ExecutionMode.ValueType = pb.EXECUTION_MODE_UNSPECIFIED
    """The session's ExecutionMode; decides how freely the agent may use tools."""
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the command is cancelled or timed out; backends stop promptly."""


@dataclass
class AgentOutcome:
    """What the agent did."""

    status: pb.ResultStatus.ValueType
    conversation_id: str = ""
    """Give this back as ``resume_conversation_id`` to continue the conversation."""
    summary: str = ""
    """The agent's closing message (becomes ``Result.stdout``)."""
    error_message: str = ""
    exit_code: int = 0
    data: JsonObject = field(default_factory=dict)
    """Backend-specific extras for ``Result.data`` (turns, cost, replayed...)."""
    failure: Failure | None = None
    """For an ERROR: what kind of failure it was (None: not classified)."""
    usage: UsageMeter | None = None
    """Tokens per model, turns and retries (None: the backend counts nothing)."""


class AgentBackend(Protocol):
    """A way of running an AgentCommand."""

    name: str
    """Registered as capability ``agent:<name>`` and reported as ``data.backend``."""

    async def run(self, request: AgentRequest, transcript: Transcript) -> AgentOutcome:
        """Do the work in ``request.workdir``.

        Failures the agent hit are an outcome with ERROR status, not an
        exception, classified (``failure``) where the backend can tell;
        transient ones are retried inside ``run`` first. On cancellation of
        the calling task the backend must release what it started
        (processes, connections) before returning.
        """
        ...
