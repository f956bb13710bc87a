"""The console in a real headless Chromium against a real ``specloom up`` running the demo pipeline.

One module, one stack, one browser, in the order a person would go: sign in,
watch the pipeline progress live, open a child, read a failing test's message
in the fix loop, retry a step, cancel a session, see a running command on the
executors page and follow it to its session; then the scope wall (another
project's token) and a forged action (no CSRF token). Every step saves a
screenshot under ``tmp/artifacts/browser/`` at the repository root (or
``$SPECLOOM_ARTIFACTS_DIR/browser``), which CI keeps with the run's output.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from specloom.client import status_name
from specloom.demo.run import stage_params
from specloom.demo.script import IMPLEMENTATIONS, STOCK_FIX_NEW, STOCK_FIX_OLD
from specloom.protoconv import struct_to_dict
from specloom.v1 import common_pb2 as pb
from tests.web.chromium import require_chromium, start_browser
from tests.web.stack import Stack, running_agent, running_stack

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60.0


def artifacts_dir() -> Path:
    base = Path(os.environ.get("SPECLOOM_ARTIFACTS_DIR") or ROOT / "tmp" / "artifacts")
    directory = base / "browser"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_chromium()
    with running_stack(tmp_path_factory.mktemp("console")) as running:
        yield running


@pytest.fixture(scope="module")
def agent(stack: Stack) -> Iterator[Path]:
    with running_agent(stack, stack.root, stack.admin_token) as project:
        yield project


@pytest.fixture(scope="module")
def browser(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    driver = start_browser(tmp_path_factory.mktemp("chromium-profile"))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def shot(browser: Any, name: str) -> None:
    browser.save_screenshot(str(artifacts_dir() / f"{name}.png"))


def until(check: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except Exception:  # the element is being replaced by a live update: look again
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        time.sleep(0.1)


def css(browser: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(browser.find_elements(By.CSS_SELECTOR, selector))


def text_of(browser: Any, selector: str) -> str:
    """The text of the first match, read again when a live update replaced it meanwhile."""
    from selenium.common.exceptions import StaleElementReferenceException

    for _ in range(20):
        try:
            found = css(browser, selector)
            return str(found[0].text) if found else ""
        except StaleElementReferenceException:
            time.sleep(0.05)
    raise AssertionError(f"{selector} kept being replaced")


def path_of(browser: Any) -> str:
    from urllib.parse import urlsplit

    return str(urlsplit(browser.current_url).path)


def click(browser: Any, selector: str) -> None:
    """Click the element ``selector`` names, looking it up again if a live update replaced it."""

    def press() -> bool:
        css(browser, selector)[0].click()
        return True

    until(press, f"clicking {selector}")


def type_into(browser: Any, selector: str, text: str) -> None:
    def typed() -> bool:
        css(browser, selector)[0].send_keys(text)
        return True

    until(typed, f"typing into {selector}")


def mark_page(browser: Any) -> str:
    """Tag the loaded document; a reload would lose the tag."""
    marker = f"m{time.monotonic_ns()}"
    browser.execute_script("window.__specloomMarker = arguments[0];", marker)
    return marker


def same_page(browser: Any, marker: str) -> bool:
    return bool(browser.execute_script("return window.__specloomMarker === arguments[0];", marker))


def start(
    stack: Stack, session_type: str, mode: str = "agentic", base: str = "", **params: object
) -> str:
    """Start a session; ``base`` is the branch of the stage before (as the demo chains them)."""
    started = stack.call(
        stack.admin_token,
        "start_session",
        session_type,
        {**stage_params(base), **params},
        mode=mode,
    )
    return str(started.session.id)  # type: ignore[attr-defined]


def branch_of(stack: Stack, session_id: str) -> str:
    session = stack.call(stack.admin_token, "get_session", session_id, pb.INTERACTION_VIEW_NONE)
    return str(struct_to_dict(session.state).get("branch", ""))  # type: ignore[attr-defined]


def status(stack: Stack, session_id: str) -> str:
    session = stack.call(stack.admin_token, "get_session", session_id, pb.INTERACTION_VIEW_NONE)
    return status_name(session.status)  # type: ignore[attr-defined]


def test_sign_in(stack: Stack, agent: Path, browser: Any) -> None:
    browser.get(f"{stack.web}/sessions")
    assert "/signin" in browser.current_url
    shot(browser, "01-sign-in")
    css(browser, "#token")[0].send_keys(stack.admin_token)
    css(browser, ".signin button[type=submit]")[0].click()
    until(lambda: path_of(browser) == "/sessions", "the sessions list after sign-in")
    cookies = {c["name"]: c for c in browser.get_cookies()}
    token_cookie = cookies["specloom_token"]
    assert token_cookie["httpOnly"] is True
    assert token_cookie["sameSite"] == "Strict"
    assert browser.execute_script("return document.cookie;") == "", "scripts never see the token"
    assert "No sessions yet" in text_of(browser, "#session-rows")


def test_the_pipeline_progresses_live(stack: Stack, browser: Any) -> None:
    browser.get(f"{stack.web}/sessions")
    marker = mark_page(browser)
    design = start(stack, "ContextDesign")
    row = f'#session-rows tr[data-session="{design}"]'
    until(lambda: css(browser, row), "the new session appearing in the open list")
    until(
        lambda: css(browser, row)[0].get_attribute("data-status") == "complete",
        "ContextDesign turning complete in the open list",
    )
    assert same_page(browser, marker), "the list changed without a reload"
    shot(browser, "02-list-live")

    components = start(stack, "ContextComponentsDesign", base=branch_of(stack, design))
    browser.get(f"{stack.web}/sessions/{components}")
    marker = mark_page(browser)
    until(
        lambda: text_of(browser, "#session-header .status") == "complete",
        "ContextComponentsDesign complete on its open page",
    )
    until(lambda: len(css(browser, "#children .tree > li")) == 4, "four children in the tree")
    assert same_page(browser, marker)
    shot(browser, "03-components-design")

    coding = start(stack, "ContextCoding", base=branch_of(stack, components))
    browser.get(f"{stack.web}/sessions/{coding}")
    marker = mark_page(browser)
    seen: set[tuple[str, int, int]] = set()

    def progressed() -> bool:
        children_done = len(css(browser, '#children .tree > li[data-status="complete"]'))
        state = (
            text_of(browser, "#session-header .status"),
            len(css(browser, "#steps > li")),
            children_done,
        )
        seen.add(state)
        return state[0] == "complete" and children_done == 3

    until(progressed, "ContextCoding and its three children complete")
    assert same_page(browser, marker), "the session page updated without a reload"
    assert len(seen) > 1, f"the page showed the session progressing, saw only {seen}"
    steps = until(
        lambda: [li.get_attribute("data-outcome") for li in css(browser, "#steps > li")],
        "the steps",
    )
    assert "ok" in steps, steps
    assert set(steps) <= {"ok", "control"}, steps
    # Usage with its children: the scripted agent steps count (zero tokens: no model ran).
    usage = text_of(browser, "#session-header .facts.usage").lower()
    assert "with its children" in usage
    assert "agent steps\n4" in usage, usage
    shot(browser, "04-context-coding")


def test_open_a_child_and_read_the_failing_test(stack: Stack, browser: Any) -> None:
    link = until(
        lambda: [a for a in css(browser, "#children .tree a") if a.text.endswith("stock")],
        "the stock child's link",
    )
    link[0].click()
    until(lambda: "ComponentCoding" in text_of(browser, "#session-header h1"), "the child's page")
    outcomes = [li.get_attribute("data-outcome") for li in css(browser, "#steps > li")]
    assert "error" in outcomes, outcomes
    names = [text_of(li, ".step-name") for li in css(browser, "#steps > li")]
    assert "FixTestFailures" in names
    failing = [
        li for li in css(browser, "#steps > li") if li.get_attribute("data-outcome") == "error"
    ]
    failing[0].find_element("css selector", "summary").click()
    table = until(
        lambda: css(browser, f"#{failing[0].get_attribute('id')} .test-table"), "the test table"
    )
    rows = table[0].find_elements("css selector", "tbody tr")
    failed = [r for r in rows if "test-failed" in (r.get_attribute("class") or "")]
    assert failed, "a failed test row"
    assert "DID NOT RAISE OutOfStock" in failed[0].text
    assert "tests/inventory/stock_test.py:20" in failed[0].text
    assert any("test-passed" in (r.get_attribute("class") or "") for r in rows)
    fix = next(li for li in css(browser, "#steps > li") if "FixTestFailures" in li.text)
    assert "round 1" in fix.text
    shot(browser, "05-failing-test")


def test_retry_a_step(stack: Stack, browser: Any) -> None:
    # No revise round allowed: the first (invalid) design fails the session at once.
    failing = start(stack, "ContextDesign", max_rounds=0)
    browser.get(f"{stack.web}/sessions/{failing}")
    until(lambda: text_of(browser, "#session-header .status") == "failed", "the session failing")
    assert "problem" in text_of(browser, "#session-header .reason") or text_of(
        browser, "#session-header .reason"
    )
    # The invalid design, rendered, with the validator's word beside it.
    assert "ValidateDesign" in text_of(browser, "#step-3 .step-name")
    click(browser, "#step-3 summary")
    validator = until(lambda: css(browser, "#step-3 .validator"), "the validator's problems")
    assert "Missing required sections: test assertions" in validator[0].text
    document = css(browser, "#step-3 article.markdown")[0]
    assert document.find_element("css selector", "h1").text == "Inventory"
    assert "docs/design/inventory.md" in document.text
    shot(browser, "06-failed-design-and-validator")
    before = len(css(browser, "#steps > li"))
    click(browser, "#action-retry summary")
    from selenium.webdriver.support.ui import Select

    def choose() -> bool:
        select = Select(css(browser, "#action-retry select[name=step]")[0])
        select.select_by_visible_text("GenerateContextDesign")
        return True

    until(choose, "choosing the step")
    type_into(browser, "#action-retry input[name=reason]", "try the design again")
    click(browser, "#action-retry button[type=submit]")
    until(lambda: "done=retry" in browser.current_url, "the page after the retry")
    assert "Running again" in text_of(browser, ".notice")
    control = until(
        lambda: [
            li.text
            for li in css(browser, "#steps > li")
            if li.get_attribute("data-outcome") == "control"
        ],
        "the retry recorded in the timeline",
    )
    assert "retry from GenerateContextDesign" in control[-1]
    names = until(
        lambda: [li.text for li in css(browser, "#steps > li")][before + 1 :],
        "the retried step in the timeline",
    )
    assert "GenerateContextDesign" in names[0], names
    shot(browser, "07-retried")


def test_cancel_a_session(stack: Stack, browser: Any) -> None:
    # Manual mode: no executor takes its steps, so it waits for a person.
    waiting = start(stack, "ContextDesign", mode="manual")
    browser.get(f"{stack.web}/sessions/{waiting}")
    assert text_of(browser, "#session-header .status") == "active"
    click(browser, "#action-cancel summary")
    shot(browser, "08-cancel-confirm")
    type_into(browser, "#action-cancel input[name=reason]", "not needed")
    click(browser, "#action-cancel button[type=submit]")
    until(lambda: text_of(browser, "#session-header .status") == "cancelled", "cancelled")
    assert status(stack, waiting) == "cancelled"
    assert "not needed" in text_of(browser, "#session-header .reason")
    assert not css(browser, "#action-cancel"), "a cancelled session offers no actions"
    shot(browser, "09-cancelled")


def test_an_action_without_the_csrf_token_is_refused(stack: Stack, browser: Any) -> None:
    waiting = start(stack, "ContextDesign", mode="manual")
    browser.get(f"{stack.web}/sessions/{waiting}")
    # The page's own cookie goes along (same site), but not the form's token.
    for body in ("reason=forged", "reason=forged&csrf=0123456789abcdef0123456789abcdef01234567"):
        code = browser.execute_async_script(
            """
            const done = arguments[arguments.length - 1];
            fetch(arguments[0], {method: "POST", credentials: "same-origin",
                  headers: {"Content-Type": "application/x-www-form-urlencoded"},
                  body: arguments[1]}).then(r => done(r.status));
            """,
            f"/sessions/{waiting}/cancel",
            body,
        )
        assert code == 403
    assert status(stack, waiting) == "active", "the forged cancel did nothing"


def test_all_sessions_and_the_workflows(stack: Stack, browser: Any) -> None:
    browser.get(f"{stack.web}/sessions?show=all")
    assert len(css(browser, "#session-rows tr[data-session]")) == 13  # 3 + 7 children + 3
    shot(browser, "15-all-sessions")
    browser.get(f"{stack.web}/workflows")
    assert len(css(browser, "svg.workflow-diagram")) >= 9
    coding = css(browser, "#ComponentCoding svg")[0]
    assert "FixTestFailures" in coding.get_attribute("outerHTML")
    browser.execute_script("document.getElementById('ComponentCoding').scrollIntoView();")
    shot(browser, "10-workflows")


def hold_stock_tests(stack: Stack, hold: Path) -> None:
    """Make the agent's next ComponentCoding of context ``held`` run its tests until ``hold`` goes.

    The scripted backend reads its script for every step: this entry, first,
    writes the (fixed) stock module with an import that waits while ``hold``
    exists, so the RunTests step after it stays running on the agent.
    """
    script = stack.root / "demo-script.json"
    held = json.loads(script.read_text())
    module = (
        "import os as _os\nimport time as _time\n\n"
        f"_deadline = _time.monotonic() + {WAIT}\n"
        f"while _os.path.exists({str(hold)!r}) and _time.monotonic() < _deadline:\n"
        "    _time.sleep(0.1)\n\n"
        + IMPLEMENTATIONS["inventory.stock"].replace(STOCK_FIX_OLD, STOCK_FIX_NEW)
    )
    entry = {
        "match": {
            "session_type": "ComponentCoding",
            "step": "GenerateImplementation",
            "context": "held",
        },
        "edits": [{"path": "src/inventory/stock.py", "write": module}],
        "reply": "Implemented inventory.stock (its tests wait for the browser test).",
    }
    held["entries"].insert(0, entry)
    script.write_text(json.dumps(held))


def test_the_executors_page_lists_a_running_command_and_links_its_session(
    stack: Stack, browser: Any
) -> None:
    hold = stack.root / "hold-stock-tests"
    hold.write_text("")
    hold_stock_tests(stack, hold)
    listed = stack.call(
        stack.admin_token, "list_sessions", types=["ContextCoding"], statuses=["complete"]
    )
    (coding,) = listed[0]  # type: ignore[index]
    held = start(
        stack,
        "ComponentCoding",
        base=branch_of(stack, str(coding.id)),
        component="inventory.stock",
        context="held",
    )
    try:
        browser.get(f"{stack.web}/executors")
        marker = mark_page(browser)
        assert "browser-test-agent" in text_of(browser, "#executors .executor h2")
        row = f'#executors tr.running-command[data-session="{held}"]'
        until(lambda: css(browser, row), "the held RunTests listed on the open executors page")
        assert same_page(browser, marker), "listed live, without a reload"
        until(lambda: "RunTests" in text_of(browser, row), "the running step's name")
        link = css(browser, f"{row} a")[0]
        assert link.get_attribute("href") == f"{stack.web}/sessions/{held}"
        assert link.text == "ComponentCoding · held"  # its name: the context given
        workspace = css(browser, "#executors .workspaces a.workspace")[0]
        assert "inventory (ws-" in workspace.text
        assert "1 of 4 slots busy" in text_of(browser, "#executors .executor h2")
        shot(browser, "11-executors")
        link.click()
        until(lambda: path_of(browser) == f"/sessions/{held}", "the running command's session")
        assert "ComponentCoding" in text_of(browser, "#session-header h1")
        until(lambda: css(browser, '#steps > li[data-outcome="pending"]'), "its running step")
        assert "RunTests" in text_of(browser, '#steps > li[data-outcome="pending"] .step-name')
        assert "inventory (ws-" in text_of(browser, "#session-header .workspace")
        shot(browser, "12-running-session")
    finally:
        hold.unlink()
    until(lambda: status(stack, held) == "complete", "the held session finishing")
    browser.get(f"{stack.web}/executors")
    until(
        lambda: "idle: no command running" in text_of(browser, "#executors .running"),
        "the agent idle again on the open page",
    )


def test_a_session_waiting_for_its_workspace_says_so(stack: Stack, browser: Any) -> None:
    # A clone nobody's agent serves: the session's step waits for one.
    clone = pb.WorkspaceRef(id="ws-0123456789ab", name="inventory-clone")
    started = stack.call(
        stack.admin_token,
        "start_session",
        "ContextDesign",
        stage_params(""),
        mode="agentic",
        workspace=clone,
    )
    waiting = str(started.session.id)  # type: ignore[attr-defined]
    browser.get(f"{stack.web}/sessions")
    row = f'#session-rows tr[data-session="{waiting}"]'
    until(lambda: css(browser, row), "the waiting session listed")
    assert text_of(browser, f"{row} .status") == "waiting"
    expected = "waiting for an executor of workspace inventory-clone (ws-0123456789ab)"
    assert expected in text_of(browser, f"{row} .reason-waiting")
    shot(browser, "16-waiting-list")
    click(browser, f"{row} td:nth-child(2) a")
    until(lambda: path_of(browser) == f"/sessions/{waiting}", "the waiting session's page")
    assert text_of(browser, "#session-header .status") == "waiting"
    assert expected in text_of(browser, "#session-header .reason-waiting")
    assert text_of(browser, "#steps .outcome-waiting") == "waiting"
    assert expected in text_of(browser, "#steps .step-detail .reason-waiting")
    shot(browser, "17-waiting-session")
    stack.call(stack.admin_token, "cancel", waiting, "no agent serves that clone")


def test_another_projects_token_sees_nothing(stack: Stack, browser: Any) -> None:
    visible = stack.call(stack.admin_token, "list_sessions", top_level_only=True)
    some_id = visible[0][0].id  # type: ignore[index]
    css(browser, ".who button")[0].click()
    until(lambda: path_of(browser) == "/signin", "signed out")
    assert "specloom_token" not in {c["name"] for c in browser.get_cookies()}
    css(browser, "#token")[0].send_keys(stack.token_for("elsewhere", "mallory"))
    css(browser, ".signin button[type=submit]")[0].click()
    until(lambda: path_of(browser) == "/sessions", "signed in as the other project")
    assert "No sessions yet" in text_of(browser, "#session-rows")
    shot(browser, "13-other-project-list")
    browser.get(f"{stack.web}/executors")
    assert "No executor is connected" in text_of(browser, "#executors")
    assert "browser-test-agent" not in browser.page_source
    browser.get(f"{stack.web}/sessions/{some_id}")
    assert text_of(browser, "h1") == "Not found"
    code = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0]).then(r => done(r.status));",
        f"/sessions/{some_id}",
    )
    assert code == 404
    shot(browser, "14-other-project-404")
