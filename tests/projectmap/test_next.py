"""The planner: next sessions in dependency order, with params the real workflows accept."""

from __future__ import annotations

from pathlib import Path

import pytest

from specloom.errors import InvalidArgument
from specloom.orchestration.params import subject_of, validate_params
from specloom.profiles import get_profile
from specloom.projectmap import (
    ProjectFile,
    load_project,
    next_sessions,
    project_map,
    scan_checkout,
    with_project_params,
)
from specloom.protoconv import struct_to_dict
from specloom.v1 import projectmap_pb2 as pb
from specloom.workflow import Registry
from specloom_coding.workflows import REGISTRY as CODING
from specloom_context_design.workflows import REGISTRY as DESIGN
from tests.projectmap.world import Part, Project, new_project, recorded

PROFILE = get_profile("python")
ACCOUNTS = [Part("accounts.users"), Part("accounts.roles", "schema")]
LEDGER = [Part("ledger.books"), Part("ledger.post", depends_on=["ledger.books", "accounts.users"])]
PROJECT_FILE = """\
profile = "python"

[[contexts]]
module = "accounts"

[[contexts]]
module = "ledger"
stories = "docs/stories/ledger.md"
depends_on = ["accounts"]
"""
STORIES = """\
# Ledger stories

- As a bookkeeper I post an entry to a book.
- As an auditor I read every entry of a book.
"""


def _workflow(session_type: str) -> Registry:
    return DESIGN if session_type in DESIGN.types() else CODING


def _plan(
    project: Project, unfinished: list[pb.SessionTouch] | None = None, limit: int = 0
) -> list[pb.NextSession]:
    config = load_project(project.root)
    assert config is not None
    scan = scan_checkout(
        project.root, PROFILE, cache_path=None, contexts=[c.module for c in config.contexts]
    )
    result = project_map("ws-1", recorded(scan))
    return next_sessions(result, unfinished or [], config, limit)


def _shown(entries: list[pb.NextSession]) -> list[tuple[str, str, list[int]]]:
    return [(e.type, _subject(e), list(e.after)) for e in entries]


def _subject(entry: pb.NextSession) -> str:
    workflow = _workflow(entry.type).latest(entry.type)
    return subject_of(workflow, struct_to_dict(entry.params))


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = new_project(tmp_path / "repo")
    project.write("specloom.toml", PROJECT_FILE)
    project.write("docs/stories/ledger.md", STORIES)
    project.commit()
    return project


def test_from_nothing_every_context_is_planned_in_dependency_order(project: Project) -> None:
    entries = _plan(project)
    assert _shown(entries) == [
        ("ContextDesign", "accounts", []),
        ("ContextComponentsDesign", "accounts", [0]),
        ("ContextDesignReview", "accounts", [1]),
        ("ContextTesting", "accounts", [2]),
        ("ContextCoding", "accounts", [3]),
        ("ContextDesign", "ledger", []),
        ("ContextComponentsDesign", "ledger", [5]),
        ("ContextDesignReview", "ledger", [6]),
        ("ContextTesting", "ledger", [7]),
        ("ContextCoding", "ledger", [4, 8]),  # after the accounts context's coding
    ]
    ledger = struct_to_dict(entries[5].params)
    assert ledger == {
        "context": "ledger",
        "profile": "python",
        "user_stories": [
            "As a bookkeeper I post an entry to a book.",
            "As an auditor I read every entry of a book.",
        ],
    }
    assert struct_to_dict(entries[1].params) == {"context": "accounts", "profile": "python"}
    assert entries[9].satisfies == ["ledger: implemented"]
    # Every entry is a session StartSession accepts, exactly as given.
    for entry in entries:
        validate_params(_workflow(entry.type).latest(entry.type), struct_to_dict(entry.params))
        assert entry.reason
        assert not entry.running_session_id


def test_a_designed_context_plans_from_where_it_stands(project: Project) -> None:
    project.context("accounts", ACCOUNTS)
    project.context("ledger", LEDGER, depends_on=["accounts"])
    project.designs([*ACCOUNTS, *LEDGER])
    project.write("docs/review/accounts/context_design.md", "## Summary\n" + "Fine. " * 40)
    project.tests([ACCOUNTS[0]])
    project.code(ACCOUNTS)
    entries = _plan(project)
    # accounts: tests written, code there, tests never run: nothing a session does.
    assert _shown(entries) == [
        ("ContextDesignReview", "ledger", []),
        ("ContextTesting", "ledger", [0]),
        ("ContextCoding", "ledger", [1]),
    ]
    assert "accounts: implemented" not in [s for e in entries for s in e.satisfies]
    assert "accounts not done yet but no session is due there" in entries[2].reason


def test_one_component_short_gets_a_component_session(project: Project) -> None:
    project.context("accounts", ACCOUNTS)
    project.designs(ACCOUNTS[1:])  # accounts.users has no design
    entries = _plan(project)[:4]
    assert _shown(entries) == [
        ("ComponentDesign", "accounts.users", []),
        ("ContextDesignReview", "accounts", [0]),
        ("ContextTesting", "accounts", [1]),
        ("ContextCoding", "accounts", [2]),
    ]
    params = struct_to_dict(entries[0].params)
    assert params == {
        "component": {
            "name": "users",
            "module_name": "accounts.users",
            "type": "module",
            "description": "What accounts.users does, in one sentence.",
            "dependencies": [],
        },
        "context": "accounts",
        "profile": "python",
    }
    assert list(entries[0].satisfies) == ["accounts.users: design", "accounts: components_designed"]


def test_one_component_without_tests_gets_a_component_test(project: Project) -> None:
    project.context("accounts", ACCOUNTS)
    project.designs(ACCOUNTS)
    project.write("docs/review/accounts/context_design.md", "## Summary\n" + "Fine. " * 40)
    entries = _plan(project)[:2]
    # The schema needs no test file: one ComponentTest, not a ContextTesting.
    assert _shown(entries) == [
        ("ComponentTest", "accounts.users", []),
        ("ContextCoding", "accounts", [0]),
    ]
    params = struct_to_dict(entries[0].params)
    assert "context" not in params  # the session is named for (and found by) its component
    validate_params(CODING.latest("ComponentTest"), params)


def test_unfinished_sessions_are_waited_for_not_started_again(project: Project) -> None:
    touches = [
        pb.SessionTouch(
            session_id="s-design", type="ContextDesign", status="RUNNING", subject="accounts"
        ),
        pb.SessionTouch(
            session_id="s-other", type="ContextCoding", status="RUNNING", subject="elsewhere"
        ),
    ]
    entries = _plan(project, touches)
    assert entries[0].running_session_id == "s-design"
    assert [e.running_session_id for e in entries[1:]] == [""] * 9
    assert list(entries[1].after) == [0]  # still waits for the running one


def test_a_limit_keeps_only_entries_whose_waits_are_inside_it(project: Project) -> None:
    assert _shown(_plan(project, limit=2)) == [
        ("ContextDesign", "accounts", []),
        ("ContextComponentsDesign", "accounts", [0]),
    ]


def test_without_a_project_file_contexts_come_from_their_designs(tmp_path: Path) -> None:
    project = new_project(tmp_path / "repo")
    project.context("ledger", LEDGER, depends_on=["accounts"])
    project.context("accounts", ACCOUNTS)
    scan = scan_checkout(project.root, PROFILE, cache_path=None)
    entries = next_sessions(project_map("ws-1", recorded(scan)), [], None, 0)
    designs = [e for e in entries if e.type == "ContextComponentsDesign"]
    assert [_subject(e) for e in designs] == ["accounts", "ledger"]
    coding = [i for i, e in enumerate(entries) if e.type == "ContextCoding"]
    assert coding[0] in entries[coding[1]].after
    assert struct_to_dict(designs[0].params) == {"context": "accounts"}


def test_the_project_file_is_checked_with_clear_errors(project: Project) -> None:
    bad = {
        'profile = "cobol"\n': "profile: unknown profile 'cobol'",
        '[[contexts]]\nmodule = "a b"\n': "contexts[1]: module:",
        '[[contexts]]\nmodule = "a"\ndepends_on = ["b"]\n': "'b' is not a context of this file",
        '[[contexts]]\nmodule = "a"\nstories = "nope.md"\n': "nope.md cannot be read",
        "colour = 1\n": "unknown key 'colour'",
        "profile = \n": "not valid TOML",
    }
    for text, message in bad.items():
        project.write("specloom.toml", text)
        with pytest.raises(InvalidArgument, match=r"specloom\.toml") as caught:
            load_project(project.root)
        assert message in str(caught.value), text
    project.delete("specloom.toml")
    assert load_project(project.root) is None
    assert ProjectFile().context("x") is None


def test_a_running_context_session_covers_its_components_work(project: Project) -> None:
    project.context("accounts", ACCOUNTS)
    project.designs(ACCOUNTS)
    project.write("docs/review/accounts/context_design.md", "## Summary\n" + "Fine. " * 40)
    running = pb.SessionTouch(
        session_id="s-tests", type="ContextTesting", status="WAITING", subject="accounts"
    )
    entries = _plan(project, [running])[:2]
    assert _shown(entries) == [
        ("ContextTesting", "accounts", []),
        ("ContextCoding", "accounts", [0]),
    ]
    assert entries[0].running_session_id == "s-tests"


def test_planned_without_the_project_file_then_completed_from_it(project: Project) -> None:
    config = load_project(project.root)
    assert config is not None
    # The scan carries the file's contexts and depends_on; the gateway plans without the file.
    scan = scan_checkout(project.root, PROFILE, cache_path=None, project=config)
    assert list(next(c for c in scan.components if c.module == "ledger").dependencies) == [
        "accounts"
    ]
    bare = next_sessions(project_map("ws-1", recorded(scan)), [], None, 0)
    assert _shown(bare)[9] == ("ContextCoding", "ledger", [4, 8])
    assert struct_to_dict(bare[5].params) == {"context": "ledger"}
    completed = with_project_params(bare, config)
    assert [struct_to_dict(e.params) for e in completed] == [
        struct_to_dict(e.params) for e in _plan(project)
    ]
    assert struct_to_dict(bare[5].params) == {"context": "ledger"}  # copies, not changed in place
