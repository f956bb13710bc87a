"""Agent backends: ways of running an AgentCommand (see :class:`AgentBackend`)."""

from specloom.agent.backends.base import AgentBackend, AgentOutcome, AgentRequest, Transcript

__all__ = ["AgentBackend", "AgentOutcome", "AgentRequest", "Transcript"]
