"""Structured git operations (``pb.GitCommand``), each one git process.

Every git process gets an argv, never a shell string, so branch names,
paths and messages reach git as data, and the scrubbed environment of
:func:`specloom.childenv.child_environment`: git runs helpers (credential
helpers, ssh, filters), and none of them may see the executor's token.
(GitPython, used here before, copies the whole process environment into
every git it starts, and starts one at import; it is no longer used.)
Three more guards make that hold for git itself:

- names that would be read as options (a leading ``-``) or are not valid
  refs are refused before git sees them, and start points are resolved to a
  commit id first, so what is checked out is a sha, never a user string;
- ``GIT_LITERAL_PATHSPECS=1``: a path like ``:(glob)*`` or ``:!x`` is a
  file name, not pathspec magic, and every path list follows ``--``;
- hooks are off unless configured (``core.hooksPath=/dev/null``): the
  executor commits unattended, and a hook is code that no command named.

These functions are synchronous; the executor runs them in a worker thread.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from specloom.agent.workspace import OutsideWorkspace, Workspace, confine
from specloom.childenv import child_environment
from specloom.protoconv import JsonObject, JsonValue
from specloom.v1 import common_pb2 as pb
from specloom.v1 import projectmap_pb2 as pm

Emit = Callable[[str], None]
"""Receives one progress line (thread-safe on the caller's side)."""

DEFAULT_PR_COMMAND: tuple[str, ...] = (
    "gh", "pr", "create",
    "--title", "{title}", "--body", "{body}", "--head", "{head}", "--base", "{base}",
)  # fmt: skip
"""What a person would run to open the pull request (GitHub's CLI)."""

__all__ = ["DEFAULT_PR_COMMAND", "GitFailure", "GitOutcome", "GitSettings", "run_git_command"]


class GitFailure(Exception):
    """An operation could not be carried out; the message is the step's error."""

    def __init__(self, message: str, data: JsonObject | None = None) -> None:
        super().__init__(message)
        self.data: JsonObject = dict(data or {})
        """Facts for ``Result.data`` beside the error (a merge's conflicted files)."""


class _GitTimeout(GitFailure):
    """A git process outlived its time limit (and was killed)."""


@dataclass(frozen=True)
class GitSettings:
    """How the executor runs git."""

    pull_request_command: tuple[str, ...] = ()
    """Argv template that opens a pull request on the host, e.g. ``DEFAULT_PR_COMMAND``.
    Placeholders ``{title}``, ``{body}``, ``{head}``, ``{base}`` are replaced
    whole-argument; an argument whose value is empty is dropped with the
    option before it. Empty: report the command instead of running it."""
    run_hooks: bool = False
    """Run the repository's git hooks on commit."""
    network_timeout: float = 300.0
    """Seconds a push or pull-request command may take."""
    author_name: str = "specloom executor"
    """Commit author when the repository has no ``user.name`` configured."""
    author_email: str = "executor@specloom.invalid"
    """Commit author e-mail when the repository has no ``user.email``."""


@dataclass
class GitOutcome:
    """What a GitCommand did."""

    status: pb.ResultStatus.ValueType = pb.RESULT_STATUS_OK
    error_message: str = ""
    data: JsonObject = field(default_factory=dict)
    project_scan: pm.ProjectScan | None = None
    """The line's scan after a commit landed on it (None when it did not, or
    when the scan failed)."""


class _Git:
    """One repository's git, with the executor's environment and guards."""

    def __init__(self, top: Path, settings: GitSettings) -> None:
        self.top = top
        self.settings = settings
        self._env = child_environment(
            {
                "GIT_TERMINAL_PROMPT": "0",
                "GIT_LITERAL_PATHSPECS": "1",
                "GIT_OPTIONAL_LOCKS": "0",
                # Messages parsed nowhere, but shown to people: keep them plain.
                "LC_ALL": "C",
                "LANGUAGE": "C",
            }
        )

    def run(self, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess[bytes]:
        """One git process, whatever its exit code (for commands whose code is an answer)."""
        config: list[str] = [] if self.settings.run_hooks else ["-c", "core.hooksPath=/dev/null"]
        try:
            return subprocess.run(
                ["git", *config, *args],
                cwd=self.top,
                env=self._env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise _GitTimeout(f"git {args[0]} did not finish within {timeout:g} s") from None
        except OSError as exc:
            raise GitFailure(f"cannot run git: {exc}") from None

    def __call__(self, *args: str, timeout: float | None = None, check: bool = True) -> str:
        try:
            done = self.run(*args, timeout=timeout)
        except _GitTimeout:
            if not check:
                return ""
            raise
        if done.returncode != 0:
            if not check:
                return ""
            detail = (done.stderr or done.stdout).decode("utf-8", errors="replace").strip()
            raise GitFailure(f"git {args[0]} failed: {detail or done.returncode}")
        return done.stdout.decode("utf-8", errors="replace")

    def ok(self, *args: str) -> bool:
        try:
            self(*args)
        except GitFailure:
            return False
        return True

    def head(self) -> str:
        return self("rev-parse", "--verify", "--quiet", "HEAD", check=False).strip()

    def current_branch(self) -> str:
        return self("symbolic-ref", "--quiet", "--short", "HEAD", check=False).strip()

    def resolve_commit(self, rev: str) -> str:
        """The sha of ``rev``; refuses option-like names."""
        if not rev or rev.startswith("-") or "\n" in rev:
            raise GitFailure(f"not a revision: {rev!r}")
        sha = self(
            "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}", check=False
        )
        if not sha.strip():
            raise GitFailure(f"unknown revision {rev!r}")
        return sha.strip()

    def branch_exists(self, name: str) -> bool:
        return self.ok("show-ref", "--verify", "--quiet", f"refs/heads/{name}")

    def check_branch_name(self, name: str) -> None:
        if not name or name.startswith("-") or not self.ok("check-ref-format", "--branch", name):
            raise GitFailure(f"invalid branch name {name!r}")

    def relative(self, path: Path) -> str:
        return path.relative_to(self.top).as_posix()


def _open(directory: Path, workspace: Workspace, settings: GitSettings) -> _Git:
    probe = _Git(directory, settings)
    if probe("rev-parse", "--is-bare-repository", check=False).strip() == "true":
        raise GitFailure(f"{directory} is a bare repository")
    found = probe("rev-parse", "--show-toplevel", check=False).strip()
    if not found:
        raise GitFailure(f"{directory} is not inside a git repository")
    top = Path(os.path.realpath(found))
    if top != workspace.root and not top.is_relative_to(workspace.root):
        # The workspace folder itself is not a repository and git found one
        # above it: operating there would leave the workspace.
        raise GitFailure("the workspace is not a git repository")
    return _Git(top, settings)


def _gather(repo: _Git, gather: Sequence[pb.BranchFiles], emit: Emit) -> list[str]:
    """Check files out of other branches into ``repo`` (staged, not committed)."""
    taken: list[str] = []
    for source in gather:
        if not source.paths:
            continue
        sha = repo.resolve_commit(source.branch)
        paths = [repo.relative(_confined(repo.top, p)) for p in source.paths]
        missing = [
            p for p in paths if not repo("ls-tree", "-z", "--name-only", sha, "--", p).strip("\0\n")
        ]
        if missing:
            raise GitFailure(f"not on branch {source.branch!r}: {', '.join(missing)}")
        repo("checkout", sha, "--", *paths)
        emit(f"git: took {len(paths)} file(s) from {source.branch}")
        taken.extend(paths)
    return taken


def _confined(root: Path, relative: str) -> Path:
    try:
        return confine(root, relative, forbidden=frozenset({".git"}))
    except OutsideWorkspace as exc:
        raise GitFailure(str(exc)) from None


def create_branch(repo: _Git, op: pb.CreateBranch, emit: Emit) -> JsonObject:
    """Create ``op.name`` from ``op.base`` (or reuse it) and check it out."""
    repo.check_branch_name(op.name)
    if repo.branch_exists(op.name):
        if repo.current_branch() != op.name:
            repo("checkout", "--quiet", op.name, "--")
        emit(f"git: on existing branch {op.name}")
    elif op.base:
        repo("checkout", "--quiet", "-b", op.name, repo.resolve_commit(op.base), "--")
        emit(f"git: created branch {op.name} from {op.base}")
    else:
        repo("checkout", "--quiet", "-b", op.name)
        emit(f"git: created branch {op.name}")
    return {"branch": op.name, "commit": repo.head()}


def add_worktree(
    main: _Git, workspace: Workspace, op: pb.AddWorktree, emit: Emit, settings: GitSettings
) -> JsonObject:
    """Give a child session its own checkout at ``op.path`` on ``op.branch``."""
    main.check_branch_name(op.branch)
    target = _confined(workspace.root, op.path)
    if target == workspace.root:
        raise GitFailure("a worktree cannot be the workspace root")
    main("worktree", "prune")
    if target.exists():
        tree = _Git(target, settings)
        if not (target / ".git").is_file() or tree.current_branch() != op.branch:
            raise GitFailure(f"{op.path!r} exists and is not a worktree on branch {op.branch!r}")
        emit(f"git: reusing worktree {op.path} on {op.branch}")
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        if main.branch_exists(op.branch):
            main("worktree", "add", "--quiet", str(target), op.branch)
        else:
            base = main.resolve_commit(op.base) if op.base else main.resolve_commit("HEAD")
            main("worktree", "add", "--quiet", "-b", op.branch, str(target), base)
        emit(f"git: worktree {op.path} on branch {op.branch}")
        tree = _Git(target, settings)
    merged: JsonObject = {}
    if op.merge:
        # Dependencies' work first: a merge needs an index that matches
        # HEAD, and what `gather` takes is staged.
        from specloom.agent.gitmerge import merge_branches

        merged = merge_branches(tree, list(op.merge), "", emit)
    gathered = _gather(tree, op.gather, emit)
    data: JsonObject = {
        "branch": op.branch,
        "commit": tree.head(),
        "worktree": workspace_relative(workspace, target),
        "gathered_files": list(gathered),
    }
    if op.merge:
        data["merged"] = merged["merged"]
        data["already_merged"] = merged["already_merged"]
    return data


def workspace_relative(workspace: Workspace, path: Path) -> str:
    """``path`` relative to the workspace root, POSIX form."""
    return path.relative_to(workspace.root).as_posix()


def commit(repo: _Git, workdir: Path, op: pb.Commit, emit: Emit) -> JsonObject:
    """Commit exactly ``op.paths``; whatever else is staged or modified stays out.

    Truthful: a named path that neither exists nor is known to git (a
    deletion) is an error naming it, with or without ``allow_empty``. The
    step that asked for this commit was to produce those files; "nothing to
    commit" must never read as success. With ``expect_branch`` the commit is
    refused unless it lands in the session's own worktree on its own branch.
    """
    if op.squash_onto:
        if op.expect_branch:
            _check_place(repo, workdir, op.expect_branch)
        from specloom.agent.gitmerge import squash_commit

        return squash_commit(repo, workdir, op, emit)
    if not op.paths:
        raise GitFailure("commit needs at least one path")
    if op.expect_branch:
        _check_place(repo, workdir, op.expect_branch)
    _gather(repo, op.gather, emit)
    paths = sorted({repo.relative(_confined(workdir, p)) for p in op.paths})
    head = repo.head()
    missing = [p for p in paths if not (repo.top / p).exists() and not _known(repo, head, p)]
    if missing:
        raise GitFailure(
            f"nothing at {', '.join(missing)} to commit: "
            f"{'it does' if len(missing) == 1 else 'they do'} not exist on branch "
            f"{repo.current_branch() or '(detached HEAD)'} in {repo.top.name}"
        )
    # Stage the named paths (additions, changes, deletions) in the real
    # index, then `commit --only` records exactly them: other staged entries
    # stay staged and out of the commit.
    repo("add", "--all", "--", *paths)
    changed = (
        repo("diff", "--cached", "--name-only", "-z", head, "--", *paths)
        if head
        else repo("ls-files", "-z", "--", *paths)
    ).strip("\0")
    if not changed:
        if op.allow_empty:
            emit("git: nothing changed; no commit made")
            return {"commit": head, "branch": repo.current_branch(), "committed_files": []}
        raise GitFailure(f"nothing to commit: {', '.join(paths)} are unchanged")
    identity = _identity(repo)
    message = op.message or "specloom commit"
    repo(*identity, "commit", "--quiet", "--no-verify", "--only", "-m", message, "--", *paths)
    sha = repo.head()
    files = [
        name
        for name in repo(
            "diff-tree", "--root", "--no-commit-id", "--name-only", "-r", "-z", sha
        ).split("\0")
        if name.strip("\n")
    ]
    emit(f"git: committed {len(files)} file(s) as {sha[:12]}")
    return {
        "commit": sha,
        "branch": repo.current_branch(),
        "committed_files": [f.strip("\n") for f in files],
    }


def _check_place(repo: _Git, workdir: Path, branch: str) -> None:
    """Refuse to commit anywhere but the session's own worktree, on its own branch."""
    if repo.top != Path(os.path.realpath(workdir)):
        raise GitFailure(
            f"refusing to commit: the command's workdir is not the top of a worktree "
            f"(git found the repository at {repo.top}); a session commits only in its own worktree"
        )
    current = repo.current_branch()
    if current != branch:
        raise GitFailure(
            f"refusing to commit: the worktree is on {current or 'a detached HEAD'}, "
            f"not on the session's branch {branch}"
        )


def _known(repo: _Git, head: str, path: str) -> bool:
    """Whether git tracks ``path`` (in the index or at HEAD), e.g. a deletion to commit."""
    if repo("ls-files", "-z", "--", path).strip("\0"):
        return True
    return bool(head) and bool(repo("ls-tree", "-z", "--name-only", head, "--", path).strip("\0"))


def _identity(repo: _Git) -> list[str]:
    """``-c user.*`` fallbacks when the repository has no identity configured."""
    args: list[str] = []
    if not repo("config", "--get", "user.name", check=False).strip():
        args += ["-c", f"user.name={repo.settings.author_name}"]
    if not repo("config", "--get", "user.email", check=False).strip():
        args += ["-c", f"user.email={repo.settings.author_email}"]
    # `git -c` must precede the subcommand; _Git puts its own -c first.
    return args


def push(repo: _Git, op: pb.Push, emit: Emit) -> tuple[pb.ResultStatus.ValueType, str, JsonObject]:
    """Push a branch; a missing remote is a warning so local-only repositories finish."""
    remote = op.remote or "origin"
    remotes = repo("remote").split()
    branch = op.branch or repo.current_branch()
    if not branch:
        raise GitFailure("nothing to push: HEAD is not on a branch")
    repo.check_branch_name(branch)
    if remote not in remotes:
        message = f"remote {remote!r} is not configured; branch {branch!r} was not pushed"
        emit(f"git: {message}")
        return pb.RESULT_STATUS_WARNING, message, {"branch": branch, "pushed": False}
    repo.resolve_commit(branch)
    refspec = f"refs/heads/{branch}:refs/heads/{branch}"
    repo("push", "--quiet", "--", remote, refspec, timeout=repo.settings.network_timeout)
    emit(f"git: pushed {branch} to {remote}")
    return pb.RESULT_STATUS_OK, "", {"branch": branch, "pushed": True, "remote": remote}


def pull_request_argv(template: Sequence[str], values: dict[str, str]) -> list[str]:
    """Fill an argv template whole-argument; an empty value drops itself and its option."""
    argv: list[str] = []
    for arg in template:
        key = arg[1:-1] if arg.startswith("{") and arg.endswith("}") else None
        if key is None or key not in values:
            argv.append(arg)
        elif values[key]:
            argv.append(values[key])
        elif argv and argv[-1].startswith("-") and "=" not in argv[-1]:
            argv.pop()
    return argv


def pull_request_values(repo: _Git, op: pb.PullRequest) -> dict[str, str]:
    """Placeholder values for a pull request, head defaulting to the current branch."""
    head = op.head or repo.current_branch()
    if not head:
        raise GitFailure("pull request needs a head branch (HEAD is detached)")
    return {"title": op.title, "body": op.body, "head": head, "base": op.base}


def run_git_command(
    command: pb.GitCommand,
    *,
    workspace: Workspace,
    workdir: Path,
    settings: GitSettings,
    emit: Emit,
    run_pr: Callable[[list[str], Path], tuple[int, str, str]] | None = None,
    scan_profile: str = "",
) -> GitOutcome:
    """Run the operations in order; stop at the first failure.

    ``run_pr(argv, cwd) -> (exit code, stdout, stderr)`` runs a configured
    pull-request command (the executor passes its process runner).
    ``scan_profile`` names the profile the line is scanned with after a
    commit lands (default: the default profile).
    """
    outcome = GitOutcome()
    try:
        repo = _open(workdir, workspace, settings)
        for index, operation in enumerate(command.operations):
            kind = operation.WhichOneof("op")
            data: JsonObject
            if kind == "create_branch":
                data = create_branch(repo, operation.create_branch, emit)
            elif kind == "add_worktree":
                main = _open(workspace.root, workspace, settings)
                data = add_worktree(main, workspace, operation.add_worktree, emit, settings)
            elif kind == "commit":
                data = commit(repo, workdir, operation.commit, emit)
                if operation.commit.land_on:
                    outcome.project_scan = _land(
                        repo, workspace, operation.commit, data, settings, emit, scan_profile
                    )
            elif kind == "push":
                status, message, data = push(repo, operation.push, emit)
                if status != pb.RESULT_STATUS_OK:
                    outcome.status, outcome.error_message = status, message
            elif kind == "merge":
                # gitmerge builds on this module's runner, so it is imported
                # where it is used rather than at the top (a cycle otherwise).
                from specloom.agent.gitmerge import merge_branches

                data = merge_branches(repo, operation.merge.branches, operation.merge.message, emit)
            elif kind == "pull_request":
                data = {
                    "pull_request": _pull_request(
                        repo, operation.pull_request, settings, emit, run_pr
                    )
                }
            else:
                raise GitFailure(f"operation {index + 1} is empty")
            outcome.data.update(data)
    except GitFailure as exc:
        outcome.status = pb.RESULT_STATUS_ERROR
        outcome.error_message = str(exc)
        outcome.data.update(exc.data)
    return outcome


def _land(
    repo: _Git,
    workspace: Workspace,
    op: pb.Commit,
    data: JsonObject,
    settings: GitSettings,
    emit: Emit,
    profile: str,
) -> pm.ProjectScan | None:
    """Land the committed branch on ``op.land_on`` (adding to ``data``), then scan the line."""
    # Imported here: both build on this module's runner (a cycle otherwise).
    from specloom.agent.gitland import land
    from specloom.agent.linescan import scan_line

    data.update(land(repo, op.land_on, op.message, dict(data), emit))
    return scan_line(workspace, op.land_on, profile, settings, emit)


def _pull_request(
    repo: _Git,
    op: pb.PullRequest,
    settings: GitSettings,
    emit: Emit,
    run_pr: Callable[[list[str], Path], tuple[int, str, str]] | None,
) -> JsonValue:
    values = pull_request_values(repo, op)
    if not settings.pull_request_command or run_pr is None:
        argv = pull_request_argv(DEFAULT_PR_COMMAND, values)
        shown = shlex.join(argv)
        emit("git: no pull-request host configured; to open it run: " + shown.splitlines()[0])
        return {"command": shown, "argv": list(argv), "opened": False}
    argv = pull_request_argv(settings.pull_request_command, values)
    code, out, err = run_pr(argv, repo.top)
    if code != 0:
        raise GitFailure(f"pull request command exited {code}: {(err or out).strip()[-2000:]}")
    url = next((w for w in out.split() if w.startswith(("https://", "http://"))), "")
    emit(f"git: pull request opened {url}".rstrip())
    return {"command": shlex.join(argv), "argv": list(argv), "url": url, "opened": True}
