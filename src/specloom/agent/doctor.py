"""Is this machine ready to run sessions? Checks, each with the fix it needs.

``specloom doctor`` runs all of them (and the server checks in
:mod:`specloom.cli._doctor`); ``specloom agent`` runs the ones an executor
needs before it connects and refuses to start with the same messages. Each
check is cheap: nothing here calls a model — the claude CLI reports its
login with ``claude auth status`` and an API key is tried on ``GET
/v1/models``, which costs nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import anthropic

from specloom.profiles import get_profile

__all__ = ["Check", "Status", "agent_checks", "failed", "local_checks"]

_TIMEOUT = 20.0


class Status(StrEnum):
    """How a check came out."""

    OK = "ok"
    WARN = "warn"
    """Works, but a person should know (e.g. commits get a fallback author)."""
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class Check:
    """One check's outcome and, unless it passed, what to do."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    def line(self) -> str:
        """One line for people: ``[fail] claude CLI: not logged in — fix: …``."""
        fix = (
            f" — fix: {self.fix}" if self.fix and self.status in (Status.FAIL, Status.WARN) else ""
        )
        return f"[{self.status.value}] {self.name}: {self.detail}{fix}"


def failed(checks: Sequence[Check]) -> list[Check]:
    """The checks that did not pass."""
    return [c for c in checks if c.status is Status.FAIL]


def _run(
    argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str] | str:
    """The finished process, or why it could not run."""
    try:
        return subprocess.run(
            argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=_TIMEOUT, check=False
        )
    except FileNotFoundError:
        return f"{argv[0]} is not installed (not on PATH)"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{argv[0]} could not run: {exc}"


def check_git() -> Check:
    done = _run(["git", "--version"])
    if isinstance(done, str):
        return Check("git", Status.FAIL, done, "install git (apt install git, brew install git)")
    return Check("git", Status.OK, done.stdout.strip())


def check_identity(workspace: Path) -> Check:
    values = {}
    for key in ("user.name", "user.email"):
        done = _run(["git", "-C", str(workspace), "config", "--get", key])
        values[key] = done.stdout.strip() if not isinstance(done, str) else ""
    missing = [key for key, value in values.items() if not value]
    if missing:
        return Check(
            "git identity",
            Status.FAIL,
            f"{' and '.join(missing)} not set (commits would be authored by 'specloom executor')",
            'git config --global user.name "Your Name"; '
            "git config --global user.email you@example.com",
        )
    return Check("git identity", Status.OK, f"{values['user.name']} <{values['user.email']}>")


def check_workspace(workspace: Path) -> Check:
    name = "workspace"
    if not workspace.is_dir():
        return Check(name, Status.FAIL, f"{workspace} does not exist", "pass --workspace DIR")
    inside = _run(["git", "-C", str(workspace), "rev-parse", "--is-inside-work-tree"])
    if isinstance(inside, str) or inside.stdout.strip() != "true":
        return Check(
            name,
            Status.FAIL,
            f"{workspace} is not a git repository",
            "run `git init` there and commit once, or pass --workspace pointing at your project",
        )
    head = _run(["git", "-C", str(workspace), "rev-parse", "--verify", "-q", "HEAD"])
    if isinstance(head, str) or head.returncode != 0:
        return Check(
            name,
            Status.FAIL,
            f"{workspace} has no commit yet (sessions branch from HEAD)",
            "commit once: git add -A && git commit -m 'initial'",
        )
    dirty = _run(["git", "-C", str(workspace), "status", "--porcelain", "--untracked-files=no"])
    changed = [] if isinstance(dirty, str) else [line for line in dirty.stdout.splitlines() if line]
    if changed:
        return Check(
            name,
            Status.WARN,
            f"{workspace}: {len(changed)} uncommitted change(s) to tracked files",
            "commit or stash them: a session's branch starts from HEAD, not from them",
        )
    return Check(name, Status.OK, f"{workspace}: a git repository, HEAD {head.stdout.strip()[:12]}")


def check_test_runner(workspace: Path, profile: str) -> Check:
    name = f"test runner ({profile})"
    try:
        invocation = get_profile(profile).test_invocation(["tests"], ".specloom/report")
    except Exception as exc:
        return Check(name, Status.FAIL, str(exc), "pass --profile python or --profile elixir")
    argv = list(invocation.argv)
    program = shutil.which(argv[0])
    if program is None:
        return Check(
            name,
            Status.FAIL,
            f"{argv[0]} is not on PATH",
            f"install {argv[0]} (the {profile} profile runs `{' '.join(invocation.shown()[:3])}`)",
        )
    # python -m pytest: the module must import in the project's environment.
    probe = (
        [*argv[:3], "--version"] if len(argv) > 2 and argv[1] == "-m" else [argv[0], "--version"]
    )
    done = _run(probe, cwd=workspace if workspace.is_dir() else None)
    if isinstance(done, str) or done.returncode != 0:
        said = done if isinstance(done, str) else (done.stderr or done.stdout).strip()[-300:]
        module = argv[2] if len(probe) > 2 else argv[0]
        return Check(
            name,
            Status.FAIL,
            f"`{' '.join(probe)}` failed: {said}",
            f"install {module} in the project's environment (e.g. pip install {module})",
        )
    return Check(name, Status.OK, (done.stdout or done.stderr).strip().splitlines()[0])


def check_claude(executable: str, env: dict[str, str] | None = None) -> list[Check]:
    """The CLI installed, and logged in (``claude auth status``: free, offline)."""
    found = shutil.which(executable) or (executable if Path(executable).is_file() else None)
    if found is None:
        return [
            Check(
                "claude CLI",
                Status.FAIL,
                f"`{executable}` is not installed (not on PATH)",
                "npm install -g @anthropic-ai/claude-code (or pass --claude PATH)",
            )
        ]
    environment = {**os.environ, **(env or {})}
    version = _run([found, "--version"], env=environment)
    if isinstance(version, str) or version.returncode != 0:
        said = version if isinstance(version, str) else version.stderr.strip()[-300:]
        return [Check("claude CLI", Status.FAIL, f"{found} does not run: {said}", "reinstall it")]
    checks = [Check("claude CLI", Status.OK, f"{found} ({version.stdout.strip()})")]
    status = _run([found, "auth", "status"], env=environment)
    logged_in, method = False, "none"
    if not isinstance(status, str):
        try:
            report = json.loads(status.stdout)
            logged_in = bool(report.get("loggedIn"))
            method = str(report.get("authMethod") or "none")
        except ValueError:
            logged_in = status.returncode == 0
    if not logged_in:
        checks.append(
            Check(
                "claude login",
                Status.FAIL,
                "the claude CLI is not logged in",
                "run `claude` once and /login, or give the agent ANTHROPIC_API_KEY",
            )
        )
    else:
        checks.append(Check("claude login", Status.OK, f"logged in ({method})"))
    return checks


def check_api_key(api_key: str | None, base_url: str | None, *, required: bool) -> Check:
    """The key tried on ``GET /v1/models`` (no tokens spent)."""
    name = "Anthropic API key"
    key = api_key or os.environ.get("ANTHROPIC_API_KEY")
    if not key:
        if required:
            return Check(
                name,
                Status.FAIL,
                "no key: ANTHROPIC_API_KEY is not set",
                "export ANTHROPIC_API_KEY=sk-ant-… (or SPECLOOM_AGENT_ANTHROPIC_API_KEY)",
            )
        return Check(name, Status.SKIP, "not set (the claude CLI uses its own login)")
    try:
        client = anthropic.Anthropic(
            api_key=key, base_url=base_url, timeout=_TIMEOUT, max_retries=1
        )
        try:
            client.models.list(limit=1)
        finally:
            client.close()
    except anthropic.AuthenticationError as exc:
        return Check(
            name,
            Status.FAIL,
            f"the API refused the key ({exc.status_code}: {_said(exc)})",
            "set ANTHROPIC_API_KEY to a valid key (console.anthropic.com → API keys)",
        )
    except anthropic.APIStatusError as exc:
        return Check(
            name,
            Status.FAIL,
            f"the API answered {exc.status_code}: {_said(exc)}",
            "check the key's permissions and the account's billing",
        )
    except anthropic.APIConnectionError as exc:
        where = base_url or os.environ.get("ANTHROPIC_BASE_URL") or "api.anthropic.com"
        return Check(
            name,
            Status.FAIL,
            f"could not reach the API at {where}: {exc}",
            "check the network (and ANTHROPIC_BASE_URL if set)",
        )
    return Check(name, Status.OK, "the API accepted the key")


def _said(exc: anthropic.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error")
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return str(exc)


def agent_checks(
    workspace: Path,
    backends: Sequence[str],
    *,
    claude: str = "claude",
    claude_env: dict[str, str] | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
) -> list[Check]:
    """What an executor agent needs on this machine before it takes work.

    A missing git identity only warns here: the executor commits with a
    fallback author. ``specloom doctor`` counts it as something to fix.
    """
    identity = check_identity(workspace)
    if identity.status is Status.FAIL:
        identity = Check(identity.name, Status.WARN, identity.detail, identity.fix)
    checks = [check_git(), check_workspace(workspace), identity]
    if "claude-code" in backends:
        checks += check_claude(claude, claude_env)
    if "anthropic" in backends:
        checks.append(check_api_key(api_key, base_url, required=True))
    elif api_key or os.environ.get("ANTHROPIC_API_KEY"):
        checks.append(check_api_key(api_key, base_url, required=False))
    return checks


def local_checks(
    workspace: Path,
    backends: Sequence[str],
    profile: str,
    *,
    claude: str = "claude",
    api_key: str | None = None,
    base_url: str | None = None,
) -> list[Check]:
    """Everything ``specloom doctor`` checks on this machine (the server aside)."""
    checks = agent_checks(workspace, backends, claude=claude, api_key=api_key, base_url=base_url)
    checks[2] = check_identity(workspace)  # a failure here, not the agent's warning
    checks.insert(3, check_test_runner(workspace, profile))
    return checks
