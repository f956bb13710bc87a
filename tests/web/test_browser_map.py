"""The project page in a real headless Chromium, against a real ``specloom up``.

The demo's project nearly done (its context designed and reviewed, its
components coded, one of them wrongly: the demo's own first attempt) plus a second context the
project file lists with no design yet; ``specloom status --tests`` (the
real CLI, in the project) makes the line, scans it, runs the tests and
reports the map. The browser signs in, opens the map (screenshot), starts
the entry that can start from its confirmation form, and finds it running
on the map. Screenshots go where the console's other browser tests put
theirs (``tmp/artifacts/browser/``).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from specloom.demo.run import create_project
from specloom.demo.sample import COMPONENTS
from specloom.demo.script import (
    CONTEXT_DESIGN_FIRST,
    IMPLEMENTATIONS,
    REVIEW,
    TEST_ASSERTIONS,
    component_design,
)
from specloom.protoconv import struct_to_dict
from specloom.v1 import common_pb2 as pb
from specloom.workspaces import identify
from tests.web.chromium import require_chromium, start_browser
from tests.web.stack import SPECLOOM, Stack, _env, running_stack
from tests.web.test_browser import click, css, path_of, shot, text_of, until

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PROJECT_FILE = """\
profile = "python"

[[contexts]]
module = "inventory"

[[contexts]]
module = "billing"
depends_on = ["inventory"]
"""


def half_done(root: Path) -> Path:
    """The demo's project: designed and reviewed, coded; stock wrongly (its tests fail)."""
    project = root / "inventory"
    create_project(project, root / "origin.git")
    files = {
        "specloom.toml": PROJECT_FILE,
        "docs/design/inventory.md": CONTEXT_DESIGN_FIRST.replace(
            "## Test Strategies\n", TEST_ASSERTIONS + "\n## Test Strategies\n"
        ),
        "docs/review/inventory/context_design.md": REVIEW,
        "docs/review/inventory/component_designs.md": REVIEW,
        "src/inventory/stock.py": IMPLEMENTATIONS["inventory.stock"],
        "src/inventory/pricing.py": IMPLEMENTATIONS["inventory.pricing"],
        "src/inventory/reorder.py": IMPLEMENTATIONS["inventory.reorder"],
    }
    for module in COMPONENTS:
        files[f"docs/design/{module.replace('.', '/')}.md"] = component_design(module)
    for relative, text in files.items():
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / relative).write_text(text)
    for args in (("add", "-A"), ("commit", "-q", "-m", "half of the work")):
        subprocess.run(["git", "-C", str(project), *args], check=True)
    return project


def specloom_status(stack: Stack, project: Path) -> None:
    """``specloom status --tests`` in the project, as a person runs it."""
    env = _env()
    env["SPECLOOM_TOKEN"] = stack.admin_token
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    done = subprocess.run(
        [SPECLOOM, "--gateway", stack.address, "status", "--tests"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_chromium()
    with running_stack(tmp_path_factory.mktemp("console")) as running:
        yield running


@pytest.fixture(scope="module")
def browser(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    driver = start_browser(tmp_path_factory.mktemp("chromium-profile"))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def sign_in(stack: Stack, browser: Any) -> None:
    browser.get(f"{stack.web}/map")
    css(browser, "#token")[0].send_keys(stack.admin_token)
    css(browser, ".signin button[type=submit]")[0].click()
    until(lambda: path_of(browser) == "/map", "the map after sign-in")


def state_of(browser: Any, module: str, key: str) -> str:
    return text_of(browser, f'tbody[data-module="{module}"] tr[data-requirement="{key}"] .req')


def test_the_project_map_and_starting_what_runs_next(
    stack: Stack, browser: Any, tmp_path: Path
) -> None:
    project = half_done(tmp_path)
    workspace = identify(project)
    sign_in(stack, browser)
    browser.get(f"{stack.web}/map?workspace={workspace.id}")
    assert "Never scanned" in text_of(browser, "#project-map")
    assert "specloom status" in text_of(browser, "#project-map .never-scanned")
    shot(browser, "20-map-never-scanned")

    specloom_status(stack, project)
    # The open page follows the report, without a reload.
    until(lambda: css(browser, '#project-map[data-scanned="yes"]'), "the reported scan on the page")
    assert text_of(browser, ".scan-facts code") == "specloom/main"
    assert state_of(browser, "inventory", "design") == "met"
    assert state_of(browser, "inventory.pricing", "tests_pass") == "met"
    assert state_of(browser, "inventory.reorder", "tests_pass") == "met"
    assert state_of(browser, "inventory.stock", "tests_pass") == "failing"
    assert state_of(browser, "billing", "design") == "missing"
    failing = text_of(
        browser, 'tbody[data-module="inventory.stock"] tr[data-requirement="tests_pass"]'
    )
    assert "OutOfStock" in failing, "the failure's message, in the requirement's sentence"
    # Stock's coding first; billing's design can start too, but takes its user
    # stories from the checkout: left to the CLI, and the page says so.
    entries = [li.get_attribute("data-type") for li in css(browser, ".next-entry")]
    assert entries[:2] == ["ComponentCoding", "ContextDesign"], entries
    billing = '.next-entry[data-type="ContextDesign"]'
    assert "specloom next --start" in text_of(browser, f"{billing} .next-note")
    assert not css(browser, f"{billing} form")
    shot(browser, "21-map")
    browser.execute_script(
        "document.querySelector('tbody[data-module=\"billing\"]').scrollIntoView();"
    )
    shot(browser, "21-map-billing")

    coding = '.next-entry[data-type="ComponentCoding"]'
    assert text_of(browser, f"{coding} .next-subject") == "inventory.stock"
    assert text_of(browser, f"{coding} .next-when") == "can start now"
    click(browser, f"{coding} summary")
    until(lambda: css(browser, f"{coding} form.confirm")[0].is_displayed(), "the confirmation")
    shot(browser, "22-map-start-confirm")
    click(browser, f"{coding} button[type=submit]")
    until(lambda: "done=start" in browser.current_url, "the started session's page")
    assert "ComponentCoding" in text_of(browser, "#session-header h1")
    assert "Started from the project map" in text_of(browser, ".notice")
    session_id = path_of(browser).removeprefix("/sessions/")
    params = struct_to_dict(
        stack.call(  # type: ignore[attr-defined]
            stack.admin_token, "get_session", session_id, pb.INTERACTION_VIEW_NONE
        ).params
    )
    assert params["base"] == params["land_on"] == "specloom/main"

    browser.get(f"{stack.web}/map?workspace={workspace.id}")
    # Read again when a live update replaces the section meanwhile (`until`).
    until(
        lambda: (
            css(browser, f'{coding}[data-state="running"] a')[0].get_attribute("href")
            == f"{stack.web}/sessions/{session_id}"
        ),
        "the entry shown running, linking its session",
    )
    until(
        lambda: (
            f"{stack.web}/sessions/{session_id}"
            in [
                a.get_attribute("href")
                for a in css(browser, 'tbody[data-module="inventory.stock"] .touches a')
            ]
        ),
        "the session among those that touched inventory.stock",
    )
    shot(browser, "23-map-running")
    stack.call(stack.admin_token, "cancel", session_id, "the browser test is over")
