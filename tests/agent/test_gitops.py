"""Git operations on real repositories: branches, worktrees, exact commits, push, hostile names."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from specloom.agent.gitops import (
    DEFAULT_PR_COMMAND,
    GitOutcome,
    GitSettings,
    pull_request_argv,
    run_git_command,
)
from specloom.agent.workspace import Workspace
from specloom.naming import branch_name
from specloom.v1 import common_pb2 as pb
from specloom.workflow import commands as c

from .conftest import git, init_repo

HOSTILE = [
    "it's",
    'say "hi"',
    "$(touch {canary})",
    "`touch {canary}`",
    "a; touch {canary}",
    "line\nbreak",
    "../../escape",
]


def run(
    workspace: Workspace,
    *operations: pb.GitOperation,
    workdir: Path | None = None,
    settings: GitSettings | None = None,
) -> tuple[GitOutcome, list[str]]:
    lines: list[str] = []
    outcome = run_git_command(
        c.git("Step", operations).git,
        workspace=workspace,
        workdir=workdir or workspace.root,
        settings=settings or GitSettings(),
        emit=lines.append,
    )
    return outcome, lines


def test_create_branch_then_reuse(workspace: Workspace) -> None:
    outcome, _ = run(workspace, c.create_branch("feature-x"))
    assert outcome.status == pb.RESULT_STATUS_OK
    assert git(workspace.root, "branch", "--show-current").strip() == "feature-x"
    head = git(workspace.root, "rev-parse", "HEAD").strip()
    assert outcome.data == {"branch": "feature-x", "commit": head}
    git(workspace.root, "checkout", "-q", "main")
    again, lines = run(workspace, c.create_branch("feature-x", base="main"))
    assert again.status == pb.RESULT_STATUS_OK
    assert git(workspace.root, "branch", "--show-current").strip() == "feature-x"
    assert "existing" in lines[0]


def test_create_branch_from_an_unknown_base_is_an_error(workspace: Workspace) -> None:
    outcome, _ = run(workspace, c.create_branch("b", base="no-such-branch"))
    assert outcome.status == pb.RESULT_STATUS_ERROR
    assert "unknown revision" in outcome.error_message


def test_commit_takes_exactly_the_named_paths(workspace: Workspace) -> None:
    root = workspace.root
    (root / "src" / "app.py").write_text("print('changed')\n")
    (root / "src" / "new.py").write_text("NEW = 1\n")
    (root / "README.md").write_text("staged but not named\n")
    git(root, "add", "README.md")
    (root / "untracked.txt").write_text("not named\n")
    outcome, _ = run(workspace, c.commit(["src/app.py", "src/new.py"], "Add new module"))
    assert outcome.status == pb.RESULT_STATUS_OK, outcome.error_message
    assert outcome.data["committed_files"] == ["src/app.py", "src/new.py"]
    sha = git(root, "rev-parse", "HEAD").strip()
    assert outcome.data["commit"] == sha
    assert outcome.data["branch"] == "main"
    in_commit = git(root, "show", "--name-only", "--format=", "HEAD").split()
    assert sorted(in_commit) == ["src/app.py", "src/new.py"]
    assert git(root, "log", "-1", "--format=%B").strip() == "Add new module"
    status = git(root, "status", "--porcelain").splitlines()
    assert "M  README.md" in status  # still staged, still out of the commit
    assert "?? untracked.txt" in status


def test_commit_records_deletions_and_refuses_unknown_paths(workspace: Workspace) -> None:
    (workspace.root / "src" / "app.py").unlink()
    outcome, _ = run(workspace, c.commit(["src/app.py"], "Remove app"))
    assert outcome.status == pb.RESULT_STATUS_OK
    assert outcome.data["committed_files"] == ["src/app.py"]
    missing, _ = run(workspace, c.commit(["nope.txt"], "m"))
    assert missing.status == pb.RESULT_STATUS_ERROR
    assert "nope.txt" in missing.error_message


def test_commit_of_unchanged_files_needs_allow_empty(workspace: Workspace) -> None:
    refused, _ = run(workspace, c.commit(["README.md"], "m"))
    assert refused.status == pb.RESULT_STATUS_ERROR
    assert "unchanged" in refused.error_message
    head = git(workspace.root, "rev-parse", "HEAD").strip()
    allowed, _ = run(workspace, c.commit(["README.md"], "m", allow_empty=True))
    assert allowed.status == pb.RESULT_STATUS_OK
    assert allowed.data["commit"] == head
    assert allowed.data["committed_files"] == []


def test_a_commit_of_files_that_do_not_exist_is_an_error_naming_them(
    workspace: Workspace,
) -> None:
    # Issue 12: "none of the paths exist" used to pass as an empty commit when
    # allow_empty was set, so a step that produced nothing ended COMPLETE.
    head = git(workspace.root, "rev-parse", "HEAD").strip()
    for allow_empty in (False, True):
        outcome, _ = run(
            workspace,
            c.commit(["docs/design/a.md", "docs/design/b.md"], "m", allow_empty=allow_empty),
        )
        assert outcome.status == pb.RESULT_STATUS_ERROR
        assert outcome.error_message == (
            "nothing at docs/design/a.md, docs/design/b.md to commit: "
            f"they do not exist on branch main in {workspace.root.name}"
        )
    # One missing among existing ones is still an error, and nothing is committed.
    (workspace.root / "src" / "app.py").write_text("print('changed')\n")
    partial, _ = run(workspace, c.commit(["src/app.py", "gone.md"], "m", allow_empty=True))
    assert partial.status == pb.RESULT_STATUS_ERROR
    assert "nothing at gone.md to commit: it does not exist" in partial.error_message
    assert git(workspace.root, "rev-parse", "HEAD").strip() == head


def test_expect_branch_commits_only_in_the_sessions_own_worktree(workspace: Workspace) -> None:
    root = workspace.root
    path = ".specloom/worktrees/s-1"
    created, _ = run(workspace, c.add_worktree(path, "mine-s-1", "main"))
    assert created.status == pb.RESULT_STATUS_OK, created.error_message
    tree = root / path
    (tree / "work.md").write_text("my work\n")
    # The same worktree, but the commit expects another session's branch.
    wrong, _ = run(workspace, c.commit(["work.md"], "m", expect_branch="theirs-s-2"), workdir=tree)
    assert wrong.status == pb.RESULT_STATUS_ERROR
    assert wrong.error_message == (
        "refusing to commit: the worktree is on mine-s-1, not on the session's branch theirs-s-2"
    )
    # The main checkout, or a folder inside the worktree, is not the session's worktree.
    (root / "work.md").write_text("stray\n")
    at_root, _ = run(workspace, c.commit(["work.md"], "m", expect_branch="main"))
    assert at_root.status == pb.RESULT_STATUS_OK  # the root is the top of its own checkout
    (tree / "sub").mkdir()
    (tree / "sub" / "x.md").write_text("x\n")
    inside, _ = run(
        workspace, c.commit(["x.md"], "m", expect_branch="mine-s-1"), workdir=tree / "sub"
    )
    assert inside.status == pb.RESULT_STATUS_ERROR
    assert "is not the top of a worktree" in inside.error_message
    right, _ = run(workspace, c.commit(["work.md"], "m", expect_branch="mine-s-1"), workdir=tree)
    assert right.status == pb.RESULT_STATUS_OK, right.error_message
    assert right.data["branch"] == "mine-s-1"
    assert git(tree, "show", "--name-only", "--format=", "HEAD").split() == ["work.md"]


def test_commit_gathers_files_from_other_branches(workspace: Workspace) -> None:
    root = workspace.root
    git(root, "checkout", "-q", "-b", "child-a")
    (root / "docs").mkdir()
    (root / "docs" / "a.md").write_text("from child a\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "child a")
    git(root, "checkout", "-q", "main")
    outcome, _ = run(
        workspace,
        c.commit(
            ["docs/a.md"], "Collect children", gather=[c.branch_files("child-a", ["docs/a.md"])]
        ),
    )
    assert outcome.status == pb.RESULT_STATUS_OK, outcome.error_message
    assert (root / "docs" / "a.md").read_text() == "from child a\n"
    assert outcome.data["committed_files"] == ["docs/a.md"]
    absent, _ = run(
        workspace, c.commit(["x"], "m", gather=[c.branch_files("child-a", ["docs/zz.md"])])
    )
    assert absent.status == pb.RESULT_STATUS_ERROR
    assert "docs/zz.md" in absent.error_message


def test_worktree_per_session_with_gather(workspace: Workspace) -> None:
    root = workspace.root
    git(root, "checkout", "-q", "-b", "parent")
    (root / "design.md").write_text("parent design\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "parent design")
    git(root, "checkout", "-q", "main")
    path = ".specloom/worktrees/session-1"
    op = c.add_worktree(path, "child-1", "main", [c.branch_files("parent", ["design.md"])])
    outcome, _ = run(workspace, op)
    assert outcome.status == pb.RESULT_STATUS_OK, outcome.error_message
    tree = root / path
    assert (tree / "design.md").read_text() == "parent design\n"
    assert git(tree, "branch", "--show-current").strip() == "child-1"
    assert outcome.data["worktree"] == path
    # The main checkout does not see the worktree as untracked files.
    assert git(root, "status", "--porcelain").strip() == ""
    # Retrying the step reuses the worktree.
    again, _ = run(workspace, op)
    assert again.status == pb.RESULT_STATUS_OK
    # A commit inside the worktree lands on the child's branch only.
    (tree / "child.txt").write_text("child work\n")
    committed, _ = run(workspace, c.commit(["child.txt"], "child work"), workdir=tree)
    assert committed.status == pb.RESULT_STATUS_OK, committed.error_message
    assert committed.data["branch"] == "child-1"
    assert "child.txt" not in git(root, "ls-tree", "--name-only", "main").split()


def test_worktree_path_must_stay_inside(workspace: Workspace) -> None:
    outcome, _ = run(workspace, c.add_worktree("../outside", "child-x", "main"))
    assert outcome.status == pb.RESULT_STATUS_ERROR
    assert "leaves the workspace" in outcome.error_message


def test_push_to_a_bare_remote(workspace: Workspace, tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(workspace.root, "remote", "add", "origin", str(remote))
    run(workspace, c.create_branch("to-push"))
    outcome, _ = run(workspace, c.push())
    assert outcome.status == pb.RESULT_STATUS_OK, outcome.error_message
    assert outcome.data["pushed"] is True
    local = git(workspace.root, "rev-parse", "HEAD").strip()
    assert git(remote, "rev-parse", "refs/heads/to-push").strip() == local


def test_missing_remote_is_a_warning(workspace: Workspace) -> None:
    outcome, _ = run(workspace, c.push(remote="origin"))
    assert outcome.status == pb.RESULT_STATUS_WARNING
    assert "not configured" in outcome.error_message
    assert outcome.data["pushed"] is False


def test_pull_request_without_host_reports_the_command(workspace: Workspace) -> None:
    outcome, _ = run(workspace, c.pull_request("Add $(x) 'stock'", "body; rm -rf /", head=""))
    assert outcome.status == pb.RESULT_STATUS_OK
    pr = outcome.data["pull_request"]
    assert isinstance(pr, dict)
    assert pr["opened"] is False
    assert pr["argv"] == [
        "gh", "pr", "create", "--title", "Add $(x) 'stock'",
        "--body", "body; rm -rf /", "--head", "main",
    ]  # fmt: skip
    assert pr["command"].startswith("gh pr create --title 'Add $(x) '")


def test_pull_request_with_a_host_command_runs_it_as_argv(
    workspace: Workspace, tmp_path: Path
) -> None:
    # A stand-in for `gh`: records its argv and prints a URL.
    record = tmp_path / "argv.txt"
    fake = tmp_path / "fake-gh"
    fake.write_text(
        "#!/usr/bin/env python3\nimport sys\n"
        f"open({str(record)!r}, 'w').write('\\0'.join(sys.argv[1:]))\n"
        "print('https://example.invalid/pr/7')\n"
    )
    fake.chmod(0o755)
    template = (str(fake), *DEFAULT_PR_COMMAND[1:])
    outcome = run_git_command(
        c.git("S", [c.pull_request("T `id`", "B", head="main", base="trunk")]).git,
        workspace=workspace,
        workdir=workspace.root,
        settings=GitSettings(pull_request_command=template),
        emit=lambda _: None,
        run_pr=_run_sync,
    )
    assert outcome.status == pb.RESULT_STATUS_OK, outcome.error_message
    pr = outcome.data["pull_request"]
    assert isinstance(pr, dict)
    assert pr["url"] == "https://example.invalid/pr/7"
    assert record.read_text().split("\0") == [
        "pr", "create", "--title", "T `id`", "--body", "B", "--head", "main", "--base", "trunk",
    ]  # fmt: skip


def _run_sync(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    import subprocess

    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


def test_pull_request_argv_drops_empty_values() -> None:
    argv = pull_request_argv(
        DEFAULT_PR_COMMAND, {"title": "t", "body": "", "head": "h", "base": ""}
    )
    assert argv == ["gh", "pr", "create", "--title", "t", "--head", "h"]


@pytest.mark.parametrize("template", HOSTILE)
def test_hostile_names_execute_nothing(template: str, tmp_path: Path) -> None:
    canary = tmp_path / f"pwned-{uuid.uuid4().hex}"
    name = template.format(canary=canary)
    repo = init_repo(tmp_path / "repo")
    workspace = Workspace(repo)
    workspace.prepare()
    branch = branch_name("component-design", name)
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    (repo / "notes.md").write_text(name)
    outcome, _ = run(
        workspace,
        c.create_branch(branch),
        c.commit(["notes.md"], f"Design for {name}"),
        c.push(branch),
        c.pull_request(f"Design {name}", name, head=branch),
        c.add_worktree(f".specloom/worktrees/{uuid.uuid4().hex}", branch + "-child", branch),
    )
    assert outcome.status == pb.RESULT_STATUS_OK, outcome.error_message
    assert git(repo, "log", "-1", "--format=%B").strip() == f"Design for {name}".strip()
    assert git(remote, "rev-parse", f"refs/heads/{branch}").strip()
    assert not canary.exists()
    # Raw (unsanitised) names are refused as branches rather than passed on.
    raw, _ = run(workspace, c.create_branch(name))
    assert not canary.exists()
    if raw.status == pb.RESULT_STATUS_OK:
        assert git(repo, "branch", "--show-current").strip() == name


def test_option_like_names_are_refused(workspace: Workspace) -> None:
    outcome, _ = run(workspace, c.create_branch("--upload-pack=touch /tmp/x"))
    assert outcome.status == pb.RESULT_STATUS_ERROR
    assert "invalid branch name" in outcome.error_message
    base, _ = run(workspace, c.create_branch("ok", base="--output=/tmp/x"))
    assert base.status == pb.RESULT_STATUS_ERROR


def test_pathspec_magic_is_a_file_name(workspace: Workspace) -> None:
    (workspace.root / ":(glob)*").write_text("literal\n")
    (workspace.root / "other.txt").write_text("must stay out\n")
    outcome, _ = run(workspace, c.commit([":(glob)*"], "literal name"))
    assert outcome.status == pb.RESULT_STATUS_OK, outcome.error_message
    assert outcome.data["committed_files"] == [":(glob)*"]


def test_paths_outside_are_refused(workspace: Workspace) -> None:
    for path in ("/etc/passwd", "../x", "src/../../x", ".git/config"):
        outcome, _ = run(workspace, c.commit([path], "m"))
        assert outcome.status == pb.RESULT_STATUS_ERROR, path


def test_not_a_repository(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    outcome, _ = run(Workspace(plain), c.create_branch("b"))
    assert outcome.status == pb.RESULT_STATUS_ERROR
