"""Workspace confinement and collect_files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from specloom.agent.collect import CollectLimits, check_patterns, collect_files
from specloom.agent.workspace import OutsideWorkspace, Workspace, confine, is_safe_id
from specloom.naming import UnsafePath

from .conftest import git


@pytest.mark.parametrize("path", ["/etc/passwd", "../x", "a/../../x", "", "."])
def test_confine_refuses_escapes(tmp_path: Path, path: str) -> None:
    with pytest.raises(OutsideWorkspace):
        confine(tmp_path.resolve(), path)


def test_confine_refuses_symlinks_out(tmp_path: Path) -> None:
    root = (tmp_path / "root").resolve()
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside)
    (root / "dangling").symlink_to(tmp_path / "not-yet")
    (root / "inner").symlink_to(root / "real")
    with pytest.raises(OutsideWorkspace):
        confine(root, "link/file")
    with pytest.raises(OutsideWorkspace):
        confine(root, "dangling")
    assert confine(root, "inner/x") == root / "real" / "x"
    with pytest.raises(OutsideWorkspace):
        confine(root, "a/.git/hooks/pre-commit", forbidden=frozenset({".git"}))


def test_safe_ids() -> None:
    assert is_safe_id("conv-0123abcd")
    assert is_safe_id("6bc5ba39-67d2-42c9-b09b-0f2b36c89979")
    for bad in ("../x", "a/b", "-rf", ".hidden", "", "x" * 200, "a..b"):
        assert not is_safe_id(bad), bad


def test_prepare_excludes_housekeeping_once(workspace: Workspace) -> None:
    workspace.prepare()
    exclude = (workspace.root / ".git" / "info" / "exclude").read_text()
    assert exclude.count("/.specloom/") == 1
    (workspace.conversations / "c.json").write_text("{}")
    assert git(workspace.root, "status", "--porcelain").strip() == ""


def test_workdir_must_exist_inside(workspace: Workspace) -> None:
    assert workspace.workdir("") == workspace.root
    assert workspace.workdir("src") == workspace.root / "src"
    with pytest.raises(NotADirectoryError):
        workspace.workdir("missing")
    with pytest.raises(UnsafePath):
        workspace.workdir("../")


def test_collect_literal_and_globs(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    (root / "docs" / "design").mkdir(parents=True)
    (root / "docs" / "design" / "a.md").write_text("A")
    (root / "docs" / "design" / "b.md").write_text("B")
    (root / "docs" / "top.md").write_text("T")
    (root / ".git").mkdir()
    (root / ".git" / "x.md").write_text("never")
    files = collect_files(root, ["docs/top.md", "docs/**/*.md", "missing.txt", "none/*.md"])
    by_path = {f.path: f for f in files}
    assert [f.path for f in files] == [
        "docs/top.md",
        "docs/design/a.md",
        "docs/design/b.md",
        "missing.txt",
        "none/*.md",
    ]
    assert by_path["docs/design/a.md"].content == b"A"
    assert by_path["docs/top.md"].exists
    assert not by_path["missing.txt"].exists
    assert not by_path["none/*.md"].exists
    everything = collect_files(root, ["**/*.md"])
    assert ".git/x.md" not in [f.path for f in everything]


def test_collect_caps_and_confinement(tmp_path: Path) -> None:
    root = (tmp_path / "root").resolve()
    root.mkdir()
    (tmp_path / "secret.txt").write_text("outside")
    (root / "leak.txt").symlink_to(tmp_path / "secret.txt")
    (root / "big.txt").write_bytes(b"x" * 100)
    (root / "second.txt").write_bytes(b"y" * 100)
    limits = CollectLimits(max_file_bytes=60, max_total_bytes=80)
    files = {f.path: f for f in collect_files(root, ["leak.txt", "big.txt", "second.txt"], limits)}
    assert not files["leak.txt"].exists
    assert files["leak.txt"].content == b""
    assert files["big.txt"].content == b"x" * 60
    assert files["big.txt"].truncated
    assert files["second.txt"].content == b"y" * 20
    assert files["second.txt"].truncated


def test_collect_patterns_are_checked_before_running() -> None:
    check_patterns(["a/*.md", "**/x"])
    for bad in ("/etc/*", "../*", "a/../../b"):
        with pytest.raises(UnsafePath):
            check_patterns([bad])


def test_collect_does_not_follow_symlinked_dirs_out(tmp_path: Path) -> None:
    root = (tmp_path / "root").resolve()
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.md").write_text("outside")
    os.symlink(outside, root / "linked")
    files = collect_files(root, ["linked/*.md"])
    assert all(not f.exists or f.content != b"outside" for f in files)


def test_collect_reaches_housekeeping_only_when_named(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    rules = root / ".specloom" / "rules"
    rules.mkdir(parents=True)
    (rules / "style.md").write_text("rule")
    child = root / ".specloom" / "worktrees" / "child-1" / "docs" / "rules"
    child.mkdir(parents=True)
    (child / "own.md").write_text("child rule")
    named = collect_files(
        root, [".specloom/rules/*.md", ".specloom/worktrees/child-1/docs/rules/*.md"]
    )
    assert [f.path for f in named] == [
        ".specloom/rules/style.md",
        ".specloom/worktrees/child-1/docs/rules/own.md",
    ]
    assert all(f.exists for f in named)
    # A broad pattern does not sweep up housekeeping or other children's checkouts.
    broad = collect_files(root, ["**/*.md"])
    assert not [f.path for f in broad if f.exists]
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]")
    (refused,) = collect_files(root, [".git/config"])
    assert not refused.exists
    assert refused.content == b""
