"""``specloom demo``: the whole pipeline on a throwaway project, in one process.

It writes the sample project into a directory (a git repository with a bare
``origin`` beside it), starts every service in this process on a free
loopback port with a SQLite file, starts one executor agent on the project,
and runs ContextDesign → ContextComponentsDesign → ContextCoding through
the public gateway API, exactly as a client and an agent on a developer's
machine would. Each stage starts from the branch the one before it made
(the ``base`` param): every session works in a worktree of its own, and the
project's own checkout — HEAD, index, files — is never touched, which the
demo checks and says. With the ``scripted`` backend the model's edits are
replayed from :mod:`specloom.demo.script`; with ``claude-code`` or
``anthropic`` a real model writes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import hashlib
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr
from rich.console import Console

from specloom.cli._render import cost_of, usage_line
from specloom.client import Client, status_name
from specloom.demo.sample import COMPONENTS, CONTEXT, FILES
from specloom.demo.script import write_script
from specloom.host import HostSettings, discover, new_secret
from specloom.process import start_host
from specloom.protoconv import JsonObject, struct_to_dict
from specloom.v1 import common_pb2 as pb
from specloom.workflow import dependencies_of
from specloom.workspaces import identify, label

PIPELINE = ("ContextDesign", "ContextComponentsDesign", "ContextCoding")
SERVICES = ("sessions", "context_design", "coding", "gateway", "web")
WEB_LISTEN = "127.0.0.1:7421"
"""Where the demo's web console listens (a free port when that one is taken)."""


@dataclass
class DemoOutcome:
    """What the demo produced."""

    project: Path
    origin: Path
    sessions: list[tuple[str, str, str]] = field(default_factory=list)
    """(type, id, status) of each top-level session, in order."""
    branch: str = ""
    commit: str = ""
    design_documents: list[str] = field(default_factory=list)
    ok: bool = False
    console_url: str = ""
    """The web console showing the demo's sessions (while the demo runs)."""
    token: str = ""
    """The demo's token, to sign in to the console with."""
    checkout_before: str = ""
    """:func:`checkout_fingerprint` of the project before the first session."""
    checkout_after: str = ""
    """The same after the last one: equal, since no session touches the checkout."""


def _git(project: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(project), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def stage_params(base: str) -> JsonObject:
    """A pipeline stage's params: the sample context, from the last stage's branch if any.

    Sessions never move the project's checkout, so a stage finds the work of
    the one before it only by starting from its branch.
    """
    params: JsonObject = {"context": CONTEXT, "profile": "python"}
    if base:
        params["base"] = base
    return params


def checkout_fingerprint(project: Path) -> str:
    """A digest of a checkout as its owner sees it: HEAD, the index, and every file.

    Files are the working tree outside ``.git``; under ``.specloom/`` (the
    executor's housekeeping: worktrees, conversations) only files git tracks
    count. Read-only: nothing here refreshes the index.
    """
    digest = hashlib.sha256()
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    for args in (("symbolic-ref", "-q", "HEAD"), ("rev-parse", "HEAD"), ("ls-files", "-s")):
        done = subprocess.run(
            ["git", "-C", str(project), *args], capture_output=True, check=False, env=env
        )
        digest.update(" ".join(args).encode() + b"\0" + done.stdout + b"\0")
    tracked = set(_git(project, "ls-files").splitlines())
    for path in sorted(project.rglob("*")):
        relative = path.relative_to(project).as_posix()
        if relative == ".git" or relative.startswith(".git/") or not path.is_file():
            continue
        if relative.startswith(".specloom/") and relative not in tracked:
            continue
        digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def create_project(project: Path, origin: Path) -> None:
    """Write the sample project, commit it, and push it to a bare ``origin``."""
    project.mkdir(parents=True)
    for relative, text in FILES.items():
        path = project / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    subprocess.run(["git", "init", "-q", "-b", "main", str(origin), "--bare"], check=True)
    _git(project, "init", "-q", "-b", "main")
    _git(project, "config", "user.name", "specloom demo")
    _git(project, "config", "user.email", "demo@specloom.invalid")
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "-m", "inventory: tests first")
    _git(project, "remote", "add", "origin", str(origin))
    _git(project, "push", "-q", "origin", "main")


async def _agent(
    address: str, token: str, project: Path, backend: str, script: Path | None, claude: str
) -> tuple[asyncio.Task[int], object]:
    # Imported here: git and the agent backends are only needed once running.
    from specloom.agent import AgentLoop, AgentSettings, build_executor

    settings = AgentSettings(
        gateway=address,
        token=SecretStr(token),
        workspace=project,
        name="demo-executor",
        backends=[backend],
        scripted_file=script,
        max_parallel=len(COMPONENTS),
        claude_executable=claude,
        drain_seconds=5,
    )
    loop = AgentLoop(settings, build_executor(settings))
    return asyncio.create_task(loop.run()), loop


async def run_demo(
    root: Path,
    *,
    backend: str = "scripted",
    console: Console | None = None,
    claude: str = "claude",
    stages: Sequence[str] = PIPELINE,
    web_listen: str = WEB_LISTEN,
    linger: Callable[[DemoOutcome], Awaitable[None]] | None = None,
) -> DemoOutcome:
    """Run the demo in ``root`` (which must not exist yet); returns what it made.

    ``linger``, when given, is awaited after the pipeline and before the
    services stop: the CLI prints the summary there and keeps the console up
    until Ctrl-C.
    """
    from specloom.cli._watch import watch  # the same live view as `session watch`

    out = console or Console()
    project, origin, data = root / "inventory", root / "origin.git", root / "specloom-data"
    create_project(project, origin)
    # The agent's commands run `python -m pytest`: make that this interpreter,
    # which has pytest, even when the virtualenv is not activated.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    script = write_script(root / "demo-script.json") if backend == "scripted" else None

    specs = discover()
    data.mkdir(parents=True)
    settings = HostSettings(
        listen="127.0.0.1:0",
        data_dir=data,
        database_url=f"sqlite+aiosqlite:///{data / 'specloom.db'}",
        internal_secret=SecretStr(new_secret()),
        token_pepper=SecretStr(new_secret()),
        grace_seconds=2,
    )
    await specs["sessions"].admin["migrate"](settings)
    token = str(
        await specs["sessions"].admin["issue-token"](
            settings,
            account_id="demo",
            project_id="inventory",
            user_id=getpass.getuser() or "demo",
            name="specloom demo",
        )
    )
    host = await start_host(
        [specs[name] for name in SERVICES],
        settings,
        {"web_listen": web_listen, "web_listen_fallback": True},
        self_hosted=True,
    )
    outcome = DemoOutcome(
        project=project, origin=origin, console_url=host.endpoints.get("web", ""), token=token
    )
    if outcome.console_url:
        (root / "demo.token").write_text(token + "\n")
        out.print(
            f"web console: {outcome.console_url}  (sign in with the token in "
            f"{root / 'demo.token'})",
            soft_wrap=True,
            highlight=False,
        )
    outcome.checkout_before = checkout_fingerprint(project)
    agent_task, loop = await _agent(host.address, token, project, backend, script, claude)
    # The sessions belong to the project's workspace, as `specloom session start`
    # run inside it makes them: only an agent serving that clone runs them.
    workspace = identify(project)
    out.print(f"workspace: {label(workspace)}  ({project})", highlight=False)
    try:
        async with Client(host.address, token) as client:
            for session_type in stages:
                started = await client.start_session(
                    session_type,
                    stage_params(outcome.branch),
                    mode="agentic",
                    workspace=workspace,
                )
                session = started.session
                out.rule(f"{session_type}  ({session.id})")
                await watch(client, session.id, as_json=False)
                out.print()
                for child in await client.children(session.id):
                    history = await client.get_session(child.id)
                    out.print(f"  {child.name:<28} {chain(history)}", highlight=False)
                    after = dependencies_of(struct_to_dict(history.state))
                    if after:
                        # Shows the dependency-ordered fan-out: this child waited
                        # for those and started from their branches, merged.
                        names = ", ".join(d.key for d in after)
                        out.print(
                            f"  {'':<28} started once {names} was complete, from its work",
                            highlight=False,
                        )
                final = await client.get_session(session.id, view=pb.INTERACTION_VIEW_NONE)
                if final.total_usage.agent_steps:
                    out.print(
                        usage_line("  usage, with children", final.total_usage), highlight=False
                    )
                outcome.sessions.append((session_type, session.id, status_name(final.status)))
                if final.status != pb.SESSION_STATUS_COMPLETE:
                    out.print(
                        f"[red]{session_type} ended {status_name(final.status)}[/red]: "
                        f"{final.status_reason}"
                    )
                    if linger is not None:
                        await linger(outcome)
                    return outcome
                state = struct_to_dict(final.state)
                outcome.branch = str(state.get("branch") or outcome.branch)
                outcome.commit = str(state.get("commit") or outcome.commit)
        outcome.checkout_after = checkout_fingerprint(project)
        outcome.ok = outcome.checkout_after == outcome.checkout_before
        if not outcome.ok:
            out.print("[red]the project's checkout changed while the sessions ran[/red]")
        outcome.design_documents = _git(
            project, "ls-tree", "-r", "--name-only", outcome.branch or "HEAD", "docs"
        ).splitlines()
        if linger is not None:
            await linger(outcome)
        return outcome
    finally:
        loop.draining.set()  # type: ignore[attr-defined]
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(agent_task, 15)
        await host.stop(2)


def chain(session: pb.Session) -> str:
    """A session's steps in one line: ``Initialize → RunTests ✗ → FixTestFailures → …``.

    Agent steps carry their tokens and estimated cost: ``(1200/340 tok $0.0123)``.
    """
    marks = {pb.RESULT_STATUS_OK: "", pb.RESULT_STATUS_WARNING: " ~", pb.RESULT_STATUS_ERROR: " ✗"}
    steps = []
    for i in session.interactions:
        if i.command.WhichOneof("kind") == "control":
            continue
        step = i.step + marks.get(i.result.status, "")
        if i.result.HasField("usage"):
            used = i.result.usage
            step += f" ({used.input_tokens}/{used.output_tokens} tok {cost_of(used)})"
        steps.append(step)
    return " → ".join(steps)


def summary(outcome: DemoOutcome, backend: str) -> list[str]:
    """The closing lines the demo prints."""
    lines = [f"project:  {outcome.project}  (a git repository; origin: {outcome.origin})"]
    for session_type, session_id, status in outcome.sessions:
        lines.append(f"session:  {session_type:<24} {status:<9} {session_id}")
    if outcome.ok:
        log = _git(outcome.project, "log", "--oneline", "-1", outcome.commit or outcome.branch)
        files = _git(outcome.project, "show", "--name-only", "--format=", outcome.commit or "HEAD")
        lines += [
            f"branch:   {outcome.branch}  (pushed to origin)",
            "checkout: untouched (HEAD, index and files as before; sessions work in worktrees "
            "under .specloom/worktrees)",
            f"commit:   {log}",
            "          " + ", ".join(files.splitlines()),
            "designs:  " + ", ".join(outcome.design_documents),
            f"look:     cd {outcome.project} && git log --oneline --graph --all",
        ]
    if outcome.console_url:
        lines.append(f"console:  {outcome.console_url}  (token: {outcome.token})")
    if backend == "scripted":
        lines += [
            "",
            "The model's edits in this run were REPLAYED from a recorded script "
            "(specloom/demo/script.py), not generated: every agent step reports zero "
            "tokens and no cost, because no model ran.",
            "To have a real model write them: `specloom demo --backend claude-code` "
            "(needs the `claude` CLI) or `ANTHROPIC_API_KEY=… specloom demo --backend anthropic`.",
        ]
    return lines
