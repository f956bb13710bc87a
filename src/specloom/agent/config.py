"""Executor agent settings (environment ``SPECLOOM_AGENT_*``) and the executor they build."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from specloom.agent.backends.anthropic_api import AnthropicBackend, AnthropicSettings
from specloom.agent.backends.base import AgentBackend
from specloom.agent.backends.claude_code import ClaudeCodeBackend, ClaudeCodeSettings
from specloom.agent.backends.failures import RetryPolicy
from specloom.agent.backends.scripted import ScriptedBackend
from specloom.agent.collect import CollectLimits
from specloom.agent.executor import Executor, ExecutorOptions
from specloom.agent.gitops import GitSettings
from specloom.agent.usage import load_prices
from specloom.agent.workspace import Workspace

BACKENDS = ("claude-code", "anthropic", "scripted")
"""Agent backends an executor can be configured with."""

__all__ = [
    "BACKENDS",
    "AgentSettings",
    "build_backends",
    "build_executor",
    "resolve_token",
    "workspace_roots",
]


class AgentSettings(BaseSettings):
    """What ``specloom agent`` needs (environment: ``SPECLOOM_AGENT_*``)."""

    model_config = SettingsConfigDict(env_prefix="SPECLOOM_AGENT_", extra="ignore")

    gateway: str = "127.0.0.1:7420"
    """Gateway address (``host:port``)."""
    token: SecretStr | None = None
    """Bearer token the executor authenticates with (never on a command line: see
    ``token_file``). Its user is the executor's own user."""
    token_file: Path | None = None
    """File holding the token (read at start), when ``token`` is not set."""
    tls: bool = False
    """Dial the gateway over TLS, verifying its certificate (system roots or ``tls_ca_file``)."""
    tls_ca_file: Path | None = None
    """CA bundle (PEM) that signs the gateway's certificate; implies ``tls``."""
    tls_server_name: str | None = None
    """Name to verify the certificate against when it differs from the address's host."""
    workspace: Path | None = None
    """The git repository commands run in (its default workspace); unset: the
    current directory, unless ``workspaces`` names some."""
    workspaces: list[Path] = Field(default_factory=list)
    """More repositories served, after ``workspace`` (the first served is the
    default: sessions started without a workspace are pinned there). Each
    session's commands run in the workspace it belongs to."""
    serve: Literal["own", "project"] = "own"
    """Whose sessions to run: ``own`` (the token's user's) or ``project`` (every
    project member's; an explicit choice, see ``trusted_starters``)."""
    trusted_starters: list[str] = Field(default_factory=list)
    """User ids, besides the executor's own user, whose agentic sessions run
    unconfined. Everyone else's agent steps run confined as in ``auto`` mode:
    edits inside the workspace, only the command's allowed programs."""
    name: str = Field(default_factory=socket.gethostname)
    """Executor name shown to people (unique per machine)."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Free labels sent at registration."""
    max_parallel: int = Field(default=4, ge=1, le=256)
    """Commands run at once."""
    backends: list[str] = Field(default_factory=lambda: ["claude-code"])
    """Agent backends offered, the first being the default: claude-code, anthropic, scripted."""
    scripted_file: Path | None = None
    """Script the scripted backend replays (required when it is enabled)."""
    anthropic_api_key: SecretStr | None = None
    """Key for the anthropic backend; unset uses ``ANTHROPIC_API_KEY``."""
    anthropic_base_url: str | None = None
    """Anthropic API base URL; unset uses ``ANTHROPIC_BASE_URL`` or the public endpoint."""
    anthropic_model: str = "claude-sonnet-5-5"
    """Model when a command names none."""
    claude_executable: str = "claude"
    """The ``claude`` CLI (name on PATH or a path)."""
    claude_silence_seconds: float = Field(default=300.0, gt=0)
    """Watchdog: kill the CLI after this long without output."""
    claude_permission_mode: str = ""
    """Force the CLI's ``--permission-mode``; empty derives it from the session's mode."""
    retry_attempts: int = Field(default=5, ge=1, le=50)
    """Tries of an agent step's model call that fails for a passing reason (connection error,
    timeout, 429, 5xx, overloaded), the first included; then the step fails as transient."""
    retry_initial_seconds: float = Field(default=2.0, gt=0)
    """Wait before the first retry; doubles for each next one (with jitter)."""
    retry_max_seconds: float = Field(default=60.0, gt=0)
    """Longest wait before one retry (a provider's retry-after is capped by it too)."""
    prices_file: Path | None = None
    """TOML price table (USD per million tokens) replacing the built-in estimates model by
    model; see ``src/specloom/agent/prices.toml`` for the shape and the defaults."""
    default_timeout_seconds: float = Field(default=3600.0, gt=0)
    """Time limit of a command that sets none."""
    output_limit_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    """Output streamed per command; beyond it output is dropped with a marker."""
    kill_grace_seconds: float = Field(default=2.0, ge=0)
    """Between SIGTERM and SIGKILL of a command's process group."""
    pull_request_command: list[str] = Field(default_factory=list)
    """Argv template that opens pull requests, e.g. ``["gh", "pr", "create", "--title",
    "{title}", "--body", "{body}", "--head", "{head}", "--base", "{base}"]``."""
    git_run_hooks: bool = False
    """Run the repository's git hooks when committing."""
    reconnect_initial_seconds: float = Field(default=0.5, gt=0)
    """First reconnect delay; doubles per failed attempt (with jitter)."""
    reconnect_max_seconds: float = Field(default=30.0, gt=0)
    """Longest reconnect delay."""
    drain_seconds: float = Field(default=60.0, ge=0)
    """On SIGTERM: how long running commands get to finish before they are cancelled."""


def build_backends(settings: AgentSettings) -> dict[str, AgentBackend]:
    """The configured agent backends, in order (the first is the default)."""
    backends: dict[str, AgentBackend] = {}
    retry = RetryPolicy(
        attempts=settings.retry_attempts,
        initial_delay=settings.retry_initial_seconds,
        max_delay=settings.retry_max_seconds,
    )
    for name in settings.backends:
        if name == "claude-code":
            backends[name] = ClaudeCodeBackend(
                ClaudeCodeSettings(
                    executable=settings.claude_executable,
                    silence_timeout=settings.claude_silence_seconds,
                    permission_mode=settings.claude_permission_mode,
                    retry=retry,
                )
            )
        elif name == "anthropic":
            key = settings.anthropic_api_key
            backends[name] = AnthropicBackend(
                AnthropicSettings(
                    api_key=key.get_secret_value() if key else None,
                    base_url=settings.anthropic_base_url,
                    model=settings.anthropic_model,
                    retry=retry,
                )
            )
        elif name == "scripted":
            if settings.scripted_file is None:
                raise ValueError("the scripted backend needs scripted_file")
            backends[name] = ScriptedBackend(settings.scripted_file)
        else:
            raise ValueError(f"unknown agent backend {name!r}; use one of: {', '.join(BACKENDS)}")
    return backends


def workspace_roots(settings: AgentSettings) -> list[Path]:
    """The repositories served, the default first (the current directory if none named)."""
    roots = ([settings.workspace] if settings.workspace else []) + list(settings.workspaces)
    return roots or [Path.cwd()]


def resolve_token(settings: AgentSettings) -> SecretStr | None:
    """``token``, else the content of ``token_file``."""
    if settings.token is not None or settings.token_file is None:
        return settings.token
    try:
        text = settings.token_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read the token file {settings.token_file}: {exc}") from None
    if not text:
        raise ValueError(f"the token file {settings.token_file} is empty")
    return SecretStr(text)


def build_executor(settings: AgentSettings) -> Executor:
    """The executor for the configured workspaces (each identified, ``.specloom/`` prepared)."""
    workspaces: list[Workspace] = []
    seen: dict[str, Path] = {}
    for root in workspace_roots(settings):
        workspace = Workspace(root)
        workspace.prepare()
        identity = workspace.identify()
        if identity.id in seen:
            raise ValueError(
                f"{root} and {seen[identity.id]} are the same workspace ({identity.id}); "
                "name each repository once"
            )
        seen[identity.id] = workspace.root
        workspaces.append(workspace)
    options = ExecutorOptions(
        default_timeout=settings.default_timeout_seconds,
        output_limit=settings.output_limit_bytes,
        kill_grace=settings.kill_grace_seconds,
        collect=CollectLimits(),
        git=GitSettings(
            pull_request_command=tuple(settings.pull_request_command),
            run_hooks=settings.git_run_hooks,
        ),
        prices=load_prices(settings.prices_file),
    )
    return Executor(
        workspaces[0], backends=build_backends(settings), options=options, others=workspaces[1:]
    )
