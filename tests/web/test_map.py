"""The project page over HTTP: a workspace's map and its next sessions, against a real gateway.

A real in-process ``specloom up`` (gateway, Sessions, orchestrators,
console); a real git repository with a context design; the scan is the
CLI's own (:func:`specloom.cli._projectmap.observe`: it makes the line and
its worktree and scans them) and is reported with ``ReportProjectScan``,
as ``specloom status`` does.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from specloom.cli._projectmap import observe
from specloom.line import WORKTREE
from specloom.protoconv import struct_to_dict
from specloom.v1 import common_pb2 as pb
from specloom.workspaces import identify
from specloom_web.auth import csrf_for
from tests.projectmap.world import Part, Project, git, new_project
from tests.web.conftest import Console
from tests.web.test_console import events
from tests.web.test_executors import next_replace

PARTS = [Part("ledger.accounts"), Part("ledger.entries")]
NOBODYS = "ws-0123456789ab"


def ledger(root: Path) -> Project:
    """A designed ledger context whose components have no designs yet, and a symlink.

    The symlink sits where a component's code goes: the scan does not follow
    it and says so (a problem of the last scan).
    """
    project = new_project(root)
    project.context("ledger", PARTS)
    code = project.root / project.profile.files("ledger.entries").code
    code.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(project.root / "README.md", code)
    project.commit("the ledger's design")
    return project


async def report(console: Console, root: Path) -> pb.WorkspaceRef:
    """Scan the line the way ``specloom status`` does, and report the scan."""
    observed = observe(root, "", run_tests=False)
    async with console.client() as client:
        await client.report_project_scan(observed.workspace, observed.scan)
    return observed.workspace


def entry(html: str, session_type: str) -> str:
    found = re.search(
        rf'<li class="next-entry[^"]*" data-type="{session_type}".*?</li>', html, re.S
    )
    assert found is not None, f"no {session_type} entry in the plan"
    return found[0]


def component(html: str, module: str) -> str:
    found = re.search(rf'<tbody [^>]*id="component-{re.escape(module)}".*?</tbody>', html, re.S)
    assert found is not None, f"{module} is not on the map"
    return found[0]


async def test_a_workspace_never_scanned_says_how_to_scan_it(console: Console) -> None:
    async with console.browser(console.token) as web:
        nothing = await web.get("/map")
        assert nothing.status_code == 200
        assert "No workspace is known to this project yet" in nothing.text
        assert 'aria-current="page">Project</a>' in nothing.text
        assert "data-live" not in nothing.text

        never = await web.get(f"/map?workspace={NOBODYS}")
        assert never.status_code == 200
        assert 'data-scanned="no"' in never.text
        assert "Never scanned" in never.text
        assert "<code>specloom status</code> in the workspace" in never.text
        assert f'data-live="/live/map?workspace={NOBODYS}"' in never.text

        bad = await web.get("/map?workspace=api")
        assert bad.status_code == 400
        assert "is not a workspace id" in bad.text


async def test_the_map_shows_requirements_touches_and_what_runs_next(
    console: Console, tmp_path: Path
) -> None:
    project = ledger(tmp_path / "books")
    workspace = await report(console, project.root)
    async with console.client() as client:
        # A design session someone ran on the ledger (manual: no executor here).
        design = await client.start_session(
            "ContextDesign", {"context": "ledger"}, mode="manual", workspace=workspace
        )
        await client.cancel(design.session.id, "designed by hand instead")
    async with console.browser(console.token) as web:
        # The workspace is known from its session: the page opens on it.
        page = await web.get("/map")
    assert page.status_code == 200
    html = page.text
    assert f'<option value="{workspace.id}" selected>books ({workspace.id})</option>' in html
    assert 'data-scanned="yes"' in html
    assert "<code>specloom/main</code>" in html, "the line the map was scanned on"
    line_tip = git(project.root, "rev-parse", "specloom/main")
    assert f'<code title="{line_tip}">{line_tip[:12]}</code>' in html, "the scanned revision"
    assert "0 of 3" in html, "components done"
    problems = re.search(r'<div class="problem scan-problems".*?</div>', html, re.S)
    assert problems is not None
    assert "a symbolic link; only regular files are read" in problems[0]

    context = component(html, "ledger")
    assert 'data-requirement="design" data-state="met"' in context
    assert 'data-requirement="components_designed" data-state="missing"' in context
    assert "ContextComponentsDesign" in context, "the session type that meets it"
    assert f'href="/sessions/{design.session.id}"' in context, "the session that touched it"
    assert "status-cancelled" in context
    accounts = component(html, "ledger.accounts")
    assert 'data-requirement="design" data-state="missing"' in accounts
    assert "docs/design/ledger/accounts.md" in accounts, "the detail sentence names the file"
    assert 'data-done="no"' in accounts

    # The plan: the components' designs first, startable; the review after it,
    # left to the CLI (it takes the user stories only the checkout has).
    first = entry(html, "ContextComponentsDesign")
    assert 'data-state="ready"' in first
    assert 'action="/map/start"' in first
    assert f'name="csrf" value="{csrf_for(console.token)}"' in first
    review = entry(html, "ContextDesignReview")
    assert 'data-state="waiting"' in review
    assert "after 1" in review
    assert 'action="/map/start"' not in review


async def test_start_runs_the_entry_on_the_line_once(console: Console, tmp_path: Path) -> None:
    project = ledger(tmp_path / "books")
    workspace = await report(console, project.root)
    form = {
        "csrf": csrf_for(console.token),
        "workspace": workspace.id,
        "type": "ContextComponentsDesign",
        "subject": "ledger",
    }
    async with console.browser(console.token) as web:
        missing = await web.post("/map/start", data={**form, "csrf": ""})
        assert missing.status_code == 403
        cross_site = await web.post(
            "/map/start", data=form, headers={"Origin": "https://evil.example"}
        )
        assert cross_site.status_code == 403
        async with console.client() as client:
            listed, _ = await client.list_sessions(workspace_id=workspace.id)
        assert not listed, "a refused start started nothing"

        started = await web.post("/map/start", data=form, headers={"Origin": console.url})
        assert started.status_code == 303
        location = started.headers["location"]
        session_id = location.removeprefix("/sessions/").removesuffix("?done=start")
        shown = await web.get(location)
        assert "Started from the project map" in shown.text

        async with console.client() as client:
            session = await client.get_session(session_id, pb.INTERACTION_VIEW_NONE)
        assert session.type == "ContextComponentsDesign"
        assert session.workspace.id == workspace.id
        params = struct_to_dict(session.params)
        assert params["context"] == "ledger"
        assert params["base"] == params["land_on"] == "specloom/main"
        assert params["profile"] == "python"

        # Now it runs: the plan says so, and a second start is refused.
        again = await web.get(f"/map?workspace={workspace.id}")
        running = entry(again.text, "ContextComponentsDesign")
        assert 'data-state="running"' in running
        assert f'href="/sessions/{session_id}"' in running
        twice = await web.post("/map/start", data=form, headers={"Origin": console.url})
        assert twice.status_code == 409
        assert "runs already" in twice.text

        # An entry that waits, or one the page leaves to the CLI, is not started.
        waiting = await web.post("/map/start", data={**form, "type": "ContextDesignReview"})
        assert waiting.status_code == 409
        assert "waits for sessions still to run" in waiting.text
        unknown = await web.post("/map/start", data={**form, "subject": "payroll"})
        assert unknown.status_code == 409
        assert "no longer among the next sessions" in unknown.text
    async with console.client() as client:
        listed, _ = await client.list_sessions(workspace_id=workspace.id)
    assert [s.id for s in listed] == [session_id]


async def test_another_projects_token_sees_nothing_of_the_map(
    console: Console, tmp_path: Path
) -> None:
    project = ledger(tmp_path / "books")
    workspace = await report(console, project.root)
    async with console.browser(console.other_token) as web:
        picker = await web.get("/map")
        assert workspace.id not in picker.text
        page = await web.get(f"/map?workspace={workspace.id}")
        assert page.status_code == 200
        assert "Never scanned" in page.text
        assert "ledger" not in page.text
        async with web.stream("GET", f"/live/map?workspace={workspace.id}") as response:
            first = await next_replace(events(response), lambda html: "project-map" in html)
        assert 'data-scanned="no"' in first
        assert "ledger" not in first
        start = await web.post(
            "/map/start",
            data={
                "csrf": csrf_for(console.other_token),
                "workspace": workspace.id,
                "type": "ContextComponentsDesign",
                "subject": "ledger",
            },
        )
        assert start.status_code == 409
    async with console.client() as client:
        listed, _ = await client.list_sessions(workspace_id=workspace.id)
    assert not listed


async def test_the_open_page_follows_the_next_scan(console: Console, tmp_path: Path) -> None:
    project = ledger(tmp_path / "books")
    workspace = identify(project.root)
    async with (
        console.browser(console.token) as web,
        web.stream("GET", f"/live/map?workspace={workspace.id}") as response,
    ):
        stream = events(response)
        await next_replace(stream, lambda html: 'data-scanned="no"' in html)
        await report(console, project.root)
        scanned = await next_replace(stream, lambda html: 'data-scanned="yes"' in html)
        assert 'id="component-ledger.accounts"' in scanned
        # A person writes a component design in the line's worktree; the next
        # scan sees it, and the open page with it.
        line = Project(project.root / WORKTREE)
        line.designs(PARTS[:1])
        await report(console, project.root)
        designed = await next_replace(
            stream,
            lambda html: (
                'data-requirement="design" data-state="met"' in component(html, "ledger.accounts")
            ),
        )
        assert 'data-requirement="design" data-state="missing"' in component(
            designed, "ledger.entries"
        )
