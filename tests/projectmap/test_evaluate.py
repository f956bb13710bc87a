"""The judge: requirement states per component type, from real scans."""

from __future__ import annotations

from pathlib import Path

import pytest

from specloom.profiles import get_profile
from specloom.projectmap import files_digest, project_map, scan_checkout, with_session_evidence
from specloom.v1 import projectmap_pb2 as pb
from tests.projectmap.world import Part, Project, new_project, recorded

PROFILE = get_profile("python")
MET = pb.REQUIREMENT_STATE_MET
MISSING = pb.REQUIREMENT_STATE_MISSING
FAILING = pb.REQUIREMENT_STATE_FAILING
STALE = pb.REQUIREMENT_STATE_STALE
BLOCKED = pb.REQUIREMENT_STATE_BLOCKED
NOT_NEEDED = pb.REQUIREMENT_STATE_NOT_NEEDED

PARTS = [Part("shop.cart"), Part("shop.item", "schema"), Part("shop.pay", depends_on=["shop.cart"])]


def _states(status: pb.ComponentStatus) -> dict[str, int]:
    return {r.key: r.state for r in status.requirements}


def _status(result: pb.ProjectMap, module: str) -> pb.ComponentStatus:
    return next(c for c in result.components if c.facts.module == module)


def _map(project: Project, scan: pb.ProjectScan | None = None) -> pb.ProjectMap:
    scan = scan or scan_checkout(project.root, PROFILE, cache_path=None)
    return project_map("ws-1", recorded(scan))


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = new_project(tmp_path / "repo")
    project.context("shop", PARTS)
    project.commit()
    return project


def test_a_context_with_only_its_design_waits_for_everything_else(project: Project) -> None:
    result = _map(project)
    shop = _status(result, "shop")
    assert _states(shop) == {
        "design": MET,
        "components_designed": MISSING,
        "reviewed": BLOCKED,
        "tests": BLOCKED,
        "implemented": BLOCKED,
        "dependencies": MET,
    }
    assert [r.satisfied_by for r in shop.requirements] == [
        "ContextDesign",
        "ContextComponentsDesign",
        "ContextDesignReview",
        "ContextTesting",
        "ContextCoding",
        "",
    ]
    assert not shop.done
    cart = _states(_status(result, "shop.cart"))
    assert cart == {
        "design": MISSING,
        "tests": BLOCKED,
        "implementation": BLOCKED,
        "tests_pass": BLOCKED,
    }
    assert (
        "docs/design/shop/cart.md is absent" in _status(result, "shop.cart").requirements[0].detail
    )
    assert result.workspace_id == "ws-1"
    assert result.branch == "main"


def test_a_schema_needs_no_test_file_nor_tests_of_its_own(project: Project) -> None:
    project.designs(PARTS)
    project.code([PARTS[1]])
    item = _status(_map(project), "shop.item")
    assert _states(item) == {
        "design": MET,
        "tests": NOT_NEEDED,
        "implementation": MET,
        "tests_pass": NOT_NEEDED,
    }
    assert item.done


def test_tests_pass_is_met_only_for_a_run_on_the_files_as_they_are(
    project: Project, tmp_path: Path
) -> None:
    project.designs(PARTS)
    project.tests([PARTS[0], PARTS[2]])
    project.code(PARTS)
    scan = scan_checkout(project.root, PROFILE, cache_path=None)
    cart = _status(_map(project, scan), "shop.cart")
    assert _states(cart)["tests_pass"] == STALE  # no run known

    facts = next(c for c in scan.components if c.module == "shop.cart")
    facts.tests.CopyFrom(
        pb.TestEvidence(
            passed=3,
            failed=1,
            failures=["test_cart::test_empty: assert 1 == 0"],
            files_digest=files_digest(facts.code.digest, facts.test.digest),
            source="scan",
        )
    )
    cart = _status(project_map("ws-1", recorded(scan)), "shop.cart")
    verdict = cart.requirements[3]
    assert verdict.state == FAILING
    assert verdict.detail == "1 of 4 tests fail: test_cart::test_empty: assert 1 == 0"

    facts.tests.failed = 0
    assert _states(_status(project_map("ws-1", recorded(scan)), "shop.cart"))["tests_pass"] == MET
    facts.code.digest = "0" * 64  # the code changed since
    assert _states(_status(project_map("ws-1", recorded(scan)), "shop.cart"))["tests_pass"] == STALE


def test_an_invalid_design_fails_and_blocks_what_needs_it(project: Project) -> None:
    project.designs(PARTS)
    project.write("docs/design/shop/pay.md", "# shop.pay\n\nSome words.\n")
    result = _map(project)
    pay = _status(result, "shop.pay")
    assert _states(pay)["design"] == FAILING
    assert _states(pay)["tests"] == BLOCKED
    assert pay.requirements[0].detail.startswith("docs/design/shop/pay.md is invalid")
    shop = _status(result, "shop")
    assert _states(shop)["components_designed"] == FAILING
    assert "shop.pay" in shop.requirements[1].detail


def test_a_file_that_is_there_is_met_whatever_else_is_missing(project: Project) -> None:
    project.tests([PARTS[0]])  # tests written before any design: still a fact
    cart = _states(_status(_map(project), "shop.cart"))
    assert cart["design"] == MISSING
    assert cart["tests"] == MET


def test_a_context_is_done_when_everything_is(project: Project) -> None:
    project.designs(PARTS)
    project.tests([PARTS[0], PARTS[2]])
    project.code(PARTS)
    project.write("docs/review/shop/context_design.md", "## Summary\n" + "Fine. " * 40)
    scan = scan_checkout(project.root, PROFILE, cache_path=None)
    proven = with_session_evidence(scan, "ContextCoding", "shop", True, session_id="s-1")
    result = project_map("ws-1", recorded(proven))
    assert all(c.done for c in result.components), [
        (c.facts.module, [(r.key, r.detail) for r in c.requirements if r.state != MET])
        for c in result.components
        if not c.done
    ]
    cart = _status(result, "shop.cart")
    assert cart.requirements[3].detail == "tests passed in session s-1 on these files"
    # A session that did not pass proves nothing; nor does a design session.
    assert with_session_evidence(scan, "ContextCoding", "shop", False) == scan
    assert with_session_evidence(scan, "ContextDesign", "shop", True) == scan


def test_a_context_waits_for_the_contexts_it_depends_on(tmp_path: Path) -> None:
    project = new_project(tmp_path / "repo")
    project.context("accounts", [Part("accounts.users")])
    project.context("ledger", [Part("ledger.books")], depends_on=["accounts"])
    project.designs([Part("ledger.books")])
    project.tests([Part("ledger.books")])
    project.write("docs/review/ledger/context_design.md", "## Summary\n" + "Fine. " * 40)
    result = _map(project)
    ledger = _status(result, "ledger")
    assert _states(ledger)["dependencies"] == BLOCKED
    assert ledger.requirements[5].detail == "waits for accounts to be done"
    assert _states(ledger)["implemented"] == BLOCKED
    assert "dependencies" in ledger.requirements[4].detail


def test_scaffolded_skeletons_are_not_tests_nor_code(project: Project) -> None:
    project.designs(PARTS)
    marker = "# specloom:scaffold\n"
    project.write("tests/shop/cart_test.py", '"""Tests of shop.cart."""\n\n' + marker)
    project.write("src/shop/cart.py", '"""shop.cart; not implemented yet."""\n\n' + marker)
    scan = scan_checkout(project.root, PROFILE, cache_path=None)
    facts = next(c for c in scan.components if c.module == "shop.cart")
    assert facts.test.present
    assert facts.test.skeleton
    assert facts.code.skeleton
    cart = _status(project_map("ws-1", recorded(scan)), "shop.cart")
    assert _states(cart) == {
        "design": MET,
        "tests": MISSING,
        "implementation": BLOCKED,
        "tests_pass": BLOCKED,
    }
    assert cart.requirements[1].detail == (
        "tests/shop/cart_test.py is a skeleton: scaffolded, not written yet"
    )
    # A coding session's pass says nothing of skeleton files.
    assert with_session_evidence(scan, "ComponentCoding", "shop.cart", True) == scan
    project.tests([PARTS[0]])  # written over the skeleton
    scan = scan_checkout(project.root, PROFILE, cache_path=None)
    assert not next(c for c in scan.components if c.module == "shop.cart").test.skeleton
