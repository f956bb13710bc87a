"""The scanner on real files in git repositories: facts, the cache, and a real test run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from specloom.errors import InvalidArgument
from specloom.profiles import get_profile
from specloom.projectmap import scan_checkout
from specloom.v1 import projectmap_pb2 as pb
from tests.projectmap.world import Part, Project, git, new_project

PROFILE = get_profile("python")
LEDGER = [
    Part("ledger.accounts"),
    Part("ledger.entry", "schema"),
    Part("ledger.post", depends_on=["ledger.accounts"]),
]


def _facts(scan: pb.ProjectScan, module: str) -> pb.ComponentFacts:
    return next(c for c in scan.components if c.module == module)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = new_project(tmp_path / "repo")
    project.context("ledger", LEDGER, depends_on=["accounts"])
    project.context("accounts", [Part("accounts.users")])
    project.designs(LEDGER)
    project.tests([LEDGER[0], LEDGER[2]])
    project.code(LEDGER)
    project.commit()
    project.age()
    return project


def test_a_scan_lists_contexts_then_components_with_their_files(project: Project) -> None:
    scan = scan_checkout(project.root, PROFILE, cache_path=None)
    assert [c.module for c in scan.components] == [
        "accounts",
        "ledger",
        "accounts.users",
        "ledger.accounts",
        "ledger.entry",
        "ledger.post",
    ]
    ledger = _facts(scan, "ledger")
    assert ledger.type == "context"
    assert list(ledger.dependencies) == ["accounts"]
    assert ledger.design.present
    assert not ledger.design_errors
    assert ledger.review.path == "docs/review/ledger/context_design.md"
    assert not ledger.review.present
    post = _facts(scan, "ledger.post")
    assert (post.type, post.context, list(post.dependencies)) == (
        "module",
        "ledger",
        ["ledger.accounts"],
    )
    assert post.test.path == "tests/ledger/post_test.py"
    assert post.test.present
    assert post.code.present
    assert len(post.code.digest) == 64
    assert not _facts(scan, "ledger.entry").test.present
    users = _facts(scan, "accounts.users")
    assert not users.design.present
    assert not users.code.present
    assert scan.branch == "main"
    assert len(scan.revision) == 40
    assert scan.files_read == scan.files_seen == 10
    assert not scan.problems
    assert not scan.ran_tests


def test_contexts_the_project_file_names_are_there_before_their_design(
    project: Project,
) -> None:
    scan = scan_checkout(project.root, PROFILE, cache_path=None, contexts=["billing"])
    billing = _facts(scan, "billing")
    assert billing.type == "context"
    assert billing.design.path == "docs/design/billing.md"
    assert not billing.design.present
    assert scan.components[0].module == "billing"  # the project file's order comes first


def test_a_second_scan_reads_only_what_changed(project: Project, tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "scan-cache.json"
    cold = scan_checkout(project.root, PROFILE, cache_path=cache)
    assert cold.files_read == cold.files_seen == 10
    warm = scan_checkout(project.root, PROFILE, cache_path=cache)
    assert (warm.files_seen, warm.files_read) == (10, 0)
    assert list(warm.components) == list(cold.components)

    project.write("src/ledger/post.py", "def value():\n    return 2\n")
    changed = scan_checkout(project.root, PROFILE, cache_path=cache)
    assert changed.files_read == 1
    assert _facts(changed, "ledger.post").code.digest != _facts(cold, "ledger.post").code.digest


def test_a_deleted_test_file_shows_absent(project: Project, tmp_path: Path) -> None:
    cache = tmp_path / "scan-cache.json"
    scan_checkout(project.root, PROFILE, cache_path=cache)
    project.delete("tests/ledger/accounts_test.py")
    scan = scan_checkout(project.root, PROFILE, cache_path=cache)
    test = _facts(scan, "ledger.accounts").test
    assert (test.path, test.present, test.digest) == ("tests/ledger/accounts_test.py", False, "")
    assert scan.files_read == 0


def test_an_invalid_design_shows_its_errors(project: Project, tmp_path: Path) -> None:
    cache = tmp_path / "scan-cache.json"
    scan_checkout(project.root, PROFILE, cache_path=cache)
    project.write("docs/design/ledger/post.md", "# ledger.post\n\nJust some words.\n")
    scan = scan_checkout(project.root, PROFILE, cache_path=cache)
    errors = list(_facts(scan, "ledger.post").design_errors)
    assert errors
    assert any("Missing required sections" in e for e in errors)
    assert scan.files_read == 1


def test_a_broken_context_design_keeps_its_components_and_shows_errors(
    project: Project, tmp_path: Path
) -> None:
    design = (project.root / "docs/design/ledger.md").read_text()
    project.write("docs/design/ledger.md", design.replace("## Purpose", "## Porpoise"))
    scan = scan_checkout(project.root, PROFILE, cache_path=tmp_path / "c.json")
    ledger = _facts(scan, "ledger")
    assert any("purpose" in e for e in ledger.design_errors)
    assert [c.module for c in scan.components if c.context == "ledger"] == [
        "ledger.accounts",
        "ledger.entry",
        "ledger.post",
    ]


def test_a_racy_file_is_read_again_by_the_next_scan(project: Project, tmp_path: Path) -> None:
    cache = tmp_path / "scan-cache.json"
    project.write("src/ledger/post.py", "def value():\n    return 1\n")  # now: within a tick
    scan_checkout(project.root, PROFILE, cache_path=cache)
    # Same size, maybe the same mtime: the cache must not trust it yet.
    project.write("src/ledger/post.py", "def value():\n    return 3\n")
    stat = os.stat(project.root / "src/ledger/post.py")
    again = scan_checkout(project.root, PROFILE, cache_path=cache)
    assert again.files_read == 1
    assert _facts(again, "ledger.post").code.digest
    os.utime(project.root / "src/ledger/post.py", ns=(stat.st_atime_ns, stat.st_mtime_ns - 10**10))
    assert scan_checkout(project.root, PROFILE, cache_path=cache).files_read == 1


def test_a_scan_with_tests_runs_pytest_once_and_tells_each_component(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The profile runs "python -m pytest": this interpreter, which has pytest.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    project.tests([LEDGER[2]], failing=["ledger.post"])
    scan = scan_checkout(project.root, PROFILE, cache_path=tmp_path / "c.json", run_tests=True)
    assert scan.ran_tests
    assert not scan.problems
    accounts = _facts(scan, "ledger.accounts").tests
    assert (accounts.passed, accounts.failed, accounts.source) == (2, 0, "scan")
    post = _facts(scan, "ledger.post").tests
    assert (post.passed, post.failed) == (1, 1)
    assert "test_value_is_one" in post.failures[0]
    assert "assert 1 == 2" in post.failures[0]
    assert not _facts(scan, "ledger.entry").HasField("tests")  # no test file to run
    assert not _facts(scan, "accounts.users").HasField("tests")
    assert post.files_digest
    assert post.ran_at.seconds > 0


def test_a_test_file_that_does_not_load_counts_as_failing(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    project.write("tests/ledger/post_test.py", "import nowhere_to_be_found\n")
    scan = scan_checkout(project.root, PROFILE, cache_path=None, run_tests=True)
    post = _facts(scan, "ledger.post").tests
    assert post.failed == 1
    assert post.passed == 0
    assert "nowhere_to_be_found" in post.failures[0]
    # pytest stops at a collection error: the other files did not run, and say nothing.
    assert not _facts(scan, "ledger.accounts").HasField("tests")
    assert any("tests/ledger/accounts_test.py" in p for p in scan.problems)


def test_a_missing_checkout_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="not a directory"):
        scan_checkout(tmp_path / "nowhere", PROFILE, cache_path=None)


def test_a_detached_checkout_has_no_branch_but_its_commit(project: Project) -> None:
    head = git(project.root, "rev-parse", "HEAD")
    git(project.root, "checkout", "-q", "--detach")
    scan = scan_checkout(project.root, PROFILE, cache_path=None)
    assert (scan.branch, scan.revision) == ("", head)


def test_a_symbolic_link_is_not_followed(project: Project, tmp_path: Path) -> None:
    secret = tmp_path / "secret.py"
    secret.write_text("TOKEN = 'x'\n")
    project.delete("src/ledger/post.py")
    (project.root / "src/ledger/post.py").symlink_to(secret)
    scan = scan_checkout(project.root, PROFILE, cache_path=None)
    assert not _facts(scan, "ledger.post").code.present
    assert "src/ledger/post.py: a symbolic link; only regular files are read" in scan.problems
