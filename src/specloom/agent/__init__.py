"""The executor agent: runs commands from the gateway in a local git workspace.

``specloom agent`` calls :func:`run_agent` with :class:`AgentSettings`.
:class:`Executor` runs one command without any gateway (tests, manual
mode); the modules behind it are ``workspace`` (path confinement),
``shell`` (process groups, capped output), ``gitops``, ``collect`` and the
agent ``backends``.
"""

from specloom.agent.config import BACKENDS, AgentSettings, build_executor
from specloom.agent.connection import AgentLoop, run_agent
from specloom.agent.executor import Executor, ExecutorOptions
from specloom.agent.workspace import Workspace

__all__ = [
    "BACKENDS",
    "AgentLoop",
    "AgentSettings",
    "Executor",
    "ExecutorOptions",
    "Workspace",
    "build_executor",
    "run_agent",
]
