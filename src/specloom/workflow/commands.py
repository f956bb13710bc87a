"""Builders for :class:`specloom.v1.common_pb2.Command`, for step code.

Steps build commands with these instead of filling protobuf messages field
by field, so a workflow module reads as "run pytest on this file", "ask the
agent with this prompt", "commit these files".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from specloom.protoconv import JsonValue, dict_to_struct
from specloom.v1 import common_pb2 as pb


def _command(
    step: str,
    *,
    metadata: Mapping[str, JsonValue] | None,
    timeout_seconds: int,
    workdir: str,
    collect: Iterable[str],
) -> pb.Command:
    command = pb.Command(
        step=step,
        timeout_seconds=timeout_seconds,
        workdir=workdir,
        collect_files=list(collect),
    )
    if metadata:
        dict_to_struct(metadata, command.metadata)
    return command


def shell(
    step: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    ok_exit_codes: Iterable[int] = (),
    metadata: Mapping[str, JsonValue] | None = None,
    timeout_seconds: int = 0,
    workdir: str = "",
    collect: Iterable[str] = (),
) -> pb.Command:
    """Run ``argv`` (never through a shell) in ``workdir``."""
    if not argv:
        raise ValueError("a shell command needs a program")
    command = _command(
        step, metadata=metadata, timeout_seconds=timeout_seconds, workdir=workdir, collect=collect
    )
    command.shell.argv.extend(argv)
    command.shell.env.update(env or {})
    command.shell.ok_exit_codes.extend(ok_exit_codes)
    return command


def agent(
    step: str,
    prompt: str,
    *,
    output_paths: Iterable[str] = (),
    system_prompt: str = "",
    model: str = "",
    max_turns: int = 0,
    resume_conversation_id: str = "",
    allowed_commands: Iterable[str] = (),
    metadata: Mapping[str, JsonValue] | None = None,
    timeout_seconds: int = 0,
    workdir: str = "",
    collect: Iterable[str] = (),
) -> pb.Command:
    """Ask the executor's AI agent to do a piece of work."""
    command = _command(
        step, metadata=metadata, timeout_seconds=timeout_seconds, workdir=workdir, collect=collect
    )
    command.agent.CopyFrom(
        pb.AgentCommand(
            prompt=prompt,
            system_prompt=system_prompt,
            model=model,
            max_turns=max_turns,
            resume_conversation_id=resume_conversation_id,
            allowed_commands=list(allowed_commands),
            output_paths=list(output_paths),
        )
    )
    return command


def git(
    step: str,
    operations: Iterable[pb.GitOperation],
    *,
    metadata: Mapping[str, JsonValue] | None = None,
    timeout_seconds: int = 0,
    workdir: str = "",
    collect: Iterable[str] = (),
) -> pb.Command:
    """Run structured git operations in order."""
    command = _command(
        step, metadata=metadata, timeout_seconds=timeout_seconds, workdir=workdir, collect=collect
    )
    command.git.operations.extend(operations)
    return command


def create_branch(name: str, base: str = "") -> pb.GitOperation:
    """Create (or reuse) ``name`` and check it out."""
    return pb.GitOperation(create_branch=pb.CreateBranch(name=name, base=base))


def add_worktree(
    path: str,
    branch: str,
    base: str,
    gather: Iterable[pb.BranchFiles] = (),
    *,
    merge: Iterable[str] = (),
) -> pb.GitOperation:
    """Give a child its own checkout at ``path`` on ``branch``, merging ``merge`` in order."""
    return pb.GitOperation(
        add_worktree=pb.AddWorktree(
            path=path, branch=branch, base=base, gather=list(gather), merge=list(merge)
        )
    )


def merge(branches: Iterable[str], message: str = "") -> pb.GitOperation:
    """Merge ``branches`` in order into the working directory's branch (idempotent)."""
    return pb.GitOperation(merge=pb.Merge(branches=list(branches), message=message))


def branch_files(branch: str, paths: Iterable[str]) -> pb.BranchFiles:
    """Files to take from another branch."""
    return pb.BranchFiles(branch=branch, paths=list(paths))


def commit(
    paths: Iterable[str],
    message: str,
    *,
    gather: Iterable[pb.BranchFiles] = (),
    allow_empty: bool = False,
    squash_onto: str = "",
    expect_branch: str = "",
    land_on: str = "",
) -> pb.GitOperation:
    """Commit exactly ``paths`` (after taking ``gather`` from other branches).

    ``allow_empty``: unchanged paths are success (a retried commit that landed);
    ``squash_onto``: one commit on that base replacing the branch's commits since it;
    ``expect_branch``: refuse unless the workdir is a worktree on that branch;
    ``land_on``: then merge the branch into that one (the project's line).
    """
    return pb.GitOperation(
        commit=pb.Commit(
            paths=list(paths),
            message=message,
            gather=list(gather),
            allow_empty=allow_empty,
            squash_onto=squash_onto,
            expect_branch=expect_branch,
            land_on=land_on,
        )
    )


def push(branch: str = "", remote: str = "") -> pb.GitOperation:
    """Push ``branch`` to ``remote`` (default origin)."""
    return pb.GitOperation(push=pb.Push(remote=remote, branch=branch))


def pull_request(title: str, body: str, head: str, base: str = "") -> pb.GitOperation:
    """Open a pull request (or report the command to open one)."""
    return pb.GitOperation(
        pull_request=pb.PullRequest(title=title, body=body, head=head, base=base)
    )


def spawn_children(
    step: str,
    child_ids: Iterable[str],
    *,
    resumed: Iterable[str] = (),
    metadata: Mapping[str, JsonValue] | None = None,
) -> pb.Command:
    """Wait on child sessions (the gateway drives them and reports the join)."""
    command = _command(step, metadata=metadata, timeout_seconds=0, workdir="", collect=())
    command.spawn_children.child_session_ids.extend(child_ids)
    command.spawn_children.resumed_child_ids.extend(resumed)
    return command


def noop(
    step: str,
    *,
    metadata: Mapping[str, JsonValue] | None = None,
    workdir: str = "",
    collect: Iterable[str] = (),
) -> pb.Command:
    """Do nothing (optionally collect files for the judge)."""
    command = _command(step, metadata=metadata, timeout_seconds=0, workdir=workdir, collect=collect)
    command.noop.SetInParent()
    return command


def kind_of(command: pb.Command) -> str:
    """The command's kind: shell, agent, git, spawn_children, noop, control."""
    kind = command.WhichOneof("kind")
    if kind is None:
        raise ValueError(f"command for step {command.step!r} has no kind")
    return kind


def required_capability(command: pb.Command) -> str:
    """The executor capability needed to run ``command`` ("" = any executor).

    Executors register plain capabilities ("shell", "git", "agent") and,
    for agents, the backend too ("agent:claude-code"); a command needs only
    the plain one.
    """
    kind = kind_of(command)
    if kind in ("shell", "git", "agent"):
        return kind
    return ""
